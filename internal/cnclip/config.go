package cnclip

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/goclip/goclip/internal/bert"
	"github.com/goclip/goclip/internal/checkpoint"
)

// DefaultContextLength is cn_clip's tokenize context length.
const DefaultContextLength = 52

// VisionConfig describes the ViT image tower.
type VisionConfig struct {
	ImageSize int `json:"image_size"`
	PatchSize int `json:"patch_size"`
	Width     int `json:"width"`
	Layers    int `json:"layers"`
	Heads     int `json:"heads"`
	// MLP is the hidden size of each block's MLP (4·Width in cn_clip).
	MLP int `json:"mlp"`
}

// Config describes a Chinese-CLIP model.
type Config struct {
	EmbedDim int          `json:"embed_dim"`
	Vision   VisionConfig `json:"vision"`
	Text     bert.Config  `json:"text"`
	// ContextLength is the token row length the tokenizer produces
	// (cn_clip: 52; HF: tokenizer model_max_length).
	ContextLength int `json:"context_length"`
}

// Validate checks that the shapes are usable.
func (c Config) Validate() error {
	v := c.Vision
	switch {
	case c.EmbedDim <= 0:
		return fmt.Errorf("invalid Chinese-CLIP configuration: embed_dim %d", c.EmbedDim)
	case v.Width <= 0 || v.Heads <= 0 || v.Width%v.Heads != 0:
		return fmt.Errorf("invalid Chinese-CLIP configuration: vision width %d not divisible into %d heads", v.Width, v.Heads)
	case v.PatchSize <= 0 || v.ImageSize <= 0 || v.ImageSize%v.PatchSize != 0:
		return fmt.Errorf("invalid Chinese-CLIP configuration: image size %d is not a multiple of patch size %d", v.ImageSize, v.PatchSize)
	case v.Layers < 0 || v.MLP <= 0:
		return fmt.Errorf("invalid Chinese-CLIP configuration: vision layers %d, MLP %d", v.Layers, v.MLP)
	case c.ContextLength < 2 || c.ContextLength > c.Text.MaxPositions:
		return fmt.Errorf("invalid Chinese-CLIP configuration: context length %d (the text tower has %d positions)", c.ContextLength, c.Text.MaxPositions)
	}
	return c.Text.Validate()
}

// cnConfig is the union of cn_clip's two model-config JSONs
// (cn_clip/clip/model_configs/<Vision>.json and <Text>.json), i.e. the
// keyword arguments of cn_clip's CLIP constructor.
type cnConfig struct {
	EmbedDim        *int     `json:"embed_dim"`
	ImageResolution *int     `json:"image_resolution"`
	VisionLayers    *jsonInt `json:"vision_layers"`
	VisionWidth     *int     `json:"vision_width"`
	VisionPatchSize *int     `json:"vision_patch_size"`
	VisionHeadWidth *int     `json:"vision_head_width"`
	VocabSize       *int     `json:"vocab_size"`
	HiddenAct       *string  `json:"text_hidden_act"`
	Hidden          *int     `json:"text_hidden_size"`
	Intermediate    *int     `json:"text_intermediate_size"`
	MaxPositions    *int     `json:"text_max_position_embeddings"`
	Heads           *int     `json:"text_num_attention_heads"`
	Layers          *int     `json:"text_num_hidden_layers"`
	TypeVocab       *int     `json:"text_type_vocab_size"`
}

// jsonInt accepts an integer; a list (ResNet layers) is reported.
type jsonInt struct {
	n    int
	list bool
}

func (j *jsonInt) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &j.n); err == nil {
		return nil
	}
	var l []int
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("vision_layers must be an integer")
	}
	j.list = true
	return nil
}

