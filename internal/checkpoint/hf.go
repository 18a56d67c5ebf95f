package checkpoint

import (
	"fmt"
	"strings"
)

// IsHF reports whether f uses Hugging Face CLIPModel tensor names
// (text_model.*, vision_model.*).
func IsHF(f *File) bool {
	for _, n := range f.Names {
		if strings.HasPrefix(n, "text_model.") || strings.HasPrefix(n, "vision_model.") {
			return true
		}
	}
	return false
}

// hfSimple maps whole Hugging Face names to reference names.
var hfSimple = map[string]string{
	"logit_scale": "logit_scale",
	"text_model.embeddings.token_embedding.weight":      "token_embedding.weight",
	"text_model.embeddings.position_embedding.weight":   "positional_embedding",
	"text_model.final_layer_norm.weight":                "ln_final.weight",
	"text_model.final_layer_norm.bias":                  "ln_final.bias",
	"vision_model.embeddings.class_embedding":           "visual.class_embedding",
	"vision_model.embeddings.patch_embedding.weight":    "visual.conv1.weight",
	"vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
	"vision_model.pre_layrnorm.weight":                  "visual.ln_pre.weight",
	"vision_model.pre_layrnorm.bias":                    "visual.ln_pre.bias",
	"vision_model.post_layernorm.weight":                "visual.ln_post.weight",
	"vision_model.post_layernorm.bias":                  "visual.ln_post.bias",
}

// hfTransposed maps the projection matrices, which Hugging Face stores as
// Linear weights [embed, width] and the reference as [width, embed].
var hfTransposed = map[string]string{
	"text_projection.weight":   "text_projection",
	"visual_projection.weight": "visual.proj",
}

// hfLayer maps the parts of an encoder layer name after "layers.<i>.".
var hfLayer = map[string]string{
	"self_attn.out_proj.weight": "attn.out_proj.weight",
	"self_attn.out_proj.bias":   "attn.out_proj.bias",
	"layer_norm1.weight":        "ln_1.weight",
	"layer_norm1.bias":          "ln_1.bias",
	"layer_norm2.weight":        "ln_2.weight",
	"layer_norm2.bias":          "ln_2.bias",
	"mlp.fc1.weight":            "mlp.c_fc.weight",
	"mlp.fc1.bias":              "mlp.c_fc.bias",
	"mlp.fc2.weight":            "mlp.c_proj.weight",
	"mlp.fc2.bias":              "mlp.c_proj.bias",
}

