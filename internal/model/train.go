package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/goclip/goclip/internal/kernels"
)

// EncodeImageTrain runs the image tower on pixels [batch, 3, S, S] recording
// the activations, and returns the unnormalised features [batch, embed] and
// back. back(dFeat) takes d loss / d features, accumulates every image
// parameter's gradient into its Param.Grad and returns d loss / d pixels.
//
// The training passes of one Model must not run concurrently. feat, the
// returned dPixels and the recorded activations live in buffers reused by
// the next EncodeImageTrain: call back (at most once) before then, and copy
// what must outlive it. The image and the text passes use separate buffers
// and parameters, so one of each may run at the same time.
//
// A ModifiedResNet tower trains with its BatchNorms in train mode (batch
// statistics, running statistics updated with momentum 0.1 as PyTorch
// does); the inference path keeps using the folded convolutions until
// AfterUpdate refolds them.
func (m *Model) EncodeImageTrain(pixels []float32, batch int) (feat []float32, back func(dFeat []float32) (dPixels []float32), err error) {
	s := m.Config.Vision.ImageSize
	if batch <= 0 || len(pixels) != batch*3*s*s {
		return nil, nil, fmt.Errorf("model: %d pixel values for %d images of 3×%d×%d", len(pixels), batch, s, s)
	}
	m.Params()
	ar := &m.trainImg
	ar.Reset()
	feat = ar.Get(batch * m.Config.EmbedDim)
	var bwd func(dFeat []float32) []float32
	switch v := m.Visual.(type) {
	case *VisionTransformer:
		tp := v.forwardTrain(ar, feat, pixels, batch)
		bwd = func(d []float32) []float32 { return v.backward(ar, tp, d) }
	case *ModifiedResNet:
		tp := v.forwardTrain(ar, feat, pixels, batch)
		bwd = func(d []float32) []float32 { return v.backward(ar, tp, d) }
	default:
		return nil, nil, fmt.Errorf("model: cannot train an image tower of type %T", m.Visual)
	}
	return feat, func(dFeat []float32) []float32 {
		if len(dFeat) != len(feat) {
			panic(fmt.Sprintf("model: image feature gradient has %d values, want %d", len(dFeat), len(feat)))
		}
		return bwd(dFeat)
	}, nil
}

// EncodeTextTrain runs the text tower on token rows of length ContextLength
// recording the activations, and returns the unnormalised features
// [len(tokens), embed] and back, which accumulates every text parameter's
// gradient (the token embedding's only in the rows the batch uses) into its
// Param.Grad. The buffer rules of EncodeImageTrain apply.
func (m *Model) EncodeTextTrain(tokens [][]int32) (feat []float32, back func(dFeat []float32), err error) {
	if len(tokens) == 0 {
		return nil, nil, errors.New("model: no texts")
	}
	m.Params()
	ar := &m.trainTxt
	ar.Reset()
	feat = ar.Get(len(tokens) * m.Config.EmbedDim)
	tp, err := m.Text.forwardTrain(ar, feat, tokens)
	if err != nil {
		return nil, nil, err
	}
	return feat, func(dFeat []float32) {
		if len(dFeat) != len(feat) {
			panic(fmt.Sprintf("model: text feature gradient has %d values, want %d", len(dFeat), len(feat)))
		}
		m.Text.backward(ar, tp, dFeat)
	}, nil
}

// AddLogitScaleGrad accumulates d loss / d exp(LogitScale) (the multiplier
// the loss uses) into the gradient of the log-space logit_scale parameter.
func (m *Model) AddLogitScaleGrad(dScale float32) {
	m.Params()
	m.gLogitScale[0] += dScale * float32(math.Exp(float64(m.LogitScale)))
}

// vitTape records the ViT's training forward.
type vitTape struct {
	batch      int
	patches    []float32
	lnPre      LNTape
	blocks     []*blockTape
	pooled     []float32 // ln_post output [batch, width]
	lnPost     LNTape
	seq, width int
}

func (v *VisionTransformer) forwardTrain(ar *Arena, out, pixels []float32, batch int) *vitTape {
	p, s, w := v.PatchSize, v.ImageSize, v.Width
	g := s / p
	np := g * g
	pd := 3 * p * p
	seq := np + 1
	tp := &vitTape{batch: batch, seq: seq, width: w}
	tp.patches = ar.Get(batch * np * pd)
	v.patchify(tp.patches, pixels, batch, false)
	emb := ar.Get(batch * np * w)
	v.Patch.Forward(emb, tp.patches, batch*np)
	x := ar.Get(batch * seq * w)
	for b := range batch {
		xb := x[b*seq*w:]
		for c := range w {
			xb[c] = v.ClassEmbedding[c] + v.PosEmbedding[c]
		}
		for i := range np {
			src, dst, pos := emb[(b*np+i)*w:], xb[(i+1)*w:], v.PosEmbedding[(i+1)*w:]
			for c := range w {
				dst[c] = src[c] + pos[c]
			}
		}
	}
	tp.lnPre = v.LNPre.ForwardTrain(ar, x, x, batch*seq)
	tp.blocks = v.Transformer.forwardTrain(ar, x, batch, seq, false)
	pooled := ar.Get(batch * w)
	for b := range batch {
		copy(pooled[b*w:(b+1)*w], x[b*seq*w:b*seq*w+w])
	}
	tp.pooled = ar.Get(batch * w)
	tp.lnPost = v.LNPost.ForwardTrain(ar, tp.pooled, pooled, batch)
	kernels.MatMul(out[:batch*v.EmbedDim], tp.pooled, v.Proj, batch, v.EmbedDim, w)
	return tp
}

