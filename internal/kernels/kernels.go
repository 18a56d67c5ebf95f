// Package kernels holds goclip's compute kernels: matrix products, the
// element-wise activations and normalisations of a transformer, and the
// worker pool every layer shares.
//
// All matrices are row-major []float32. Entry points are safe for concurrent
// use; they split work over the shared pool (see Parallel).
package kernels

// Linear computes y[m,n] = x[m,k] · w[n,k]ᵀ + bias[n], the PyTorch nn.Linear
// layout (w is [out, in]). bias may be nil. It packs w on every call: for a
// weight used repeatedly, PackLinear it once and call LinearPacked.
func Linear(y, x, w, bias []float32, m, n, k int) {
	if m <= 0 || n <= 0 {
		return
	}
	beta := float32(0)
	if bias != nil {
		bias = bias[:n]
		for i := 0; i < m; i++ {
			copy(y[i*n:i*n+n], bias)
		}
		beta = 1
	}
	Sgemm(false, true, m, n, k, 1, x, k, w, k, beta, y, n)
}

// MatMul computes c[m,n] = a[m,k] · b[k,n].
func MatMul(c, a, b []float32, m, n, k int) {
	Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
}

// Dot returns Σ a[i]·b[i] over len(a) elements.
func Dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}
