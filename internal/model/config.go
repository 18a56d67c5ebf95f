// Package model holds the CLIP networks: the vision towers (ViT and OpenAI's
// ModifiedResNet), the causal text transformer, and the configuration that
// describes their shapes. Every layer is an explicit struct over plain
// []float32 weights with a Forward method; backward passes sit beside them.
package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/goclip/goclip/internal/checkpoint"
)

// Config describes a CLIP model's shapes.
type Config struct {
	EmbedDim  int          `json:"embed_dim"`
	QuickGELU bool         `json:"quick_gelu"`
	Vision    VisionConfig `json:"vision"`
	Text      TextConfig   `json:"text"`
	// LayerNormEps is the epsilon of every LayerNorm (1e-5 in CLIP).
	LayerNormEps float32 `json:"layer_norm_eps"`
}

// VisionConfig describes the image tower. ResNet towers set Layers4; ViTs
// set Layers and PatchSize.
type VisionConfig struct {
	ImageSize int    `json:"image_size"`
	Width     int    `json:"width"`
	Heads     int    `json:"heads"`
	Layers    int    `json:"layers,omitempty"`
	PatchSize int    `json:"patch_size,omitempty"`
	Layers4   [4]int `json:"resnet_layers,omitempty"`
}

// IsResNet reports whether the image tower is OpenAI's ModifiedResNet.
func (v VisionConfig) IsResNet() bool { return v.PatchSize == 0 }

// TextConfig describes the text tower.
type TextConfig struct {
	ContextLength int `json:"context_length"`
	VocabSize     int `json:"vocab_size"`
	Width         int `json:"width"`
	Heads         int `json:"heads"`
	Layers        int `json:"layers"`
}

// Arch returns a short architecture name such as "ViT-B/32-like" for logs.
func (c Config) Arch() string {
	if c.Vision.IsResNet() {
		return fmt.Sprintf("ResNet(%v,width %d)@%d", c.Vision.Layers4, c.Vision.Width, c.Vision.ImageSize)
	}
	return fmt.Sprintf("ViT(patch %d,width %d,layers %d)@%d", c.Vision.PatchSize, c.Vision.Width, c.Vision.Layers, c.Vision.ImageSize)
}

// InferConfig derives the shapes from a reference-named state dict the way
// openai/CLIP's build_model does. Heads follow build_model's rule (width/64;
// ResNet attention pool width*32/64); QuickGELU is assumed (OpenAI models).
func InferConfig(f *checkpoint.File) (Config, error) {
	shape := func(name string) ([]int, error) {
		t := f.Tensor(name)
		if t == nil {
			return nil, fmt.Errorf("%s: tensor %q is missing, cannot infer the architecture", f.Path, name)
		}
		return t.Shape, nil
	}
	var c Config
	c.QuickGELU = true
	c.LayerNormEps = 1e-5
	tp, err := shape("text_projection")
	if err != nil {
		return c, err
	}
	if len(tp) != 2 {
		return c, fmt.Errorf("%s: text_projection has shape %v, want [width, embed_dim]", f.Path, tp)
	}
	c.EmbedDim = tp[1]
	pe, err := shape("positional_embedding")
	if err != nil {
		return c, err
	}
	te, err := shape("token_embedding.weight")
	if err != nil {
		return c, err
	}
	lnf, err := shape("ln_final.weight")
	if err != nil {
		return c, err
	}
	if len(pe) != 2 || len(te) != 2 || len(lnf) != 1 {
		return c, fmt.Errorf("%s: text tower tensors have unexpected ranks", f.Path)
	}
	c.Text = TextConfig{ContextLength: pe[0], VocabSize: te[0], Width: lnf[0], Heads: max(lnf[0]/64, 1),
		Layers: countBlocks(f, "transformer.resblocks.")}

	if conv, ok := f.Tensors["visual.conv1.weight"]; ok && f.Tensor("visual.proj") != nil {
		// ViT
		if len(conv.Shape) != 4 {
			return c, fmt.Errorf("%s: visual.conv1.weight has shape %v, want 4 dims", f.Path, conv.Shape)
		}
		vp, err := shape("visual.positional_embedding")
		if err != nil {
			return c, err
		}
		grid := int(math.Round(math.Sqrt(float64(vp[0] - 1))))
		c.Vision = VisionConfig{Width: conv.Shape[0], PatchSize: conv.Shape[3], Layers: countBlocks(f, "visual.transformer.resblocks.")}
		c.Vision.ImageSize = grid * c.Vision.PatchSize
		c.Vision.Heads = max(c.Vision.Width/64, 1)
		return c, nil
	}
	w, err := shape("visual.layer1.0.conv1.weight")
	if err != nil {
		return c, fmt.Errorf("%s: neither a ViT (visual.proj) nor a ResNet (visual.layer1.0.conv1.weight) image tower found", f.Path)
	}
	ap, err := shape("visual.attnpool.positional_embedding")
	if err != nil {
		return c, err
	}
	c.Vision.Width = w[0]
	for i := range 4 {
		c.Vision.Layers4[i] = countBlocks(f, fmt.Sprintf("visual.layer%d.", i+1))
	}
	c.Vision.ImageSize = int(math.Round(math.Sqrt(float64(ap[0]-1)))) * 32
	c.Vision.Heads = max(c.Vision.Width*32/64, 1)
	return c, nil
}

