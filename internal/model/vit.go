package model

import (
	"fmt"

	"github.com/goclip/goclip/internal/kernels"
)

// VisionTransformer is CLIP's ViT image tower.
type VisionTransformer struct {
	Patch          Linear // conv1 as a matmul over flattened patches [width, 3·p·p]
	PatchSize      int
	ImageSize      int
	Width          int
	ClassEmbedding []float32
	PosEmbedding   []float32 // [grid²+1, width]
	LNPre, LNPost  LayerNorm
	Transformer    Transformer
	Proj           []float32 // [width, embed]
	EmbedDim       int

	gClass, gPos, gProj []float32 // gradients (see Model.Params)
}

// Forward maps pixels [batch, 3, S, S] to features [batch, embed] in out.
func (v *VisionTransformer) Forward(ar *Arena, out, pixels []float32, batch int, trace Tracer) {
	v.forward(ar, out, pixels, batch, trace, nil)
}

// forward is Forward calling after(i, x) once block i has updated x
// [batch·(grid²+1), width] (after may be nil).
func (v *VisionTransformer) forward(ar *Arena, out, pixels []float32, batch int, trace Tracer, after func(i int, x []float32)) {
	p, s, w := v.PatchSize, v.ImageSize, v.Width
	g := s / p
	np := g * g
	pd := 3 * p * p
	seq := np + 1
	x := ar.Get(batch * seq * w)
	scratch := ar.mark()
	patches := ar.Get(batch * np * pd)
	v.patchify(patches, pixels, batch, false)
	emb := ar.Get(batch * np * w)
	v.Patch.Forward(emb, patches, batch*np)
	if trace != nil {
		nchw := make([]float32, batch*w*np)
		for b := range batch {
			for i := range np {
				for c := range w {
					nchw[(b*w+c)*np+i] = emb[(b*np+i)*w+c]
				}
			}
		}
		trace("visual/conv1", nchw, []int{batch, w, g, g})
	}
	for b := range batch {
		xb := x[b*seq*w:]
		for c := range w {
			xb[c] = v.ClassEmbedding[c] + v.PosEmbedding[c]
		}
		for i := range np {
			src := emb[(b*np+i)*w:]
			dst := xb[(i+1)*w:]
			pos := v.PosEmbedding[(i+1)*w:]
			for c := range w {
				dst[c] = src[c] + pos[c]
			}
		}
	}
	ar.release(scratch)
	if trace != nil {
		trace("visual/ln_pre_input", x, []int{batch, seq, w})
	}
	v.LNPre.Forward(x, x, batch*seq)
	if trace != nil {
		trace("visual/ln_pre", x, []int{batch, seq, w})
	}
	pooled := ar.Get(batch * w)
	if after == nil {
		// Only the class token is read after the last block.
		pos := ar.Ints(batch)
		clear(pos)
		v.Transformer.forwardPooled(ar, pooled, x, batch, seq, w, false, pos, trace, "visual/")
	} else {
		v.Transformer.forwardCapture(ar, x, batch, seq, false, trace, "visual/", after)
		for b := range batch {
			copy(pooled[b*w:(b+1)*w], x[b*seq*w:b*seq*w+w])
		}
	}
	v.LNPost.Forward(pooled, pooled, batch)
	if trace != nil {
		trace("visual/pooled", pooled, []int{batch, w})
	}
	kernels.MatMul(out[:batch*v.EmbedDim], pooled, v.Proj, batch, v.EmbedDim, w)
}

// patchify copies the non-overlapping p×p patches of pixels [batch, 3, S, S]
// into rows of patches [batch·grid², 3·p·p] (conv1's weight layout), or,
// with back set, writes the rows back into their pixels (the adjoint: the
// patches tile the image exactly once).
func (v *VisionTransformer) patchify(patches, pixels []float32, batch int, back bool) {
	g := v.ImageSize / v.PatchSize
	runPooled[patchTask](&patchPool, batch*g*g, patchTask{patches: patches, pixels: pixels, p: v.PatchSize, s: v.ImageSize, back: back})
}