// FromHF renames a Hugging Face CLIPModel state dict to the reference
// (openai/CLIP) names, as the inverse of transformers'
// convert_clip_original_pytorch_to_hf.py: separate q/k/v projections are
// concatenated along dim 0 into attn.in_proj_weight / in_proj_bias, the
// text and visual projections are transposed, position_ids buffers are
// dropped. The result is bit-identical to the original state dict. Names
// it does not recognise are kept unchanged (Validate reports them).
//
// The result takes over f's memory mapping, if any: close the result, not
// f (closing f becomes a no-op).
func FromHF(f *File) (*File, error) {
	out := &File{Path: f.Path, Tensors: map[string]*Tensor{}, Metadata: f.Metadata, Format: "hf-" + f.Format}
	type qkv struct {
		parts [3]*Tensor
		at    int // position in out.Names of the placeholder
	}
	groups := map[string]*qkv{}
	var order []string
	for _, name := range f.Names {
		t := f.Tensors[name]
		if strings.HasSuffix(name, ".position_ids") {
			continue
		}
		if ref, ok := hfSimple[name]; ok {
			if err := out.add(renamed(t, ref)); err != nil {
				return nil, err
			}
			continue
		}
		if ref, ok := hfTransposed[name]; ok {
			tt, err := transpose2D(t, ref)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", f.Path, err)
			}
			f.Release(t) // the transposed copy replaces it
			if err := out.add(tt); err != nil {
				return nil, err
			}
			continue
		}
		var tower, rest string
		switch {
		case strings.HasPrefix(name, "text_model.encoder.layers."):
			tower, rest = "transformer.resblocks.", strings.TrimPrefix(name, "text_model.encoder.layers.")
		case strings.HasPrefix(name, "vision_model.encoder.layers."):
			tower, rest = "visual.transformer.resblocks.", strings.TrimPrefix(name, "vision_model.encoder.layers.")
		default:
			if err := out.add(renamed(t, name)); err != nil {
				return nil, err
			}
			continue
		}
		layer, part, ok := strings.Cut(rest, ".")
		if !ok || strings.Trim(layer, "0123456789") != "" {
			if err := out.add(renamed(t, name)); err != nil {
				return nil, err
			}
			continue
		}
		base := tower + layer + "."
		if ref, ok := hfLayer[part]; ok {
			if err := out.add(renamed(t, base+ref)); err != nil {
				return nil, err
			}
			continue
		}
		if proj, kind, ok := strings.Cut(part, "_proj."); ok && strings.HasPrefix(proj, "self_attn.") && (kind == "weight" || kind == "bias") {
			i := strings.Index("qkv", strings.TrimPrefix(proj, "self_attn."))
			if len(proj) == len("self_attn.q") && i >= 0 {
				ref := base + "attn.in_proj_" + kind
				g := groups[ref]
				if g == nil {
					g = &qkv{}
					groups[ref] = g
					order = append(order, ref)
					g.at = len(out.Names)
					out.Names = append(out.Names, ref) // placeholder keeps the order
				}
				if g.parts[i] != nil {
					return nil, fmt.Errorf("%s: tensor %q appears twice", f.Path, name)
				}
				g.parts[i] = t
				continue
			}
		}
		if err := out.add(renamed(t, name)); err != nil {
			return nil, err
		}
	}
	for _, ref := range order {
		g := groups[ref]
		t, err := concat0(ref, g.parts)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", f.Path, err)
		}
		for _, p := range g.parts { // the concatenated copy replaces them
			f.Release(p)
		}
		if _, dup := out.Tensors[ref]; dup {
			return nil, fmt.Errorf("%s: tensor %q appears twice", f.Path, ref)
		}
		out.Tensors[ref] = t
	}
	out.mappings, f.mappings = f.mappings, nil
	return out, nil
}

func renamed(t *Tensor, name string) *Tensor {
	c := *t
	c.Name = name
	return &c
}

// transpose2D returns the [b, a] transpose of a [a, b] tensor.
func transpose2D(t *Tensor, name string) (*Tensor, error) {
	if len(t.Shape) != 2 {
		return nil, fmt.Errorf("tensor %q: shape %v is not a matrix", t.Name, t.Shape)
	}
	es := t.DType.Size()
	a, b := t.Shape[0], t.Shape[1]
	if es == 0 || len(t.Data) != a*b*es {
		return nil, fmt.Errorf("tensor %q: %d bytes for shape %v of %s", t.Name, len(t.Data), t.Shape, t.DType)
	}
	out := make([]byte, len(t.Data))
	for i := 0; i < a; i++ {
		for j := 0; j < b; j++ {
			copy(out[(j*a+i)*es:(j*a+i+1)*es], t.Data[(i*b+j)*es:])
		}
	}
	return &Tensor{Name: name, DType: t.DType, Shape: []int{b, a}, Data: out}, nil
}

// concat0 concatenates the q, k and v tensors along dimension 0.
func concat0(name string, parts [3]*Tensor) (*Tensor, error) {
	for i, p := range parts {
		if p == nil {
			return nil, fmt.Errorf("tensor %q: the %s projection is missing", name, "qkv"[i:i+1])
		}
	}
	q := parts[0]
	if len(q.Shape) == 0 {
		return nil, fmt.Errorf("tensor %q: %q is a scalar", name, q.Name)
	}
	for _, p := range parts[1:] {
		if p.DType != q.DType || !equalShape(p.Shape, q.Shape) {
			return nil, fmt.Errorf("tensor %q: %q is %v %s but %q is %v %s", name, q.Name, q.Shape, q.DType, p.Name, p.Shape, p.DType)
		}
		if len(p.Data) != len(q.Data) || len(q.Data) != q.NumElements()*q.DType.Size() {
			return nil, fmt.Errorf("tensor %q: byte counts of %q and %q do not match their shape", name, q.Name, p.Name)
		}
	}
	data := make([]byte, 0, 3*len(q.Data))
	for _, p := range parts {
		data = append(data, p.Data...)
	}
	shape := append([]int{3 * q.Shape[0]}, q.Shape[1:]...)
	return &Tensor{Name: name, DType: q.DType, Shape: shape, Data: data}, nil
}