// countBlocks counts the distinct indices i of keys "<prefix><i>.…".
func countBlocks(f *checkpoint.File, prefix string) int {
	seen := map[int]bool{}
	for name := range f.Tensors {
		if rest, ok := strings.CutPrefix(name, prefix); ok {
			if i := strings.IndexByte(rest, '.'); i > 0 {
				if n, err := strconv.Atoi(rest[:i]); err == nil {
					seen[n] = true
				}
			}
		}
	}
	return len(seen)
}

// openCLIPConfig is the subset of open_clip's model config JSON goclip reads.
type openCLIPConfig struct {
	ModelCfg *struct {
		EmbedDim  int  `json:"embed_dim"`
		QuickGELU bool `json:"quick_gelu"`
		VisionCfg struct {
			ImageSize json.RawMessage `json:"image_size"`
			Layers    json.RawMessage `json:"layers"`
			Width     int             `json:"width"`
			PatchSize *int            `json:"patch_size"`
			HeadWidth int             `json:"head_width"`
		} `json:"vision_cfg"`
		TextCfg struct {
			ContextLength int `json:"context_length"`
			VocabSize     int `json:"vocab_size"`
			Width         int `json:"width"`
			Heads         int `json:"heads"`
			Layers        int `json:"layers"`
		} `json:"text_cfg"`
	} `json:"model_cfg"`
	PreprocessCfg *PreprocessConfig `json:"preprocess_cfg"`
}

// PreprocessConfig is open_clip's preprocess_cfg (mean/std/interpolation).
type PreprocessConfig struct {
	Mean          []float64 `json:"mean"`
	Std           []float64 `json:"std"`
	Interpolation string    `json:"interpolation"`
	ResizeMode    string    `json:"resize_mode"`
}

// ReadOpenCLIPConfig parses an open_clip_config.json (or a bare model config
// with embed_dim/vision_cfg/text_cfg at the top level).
func ReadOpenCLIPConfig(path string) (Config, *PreprocessConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, nil, err
	}
	var oc openCLIPConfig
	if err := json.Unmarshal(b, &oc); err != nil {
		return Config{}, nil, fmt.Errorf("%s: not an open_clip config: %v", path, err)
	}
	if oc.ModelCfg == nil {
		// A bare model config (open_clip's model_configs/*.json).
		if err := json.Unmarshal([]byte(`{"model_cfg":`+string(b)+`}`), &oc); err != nil || oc.ModelCfg == nil {
			return Config{}, nil, fmt.Errorf("%s: no model_cfg", path)
		}
	}
	m := oc.ModelCfg
	c := Config{EmbedDim: m.EmbedDim, QuickGELU: m.QuickGELU, LayerNormEps: 1e-5}
	c.Text = TextConfig{ContextLength: m.TextCfg.ContextLength, VocabSize: m.TextCfg.VocabSize,
		Width: m.TextCfg.Width, Heads: m.TextCfg.Heads, Layers: m.TextCfg.Layers}
	if c.Text.ContextLength == 0 {
		c.Text.ContextLength = 77
	}
	if c.Text.VocabSize == 0 {
		c.Text.VocabSize = 49408
	}
	if c.Text.Heads == 0 {
		c.Text.Heads = 8
	}
	v := m.VisionCfg
	if err := json.Unmarshal(v.ImageSize, &c.Vision.ImageSize); err != nil {
		var hw []int
		if json.Unmarshal(v.ImageSize, &hw) != nil || len(hw) != 2 || hw[0] != hw[1] {
			return c, nil, fmt.Errorf("%s: vision_cfg.image_size must be an integer or a square [h, w]", path)
		}
		c.Vision.ImageSize = hw[0]
	}
	c.Vision.Width = v.Width
	headWidth := v.HeadWidth
	if headWidth == 0 {
		headWidth = 64
	}
	var n int
	var l4 []int
	switch {
	case json.Unmarshal(v.Layers, &n) == nil:
		if v.PatchSize == nil || *v.PatchSize <= 0 {
			return c, nil, fmt.Errorf("%s: ViT vision_cfg needs patch_size", path)
		}
		c.Vision.Layers, c.Vision.PatchSize = n, *v.PatchSize
		c.Vision.Heads = max(v.Width/headWidth, 1)
	case json.Unmarshal(v.Layers, &l4) == nil && len(l4) == 4:
		copy(c.Vision.Layers4[:], l4)
		c.Vision.Heads = max(v.Width*32/headWidth, 1)
	default:
		return c, nil, fmt.Errorf("%s: vision_cfg.layers must be an integer (ViT) or a list of 4 (ResNet)", path)
	}
	return c, oc.PreprocessCfg, nil
}

