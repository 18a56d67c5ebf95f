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
