//go:build arm64 && !purego

package kernels

//go:noescape
func sgemmKernelNEON(k int, a, b, c *float32, ldc int, accum int)

// archKernels lists the assembly microkernels of this build: NEON (Advanced
// SIMD is part of every arm64 CPU Go supports).
func archKernels() []*microKernel {
	return []*microKernel{{name: "neon", mr: 4, nr: 16, kc: 256, mc: 128, fn: sgemmKernelNEON}}
}

func fmaPeakLoop(name string) (loop func(n int), flopsPerIter int) { return nil, 0 }