// TextTransformer is CLIP's causal text tower, pooled at the end-of-text
// token (the first position holding the highest token id).
type TextTransformer struct {
	TokenEmbedding []float32 // [vocab, width]
	PosEmbedding   []float32 // [ctx, width]
	Transformer    Transformer
	LNFinal        LayerNorm
	Proj           []float32 // [width, embed]
	Width, Context int
	Vocab          int
	EmbedDim       int

	gTok, gPos, gProj []float32 // gradients (see Model.Params)
}

// Forward maps tokens [batch, Context] to features [batch, embed] in out.
func (t *TextTransformer) Forward(ar *Arena, out []float32, tokens [][]int32, trace Tracer) error {
	return t.forward(ar, out, tokens, trace, nil)
}

// forward is Forward calling after(i, x) once block i has updated x
// [batch·Context, width] (after may be nil).
func (t *TextTransformer) forward(ar *Arena, out []float32, tokens [][]int32, trace Tracer, after func(i int, x []float32)) error {
	batch, w, L := len(tokens), t.Width, t.Context
	eot := ar.Ints(batch)
	last, err := t.scan(tokens, eot)
	if err != nil {
		return err
	}
	// The causal mask keeps positions after a text's end-of-text token from
	// influencing it, so without a trace or capture only the first last+1
	// positions of the batch are computed.
	seq := last + 1
	if trace != nil || after != nil {
		seq = L
	}
	x := ar.Get(batch * seq * w)
	t.fill(x, tokens, seq)
	if trace != nil {
		trace("text/embed", x, []int{batch, L, w})
	}
	pooled := ar.Get(batch * w)
	if after == nil {
		t.Transformer.forwardPooled(ar, pooled, x, batch, seq, w, true, eot, trace, "text/")
	} else {
		t.Transformer.forwardCapture(ar, x, batch, seq, true, trace, "text/", after)
		for b := range batch {
			copy(pooled[b*w:(b+1)*w], x[(b*seq+eot[b])*w:])
		}
	}
	t.LNFinal.Forward(pooled, pooled, batch)
	if trace != nil {
		trace("text/pooled", pooled, []int{batch, w})
	}
	kernels.MatMul(out[:batch*t.EmbedDim], pooled, t.Proj, batch, t.EmbedDim, w)
	return nil
}

// embed checks tokens [batch, Context], sets x to the token plus positional
// embeddings and eot to each row's end-of-text position (the first highest
// id, as torch.argmax).
func (t *TextTransformer) embed(x []float32, tokens [][]int32, eot []int) error {
	if _, err := t.scan(tokens, eot); err != nil {
		return err
	}
	t.fill(x, tokens, t.Context)
	return nil
}

// scan checks tokens [batch, Context], sets eot to each row's end-of-text
// position and returns the largest of them.
func (t *TextTransformer) scan(tokens [][]int32, eot []int) (last int, err error) {
	for b, row := range tokens {
		if len(row) != t.Context {
			return 0, fmt.Errorf("text %d has %d tokens, the model's context length is %d", b, len(row), t.Context)
		}
		best := int32(-1)
		for l, id := range row {
			if id < 0 || int(id) >= t.Vocab {
				return 0, fmt.Errorf("text %d: token id %d at position %d is outside the vocabulary of %d", b, id, l, t.Vocab)
			}
			if id > best {
				best, eot[b] = id, l
			}
		}
		last = max(last, eot[b])
	}
	return last, nil
}

// fill sets x [batch, seq, width] to the token plus positional embeddings
// of the first seq positions of each row.
func (t *TextTransformer) fill(x []float32, tokens [][]int32, seq int) {
	w := t.Width
	for b, row := range tokens {
		for l, id := range row[:seq] {
			e := t.TokenEmbedding[int(id)*w : int(id)*w+w]
			p := t.PosEmbedding[l*w : l*w+w]
			d := x[(b*seq+l)*w : (b*seq+l)*w+w]
			for c := range d {
				d[c] = e[c] + p[c]
			}
		}
	}
}
