package bert

import (
	"fmt"
	"sync"

	"github.com/goclip/goclip/internal/kernels"
	"github.com/goclip/goclip/internal/model"
)

// This file holds the encoder's training passes: ForwardTrain records what
// Backward needs in arena buffers (reused from step to step), and each
// piece's backward sits beside its forward. Parameter gradients accumulate
// (+=) into the buffers Params exposes.

// grads holds the gradient buffers of an Encoder, shaped like its weights.
type grads struct {
	word, pos, typ []float32
	embLN          lnGrads
	layers         []layerGrads
}

type lnGrads struct{ g, b []float32 }

type linGrads struct{ w, b []float32 }

type layerGrads struct {
	qkv, attnOut, inter, out linGrads
	attnLN, outLN            lnGrads
}

// trainState is the encoder's lazily built training state.
type trainState struct {
	once   sync.Once
	g      *grads
	params []*model.Param
}

// Params returns every parameter of the encoder in the reference naming
// under prefix (cn_clip: "bert."), with Value aliasing the live weights and
// Grad the gradient buffers Backward fills (allocated, zeroed, on the first
// call; later calls return the same Params and ignore prefix). The query,
// key and value tensors alias their thirds of the stacked QKV Linear. After
// changing Values call Pack.
func (e *Encoder) Params(prefix string) []*model.Param {
	e.train.once.Do(func() { e.buildParams(prefix) })
	return e.train.params
}

// ZeroGrad sets every gradient to zero.
func (e *Encoder) ZeroGrad() {
	for _, p := range e.Params("") {
		clear(p.Grad)
	}
}

func (e *Encoder) buildParams(prefix string) {
	c := e.Config
	H := c.Hidden
	shapes := c.Shapes(prefix)
	g := &grads{word: make([]float32, len(e.WordEmb)), pos: make([]float32, len(e.PosEmb)), typ: make([]float32, len(e.TypeEmb))}
	var ps []*model.Param
	add := func(name string, value, grad []float32) {
		shape := shapes[prefix+name]
		ps = append(ps, &model.Param{Name: prefix + name, Shape: shape, Value: value, Grad: grad, NoDecay: len(shape) < 2})
	}
	ln := func(name string, l *model.LayerNorm) lnGrads {
		lg := lnGrads{g: make([]float32, len(l.G)), b: make([]float32, len(l.B))}
		add(name+".weight", l.G, lg.g)
		add(name+".bias", l.B, lg.b)
		return lg
	}
	lin := func(name string, l *Linear) linGrads {
		lg := linGrads{w: make([]float32, len(l.W)), b: make([]float32, len(l.B))}
		add(name+".weight", l.W, lg.w)
		add(name+".bias", l.B, lg.b)
		return lg
	}
	add("embeddings.word_embeddings.weight", e.WordEmb, g.word)
	add("embeddings.position_embeddings.weight", e.PosEmb, g.pos)
	add("embeddings.token_type_embeddings.weight", e.TypeEmb, g.typ)
	g.embLN = ln("embeddings.LayerNorm", &e.EmbLN)
	for i := range e.Layers {
		l := &e.Layers[i]
		p := fmt.Sprintf("encoder.layer.%d.", i)
		var lg layerGrads
		lg.qkv = linGrads{w: make([]float32, len(l.QKV.W)), b: make([]float32, len(l.QKV.B))}
		for j, n := range []string{"query", "key", "value"} {
			w, b := j*H*H, j*H
			add(p+"attention.self."+n+".weight", l.QKV.W[w:w+H*H], lg.qkv.w[w:w+H*H])
			add(p+"attention.self."+n+".bias", l.QKV.B[b:b+H], lg.qkv.b[b:b+H])
		}
		lg.attnOut = lin(p+"attention.output.dense", &l.AttnOut)
		lg.attnLN = ln(p+"attention.output.LayerNorm", &l.AttnLN)
		lg.inter = lin(p+"intermediate.dense", &l.Intermediate)
		lg.out = lin(p+"output.dense", &l.Output)
		lg.outLN = ln(p+"output.LayerNorm", &l.OutLN)
		g.layers = append(g.layers, lg)
	}
	e.train.g, e.train.params = g, ps
}