// ReadCNConfigs reads cn_clip model-config JSON files (the vision and text
// halves, e.g. ViT-B-16.json and RoBERTa-wwm-ext-base-chinese.json, or one
// file holding both) and returns the model configuration, as cn_clip's
// create_model builds it: vision heads = vision_width / vision_head_width
// (default 64), MLP 4·width, BERT LayerNorm eps 1e-12, [PAD] id 0.
func ReadCNConfigs(paths ...string) (Config, error) {
	data := make([][]byte, len(paths))
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return Config{}, fmt.Errorf("cnclip: %w", err)
		}
		data[i] = b
	}
	return ParseCNConfigs(paths, data)
}

// ParseCNConfigs is ReadCNConfigs on file contents; names are used in
// errors.
func ParseCNConfigs(names []string, data [][]byte) (Config, error) {
	var c cnConfig
	for i, b := range data {
		if err := json.Unmarshal(b, &c); err != nil {
			return Config{}, fmt.Errorf("cnclip: %s: not a cn_clip model config: %v", names[min(i, len(names)-1)], err)
		}
	}
	name := strings.Join(names, " + ")
	req := map[string]*int{
		"embed_dim": c.EmbedDim, "image_resolution": c.ImageResolution, "vision_width": c.VisionWidth,
		"vision_patch_size": c.VisionPatchSize, "vocab_size": c.VocabSize, "text_hidden_size": c.Hidden,
		"text_intermediate_size": c.Intermediate, "text_max_position_embeddings": c.MaxPositions,
		"text_num_attention_heads": c.Heads, "text_num_hidden_layers": c.Layers, "text_type_vocab_size": c.TypeVocab,
	}
	for _, k := range []string{"embed_dim", "image_resolution", "vision_width", "vision_patch_size", "vocab_size",
		"text_hidden_size", "text_intermediate_size", "text_max_position_embeddings", "text_num_attention_heads",
		"text_num_hidden_layers", "text_type_vocab_size"} {
		if req[k] == nil {
			return Config{}, fmt.Errorf("cnclip: %s: model config lacks %q", name, k)
		}
	}
	if c.VisionLayers == nil {
		return Config{}, fmt.Errorf("cnclip: %s: model config lacks \"vision_layers\"", name)
	}
	if c.VisionLayers.list {
		return Config{}, fmt.Errorf("cnclip: %s: ResNet image towers (vision_layers is a list) are not supported", name)
	}
	if c.HiddenAct != nil && *c.HiddenAct != "gelu" {
		return Config{}, fmt.Errorf("cnclip: %s: text_hidden_act %q is not supported (only gelu)", name, *c.HiddenAct)
	}
	hw := 64
	if c.VisionHeadWidth != nil {
		hw = *c.VisionHeadWidth
	}
	if hw <= 0 {
		return Config{}, fmt.Errorf("cnclip: %s: vision_head_width %d", name, hw)
	}
	w := *c.VisionWidth
	cfg := Config{
		EmbedDim: *c.EmbedDim,
		Vision: VisionConfig{ImageSize: *c.ImageResolution, PatchSize: *c.VisionPatchSize, Width: w,
			Layers: c.VisionLayers.n, Heads: w / hw, MLP: 4 * w},
		Text: bert.Config{VocabSize: *c.VocabSize, Hidden: *c.Hidden, Layers: *c.Layers, Heads: *c.Heads,
			Intermediate: *c.Intermediate, MaxPositions: *c.MaxPositions, TypeVocab: *c.TypeVocab, LayerNormEps: 1e-12},
		ContextLength: DefaultContextLength,
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("cnclip: %s: %w", name, err)
	}
	return cfg, nil
}

// hfConfig is the part of a Hugging Face ChineseCLIPConfig (config.json)
// goclip reads.
type hfConfig struct {
	ModelType      string          `json:"model_type"`
	ProjectionDim  int             `json:"projection_dim"`
	TextConfig     json.RawMessage `json:"text_config"`
	TextConfigDict json.RawMessage `json:"text_config_dict"`
	VisConfig      json.RawMessage `json:"vision_config"`
	VisConfigDict  json.RawMessage `json:"vision_config_dict"`
}