type hfConfig struct {
	ProjectionDim int `json:"projection_dim"`
	TextConfig    struct {
		HiddenSize       int     `json:"hidden_size"`
		IntermediateSize int     `json:"intermediate_size"`
		NumHeads         int     `json:"num_attention_heads"`
		NumLayers        int     `json:"num_hidden_layers"`
		MaxPositions     int     `json:"max_position_embeddings"`
		VocabSize        int     `json:"vocab_size"`
		HiddenAct        string  `json:"hidden_act"`
		LayerNormEps     float64 `json:"layer_norm_eps"`
		ProjectionDim    int     `json:"projection_dim"`
	} `json:"text_config"`
	VisionConfig struct {
		HiddenSize   int     `json:"hidden_size"`
		NumHeads     int     `json:"num_attention_heads"`
		NumLayers    int     `json:"num_hidden_layers"`
		ImageSize    int     `json:"image_size"`
		PatchSize    int     `json:"patch_size"`
		HiddenAct    string  `json:"hidden_act"`
		LayerNormEps float64 `json:"layer_norm_eps"`
	} `json:"vision_config"`
	ModelType string `json:"model_type"`
}

// ReadHFConfig parses a Hugging Face CLIPConfig config.json. Missing fields
// take the CLIPConfig defaults (ViT-B/32).
func ReadHFConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	var h hfConfig
	if err := json.Unmarshal(b, &h); err != nil {
		return Config{}, fmt.Errorf("%s: not a Hugging Face config: %v", path, err)
	}
	if h.ModelType != "" && h.ModelType != "clip" {
		return Config{}, fmt.Errorf("%s: model_type %q is not supported (want \"clip\")", path, h.ModelType)
	}
	def := func(v, d int) int {
		if v == 0 {
			return d
		}
		return v
	}
	t, v := h.TextConfig, h.VisionConfig
	if t.HiddenAct == "" {
		t.HiddenAct = "quick_gelu"
	}
	if v.HiddenAct == "" {
		v.HiddenAct = "quick_gelu"
	}
	if t.HiddenAct != v.HiddenAct {
		return Config{}, fmt.Errorf("%s: text hidden_act %q differs from vision hidden_act %q: not supported", path, t.HiddenAct, v.HiddenAct)
	}
	var quick bool
	switch t.HiddenAct {
	case "quick_gelu":
		quick = true
	case "gelu":
	default:
		return Config{}, fmt.Errorf("%s: hidden_act %q not supported (quick_gelu or gelu)", path, t.HiddenAct)
	}
	eps := t.LayerNormEps
	if eps == 0 {
		eps = 1e-5
	}
	c := Config{EmbedDim: def(h.ProjectionDim, 512), QuickGELU: quick, LayerNormEps: float32(eps)}
	c.Text = TextConfig{ContextLength: def(t.MaxPositions, 77), VocabSize: def(t.VocabSize, 49408),
		Width: def(t.HiddenSize, 512), Heads: def(t.NumHeads, 8), Layers: def(t.NumLayers, 12)}
	c.Vision = VisionConfig{ImageSize: def(v.ImageSize, 224), Width: def(v.HiddenSize, 768),
		Heads: def(v.NumHeads, 12), Layers: def(v.NumLayers, 12), PatchSize: def(v.PatchSize, 32)}
	return c, nil
}