// Tape records one ForwardTrain for Backward.
type Tape struct {
	ids        [][]int32
	batch, seq int
	mask       []float32
	emb        model.LNTape
	layers     []layerTape
	hidden     []float32
}

// layerTape records one layer's training forward.
type layerTape struct {
	x          []float32 // layer input (QKV input)
	qkv, probs []float32
	ctx        []float32 // attention context (AttnOut input)
	ln1        model.LNTape
	a          []float32 // attention block output (Intermediate input)
	mpre, m    []float32 // Intermediate output before and after GELU
	ln2        model.LNTape
}

// ForwardTrain is Forward recording the activations Backward needs in
// buffers from ar; hidden receives the final hidden states
// [len(ids), seq, hidden]. The tape and hidden stay valid until ar is
// reset and reused.
func (e *Encoder) ForwardTrain(ar *model.Arena, hidden []float32, ids [][]int32) (*Tape, error) {
	c := e.Config
	batch := len(ids)
	if batch == 0 {
		return nil, fmt.Errorf("bert: no token rows")
	}
	e.Params("")
	seq := len(ids[0])
	if seq == 0 || seq > c.MaxPositions {
		return nil, fmt.Errorf("bert: token rows of length %d, the model takes 1 to %d positions", seq, c.MaxPositions)
	}
	H, I := c.Hidden, c.Intermediate
	rows := batch * seq
	if len(hidden) < rows*H {
		return nil, fmt.Errorf("bert: output holds %d values, want %d", len(hidden), rows*H)
	}
	tp := &Tape{ids: ids, batch: batch, seq: seq, mask: ar.Get(rows)}
	x := ar.Get(rows * H)
	if err := e.embed(x, tp.mask, ids); err != nil {
		return nil, err
	}
	h := ar.Get(rows * H)
	tp.emb = e.EmbLN.ForwardTrain(ar, h, x, rows)
	for i := range e.Layers {
		l := &e.Layers[i]
		lt := layerTape{x: h}
		lt.qkv = ar.Get(rows * 3 * H)
		l.QKV.Forward(lt.qkv, h, rows)
		lt.ctx = ar.Get(rows * H)
		lt.probs = ar.Get(batch * c.Heads * seq * seq)
		attend(lt.ctx, lt.qkv, lt.probs, tp.mask, batch, seq, H, c.Heads)
		s1 := ar.Get(rows * H)
		copy(s1, h)
		l.AttnOut.forward(s1, lt.ctx, rows, kernels.EpiResidual)
		lt.a = ar.Get(rows * H)
		lt.ln1 = l.AttnLN.ForwardTrain(ar, lt.a, s1, rows)
		lt.mpre = ar.Get(rows * I)
		l.Intermediate.Forward(lt.mpre, lt.a, rows)
		lt.m = ar.Get(rows * I)
		copy(lt.m, lt.mpre)
		kernels.GELU(lt.m)
		s2 := s1 // s1 is no longer needed
		copy(s2, lt.a)
		l.Output.forward(s2, lt.m, rows, kernels.EpiResidual)
		h = ar.Get(rows * H)
		lt.ln2 = l.OutLN.ForwardTrain(ar, h, s2, rows)
		tp.layers = append(tp.layers, lt)
	}
	copy(hidden[:rows*H], h)
	tp.hidden = h
	return tp, nil
}

// embed writes word + position + token-type(0) embeddings into x and the
// additive attention mask (0, or -10000 at [PAD] keys) into mask.
func (e *Encoder) embed(x, mask []float32, ids [][]int32) error {
	c := e.Config
	H := c.Hidden
	seq := len(ids[0])
	typ := e.TypeEmb[:H]
	for b, row := range ids {
		if len(row) != seq {
			return fmt.Errorf("bert: text %d has %d tokens, text 0 has %d", b, len(row), seq)
		}
		for l, id := range row {
			if id < 0 || int(id) >= c.VocabSize {
				return fmt.Errorf("bert: text %d: token id %d at position %d is outside the vocabulary of %d", b, id, l, c.VocabSize)
			}
			w := e.WordEmb[int(id)*H : int(id)*H+H]
			p := e.PosEmb[l*H : l*H+H]
			d := x[(b*seq+l)*H : (b*seq+l)*H+H]
			for i := range d {
				d[i] = (w[i] + p[i]) + typ[i]
			}
			mask[b*seq+l] = 0
			if id == c.PadID {
				mask[b*seq+l] = -10000
			}
		}
	}
	return nil
}

