package bench

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/goclip/goclip/internal/model"
)

// BenchmarkRN50AttentionPool times RN50's attention pool alone on its
// 2048×7×7 input, at batch 1 and 32, with the caches flushed before each
// pass as in a whole pass, where its 59 MB of weights come from memory;
// it reports ms per image.
func BenchmarkRN50AttentionPool(b *testing.B) {
	cfg, err := model.Arch("RN50")
	if err != nil {
		b.Fatal(err)
	}
	m, err := model.Random(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	pool := &m.Visual.(*model.ModifiedResNet).Pool
	d := pool.Dim
	hw := len(pool.Pos)/d - 1
	r := rand.New(rand.NewPCG(4, 5))
	junk := make([]float32, 64<<20/4)
	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			x := make([]float32, batch*d*hw)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			out := make([]float32, batch*cfg.EmbedDim)
			var ar model.Arena
			pool.Forward(&ar, out, x, batch, hw, nil)
			ar.Reset()
			var el time.Duration
			for b.Loop() {
				for i := range junk {
					junk[i]++
				}
				t0 := time.Now()
				pool.Forward(&ar, out, x, batch, hw, nil)
				el += time.Since(t0)
				ar.Reset()
			}
			b.ReportMetric(el.Seconds()*1000/float64(b.N*batch), "ms/image")
		})
	}
}
