// Package kernels holds goclip's compute kernels: matrix products, the
// element-wise activations and normalisations of a transformer, and the
// worker pool every layer shares.
//
// All matrices are row-major []float32. Entry points are safe for concurrent
// use; they split work over the shared pool (see Parallel).
//
// # Matrix products
//
// Sgemm is a BLIS-style SGEMM: B is packed into kc×nc panels and A into
// mc×kc blocks, and a register-tile microkernel runs over them. C is split
// into a 2-D grid of tiles, one per worker, so even 50-row (batch 1) products
// use every core. The microkernel is chosen at start-up from what the CPU
// and OS support (CPUID and XCR0 on amd64): "avx512" (6×32 tile), "avx2"
// (AVX2+FMA, 6×16), "neon" (arm64, 4×16) or the portable "go" (4×4). The
// environment variable GOCLIP_KERNEL (or SetKernel) forces one; the build
// tag purego leaves only "go".
//
// For the weights of a model, PackLinear packs an nn.Linear weight once (or
// PackMatMul a k×n right-hand matrix) and LinearPacked multiplies by it
// with a fused epilogue (bias, QuickGELU,
// GELU, residual add). Linear packs its weight on every call, which costs
// about as much as the product itself at batch 1. PackedB.ToBF16 (or
// PackLinearBF16) holds a packed weight as bfloat16, multiplied in
// VDPBF16PS on CPUs with AVX512_BF16 (bf16dot.go); PackLinearInt8 (or PackedB.ToInt8) holds it
// as int8 for exact integer products with inputs quantised per row
// (int8.go), and PackConvInt8 does the same for 1×1 convolutions
// (conv_int8.go).
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

// dotGo is the portable Dot.
func dotGo(a, b []float32) float32 {
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
