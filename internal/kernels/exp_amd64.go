//go:build amd64 && !purego

package kernels

//go:noescape
func quickGELUAVX2(x *float32, n int)

//go:noescape
func expShiftSumAVX2(x *float32, n int, shift float32) (sum float32)

func quickGELU(x []float32, simd simdLevel) {
	if simd >= simdAVX2 && len(x) >= 8 {
		n := len(x) &^ 7
		quickGELUAVX2(&x[0], n)
		x = x[n:]
	}
	quickGELUGo(x)
}

func expShiftSum(x []float32, shift float32, simd simdLevel) float64 {
	var s float64
	if simd >= simdAVX2 && len(x) >= 8 {
		n := len(x) &^ 7
		s = float64(expShiftSumAVX2(&x[0], n, shift))
		x = x[n:]
	}
	return s + expShiftSumGo(x, shift)
}
