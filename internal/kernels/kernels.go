// Package kernels holds goclip's compute kernels: matrix products, the
// element-wise activations and normalisations of a transformer, and the
// worker pool every layer shares.
//
// All matrices are row-major []float32. Entry points are safe for concurrent
// use; they split work over the shared pool (see Parallel).
package kernels

// Linear computes y[m,n] = x[m,k] · w[n,k]ᵀ + bias[n], the PyTorch nn.Linear
// layout (w is [out, in]). bias may be nil.
func Linear(y, x, w, bias []float32, m, n, k int) {
	Parallel(m, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xi := x[i*k : i*k+k]
			yi := y[i*n : i*n+n]
			for j := 0; j < n; j++ {
				s := Dot(xi, w[j*k:j*k+k])
				if bias != nil {
					s += bias[j]
				}
				yi[j] = s
			}
		}
	})
}

// MatMul computes c[m,n] = a[m,k] · b[k,n].
func MatMul(c, a, b []float32, m, n, k int) {
	Parallel(m, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			ci := c[i*n : i*n+n]
			for j := range ci {
				ci[j] = 0
			}
			for p := 0; p < k; p++ {
				av := a[i*k+p]
				bp := b[p*n : p*n+n]
				for j := range ci {
					ci[j] += av * bp[j]
				}
			}
		}
	})
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