// ExpectedShapes lists every tensor a model of this configuration needs, in
// the reference naming, with its shape.
func (c Config) ExpectedShapes() map[string][]int {
	s := map[string][]int{}
	tw := c.Text.Width
	s["token_embedding.weight"] = []int{c.Text.VocabSize, tw}
	s["positional_embedding"] = []int{c.Text.ContextLength, tw}
	s["ln_final.weight"] = []int{tw}
	s["ln_final.bias"] = []int{tw}
	s["text_projection"] = []int{tw, c.EmbedDim}
	s["logit_scale"] = []int{}
	blockShapes(s, "transformer.resblocks.", c.Text.Layers, tw)
	v := c.Vision
	if !v.IsResNet() {
		g := v.ImageSize / v.PatchSize
		s["visual.conv1.weight"] = []int{v.Width, 3, v.PatchSize, v.PatchSize}
		s["visual.class_embedding"] = []int{v.Width}
		s["visual.positional_embedding"] = []int{g*g + 1, v.Width}
		s["visual.ln_pre.weight"] = []int{v.Width}
		s["visual.ln_pre.bias"] = []int{v.Width}
		s["visual.ln_post.weight"] = []int{v.Width}
		s["visual.ln_post.bias"] = []int{v.Width}
		s["visual.proj"] = []int{v.Width, c.EmbedDim}
		blockShapes(s, "visual.transformer.resblocks.", v.Layers, v.Width)
		return s
	}
	w := v.Width
	conv := func(name string, out, in, k int) {
		s[name+".weight"] = []int{out, in, k, k}
	}
	bn := func(name string, ch int) {
		for _, p := range []string{"weight", "bias", "running_mean", "running_var"} {
			s[name+"."+p] = []int{ch}
		}
	}
	conv("visual.conv1", w/2, 3, 3)
	bn("visual.bn1", w/2)
	conv("visual.conv2", w/2, w/2, 3)
	bn("visual.bn2", w/2)
	conv("visual.conv3", w, w/2, 3)
	bn("visual.bn3", w)
	in := w
	for li, nb := range v.Layers4 {
		planes := w << li
		for b := range nb {
			p := fmt.Sprintf("visual.layer%d.%d", li+1, b)
			stride := 1
			if li > 0 && b == 0 {
				stride = 2
			}
			conv(p+".conv1", planes, in, 1)
			bn(p+".bn1", planes)
			conv(p+".conv2", planes, planes, 3)
			bn(p+".bn2", planes)
			conv(p+".conv3", planes*4, planes, 1)
			bn(p+".bn3", planes*4)
			if stride > 1 || in != planes*4 {
				conv(p+".downsample.0", planes*4, in, 1)
				bn(p+".downsample.1", planes*4)
			}
			in = planes * 4
		}
	}
	ed := w * 32
	sp := v.ImageSize / 32
	s["visual.attnpool.positional_embedding"] = []int{sp*sp + 1, ed}
	for _, p := range []string{"q_proj", "k_proj", "v_proj"} {
		s["visual.attnpool."+p+".weight"] = []int{ed, ed}
		s["visual.attnpool."+p+".bias"] = []int{ed}
	}
	s["visual.attnpool.c_proj.weight"] = []int{c.EmbedDim, ed}
	s["visual.attnpool.c_proj.bias"] = []int{c.EmbedDim}
	return s
}

func blockShapes(s map[string][]int, prefix string, layers, w int) {
	for i := range layers {
		p := fmt.Sprintf("%s%d.", prefix, i)
		s[p+"attn.in_proj_weight"] = []int{3 * w, w}
		s[p+"attn.in_proj_bias"] = []int{3 * w}
		s[p+"attn.out_proj.weight"] = []int{w, w}
		s[p+"attn.out_proj.bias"] = []int{w}
		s[p+"ln_1.weight"] = []int{w}
		s[p+"ln_1.bias"] = []int{w}
		s[p+"ln_2.weight"] = []int{w}
		s[p+"ln_2.bias"] = []int{w}
		s[p+"mlp.c_fc.weight"] = []int{4 * w, w}
		s[p+"mlp.c_fc.bias"] = []int{4 * w}
		s[p+"mlp.c_proj.weight"] = []int{w, 4 * w}
		s[p+"mlp.c_proj.bias"] = []int{w}
	}
}

// ignorable reports tensors a checkpoint may carry that the model does not
// use: BatchNorm counters, HF position ids, TorchScript metadata scalars.
func ignorable(name string) bool {
	switch name {
	case "input_resolution", "context_length", "vocab_size":
		return true
	}
	return strings.HasSuffix(name, ".num_batches_tracked") || strings.HasSuffix(name, "position_ids") ||
		strings.HasSuffix(name, "attn_mask")
}

// CheckShapes compares a state dict with what the configuration needs and
// returns an error naming every missing, unexpected or mis-shaped tensor.
func (c Config) CheckShapes(f *checkpoint.File) error {
	want := c.ExpectedShapes()
	var problems []string
	for name, ws := range want {
		t := f.Tensor(name)
		if t == nil {
			problems = append(problems, fmt.Sprintf("missing tensor %q (want shape %v)", name, ws))
			continue
		}
		if !sameShape(t.Shape, ws) && !(len(ws) == 0 && t.NumElements() == 1) {
			problems = append(problems, fmt.Sprintf("tensor %q: expected shape %v, got %v", name, ws, t.Shape))
		}
	}
	for name := range f.Tensors {
		if _, ok := want[name]; !ok && !ignorable(name) {
			problems = append(problems, fmt.Sprintf("unexpected tensor %q", name))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	if len(problems) > 12 {
		problems = append(problems[:12], fmt.Sprintf("… and %d more", len(problems)-12))
	}
	return fmt.Errorf("%s does not match the %s configuration: %s", f.Path, c.Arch(), strings.Join(problems, "; "))
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
