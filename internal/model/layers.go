package model

import (
	"github.com/goclip/goclip/internal/kernels"
)

// Arena hands out scratch buffers that are reused across forward passes:
// the k-th Get of a pass returns the k-th buffer of the previous pass, grown
// if needed, so a steady-state forward allocates nothing.
type Arena struct {
	bufs [][]float32
	next int
	ints []int
}

// Ints returns a buffer of n ints, reused by the next pass (one int buffer
// per arena: a second call in the same pass returns the same memory).
func (a *Arena) Ints(n int) []int {
	if cap(a.ints) < n {
		a.ints = make([]int, n)
	}
	return a.ints[:n]
}

// Get returns a buffer of n float32s. Its contents are undefined.
func (a *Arena) Get(n int) []float32 {
	if a.next == len(a.bufs) {
		a.bufs = append(a.bufs, nil)
	}
	b := a.bufs[a.next]
	if cap(b) < n {
		b = make([]float32, n)
		a.bufs[a.next] = b
	}
	a.next++
	return b[:n]
}

// Reset makes every buffer available again for the next pass.
func (a *Arena) Reset() { a.next = 0 }

// mark and release scope buffers: release(mark()) makes every buffer
// handed out since the mark available again (a layer's scratch, reused by
// the next layer instead of each layer keeping its own).
func (a *Arena) mark() int { return a.next }

func (a *Arena) release(m int) { a.next = m }

// Tracer receives named intermediate activations in the reference layout
// (the names of the fixtures' intermediates, e.g. "visual/ln_pre").
type Tracer func(name string, data []float32, shape []int)

// Linear is y = x·Wᵀ + b with W stored [Out, In] as in PyTorch. Pack
// prepares W once in the GEMM microkernel's layout; after changing W (a
// training step) call Pack again.
//
// A Linear built by New or Random holds its weight only packed (W is nil)
// until Unpack (called by Model.Params) restores W.
type Linear struct {
	W, B    []float32
	In, Out int
	packed  *kernels.PackedB
	gW, gB  []float32 // gradients (see Model.Params)
}

// Pack (re)packs W for the fast path of Forward. Without W (a weight held
// only packed) it does nothing.
func (l *Linear) Pack() {
	if l.W == nil && l.packed != nil {
		return
	}
	l.packed = kernels.PackLinear(l.W, l.Out, l.In)
}

// UsePrecision converts the packed weight to precision p (BF16 or Int8;
// FP32 leaves it) and drops W: for inference only (see Model.UsePrecision).
func (l *Linear) UsePrecision(p Precision) {
	if p != BF16 && p != Int8 {
		return
	}
	if l.packed == nil {
		l.Pack()
	}
	if l.packed == nil {
		return
	}
	l.packed = p.Convert(l.packed)
	l.W = nil
}

// Unpack sets W from the packed weight if W is not held, and returns W.
func (l *Linear) Unpack() []float32 {
	if l.W == nil && l.packed != nil {
		l.W = l.packed.Unpack()
	}
	return l.W
}

// Forward computes rows outputs into y.
func (l *Linear) Forward(y, x []float32, rows int) { l.forward(y, x, rows, kernels.EpiNone) }

// forward computes epi(x·Wᵀ + b) (EpiResidual adds into y).
func (l *Linear) forward(y, x []float32, rows int, epi kernels.Epilogue) {
	if rows == 0 {
		return
	}
	if l.packed == nil {
		panic("model: Linear used before Pack")
	}
	kernels.LinearPacked(y[:rows*l.Out], x[:rows*l.In], l.packed, l.B, rows, epi)
}

// LayerNorm normalises each row of Dim values: (x-mean)/sqrt(var+eps)·G+B.
type LayerNorm struct {
	G, B   []float32
	Dim    int
	Eps    float32
	gG, gB []float32 // gradients (see Model.Params)
}

// Forward normalises rows rows of x into y (y may alias x).
func (l *LayerNorm) Forward(y, x []float32, rows int) {
	kernels.LayerNorm(y[:rows*l.Dim], x[:rows*l.Dim], l.G, l.B, rows, l.Dim, l.Eps)
}

// Attention is PyTorch's nn.MultiheadAttention as CLIP uses it (self
// attention, q/k/v stacked in In, then Out).
type Attention struct {
	In, Out Linear
	Heads   int
}

// Forward computes self-attention over batch sequences of seq tokens of
// x ([batch·seq, width]) and adds the result to y (the residual stream).
// causal masks future positions.
func (a *Attention) Forward(ar *Arena, y, x []float32, batch, seq int, causal bool) {
	w := a.Out.Out
	qkv := ar.Get(batch * seq * 3 * w)
	a.In.Forward(qkv, x, batch*seq)
	ctx := ar.Get(batch * seq * w)
	scores := ar.Get(batch * a.Heads * seq * seq)
	attend(ctx, qkv, scores, batch, seq, w, a.Heads, causal)
	a.Out.forward(y, ctx, batch*seq, kernels.EpiResidual)
}

// attend computes softmax(q·kᵀ/√d)·v per batch item and head from the
// stacked projections qkv [batch·seq, 3w] into ctx [batch·seq, w]; scores
// holds the attention probabilities [batch·heads, seq, seq] afterwards.
func attend(ctx, qkv, scores []float32, batch, seq, w, heads int, causal bool) {
	runPooled[attendTask](&attendPool, batch*heads, attendTask{ctx: ctx, qkv: qkv, scores: scores, seq: seq, w: w, heads: heads, causal: causal})
}

