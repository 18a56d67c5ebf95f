package model

import (
	"fmt"
	"strings"
	"unsafe"

	"github.com/goclip/goclip/internal/checkpoint"
)

// Param is one trainable tensor in the reference (openai/CLIP state_dict)
// naming. Value aliases the live weight the forward reads; Grad is where the
// backward passes accumulate d loss / d Value.
type Param struct {
	Name  string
	Shape []int
	Value []float32
	Grad  []float32
	// NoDecay marks the tensors open_clip's training excludes from weight
	// decay: ndim < 2, or "bn", "ln", "bias" or "logit_scale" in the name
	// (gains, biases, class embedding, logit scale). The 2-D positional and
	// token embeddings are decayed, as in open_clip.
	NoDecay bool
}

// noDecay is open_clip's exclusion rule for weight decay.
func noDecay(name string, shape []int) bool {
	return len(shape) < 2 || strings.Contains(name, "bn") || strings.Contains(name, "ln") ||
		strings.Contains(name, "bias") || strings.Contains(name, "logit_scale")
}

// Params returns every parameter of the model, in a fixed order, with Value
// aliasing the live weights and Grad the gradient buffers the training
// passes fill (allocated, zeroed, on the first call). The same Params are
// returned on every call.
//
// For a ModifiedResNet the convolution Params are the unfolded weights and
// the BatchNorm gains and biases (the reference's parameters); the running
// statistics are buffers, saved by StateDict but not trained by gradients.
func (m *Model) Params() []*Param {
	m.paramsOnce.Do(m.buildParams)
	return m.params
}

