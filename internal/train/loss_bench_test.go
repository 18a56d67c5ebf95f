package train

import (
	"math/rand/v2"
	"testing"

	"github.com/goclip/goclip/internal/bench"
	"github.com/goclip/goclip/internal/model"
)

// BenchmarkContrastiveStep compares one training step (both towers forward
// with activations recorded, ClipLoss, both backwards) with the inference
// forward of the same batch, on ViT-B/32 shapes with random weights.
// samples/s counts image-text pairs; cpu-s/op is the process's CPU time
// per step (meaningful when other processes share the machine).
func BenchmarkContrastiveStep(b *testing.B) {
	cfg, err := model.Arch("ViT-B-32")
	if err != nil {
		b.Fatal(err)
	}
	m, err := model.Random(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	const batch = 8
	r := rand.New(rand.NewPCG(1, 2))
	s := cfg.Vision.ImageSize
	pixels := make([]float32, batch*3*s*s)
	for i := range pixels {
		pixels[i] = float32(r.NormFloat64())
	}
	tokens := make([][]int32, batch)
	for i := range tokens {
		row := make([]int32, cfg.Text.ContextLength)
		row[0] = 49406
		n := 5 + r.IntN(20)
		for j := 1; j < n; j++ {
			row[j] = int32(r.IntN(49000))
		}
		row[n] = 49407
		tokens[i] = row
	}
	b.Run("forward", func(b *testing.B) {
		img := make([]float32, batch*cfg.EmbedDim)
		txt := make([]float32, batch*cfg.EmbedDim)
		c0 := bench.ProcessCPU()
		for b.Loop() {
			m.EncodeImage(img, pixels, batch, nil)
			if err := m.EncodeText(txt, tokens, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
		b.ReportMetric((bench.ProcessCPU()-c0).Seconds()/float64(b.N), "cpu-s/op")
	})
	b.Run("train", func(b *testing.B) {
		c0 := bench.ProcessCPU()
		for b.Loop() {
			if _, _, err := ContrastiveGrad(m, pixels, tokens); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
		b.ReportMetric((bench.ProcessCPU()-c0).Seconds()/float64(b.N), "cpu-s/op")
	})
}