// MLP is c_fc → (Quick)GELU → c_proj.
type MLP struct {
	FC, Proj  Linear
	QuickGELU bool
}

// Block is a pre-LN residual attention block:
// x += attn(ln_1(x)); x += mlp(ln_2(x)).
type Block struct {
	LN1, LN2 LayerNorm
	Attn     Attention
	MLP      MLP
}

// Forward updates x ([batch·seq, width]) in place.
func (blk *Block) Forward(ar *Arena, x []float32, batch, seq int, causal bool) {
	defer ar.release(ar.mark())
	rows := batch * seq
	w := blk.LN1.Dim
	h := ar.Get(rows * w)
	blk.LN1.Forward(h, x, rows)
	blk.Attn.Forward(ar, x, h, batch, seq, causal)
	blk.LN2.Forward(h, x, rows)
	f := ar.Get(rows * blk.MLP.FC.Out)
	epi := kernels.EpiGELU
	if blk.MLP.QuickGELU {
		epi = kernels.EpiQuickGELU
	}
	blk.MLP.FC.forward(f, h, rows, epi)
	blk.MLP.Proj.forward(x, f, rows, kernels.EpiResidual)
}

// forwardPooled is Forward when only one row of each sequence is wanted
// afterwards: row pos[b] of sequence b is written to out [batch, width] and
// x is left holding the block's input (normalised by ln_1 nowhere else).
// Every row still feeds the attention as key and value, but the query, the
// output projection and the MLP run on the wanted rows only. With causal
// set, row pos[b] attends to positions 0..pos[b], as the mask would allow.
func (blk *Block) forwardPooled(ar *Arena, out, x []float32, batch, seq int, causal bool, pos []int) {
	defer ar.release(ar.mark())
	rows := batch * seq
	w := blk.LN1.Dim
	heads := blk.Attn.Heads
	h := ar.Get(rows * w)
	blk.LN1.Forward(h, x, rows)
	qkv := ar.Get(rows * 3 * w)
	blk.Attn.In.Forward(qkv, h, rows)
	ctx := ar.Get(batch * w)
	scores := ar.Get(batch * heads * seq)
	q := ar.Get(batch * w)
	runPooled[pooledAttnTask](&pooledAttnPool, batch*heads, pooledAttnTask{ctx: ctx, qkv: qkv, scores: scores, q: q, pos: pos, seq: seq, w: w, heads: heads, causal: causal})
	for b := range batch {
		copy(out[b*w:(b+1)*w], x[(b*seq+pos[b])*w:])
	}
	blk.Attn.Out.forward(out, ctx, batch, kernels.EpiResidual)
	h2 := ar.Get(batch * w)
	blk.LN2.Forward(h2, out, batch)
	f := ar.Get(batch * blk.MLP.FC.Out)
	epi := kernels.EpiGELU
	if blk.MLP.QuickGELU {
		epi = kernels.EpiQuickGELU
	}
	blk.MLP.FC.forward(f, h2, batch, epi)
	blk.MLP.Proj.forward(out, f, batch, kernels.EpiResidual)
}

// Transformer is a stack of Blocks.
type Transformer struct {
	Blocks []Block
}

// Forward runs every block on x in place; trace (if non-nil) receives the
// output of block 0 as prefix+"block0" in [batch, seq, width] layout.
func (t *Transformer) Forward(ar *Arena, x []float32, batch, seq int, causal bool, trace Tracer, prefix string) {
	t.forwardCapture(ar, x, batch, seq, causal, trace, prefix, nil)
}

// forwardPooled runs every block on x [batch·seq, width] and writes the
// last block's output at row pos[b] of each sequence into out [batch,
// width]: the rows no later layer reads are never computed in the last
// block (see Block.forwardPooled). x is clobbered. trace is as for Forward.
func (t *Transformer) forwardPooled(ar *Arena, out, x []float32, batch, seq, w int, causal bool, pos []int, trace Tracer, prefix string) {
	n := len(t.Blocks)
	if n == 0 || (n == 1 && trace != nil) {
		t.Forward(ar, x, batch, seq, causal, trace, prefix)
		for b := range batch {
			copy(out[b*w:(b+1)*w], x[(b*seq+pos[b])*w:])
		}
		return
	}
	for i := range n - 1 {
		t.Blocks[i].Forward(ar, x, batch, seq, causal)
		if i == 0 && trace != nil {
			trace(prefix+"block0", x, []int{batch, seq, t.Blocks[0].LN1.Dim})
		}
	}
	t.Blocks[n-1].forwardPooled(ar, out, x, batch, seq, causal, pos)
}

// forwardCapture is Forward that also calls after(-1, x) with the input of
// the first block and after(i, x) once block i has updated x (after may be
// nil).
func (t *Transformer) forwardCapture(ar *Arena, x []float32, batch, seq int, causal bool, trace Tracer, prefix string, after func(i int, x []float32)) {
	if after != nil {
		after(-1, x)
	}
	for i := range t.Blocks {
		t.Blocks[i].Forward(ar, x, batch, seq, causal)
		if i == 0 && trace != nil {
			trace(prefix+"block0", x, []int{batch, seq, t.Blocks[0].LN1.Dim})
		}
		if after != nil {
			after(i, x)
		}
	}
}