type hfText struct {
	VocabSize    *int     `json:"vocab_size"`
	Hidden       *int     `json:"hidden_size"`
	Layers       *int     `json:"num_hidden_layers"`
	Heads        *int     `json:"num_attention_heads"`
	Intermediate *int     `json:"intermediate_size"`
	HiddenAct    *string  `json:"hidden_act"`
	MaxPositions *int     `json:"max_position_embeddings"`
	TypeVocab    *int     `json:"type_vocab_size"`
	LayerNormEps *float64 `json:"layer_norm_eps"`
	PadID        *int     `json:"pad_token_id"`
	PosType      *string  `json:"position_embedding_type"`
}

type hfVision struct {
	Hidden       *int     `json:"hidden_size"`
	Intermediate *int     `json:"intermediate_size"`
	Heads        *int     `json:"num_attention_heads"`
	Layers       *int     `json:"num_hidden_layers"`
	ImageSize    *int     `json:"image_size"`
	PatchSize    *int     `json:"patch_size"`
	Channels     *int     `json:"num_channels"`
	HiddenAct    *string  `json:"hidden_act"`
	LayerNormEps *float64 `json:"layer_norm_eps"`
}

// ReadHFConfig reads a Hugging Face ChineseCLIPConfig (config.json). Missing
// fields take transformers' ChineseCLIPTextConfig / ChineseCLIPVisionConfig
// defaults; text_config_dict / vision_config_dict (older hub files) win
// over text_config / vision_config, as in ChineseCLIPConfig.__init__.
func ReadHFConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("cnclip: %w", err)
	}
	return ParseHFConfig(path, b)
}

// ParseHFConfig is ReadHFConfig on the file's contents; path is used in
// errors.
func ParseHFConfig(path string, b []byte) (Config, error) {
	var h hfConfig
	if err := json.Unmarshal(b, &h); err != nil {
		return Config{}, fmt.Errorf("cnclip: %s: not a Hugging Face config: %v", path, err)
	}
	if h.ModelType != "" && h.ModelType != "chinese_clip" {
		return Config{}, fmt.Errorf("cnclip: %s: model_type %q is not chinese_clip", path, h.ModelType)
	}
	pick := func(a, b json.RawMessage) json.RawMessage {
		if len(a) > 0 && string(a) != "null" {
			return a
		}
		return b
	}
	var t hfText
	var v hfVision
	if raw := pick(h.TextConfigDict, h.TextConfig); len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &t); err != nil {
			return Config{}, fmt.Errorf("cnclip: %s: text_config: %v", path, err)
		}
	}
	if raw := pick(h.VisConfigDict, h.VisConfig); len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &v); err != nil {
			return Config{}, fmt.Errorf("cnclip: %s: vision_config: %v", path, err)
		}
	}
	or := func(p *int, d int) int {
		if p != nil {
			return *p
		}
		return d
	}
	if t.HiddenAct != nil && *t.HiddenAct != "gelu" {
		return Config{}, fmt.Errorf("cnclip: %s: text hidden_act %q is not supported (only gelu)", path, *t.HiddenAct)
	}
	if t.PosType != nil && *t.PosType != "absolute" {
		return Config{}, fmt.Errorf("cnclip: %s: position_embedding_type %q is not supported (only absolute)", path, *t.PosType)
	}
	if v.HiddenAct != nil && *v.HiddenAct != "quick_gelu" {
		return Config{}, fmt.Errorf("cnclip: %s: vision hidden_act %q is not supported (only quick_gelu)", path, *v.HiddenAct)
	}
	if v.Channels != nil && *v.Channels != 3 {
		return Config{}, fmt.Errorf("cnclip: %s: vision num_channels %d, want 3", path, *v.Channels)
	}
	if v.LayerNormEps != nil && *v.LayerNormEps != 1e-5 {
		return Config{}, fmt.Errorf("cnclip: %s: vision layer_norm_eps %g is not supported (only 1e-5)", path, *v.LayerNormEps)
	}
	eps := 1e-12
	if t.LayerNormEps != nil {
		eps = *t.LayerNormEps
	}
	proj := h.ProjectionDim
	if proj == 0 {
		proj = 512
	}
	vw := or(v.Hidden, 768)
	cfg := Config{
		EmbedDim: proj,
		Vision: VisionConfig{ImageSize: or(v.ImageSize, 224), PatchSize: or(v.PatchSize, 32), Width: vw,
			Layers: or(v.Layers, 12), Heads: or(v.Heads, 12), MLP: or(v.Intermediate, 3072)},
		Text: bert.Config{VocabSize: or(t.VocabSize, 30522), Hidden: or(t.Hidden, 768), Layers: or(t.Layers, 12),
			Heads: or(t.Heads, 12), Intermediate: or(t.Intermediate, 3072), MaxPositions: or(t.MaxPositions, 512),
			TypeVocab: or(t.TypeVocab, 2), LayerNormEps: float32(eps), PadID: int32(or(t.PadID, 0))},
		ContextLength: DefaultContextLength,
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("cnclip: %s: %w", path, err)
	}
	return cfg, nil
}

