//go:build purego || !amd64

package kernels

func quickGELU(x []float32, simd simdLevel) { quickGELUGo(x) }

func softmaxRow(x []float32, simd simdLevel) { softmaxRowGo(x) }

func gelu(x []float32, simd simdLevel) { geluGo(x) }

// Dot returns Σ a[i]·b[i] over len(a) elements.
func Dot(a, b []float32) float32 { return dotGo(a, b) }

func rowStats(x []float32) (sum, sumsq float64) { return rowStatsGo(x) }

func lnApply(y, x, g, b []float32, mean, rstd float32) { lnApplyGo(y, x, g, b, mean, rstd) }

func interleaveVec(dst, src []float32, off, ld, stride, rows, klen int) int { return 0 }
