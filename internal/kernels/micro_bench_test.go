package kernels

import "testing"

// BenchmarkMicroKernel times each microkernel alone on L1-resident packed
// panels (one kc-deep tile): the ceiling of the full GEMM.
func BenchmarkMicroKernel(b *testing.B) {
	for _, k := range available {
		b.Run(k.name, func(b *testing.B) {
			kc := k.kc
			a := make([]float32, k.mr*kc)
			bb := make([]float32, k.nr*kc)
			c := make([]float32, k.mr*k.nr)
			for b.Loop() {
				k.fn(kc, &a[0], &bb[0], &c[0], k.nr, 1)
			}
			b.ReportMetric(2*float64(k.mr*k.nr*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkMicroKernelInt8 times the int8 microkernels of 6 and 5 rows
// alone on L1-resident operands (256 pairs of k).
func BenchmarkMicroKernelInt8(b *testing.B) {
	for _, r := range []int{6, 5} {
		b.Run(string(rune('0'+r))+"rows", func(b *testing.B) {
			const kp = 256
			a := make([]int16, r*2*kp)
			bb := make([]int16, qnr*2*kp)
			c := make([]float32, r*qnr)
			sa, sw := make([]float32, r), make([]float32, qnr)
			for b.Loop() {
				qgemmAsm(r, kp, &a[0], 2*kp, &bb[0], &c[0], qnr, &sa[0], &sw[0], nil, 1)
			}
			b.ReportMetric(2*float64(r*qnr*2*kp)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
