//go:build purego || !amd64

package kernels

func quickGELU(x []float32, simd simdLevel) { quickGELUGo(x) }

func expShiftSum(x []float32, shift float32, simd simdLevel) float64 {
	return expShiftSumGo(x, shift)
}
