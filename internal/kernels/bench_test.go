package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

var (
	peakOnce  sync.Map // kernel name → float64 GFLOP/s of one core
	peakMutex sync.Mutex
)

// fmaPeak measures the one-core fp32 FMA throughput (GFLOP/s) of the vector
// width the named kernel uses, with a register-only FMA loop; 0 if the
// kernel has no such loop.
func fmaPeak(name string) float64 {
	peakMutex.Lock()
	defer peakMutex.Unlock()
	if v, ok := peakOnce.Load(name); ok {
		return v.(float64)
	}
	loop, fpi := fmaPeakLoop(name)
	if loop == nil {
		return 0
	}
	const iters = 1 << 20
	loop(iters) // warm up (frequency, license)
	best := 0.0
	for range 5 {
		start := time.Now()
		loop(iters)
		g := float64(iters) * float64(fpi) / time.Since(start).Seconds() / 1e9
		best = max(best, g)
	}
	peakOnce.Store(name, best)
	return best
}

// BenchmarkFMAPeak reports the one-core FMA peak of each vector width.
func BenchmarkFMAPeak(b *testing.B) {
	for _, name := range Kernels() {
		loop, fpi := fmaPeakLoop(name)
		if loop == nil {
			continue
		}
		b.Run(name, func(b *testing.B) {
			const iters = 1 << 16
			for b.Loop() {
				loop(iters)
			}
			b.ReportMetric(float64(b.N)*iters*float64(fpi)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// ViT-B/32 shapes, as M×K×N of y[M,N] = x[M,K]·w[N,K]ᵀ: batch 1 (50
// tokens) and batch 32 (1600 tokens).
var benchShapes = []struct {
	name    string
	m, k, n int
}{
	{"qkv_50x768x2304", 50, 768, 2304},
	{"attnout_50x768x768", 50, 768, 768},
	{"fc_50x768x3072", 50, 768, 3072},
	{"proj_50x3072x768", 50, 3072, 768},
	{"fc_1600x768x3072", 1600, 768, 3072},
	{"proj_1600x3072x768", 1600, 3072, 768},
}

func benchGemm(b *testing.B, m, n, k int, run func()) {
	b.Helper()
	run()
	for b.Loop() {
		run()
	}
	g := 2 * float64(m) * float64(n) * float64(k) * float64(b.N) / b.Elapsed().Seconds() / 1e9
	b.ReportMetric(g, "GFLOP/s")
	if p := fmaPeak(Kernel()); p > 0 {
		b.ReportMetric(100*g/p, "%peak1core")
	}
}

// BenchmarkSgemm times Sgemm in the nn.Linear layout (transB, packing the
// weight on every call) with 1 and 2 threads.
func BenchmarkSgemm(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		x, w, y := randSlice(r, s.m*s.k), randSlice(r, s.n*s.k), make([]float32, s.m*s.n)
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", s.name, threads), func(b *testing.B) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
				benchGemm(b, s.m, s.n, s.k, func() {
					Sgemm(false, true, s.m, s.n, s.k, 1, x, s.k, w, s.k, 0, y, s.n)
				})
			})
		}
	}
}

// BenchmarkLinearPacked times the model's path: a weight packed once, bias
// and QuickGELU fused.
func BenchmarkLinearPacked(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		x, w, y := randSlice(r, s.m*s.k), randSlice(r, s.n*s.k), make([]float32, s.m*s.n)
		bias := randSlice(r, s.n)
		pw := PackLinear(w, s.n, s.k)
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", s.name, threads), func(b *testing.B) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
				benchGemm(b, s.m, s.n, s.k, func() { LinearPacked(y, x, pw, bias, s.m, EpiNone) })
			})
		}
	}
}