// Param returns the parameter with the reference name, or nil.
func (m *Model) Param(name string) *Param {
	for _, p := range m.Params() {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// ZeroGrad sets every gradient to zero.
func (m *Model) ZeroGrad() {
	for _, p := range m.Params() {
		clear(p.Grad)
	}
}

// AfterUpdate must be called after an optimiser changed parameter Values
// (or a ResNet training pass changed the BatchNorm running statistics): it
// refolds the ResNet's BatchNorms into its inference convolutions and
// repacks the Linear weights the forward multiplies by.
func (m *Model) AfterUpdate() {
	if r, ok := m.Visual.(*ModifiedResNet); ok {
		for _, c := range r.convs() {
			c.Refold()
		}
	}
	m.Pack()
}

// StateDict returns the parameters (and a ResNet's BatchNorm running
// statistics) as F32 tensors in the reference naming and shapes (open_clip's
// safetensors layout), copying the current values.
func (m *Model) StateDict() []*checkpoint.Tensor {
	ps := append(m.Params(), m.buffers...)
	out := make([]*checkpoint.Tensor, 0, len(ps))
	for _, p := range ps {
		out = append(out, checkpoint.FromFloat32(p.Name, p.Shape, p.Value))
	}
	return out
}

// grads allocates a zeroed gradient of the size of v.
func grads(v []float32) []float32 { return make([]float32, len(v)) }

func (m *Model) buildParams() {
	shapes := m.Config.ExpectedShapes()
	var ps []*Param
	add := func(name string, value, grad []float32) {
		shape, ok := shapes[name]
		if !ok {
			panic(fmt.Sprintf("model: parameter %q is not in the configuration's shapes", name))
		}
		n := 1
		for _, d := range shape {
			n *= d
		}
		if len(value) != n || len(grad) != n {
			panic(fmt.Sprintf("model: parameter %q has %d values and %d gradients, shape %v", name, len(value), len(grad), shape))
		}
		ps = append(ps, &Param{Name: name, Shape: shape, Value: value, Grad: grad, NoDecay: noDecay(name, shape)})
	}
	linear := func(prefix string, l *Linear, weight, bias string) {
		l.Unpack()
		l.gW = grads(l.W)
		add(prefix+weight, l.W, l.gW)
		if l.B != nil {
			l.gB = grads(l.B)
			add(prefix+bias, l.B, l.gB)
		}
	}
	layerNorm := func(prefix string, l *LayerNorm) {
		l.gG, l.gB = grads(l.G), grads(l.B)
		add(prefix+".weight", l.G, l.gG)
		add(prefix+".bias", l.B, l.gB)
	}
	transformer := func(prefix string, t *Transformer) {
		for i := range t.Blocks {
			b := &t.Blocks[i]
			p := fmt.Sprintf("%s%d.", prefix, i)
			linear(p+"attn.", &b.Attn.In, "in_proj_weight", "in_proj_bias")
			linear(p+"attn.out_proj", &b.Attn.Out, ".weight", ".bias")
			layerNorm(p+"ln_1", &b.LN1)
			linear(p+"mlp.c_fc", &b.MLP.FC, ".weight", ".bias")
			linear(p+"mlp.c_proj", &b.MLP.Proj, ".weight", ".bias")
			layerNorm(p+"ln_2", &b.LN2)
		}
	}
	switch v := m.Visual.(type) {
	case *ModifiedResNet:
		conv := func(prefix, bn string, c *Conv2d) {
			c.gRaw = grads(c.Raw)
			add(prefix+".weight", c.Raw, c.gRaw)
			c.BN.gG, c.BN.gB = grads(c.BN.G), grads(c.BN.B)
			add(bn+".weight", c.BN.G, c.BN.gG)
			add(bn+".bias", c.BN.B, c.BN.gB)
			m.buffers = append(m.buffers,
				&Param{Name: bn + ".running_mean", Shape: shapes[bn+".running_mean"], Value: c.BN.Mean},
				&Param{Name: bn + ".running_var", Shape: shapes[bn+".running_var"], Value: c.BN.Var})
		}
		for i := range v.Stem {
			conv(fmt.Sprintf("visual.conv%d", i+1), fmt.Sprintf("visual.bn%d", i+1), &v.Stem[i])
		}
		for li := range v.Layers {
			for bi := range v.Layers[li] {
				b := &v.Layers[li][bi]
				p := fmt.Sprintf("visual.layer%d.%d.", li+1, bi)
				conv(p+"conv1", p+"bn1", &b.Conv1)
				conv(p+"conv2", p+"bn2", &b.Conv2)
				conv(p+"conv3", p+"bn3", &b.Conv3)
				if b.Down != nil {
					conv(p+"downsample.0", p+"downsample.1", b.Down)
				}
			}
		}
		ap := &v.Pool
		ap.gPos = grads(ap.Pos)
		add("visual.attnpool.positional_embedding", ap.Pos, ap.gPos)
		linear("visual.attnpool.q_proj", &ap.Q, ".weight", ".bias")
		linear("visual.attnpool.k_proj", &ap.K, ".weight", ".bias")
		linear("visual.attnpool.v_proj", &ap.V, ".weight", ".bias")
		linear("visual.attnpool.c_proj", &ap.C, ".weight", ".bias")
	case *VisionTransformer:
		v.gClass, v.gPos, v.gProj = grads(v.ClassEmbedding), grads(v.PosEmbedding), grads(v.Proj)
		add("visual.class_embedding", v.ClassEmbedding, v.gClass)
		add("visual.positional_embedding", v.PosEmbedding, v.gPos)
		add("visual.proj", v.Proj, v.gProj)
		linear("visual.conv1", &v.Patch, ".weight", "")
		layerNorm("visual.ln_pre", &v.LNPre)
		transformer("visual.transformer.resblocks.", &v.Transformer)
		layerNorm("visual.ln_post", &v.LNPost)
	}
	t := m.Text
	t.gTok, t.gPos, t.gProj = grads(t.TokenEmbedding), grads(t.PosEmbedding), grads(t.Proj)
	add("positional_embedding", t.PosEmbedding, t.gPos)
	add("text_projection", t.Proj, t.gProj)
	add("token_embedding.weight", t.TokenEmbedding, t.gTok)
	transformer("transformer.resblocks.", &t.Transformer)
	layerNorm("ln_final", &t.LNFinal)
	m.gLogitScale = make([]float32, 1)
	add("logit_scale", unsafe.Slice(&m.LogitScale, 1), m.gLogitScale)
	m.params = ps
}
