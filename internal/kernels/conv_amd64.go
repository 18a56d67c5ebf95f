//go:build amd64 && !purego

package kernels

//go:noescape
func biasAVX2(x *float32, n int, b float32)

//go:noescape
func biasReLUAVX2(x *float32, n int, b float32)

// biasAct sets x[i] = x[i] + b, then max(·, 0) when relu is set (NaN stays
// NaN), eight at a time when simd allows AVX2.
func biasAct(x []float32, b float32, relu bool, simd simdLevel) {
	if simd >= simdAVX2 && len(x) >= 8 {
		n := len(x) &^ 7
		if relu {
			biasReLUAVX2(&x[0], n, b)
		} else {
			biasAVX2(&x[0], n, b)
		}
		x = x[n:]
	}
	biasActGo(x, b, relu)
}