// InferConfig derives the configuration from the tensor shapes of a
// reference-named state dict. Nothing in a cn_clip checkpoint records the
// number of attention heads; they follow the released models: text heads
// hidden/64, vision heads width/64 (width/80 for width 1280, ViT-H-14).
// Prefer the model-config JSONs where they exist.
func InferConfig(f *checkpoint.File) (Config, error) {
	shape := func(name string, rank int) ([]int, error) {
		t := f.Tensor(name)
		if t == nil {
			return nil, fmt.Errorf("cnclip: %s: tensor %q is missing, cannot infer the architecture", f.Path, name)
		}
		if len(t.Shape) != rank {
			return nil, fmt.Errorf("cnclip: %s: tensor %q has shape %v, want %d dimensions", f.Path, name, t.Shape, rank)
		}
		return t.Shape, nil
	}
	var cfg Config
	var dims [7][]int
	for i, s := range []struct {
		name string
		rank int
	}{
		{"text_projection", 2}, {"visual.conv1.weight", 4}, {"visual.positional_embedding", 2},
		{"bert.embeddings.word_embeddings.weight", 2}, {"bert.embeddings.position_embeddings.weight", 2},
		{"bert.embeddings.token_type_embeddings.weight", 2}, {"bert.encoder.layer.0.intermediate.dense.weight", 2},
	} {
		d, err := shape(s.name, s.rank)
		if err != nil {
			return cfg, err
		}
		dims[i] = d
	}
	tp, conv, vpos, we, pe, te, inter := dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6]
	grid := int(math.Round(math.Sqrt(float64(vpos[0] - 1))))
	w := conv[0]
	hw := 64
	if w == 1280 {
		hw = 80
	}
	cfg.EmbedDim = tp[1]
	cfg.Vision = VisionConfig{ImageSize: grid * conv[3], PatchSize: conv[3], Width: w,
		Layers: countLayers(f, "visual.transformer.resblocks."), Heads: max(w/hw, 1), MLP: 4 * w}
	cfg.Text = bert.Config{VocabSize: we[0], Hidden: we[1], Layers: countLayers(f, "bert.encoder.layer."),
		Heads: max(we[1]/64, 1), Intermediate: inter[0], MaxPositions: pe[0], TypeVocab: te[0], LayerNormEps: 1e-12}
	cfg.ContextLength = min(DefaultContextLength, pe[0])
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("cnclip: %s: %w", f.Path, err)
	}
	return cfg, nil
}

// countLayers counts the distinct indices i of tensor names prefix+"<i>.…".
func countLayers(f *checkpoint.File, prefix string) int {
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
