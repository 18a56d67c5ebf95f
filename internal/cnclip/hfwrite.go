package cnclip

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/train"
	"github.com/goclip/goclip/internal/wordpiece"
)

// The files of a Hugging Face ChineseCLIPModel directory that WriteHF
// writes.
const (
	HFWeightsFile      = "model.safetensors"
	HFConfigFile       = "config.json"
	HFVocabFile        = "vocab.txt"
	HFTokenizerConfig  = "tokenizer_config.json"
	HFSpecialTokens    = "special_tokens_map.json"
	HFPreprocessConfig = "preprocessor_config.json"
)

// hfVisionLayer maps the reference names of a ViT block (after
// "visual.transformer.resblocks.<i>.") to transformers' (after
// "vision_model.encoder.layers.<i>."); attn.in_proj_* is split apart.
var hfVisionLayer = map[string]string{
	"attn.out_proj.weight": "self_attn.out_proj.weight",
	"attn.out_proj.bias":   "self_attn.out_proj.bias",
	"ln_1.weight":          "layer_norm1.weight",
	"ln_1.bias":            "layer_norm1.bias",
	"ln_2.weight":          "layer_norm2.weight",
	"ln_2.bias":            "layer_norm2.bias",
	"mlp.c_fc.weight":      "mlp.fc1.weight",
	"mlp.c_fc.bias":        "mlp.fc1.bias",
	"mlp.c_proj.weight":    "mlp.fc2.weight",
	"mlp.c_proj.bias":      "mlp.fc2.bias",
}

// hfVisionTop maps the other vision tensors.
var hfVisionTop = map[string]string{
	"visual.class_embedding":      "vision_model.embeddings.class_embedding",
	"visual.conv1.weight":         "vision_model.embeddings.patch_embedding.weight",
	"visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
	"visual.ln_pre.weight":        "vision_model.pre_layrnorm.weight",
	"visual.ln_pre.bias":          "vision_model.pre_layrnorm.bias",
	"visual.ln_post.weight":       "vision_model.post_layernorm.weight",
	"visual.ln_post.bias":         "vision_model.post_layernorm.bias",
	"logit_scale":                 "logit_scale",
}

// HFStateDict returns the weights under transformers' ChineseCLIPModel
// names, as its conversion script from cn_clip lays them out: bert.* as
// text_model.*, the ViT as vision_model.* with q/k/v split out of
// in_proj, and the projections transposed into Linear weights
// (visual_projection.weight [embed, width], text_projection.weight
// [embed, hidden]). Values are float32 and exact.
func (m *Model) HFStateDict() ([]*checkpoint.Tensor, error) {
	var out []*checkpoint.Tensor
	for _, p := range m.Params() {
		n := p.Name
		switch {
		case strings.HasPrefix(n, "bert."):
			out = append(out, checkpoint.FromFloat32("text_model."+strings.TrimPrefix(n, "bert."), p.Shape, p.Value))
		case n == "text_projection" || n == "visual.proj":
			hf := "text_projection.weight"
			if n == "visual.proj" {
				hf = "visual_projection.weight"
			}
			if len(p.Shape) != 2 {
				return nil, fmt.Errorf("cnclip: %s has shape %v, want a matrix", n, p.Shape)
			}
			r, c := p.Shape[0], p.Shape[1]
			t := make([]float32, len(p.Value))
			for i := range r {
				for j := range c {
					t[j*r+i] = p.Value[i*c+j]
				}
			}
			out = append(out, checkpoint.FromFloat32(hf, []int{c, r}, t))
		case hfVisionTop[n] != "":
			out = append(out, checkpoint.FromFloat32(hfVisionTop[n], p.Shape, p.Value))
		case strings.HasPrefix(n, "visual.transformer.resblocks."):
			layer, part, _ := strings.Cut(strings.TrimPrefix(n, "visual.transformer.resblocks."), ".")
			base := "vision_model.encoder.layers." + layer + "."
			if hf, ok := hfVisionLayer[part]; ok {
				out = append(out, checkpoint.FromFloat32(base+hf, p.Shape, p.Value))
				continue
			}
			kind, ok := strings.CutPrefix(part, "attn.in_proj_")
			if !ok || (kind != "weight" && kind != "bias") || len(p.Shape) == 0 || p.Shape[0]%3 != 0 {
				return nil, fmt.Errorf("cnclip: no Hugging Face name for parameter %s %v", n, p.Shape)
			}
			shape := append([]int{p.Shape[0] / 3}, p.Shape[1:]...)
			third := len(p.Value) / 3
			for i, q := range []string{"q", "k", "v"} {
				out = append(out, checkpoint.FromFloat32(base+"self_attn."+q+"_proj."+kind, shape, p.Value[i*third:(i+1)*third]))
			}
		default:
			return nil, fmt.Errorf("cnclip: no Hugging Face name for parameter %s", n)
		}
	}
	return out, nil
}

