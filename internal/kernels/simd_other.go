//go:build purego || !amd64

package kernels

func quickGELU(x []float32, simd simdLevel) { quickGELUGo(x) }

func softmaxRow(x []float32, simd simdLevel) { softmaxRowGo(x) }

// Dot returns Σ a[i]·b[i] over len(a) elements.
func Dot(a, b []float32) float32 { return dotGo(a, b) }
