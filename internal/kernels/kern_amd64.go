//go:build amd64 && !purego

package kernels

// The AVX2 kernels of 1 to 6 rows (sgemm_rows_amd64.s, generated).
//
//go:noescape
func sgemmKernelAVX2R6(k int, a, b, c *float32, ldc int, accum int)

//go:generate sh -c "go run gen/avx2rows.go > sgemm_rows_amd64.s"

//go:noescape
func sgemmKernelAVX2R1(k int, a, b, c *float32, ldc int, accum int)

//go:noescape
func sgemmKernelAVX2R2(k int, a, b, c *float32, ldc int, accum int)

//go:noescape
func sgemmKernelAVX2R3(k int, a, b, c *float32, ldc int, accum int)

//go:noescape
func sgemmKernelAVX2R4(k int, a, b, c *float32, ldc int, accum int)

//go:noescape
func sgemmKernelAVX2R5(k int, a, b, c *float32, ldc int, accum int)

// The same kernels adding a 16-wide bias before storing the tile.

//go:noescape
func sgemmKernelAVX2R1B(k int, a, b, c *float32, ldc int, accum int, bias *float32)

//go:noescape
func sgemmKernelAVX2R2B(k int, a, b, c *float32, ldc int, accum int, bias *float32)

//go:noescape
func sgemmKernelAVX2R3B(k int, a, b, c *float32, ldc int, accum int, bias *float32)

//go:noescape
func sgemmKernelAVX2R4B(k int, a, b, c *float32, ldc int, accum int, bias *float32)

//go:noescape
func sgemmKernelAVX2R5B(k int, a, b, c *float32, ldc int, accum int, bias *float32)

//go:noescape
func sgemmKernelAVX2R6B(k int, a, b, c *float32, ldc int, accum int, bias *float32)

// sgemmKernelAVX2R6A is sgemmKernelAVX2R6 prefetching A one micro-panel
// ahead instead of the next B micro-panel (see microKernel.fnStreamA).
//
//go:noescape
func sgemmKernelAVX2R6A(k int, a, b, c *float32, ldc int, accum int)

// The 5- and 6-row kernels prefetching a quarter micro-panel at next
// (see microKernel.fnNext), plain and adding a bias.
//
//go:noescape
func sgemmKernelAVX2R5N(k int, a, b, c *float32, ldc int, accum int, next uintptr)

//go:noescape
func sgemmKernelAVX2R6N(k int, a, b, c *float32, ldc int, accum int, next uintptr)

//go:noescape
func sgemmKernelAVX2R5NB(k int, a, b, c *float32, ldc int, accum int, bias *float32, next uintptr)

//go:noescape
func sgemmKernelAVX2R6NB(k int, a, b, c *float32, ldc int, accum int, bias *float32, next uintptr)

//go:noescape
func sgemmKernelAVX512(k int, a, b, c *float32, ldc int, accum int)

// archKernels lists the assembly microkernels this CPU can run, best first.
func archKernels() []*microKernel {
	avx2, avx512 := cpuFeatures()
	var ks []*microKernel
	if avx512 {
		ks = append(ks, &microKernel{name: "avx512", mr: 6, nr: 32, kc: 256, mc: 144, fn: sgemmKernelAVX512, simd: simdAVX2})
	}
	if avx2 {
		k := &microKernel{name: "avx2", mr: 6, nr: 16, kc: 256, mc: 144, fn: sgemmKernelAVX2R6, fnBias: sgemmKernelAVX2R6B, simd: simdAVX2}
		for r, fn := range []func(k int, a, b, c *float32, ldc int, accum int){
			sgemmKernelAVX2R1, sgemmKernelAVX2R2, sgemmKernelAVX2R3, sgemmKernelAVX2R4, sgemmKernelAVX2R5,
		} {
			v := *k
			v.mr, v.mc, v.fn = r+1, 144/(r+1)*(r+1), fn
			v.fnBias = []biasKernel{sgemmKernelAVX2R1B, sgemmKernelAVX2R2B, sgemmKernelAVX2R3B, sgemmKernelAVX2R4B, sgemmKernelAVX2R5B}[r]
			if v.mr == 5 {
				v.fnNext, v.fnNextBias = sgemmKernelAVX2R5N, sgemmKernelAVX2R5NB
			}
			k.rows = append(k.rows, &v)
		}
		k.fnStreamA = sgemmKernelAVX2R6A
		k.fnNext, k.fnNextBias = sgemmKernelAVX2R6N, sgemmKernelAVX2R6NB
		ks = append(ks, k)
	}
	return ks
}

//go:noescape
func fmaPeakAVX2(n int)

//go:noescape
func fmaPeakAVX512(n int)

// fmaPeakLoop returns a loop of n iterations and its flops per iteration,
// for the named kernel's vector width (nil when there is none).
func fmaPeakLoop(name string) (loop func(n int), flopsPerIter int) {
	switch name {
	case "avx512":
		return fmaPeakAVX512, 12 * 16 * 2
	case "avx2":
		return fmaPeakAVX2, 12 * 8 * 2
	}
	return nil, 0
}