// HFConfig returns the ChineseCLIPConfig (config.json) of the model.
func (c Config) HFConfig() map[string]any {
	v, t := c.Vision, c.Text
	return map[string]any{
		"architectures":          []string{"ChineseCLIPModel"},
		"model_type":             "chinese_clip",
		"projection_dim":         c.EmbedDim,
		"logit_scale_init_value": 2.6592,
		"initializer_factor":     1.0,
		"torch_dtype":            "float32",
		"text_config": map[string]any{
			"model_type":                   "chinese_clip_text_model",
			"vocab_size":                   t.VocabSize,
			"hidden_size":                  t.Hidden,
			"num_hidden_layers":            t.Layers,
			"num_attention_heads":          t.Heads,
			"intermediate_size":            t.Intermediate,
			"hidden_act":                   "gelu",
			"hidden_dropout_prob":          0.1,
			"attention_probs_dropout_prob": 0.1,
			"max_position_embeddings":      t.MaxPositions,
			"type_vocab_size":              t.TypeVocab,
			"initializer_range":            0.02,
			"initializer_factor":           1.0,
			"layer_norm_eps":               shortest(t.LayerNormEps),
			"pad_token_id":                 t.PadID,
			"position_embedding_type":      "absolute",
			"use_cache":                    true,
		},
		"vision_config": map[string]any{
			"model_type":          "chinese_clip_vision_model",
			"hidden_size":         v.Width,
			"intermediate_size":   v.MLP,
			"projection_dim":      c.EmbedDim,
			"num_hidden_layers":   v.Layers,
			"num_attention_heads": v.Heads,
			"num_channels":        3,
			"image_size":          v.ImageSize,
			"patch_size":          v.PatchSize,
			"hidden_act":          "quick_gelu",
			"layer_norm_eps":      1e-5,
			"attention_dropout":   0.0,
			"initializer_range":   0.02,
			"initializer_factor":  1.0,
		},
	}
}

// WriteHF writes the model into dir (which must exist) as a Hugging Face
// ChineseCLIPModel directory that transformers' from_pretrained,
// goclip's Load and `goclip train --resume` read: model.safetensors
// (HFStateDict; float16 when half is set), config.json, the vocabulary
// (vocab.txt), tokenizer_config.json (BertTokenizer, model_max_length =
// the context length), special_tokens_map.json and
// preprocessor_config.json (ChineseCLIPImageProcessor: a squash resize to
// the image size, pre's mean and std).
func (m *Model) WriteHF(dir string, pre imageproc.Options, half bool) error {
	if err := m.trainable(); err != nil {
		return err
	}
	ts, err := m.HFStateDict()
	if err != nil {
		return err
	}
	if half {
		if ts, err = train.F16Tensors(ts); err != nil {
			return err
		}
	}
	if err := checkpoint.WriteSafetensors(filepath.Join(dir, HFWeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	if err := m.writeVocab(filepath.Join(dir, HFVocabFile)); err != nil {
		return err
	}
	special := map[string]any{"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}
	o := m.Tokenizer.Opts
	tokCfg := map[string]any{
		"tokenizer_class":              "BertTokenizer",
		"do_lower_case":                o.Lowercase,
		"do_basic_tokenize":            true,
		"never_split":                  nil,
		"tokenize_chinese_chars":       o.ChineseChars,
		"strip_accents":                nil,
		"model_max_length":             m.Config.ContextLength,
		"padding_side":                 "right",
		"truncation_side":              "right",
		"clean_up_tokenization_spaces": true,
	}
	if o.StripAccents != o.Lowercase {
		tokCfg["strip_accents"] = o.StripAccents
	}
	for k, s := range special {
		tokCfg[k] = s
	}
	size := m.Config.Vision.ImageSize
	if pre.Size == 0 {
		pre = m.Preprocess
	}
	ppCfg := map[string]any{
		"image_processor_type":   "ChineseCLIPImageProcessor",
		"feature_extractor_type": "ChineseCLIPFeatureExtractor",
		"processor_class":        "ChineseCLIPProcessor",
		"do_convert_rgb":         true,
		"do_resize":              true,
		"size":                   map[string]int{"height": size, "width": size},
		"resample":               3,
		"do_center_crop":         false,
		"crop_size":              map[string]int{"height": size, "width": size},
		"do_rescale":             true,
		"rescale_factor":         1.0 / 255,
		"do_normalize":           true,
		"image_mean":             []float64{shortest(pre.Mean[0]), shortest(pre.Mean[1]), shortest(pre.Mean[2])},
		"image_std":              []float64{shortest(pre.Std[0]), shortest(pre.Std[1]), shortest(pre.Std[2])},
	}
	for _, j := range []struct {
		name string
		v    any
	}{{HFConfigFile, m.Config.HFConfig()}, {HFTokenizerConfig, tokCfg}, {HFSpecialTokens, special}, {HFPreprocessConfig, ppCfg}} {
		b, err := json.MarshalIndent(j.v, "", "  ")
		if err != nil {
			return err
		}
		if err := train.WriteFileAtomic(filepath.Join(dir, j.name), append(b, '\n')); err != nil {
			return err
		}
	}
	return nil
}

// writeVocab writes the vocabulary to path: a copy of VocabFile when it
// still holds the tokenizer's vocabulary, else one token per line.
func (m *Model) writeVocab(path string) error {
	v := m.Tokenizer.Vocab
	if m.VocabFile != "" {
		if b, err := os.ReadFile(m.VocabFile); err == nil {
			if same, err := wordpiece.ParseVocab(m.VocabFile, b); err == nil && same.Len() == v.Len() {
				ok := true
				for id := range int32(v.Len()) {
					if same.Token(id) != v.Token(id) {
						ok = false
						break
					}
				}
				if ok {
					if filepath.Clean(m.VocabFile) == filepath.Clean(path) {
						return nil
					}
					return train.WriteFileAtomic(path, b)
				}
			}
		}
	}
	var b strings.Builder
	for id := range int32(v.Len()) {
		b.WriteString(v.Token(id))
		b.WriteByte('\n')
	}
	return train.WriteFileAtomic(path, []byte(b.String()))
}

// shortest returns the float64 whose shortest decimal form is that of the
// float32 x (1e-12, not 9.99999996e-13), which reads back as x.
func shortest(x float32) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
	return f
}
