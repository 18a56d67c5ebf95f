//go:build amd64 && !purego

package kernels

// The packed-SGEMM microkernels of 1 to 6 rows for AVX2+FMA (NR=16) and
// AVX-512F (NR=32), generated into sgemm_rows_amd64.s with the same
// variants: R<n> plain, R<n>B adding a bias, R6A prefetching the
// streamed A operand, R5N/R6N (and R5NB/R6NB with a bias) prefetching a
// quarter micro-panel at next (see microKernel).
//
//go:generate sh -c "go run gen/sgemmrows.go > sgemm_rows_amd64.s"

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

//go:noescape
func sgemmKernelAVX2R6(k int, a, b, c *float32, ldc int, accum int)

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

//go:noescape
func sgemmKernelAVX2R6A(k int, a, b, c *float32, ldc int, accum int)

//go:noescape
func sgemmKernelAVX2R5N(k int, a, b, c *float32, ldc int, accum int, next uintptr)

//go:noescape
func sgemmKernelAVX2R6N(k int, a, b, c *float32, ldc int, accum int, next uintptr)

//go:noescape
func sgemmKernelAVX2R5NB(k int, a, b, c *float32, ldc int, accum int, bias *float32, next uintptr)

//go:noescape
func sgemmKernelAVX2R6NB(k int, a, b, c *float32, ldc int, accum int, bias *float32, next uintptr)

//go:noescape
func sgemmKernelAVX512R1(k int, a, b, c *float32, ldc int, accum int)

//go:noescape
func sgemmKernelAVX512R2(k int, a, b, c *float32, ldc int, accum int)

//go:noescape
func sgemmKernelAVX512R3(k int, a, b, c *float32, ldc int, accum int)

//go:noescape
func sgemmKernelAVX512R4(k int, a, b, c *float32, ldc int, accum int)

//go:noescape
func sgemmKernelAVX512R5(k int, a, b, c *float32, ldc int, accum int)

//go:noescape
func sgemmKernelAVX512R6(k int, a, b, c *float32, ldc int, accum int)

//go:noescape
func sgemmKernelAVX512R1B(k int, a, b, c *float32, ldc int, accum int, bias *float32)

//go:noescape
func sgemmKernelAVX512R2B(k int, a, b, c *float32, ldc int, accum int, bias *float32)

//go:noescape
func sgemmKernelAVX512R3B(k int, a, b, c *float32, ldc int, accum int, bias *float32)

//go:noescape
func sgemmKernelAVX512R4B(k int, a, b, c *float32, ldc int, accum int, bias *float32)

//go:noescape
func sgemmKernelAVX512R5B(k int, a, b, c *float32, ldc int, accum int, bias *float32)

//go:noescape
func sgemmKernelAVX512R6B(k int, a, b, c *float32, ldc int, accum int, bias *float32)

//go:noescape
func sgemmKernelAVX512R6A(k int, a, b, c *float32, ldc int, accum int)

//go:noescape
func sgemmKernelAVX512R5N(k int, a, b, c *float32, ldc int, accum int, next uintptr)

//go:noescape
func sgemmKernelAVX512R6N(k int, a, b, c *float32, ldc int, accum int, next uintptr)

//go:noescape
func sgemmKernelAVX512R5NB(k int, a, b, c *float32, ldc int, accum int, bias *float32, next uintptr)

//go:noescape
func sgemmKernelAVX512R6NB(k int, a, b, c *float32, ldc int, accum int, bias *float32, next uintptr)

// avx2Rows and avx512Rows are the two generated families.
var (
	avx2Rows = rowKernels{
		fn:       [6]func(k int, a, b, c *float32, ldc int, accum int){sgemmKernelAVX2R1, sgemmKernelAVX2R2, sgemmKernelAVX2R3, sgemmKernelAVX2R4, sgemmKernelAVX2R5, sgemmKernelAVX2R6},
		bias:     [6]biasKernel{sgemmKernelAVX2R1B, sgemmKernelAVX2R2B, sgemmKernelAVX2R3B, sgemmKernelAVX2R4B, sgemmKernelAVX2R5B, sgemmKernelAVX2R6B},
		streamA:  sgemmKernelAVX2R6A,
		next:     [6]nextKernel{4: sgemmKernelAVX2R5N, 5: sgemmKernelAVX2R6N},
		nextBias: [6]nextBiasKernel{4: sgemmKernelAVX2R5NB, 5: sgemmKernelAVX2R6NB},
	}
	avx512Rows = rowKernels{
		fn:       [6]func(k int, a, b, c *float32, ldc int, accum int){sgemmKernelAVX512R1, sgemmKernelAVX512R2, sgemmKernelAVX512R3, sgemmKernelAVX512R4, sgemmKernelAVX512R5, sgemmKernelAVX512R6},
		bias:     [6]biasKernel{sgemmKernelAVX512R1B, sgemmKernelAVX512R2B, sgemmKernelAVX512R3B, sgemmKernelAVX512R4B, sgemmKernelAVX512R5B, sgemmKernelAVX512R6B},
		streamA:  sgemmKernelAVX512R6A,
		next:     [6]nextKernel{4: sgemmKernelAVX512R5N, 5: sgemmKernelAVX512R6N},
		nextBias: [6]nextBiasKernel{4: sgemmKernelAVX512R5NB, 5: sgemmKernelAVX512R6NB},
	}
)

// archKernels lists the assembly microkernels this CPU can run, best first.
func archKernels() []*microKernel {
	avx2, avx512 := cpuFeatures()
	var ks []*microKernel
	if avx512 {
		ks = append(ks, avx512Rows.family("avx512", 32, simdAVX2))
	}
	if avx2 {
		ks = append(ks, avx2Rows.family("avx2", 16, simdAVX2))
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
