//go:build purego || !(amd64 || arm64)

package kernels

// archKernels lists the assembly microkernels of this build: none.
func archKernels() []*microKernel { return nil }

func fmaPeakLoop(name string) (loop func(n int), flopsPerIter int) { return nil, 0 }
