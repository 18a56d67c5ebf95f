package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
)

// archs are the shapes of the released CLIP models, for benchmarks and
// random-weight construction.
var archs = map[string]Config{
	"ViT-B-32": vit(512, 224, 32, 768, 12, 12, 512, 8, 12),
	"ViT-B-16": vit(512, 224, 16, 768, 12, 12, 512, 8, 12),
	"ViT-L-14": vit(768, 224, 14, 1024, 24, 16, 768, 12, 12),
	"RN50":     resnet(1024, 224, [4]int{3, 4, 6, 3}, 64, 512, 8, 12),
	"RN101":    resnet(512, 224, [4]int{3, 4, 23, 3}, 64, 512, 8, 12),
}

func vit(embed, size, patch, width, layers, heads, tw, th, tl int) Config {
	return Config{EmbedDim: embed, QuickGELU: true, LayerNormEps: 1e-5,
		Vision: VisionConfig{ImageSize: size, Width: width, Heads: heads, Layers: layers, PatchSize: patch},
		Text:   TextConfig{ContextLength: 77, VocabSize: 49408, Width: tw, Heads: th, Layers: tl}}
}

func resnet(embed, size int, layers [4]int, width, tw, th, tl int) Config {
	return Config{EmbedDim: embed, QuickGELU: true, LayerNormEps: 1e-5,
		Vision: VisionConfig{ImageSize: size, Width: width, Heads: width * 32 / 64, Layers4: layers},
		Text:   TextConfig{ContextLength: 77, VocabSize: 49408, Width: tw, Heads: th, Layers: tl}}
}

// Arch returns the configuration of a named architecture (ViT-B-32,
// ViT-B-16, ViT-L-14, RN50, RN101; '/' may replace '-').
func Arch(name string) (Config, error) {
	if c, ok := archs[strings.ReplaceAll(name, "/", "-")]; ok {
		return c, nil
	}
	return Config{}, fmt.Errorf("unknown architecture %q (known: %s)", name, strings.Join(ArchNames(), ", "))
}

// ArchNames lists the known architecture names.
func ArchNames() []string {
	var n []string
	for k := range archs {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Random builds a model of cfg with random weights (for benchmarks: speed
// does not depend on the values). BatchNorm statistics are set to identity.
// The values are drawn tensor by tensor as the model is built, so no copy
// of the whole state dict is ever held.
func Random(cfg Config, seed uint64) (*Model, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("random %s: %w", cfg.Arch(), err)
	}
	r := rand.New(rand.NewPCG(seed, 1))
	shapes := cfg.ExpectedShapes()
	gen := func(vals []float32, name string) {
		shape := shapes[name]
		fan := 1.0
		if len(shape) > 1 {
			fan = float64(len(vals) / shape[0])
		}
		std := 1 / math.Sqrt(fan)
		switch {
		case strings.HasSuffix(name, "running_var"), strings.HasSuffix(name, "ln_1.weight"), strings.HasSuffix(name, "ln_2.weight"),
			strings.Contains(name, "ln_") && strings.HasSuffix(name, ".weight"), strings.Contains(name, ".bn") && strings.HasSuffix(name, ".weight"):
			for i := range vals {
				vals[i] = 1
			}
		case strings.HasSuffix(name, "running_mean"):
			clear(vals)
		case name == "logit_scale":
			clear(vals)
			vals[0] = float32(math.Log(100))
		default:
			for i := range vals {
				vals[i] = float32(r.NormFloat64() * std)
			}
		}
	}
	return build(cfg, &loader{gen: gen, shapes: shapes})
}

// ImageFLOPs returns the floating-point operations (2 per multiply-add) of
// one image through the image tower.
func (c Config) ImageFLOPs() float64 {
	v := c.Vision
	if !v.IsResNet() {
		g := v.ImageSize / v.PatchSize
		seq := float64(g*g + 1)
		w := float64(v.Width)
		f := 2 * float64(g*g) * float64(3*v.PatchSize*v.PatchSize) * w
		f += float64(v.Layers) * blockFLOPs(seq, w)
		return f + 2*w*float64(c.EmbedDim)
	}
	var f float64
	h := v.ImageSize / 2
	w := v.Width
	conv := func(out, in, k, hw int) { f += 2 * float64(out*in*k*k) * float64(hw*hw) }
	conv(w/2, 3, 3, h)
	conv(w/2, w/2, 3, h)
	conv(w, w/2, 3, h)
	h /= 2
	in := w
	for li, nb := range v.Layers4 {
		planes := w << li
		for b := range nb {
			stride := 1
			if li > 0 && b == 0 {
				stride = 2
			}
			conv(planes, in, 1, h)
			conv(planes, planes, 3, h)
			oh := h / stride
			conv(planes*4, planes, 1, oh)
			if stride > 1 || in != planes*4 {
				conv(planes*4, in, 1, oh)
			}
			in, h = planes*4, oh
		}
	}
	d := float64(w * 32)
	seq := float64(h*h + 1)
	f += 2*d*d*(1+2*seq) + 4*seq*d + 2*d*float64(c.EmbedDim)
	return f
}

// TextFLOPs returns the floating-point operations of one text at the full
// context length (what an engine that always runs every position does).
func (c Config) TextFLOPs() float64 { return c.TextFLOPsAt(c.Text.ContextLength) }

// TextFLOPsAt returns the floating-point operations goclip spends on one
// text when a batch runs seq positions (the forward stops after the last
// end-of-text token of the batch; the causal mask makes later positions
// irrelevant to the pooled feature).
func (c Config) TextFLOPsAt(seq int) float64 {
	t := c.Text
	w := float64(t.Width)
	return float64(t.Layers)*blockFLOPs(float64(min(seq, t.ContextLength)), w) + 2*w*float64(c.EmbedDim)
}

func blockFLOPs(seq, w float64) float64 {
	return 2*seq*(3*w*w+w*w+8*w*w) + 4*seq*seq*w
}