// Backward takes dHidden = d loss / d final hidden states [batch, seq,
// hidden] of the ForwardTrain that made tp and accumulates every
// parameter's gradient into its Param.Grad. The word-embedding gradient
// only touches the rows of the ids in the batch, and never the [PAD] row
// (nn.Embedding's padding_idx). dHidden is used as scratch (overwritten).
func (e *Encoder) Backward(ar *model.Arena, tp *Tape, dHidden []float32) {
	c := e.Config
	g := e.train.g
	H, I := c.Hidden, c.Intermediate
	rows := tp.batch * tp.seq
	dx := dHidden[:rows*H]
	ds := ar.Get(rows * H)
	da := ar.Get(rows * H)
	dm := ar.Get(rows * I)
	dctx := ar.Get(rows * H)
	dqkv := ar.Get(rows * 3 * H)
	dp := ar.Get(tp.batch * c.Heads * tp.seq * tp.seq)
	for i := len(e.Layers) - 1; i >= 0; i-- {
		l, lt, lg := &e.Layers[i], &tp.layers[i], &g.layers[i]
		// h' = LN2(a + Output(gelu(Intermediate(a)))).
		clear(ds)
		l.OutLN.BackwardInto(ds, dx, rows, lt.ln2, lg.outLN.g, lg.outLN.b)
		l.Output.backward(dm, ds, lt.m, rows, false, lg.out)
		model.ActivationBackward(dm, lt.mpre, false)
		copy(da, ds)
		l.Intermediate.backward(da, dm, lt.a, rows, true, lg.inter)
		// a = LN1(x + AttnOut(attention(QKV(x)))).
		clear(ds)
		l.AttnLN.BackwardInto(ds, da, rows, lt.ln1, lg.attnLN.g, lg.attnLN.b)
		l.AttnOut.backward(dctx, ds, lt.ctx, rows, false, lg.attnOut)
		model.AttendBackward(dqkv, dctx, lt.qkv, lt.probs, dp, tp.batch, tp.seq, H, c.Heads)
		copy(dx, ds)
		l.QKV.backward(dx, dqkv, lt.x, rows, true, lg.qkv)
	}
	clear(ds)
	e.EmbLN.BackwardInto(ds, dx, rows, tp.emb, g.embLN.g, g.embLN.b)
	typ := g.typ[:H]
	for b, row := range tp.ids {
		for l, id := range row {
			d := ds[(b*tp.seq+l)*H : (b*tp.seq+l+1)*H]
			addTo(g.pos[l*H:(l+1)*H], d)
			addTo(typ, d)
			if id != c.PadID {
				addTo(g.word[int(id)*H:(int(id)+1)*H], d)
			}
		}
	}
}

// backward takes dy = d loss / d y for y = x·Wᵀ + b over rows rows and
// accumulates dW += dyᵀ·x and dB += Σ dy into lg. When dx is not nil it
// sets dx = dy·W, or adds it when accumulate is set.
func (l *Linear) backward(dx, dy, x []float32, rows int, accumulate bool, lg linGrads) {
	if rows == 0 {
		return
	}
	if dx != nil {
		beta := float32(0)
		if accumulate {
			beta = 1
		}
		kernels.Sgemm(false, false, rows, l.In, l.Out, 1, dy, l.Out, l.W, l.In, beta, dx, l.In)
	}
	kernels.Sgemm(true, false, l.Out, l.In, rows, 1, dy, l.Out, x, l.In, 1, lg.w, l.In)
	model.ColSums(lg.b, dy, rows, l.Out)
}

// addTo sets dst[i] += src[i].
func addTo(dst, src []float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] += src[i]
	}
}