// backward returns d loss / d pixels given d loss / d features.
func (v *VisionTransformer) backward(ar *Arena, tp *vitTape, dout []float32) []float32 {
	batch, seq, w, e := tp.batch, tp.seq, tp.width, v.EmbedDim
	np := seq - 1
	pd := 3 * v.PatchSize * v.PatchSize
	// out = pooled · proj.
	kernels.Sgemm(true, false, w, e, batch, 1, tp.pooled, w, dout, e, 1, v.gProj, e)
	dpooled := ar.Get(batch * w)
	kernels.Sgemm(false, true, batch, w, e, 1, dout, e, v.Proj, e, 0, dpooled, w)
	dx := ar.Get(batch * seq * w)
	clear(dx)
	dcls := ar.Get(batch * w)
	clear(dcls)
	v.LNPost.backward(dcls, dpooled, batch, tp.lnPost)
	for b := range batch {
		copy(dx[b*seq*w:b*seq*w+w], dcls[b*w:(b+1)*w])
	}
	v.Transformer.backward(ar, dx, tp.blocks)
	dx0 := ar.Get(batch * seq * w)
	clear(dx0)
	v.LNPre.backward(dx0, dx, batch*seq, tp.lnPre)
	demb := ar.Get(batch * np * w)
	for b := range batch {
		xb := dx0[b*seq*w : (b+1)*seq*w]
		addTo(v.gPos, xb)
		addTo(v.gClass, xb[:w])
		copy(demb[b*np*w:(b+1)*np*w], xb[w:])
	}
	dpatches := ar.Get(batch * np * pd)
	v.Patch.Backward(dpatches, demb, tp.patches, batch*np, false)
	dpix := ar.Get(batch * 3 * v.ImageSize * v.ImageSize)
	v.patchify(dpatches, dpix, batch, true)
	return dpix
}

// addTo sets dst[i] += src[i].
func addTo(dst, src []float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] += src[i]
	}
}

// textTape records the text tower's training forward.
type textTape struct {
	tokens [][]int32
	eot    []int
	blocks []*blockTape
	pooled []float32 // ln_final output at the EOT positions [batch, width]
	lnF    LNTape
}

func (t *TextTransformer) forwardTrain(ar *Arena, out []float32, tokens [][]int32) (*textTape, error) {
	batch, w, L := len(tokens), t.Width, t.Context
	tp := &textTape{tokens: tokens, eot: make([]int, batch)}
	x := ar.Get(batch * L * w)
	if err := t.embed(x, tokens, tp.eot); err != nil {
		return nil, err
	}
	tp.blocks = t.Transformer.forwardTrain(ar, x, batch, L, true)
	pooled := ar.Get(batch * w)
	for b := range batch {
		copy(pooled[b*w:(b+1)*w], x[(b*L+tp.eot[b])*w:])
	}
	tp.pooled = ar.Get(batch * w)
	tp.lnF = t.LNFinal.ForwardTrain(ar, tp.pooled, pooled, batch)
	kernels.MatMul(out[:batch*t.EmbedDim], tp.pooled, t.Proj, batch, t.EmbedDim, w)
	return tp, nil
}

func (t *TextTransformer) backward(ar *Arena, tp *textTape, dout []float32) {
	batch, w, L, e := len(tp.tokens), t.Width, t.Context, t.EmbedDim
	kernels.Sgemm(true, false, w, e, batch, 1, tp.pooled, w, dout, e, 1, t.gProj, e)
	dpooled := ar.Get(batch * w)
	kernels.Sgemm(false, true, batch, w, e, 1, dout, e, t.Proj, e, 0, dpooled, w)
	dsel := ar.Get(batch * w)
	clear(dsel)
	t.LNFinal.backward(dsel, dpooled, batch, tp.lnF)
	dx := ar.Get(batch * L * w)
	clear(dx)
	for b := range batch {
		copy(dx[(b*L+tp.eot[b])*w:(b*L+tp.eot[b]+1)*w], dsel[b*w:(b+1)*w])
	}
	t.Transformer.backward(ar, dx, tp.blocks)
	for b, row := range tp.tokens {
		for l, id := range row {
			d := dx[(b*L+l)*w : (b*L+l+1)*w]
			addTo(t.gPos[l*w:(l+1)*w], d)
			addTo(t.gTok[int(id)*w:(int(id)+1)*w], d)
		}
	}
}
