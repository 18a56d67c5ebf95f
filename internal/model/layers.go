package model

import (
	"math"

	"github.com/goclip/goclip/internal/kernels"
)

// Arena hands out scratch buffers that are reused across forward passes:
// the k-th Get of a pass returns the k-th buffer of the previous pass, grown
// if needed, so a steady-state forward allocates nothing.
type Arena struct {
	bufs [][]float32
	next int
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

// Tracer receives named intermediate activations in the reference layout
// (the names of the fixtures' intermediates, e.g. "visual/ln_pre").
type Tracer func(name string, data []float32, shape []int)

// Linear is y = x·Wᵀ + b with W stored [Out, In] as in PyTorch.
type Linear struct {
	W, B    []float32
	In, Out int
}

// Forward computes rows outputs into y.
func (l *Linear) Forward(y, x []float32, rows int) {
	kernels.Linear(y[:rows*l.Out], x[:rows*l.In], l.W, l.B, rows, l.Out, l.In)
}

// LayerNorm normalises each row of Dim values: (x-mean)/sqrt(var+eps)·G+B.
type LayerNorm struct {
	G, B []float32
	Dim  int
	Eps  float32
}

// Forward normalises rows rows of x into y (y may alias x).
func (l *LayerNorm) Forward(y, x []float32, rows int) {
	d := l.Dim
	kernels.Parallel(rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, yr := x[r*d:r*d+d], y[r*d:r*d+d]
			var s float64
			for _, v := range xr {
				s += float64(v)
			}
			mean := s / float64(d)
			var q float64
			for _, v := range xr {
				dv := float64(v) - mean
				q += dv * dv
			}
			rstd := 1 / math.Sqrt(q/float64(d)+float64(l.Eps))
			for i, v := range xr {
				yr[i] = float32((float64(v)-mean)*rstd)*l.G[i] + l.B[i]
			}
		}
	})
}

// activation applies QuickGELU (x·σ(1.702x)) or exact erf GELU in place.
func activation(x []float32, quick bool) {
	kernels.Parallel(len(x)/4096+1, func(lo, hi int) {
		a, b := lo*4096, min(hi*4096, len(x))
		for i := a; i < b; i++ {
			v := x[i]
			if quick {
				x[i] = v * float32(1/(1+math.Exp(-float64(float32(1.702)*v))))
			} else {
				x[i] = float32(0.5 * float64(v) * (1 + math.Erf(float64(v)/math.Sqrt2)))
			}
		}
	})
}

// Attention is PyTorch's nn.MultiheadAttention as CLIP uses it (self
// attention, q/k/v stacked in In, then Out).
type Attention struct {
	In, Out Linear
	Heads   int
}

// Forward computes self-attention over batch sequences of seq tokens of
// x ([batch·seq, width]) into y. causal masks future positions.
func (a *Attention) Forward(ar *Arena, y, x []float32, batch, seq int, causal bool) {
	w := a.Out.Out
	qkv := ar.Get(batch * seq * 3 * w)
	a.In.Forward(qkv, x, batch*seq)
	ctx := ar.Get(batch * seq * w)
	scores := ar.Get(batch * a.Heads * seq * seq)
	hd := w / a.Heads
	scale := float32(1 / math.Sqrt(float64(hd)))
	kernels.Parallel(batch*a.Heads, func(lo, hi int) {
		q := make([]float32, hd)
		for t := lo; t < hi; t++ {
			b, h := t/a.Heads, t%a.Heads
			sc := scores[t*seq*seq : (t+1)*seq*seq]
			base := b * seq * 3 * w
			for i := range seq {
				qi := qkv[base+i*3*w+h*hd : base+i*3*w+h*hd+hd]
				for c := range q {
					q[c] = qi[c] * scale
				}
				n := seq
				if causal {
					n = i + 1
				}
				row := sc[i*seq : i*seq+n]
				mx := float32(math.Inf(-1))
				for j := range n {
					kj := qkv[base+j*3*w+w+h*hd : base+j*3*w+w+h*hd+hd]
					s := kernels.Dot(q, kj)
					row[j] = s
					mx = max(mx, s)
				}
				var sum float32
				for j := range row {
					e := float32(math.Exp(float64(row[j] - mx)))
					row[j] = e
					sum += e
				}
				out := ctx[(b*seq+i)*w+h*hd : (b*seq+i)*w+h*hd+hd]
				for c := range out {
					out[c] = 0
				}
				inv := 1 / sum
				for j, p := range row {
					p *= inv
					vj := qkv[base+j*3*w+2*w+h*hd : base+j*3*w+2*w+h*hd+hd]
					for c, v := range vj {
						out[c] += p * v
					}
				}
			}
		}
	})
	a.Out.Forward(y, ctx, batch*seq)
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
	rows := batch * seq
	w := blk.LN1.Dim
	h := ar.Get(rows * w)
	blk.LN1.Forward(h, x, rows)
	o := ar.Get(rows * w)
	blk.Attn.Forward(ar, o, h, batch, seq, causal)
	kernels.Parallel(rows, func(lo, hi int) {
		for i := lo * w; i < hi*w; i++ {
			x[i] += o[i]
		}
	})
	blk.LN2.Forward(h, x, rows)
	f := ar.Get(rows * blk.MLP.FC.Out)
	blk.MLP.FC.Forward(f, h, rows)
	activation(f, blk.MLP.QuickGELU)
	blk.MLP.Proj.Forward(o, f, rows)
	kernels.Parallel(rows, func(lo, hi int) {
		for i := lo * w; i < hi*w; i++ {
			x[i] += o[i]
		}
	})
}

// Transformer is a stack of Blocks.
type Transformer struct {
	Blocks []Block
}

// Forward runs every block on x in place; trace (if non-nil) receives the
// output of block 0 as prefix+"block0" in [batch, seq, width] layout.
func (t *Transformer) Forward(ar *Arena, x []float32, batch, seq int, causal bool, trace Tracer, prefix string) {
	for i := range t.Blocks {
		t.Blocks[i].Forward(ar, x, batch, seq, causal)
		if i == 0 && trace != nil {
			trace(prefix+"block0", x, []int{batch, seq, t.Blocks[0].LN1.Dim})
		}
	}
}
