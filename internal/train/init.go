package train

import (
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/goclip/goclip/internal/model"
)

// InitWeights gives m a fresh open_clip-style initialisation, drawn from
// seed in parameter-name order (so it is reproducible): token embedding
// N(0, 0.02²), text positional embedding N(0, 0.01²), attention inputs
// N(0, 1/width), residual output projections N(0, 1/(width·2·layers)),
// MLP inputs N(0, 1/(2·width)), projections and ViT embeddings
// N(0, 1/width), patch embedding N(0, 1/fan_in), LayerNorm gains 1, biases
// 0, logit_scale ln(1/0.07).
func InitWeights(m *model.Model, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0x636c6970))
	cfg := m.Config
	ps := append([]*model.Param(nil), m.Params()...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	for _, p := range ps {
		width, layers := float64(cfg.Text.Width), float64(cfg.Text.Layers)
		if IsImageParam(p.Name) {
			width, layers = float64(cfg.Vision.Width), float64(max(cfg.Vision.Layers, 1))
		}
		n := p.Name
		std := 0.0
		fill := math.NaN()
		switch {
		case n == "logit_scale":
			fill = math.Log(1 / 0.07)
		case strings.Contains(n, "ln_") && strings.HasSuffix(n, ".weight"):
			fill = 1
		case strings.HasSuffix(n, "bias"):
			fill = 0
		case n == "token_embedding.weight":
			std = 0.02
		case n == "positional_embedding":
			std = 0.01
		case strings.HasSuffix(n, "attn.in_proj_weight"):
			std = 1 / math.Sqrt(width)
		case strings.HasSuffix(n, "attn.out_proj.weight"), strings.HasSuffix(n, "mlp.c_proj.weight"):
			std = 1 / math.Sqrt(width) / math.Sqrt(2*layers)
		case strings.HasSuffix(n, "mlp.c_fc.weight"):
			std = 1 / math.Sqrt(2*width)
		case n == "visual.conv1.weight":
			std = 1 / math.Sqrt(float64(len(p.Value)/p.Shape[0]))
		default: // projections, ViT class and positional embeddings
			std = 1 / math.Sqrt(width)
		}
		for i := range p.Value {
			if math.IsNaN(fill) {
				p.Value[i] = float32(r.NormFloat64() * std)
			} else {
				p.Value[i] = float32(fill)
			}
		}
	}
	m.AfterUpdate()
}
