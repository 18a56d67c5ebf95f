package model

import (
	"errors"
	"fmt"

	"github.com/goclip/goclip/internal/kernels"
)

// ResolveLayer maps a transformer block index to 0..n-1: 0 is the first
// block's output, n-1 the last; negative indices count from the end (-1 is
// the last block, -2 the penultimate, as Python indexing and SDXL's "clip
// skip" use them). tower names the tower in the error, which gives the
// valid range.
func ResolveLayer(layer, n int, tower string) (int, error) {
	if n <= 0 {
		return 0, fmt.Errorf("the %s tower has no transformer blocks", tower)
	}
	if layer < -n || layer >= n {
		return 0, fmt.Errorf("layer %d is out of range: the %s tower has %d blocks, valid layers are 0..%d (or -%d..-1 from the end)", layer, tower, n, n-1, n)
	}
	if layer < 0 {
		layer += n
	}
	return layer, nil
}

// EncodeTextHidden runs the text tower on token rows of length
// ContextLength. It writes the unnormalised text features [batch, embed]
// into out (nil to skip) and the output of block layer (see ResolveLayer)
// at every position into hidden [batch, ContextLength, width]. With
// finalLN set, ln_final is applied to every position of hidden, as the
// last_hidden_state that Stable Diffusion 1.x conditions on; without it the
// residual stream is returned as is (SDXL uses the penultimate layer so).
func (m *Model) EncodeTextHidden(out, hidden []float32, tokens [][]int32, layer int, finalLN bool) error {
	t := m.Text
	l, err := ResolveLayer(layer, len(t.Transformer.Blocks), "text")
	if err != nil {
		return err
	}
	batch, w, L := len(tokens), t.Width, t.Context
	if len(hidden) < batch*L*w {
		return fmt.Errorf("model: hidden buffer holds %d values, %d texts need %d", len(hidden), batch, batch*L*w)
	}
	ar := m.arena()
	defer m.arenas.Put(ar)
	if out == nil {
		out = ar.Get(batch * t.EmbedDim)
	} else if len(out) < batch*t.EmbedDim {
		return fmt.Errorf("model: feature buffer holds %d values, %d texts need %d", len(out), batch, batch*t.EmbedDim)
	}
	return t.forward(ar, out, tokens, nil, func(i int, x []float32) {
		if i != l {
			return
		}
		h := hidden[:batch*L*w]
		if finalLN {
			t.LNFinal.Forward(h, x, batch*L)
		} else {
			copy(h, x)
		}
	})
}

// ImageTokens selects what EncodeImageTokens writes. Each buffer may be nil;
// a non-nil one must hold batch·Seq·width values (Projected:
// batch·Seq·embed), Seq = grid²+1 tokens per image, the class token first
// and then the patches row by row.
type ImageTokens struct {
	// Layer is the block whose output is taken (see ResolveLayer).
	Layer int
	// Raw receives the block's output tokens as they are.
	Raw []float32
	// Normed receives ln_post applied to every token (the class token of
	// the last layer's Normed is the pooled output the features come from).
	Normed []float32
	// Projected receives Normed · visual.proj: every token in the shared
	// embedding space.
	Projected []float32
	// ValuePath replaces the chosen block's output by its attention value
	// path alone, out_proj(v(ln_1(x))), without the residual, the
	// attention mixing or the MLP (MaskCLIP, Zhou et al. 2022): dense
	// tokens that keep their spatial identity, for heatmaps and
	// segmentation.
	ValuePath bool
}

// TokenCount returns the number of output tokens per image of a ViT image
// tower (grid²+1) and the grid side, or an error for a ResNet.
func (m *Model) TokenCount() (seq, grid int, err error) {
	v, ok := m.Visual.(*VisionTransformer)
	if !ok {
		return 0, 0, errors.New("model: per-patch tokens need a vision transformer image tower; this model has a ModifiedResNet")
	}
	g := v.ImageSize / v.PatchSize
	return g*g + 1, g, nil
}

// EncodeImageTokens runs the ViT image tower on pixels [batch, 3, S, S],
// writing the unnormalised image features [batch, embed] into out (nil to
// skip) and the per-token outputs dst asks for.
func (m *Model) EncodeImageTokens(out, pixels []float32, batch int, dst ImageTokens) error {
	v, ok := m.Visual.(*VisionTransformer)
	if !ok {
		_, _, err := m.TokenCount()
		return err
	}
	l, err := ResolveLayer(dst.Layer, len(v.Transformer.Blocks), "image")
	if err != nil {
		return err
	}
	s := v.ImageSize
	if batch <= 0 || len(pixels) != batch*3*s*s {
		return fmt.Errorf("model: %d pixel values for %d images of 3×%d×%d", len(pixels), batch, s, s)
	}
	seq, _, _ := m.TokenCount()
	w, e := v.Width, v.EmbedDim
	rows := batch * seq
	for _, c := range []struct {
		name string
		buf  []float32
		n    int
	}{{"raw", dst.Raw, rows * w}, {"normed", dst.Normed, rows * w}, {"projected", dst.Projected, rows * e}} {
		if c.buf != nil && len(c.buf) < c.n {
			return fmt.Errorf("model: %s token buffer holds %d values, %d images need %d", c.name, len(c.buf), batch, c.n)
		}
	}
	ar := m.arena()
	defer m.arenas.Put(ar)
	if out == nil {
		out = ar.Get(batch * e)
	} else if len(out) < batch*e {
		return fmt.Errorf("model: feature buffer holds %d values, %d images need %d", len(out), batch, batch*e)
	}
	raw := dst.Raw
	if raw == nil {
		raw = ar.Get(rows * w)
	}
	raw = raw[:rows*w]
	capture := l
	if dst.ValuePath {
		capture = l - 1 // the block's input
	}
	v.forward(ar, out, pixels, batch, nil, func(i int, x []float32) {
		if i != capture {
			return
		}
		if !dst.ValuePath {
			copy(raw, x)
			return
		}
		blk := &v.Transformer.Blocks[l]
		h := ar.Get(rows * w)
		blk.LN1.Forward(h, x, rows)
		qkv := ar.Get(rows * 3 * w)
		blk.Attn.In.Forward(qkv, h, rows)
		val := ar.Get(rows * w)
		for r := range rows {
			copy(val[r*w:(r+1)*w], qkv[r*3*w+2*w:(r+1)*3*w])
		}
		blk.Attn.Out.Forward(raw, val, rows)
	})
	if dst.Normed == nil && dst.Projected == nil {
		return nil
	}
	normed := dst.Normed
	if normed == nil {
		normed = ar.Get(rows * w)
	}
	normed = normed[:rows*w]
	v.LNPost.Forward(normed, raw, rows)
	if dst.Projected != nil {
		kernels.MatMul(dst.Projected[:rows*e], normed, v.Proj, rows, e, w)
	}
	return nil
}
