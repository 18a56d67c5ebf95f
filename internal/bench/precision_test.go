package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/goclip/goclip/internal/kernels"
	"github.com/goclip/goclip/internal/model"
)

// BenchmarkPrecision times the ViT-B/32 towers and RN50's image tower
// (random weights) in float32 and in int8 or bf16, alternating the two pass
// by pass in one process (the only comparison a noisy machine allows), and
// reports both rates, their ratio (speedup) and one minus the worst cosine
// of the reduced-precision features to the float32 ones (cosine_gap).
// Each iteration is one pass of each: -benchtime 20x for batch 1, 3x for
// batch 32 (-bench 'Precision/ViT-B-32/int8/.*/batch=1$').
func BenchmarkPrecision(b *testing.B) {
	for _, arch := range []string{"ViT-B-32", "RN50"} {
		b.Run(arch, func(b *testing.B) { benchPrecision(b, arch) })
	}
}

func benchPrecision(b *testing.B, arch string) {
	cfg, err := model.Arch(arch)
	if err != nil {
		b.Fatal(err)
	}
	fp, err := model.Random(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(2, 3))
	whats := []string{"image", "text"}
	if cfg.Vision.IsResNet() {
		whats = whats[:1] // the text tower is ViT-B-32's
	}
	for _, prec := range []model.Precision{model.Int8, model.BF16} {
		q, err := model.Random(cfg, 1)
		if err != nil {
			b.Fatal(err)
		}
		q.UsePrecision(prec)
		for _, what := range whats {
			for _, batch := range []int{1, 32} {
				b.Run(fmt.Sprintf("%s/%s/batch=%d", prec, what, batch), func(b *testing.B) {
					px := RandomPixels(r, batch, cfg.Vision.ImageSize)
					toks, _ := RandomTokens(r, batch, cfg.Text.ContextLength)
					ed := cfg.EmbedDim
					of, oq := make([]float32, batch*ed), make([]float32, batch*ed)
					pass := func(m *model.Model, out []float32) time.Duration {
						start := time.Now()
						if what == "image" {
							m.EncodeImage(out, px, batch, nil)
						} else if err := m.EncodeText(out, toks, nil); err != nil {
							b.Fatal(err)
						}
						return time.Since(start)
					}
					pass(fp, of)
					pass(q, oq)
					var tf, tq time.Duration
					b.ResetTimer()
					for i := 0; b.Loop(); i++ {
						if i%2 == 0 {
							tf += pass(fp, of)
							tq += pass(q, oq)
						} else {
							tq += pass(q, oq)
							tf += pass(fp, of)
						}
					}
					worst := 1.0
					for i := range batch {
						worst = math.Min(worst, kernels.Cosine(of[i*ed:(i+1)*ed], oq[i*ed:(i+1)*ed]))
					}
					items := float64(b.N * batch)
					b.ReportMetric(items/tf.Seconds(), "fp32_items/s")
					b.ReportMetric(items/tq.Seconds(), string(prec)+"_items/s")
					b.ReportMetric(tf.Seconds()/tq.Seconds(), "speedup")
					b.ReportMetric(1-worst, "cosine_gap")
				})
			}
		}
	}
}
