package model

import (
	"math"

	"github.com/goclip/goclip/internal/kernels"
)

// This file holds the training passes of the transformer layers: a forward
// that records what the backward needs, and a Backward beside it. Gradients
// of the parameters accumulate (+=) into the buffers of Model.Params;
// gradients of the inputs are written or accumulated as each doc says.

// Backward takes dy = d loss / d y for y = x·Wᵀ + b over rows rows and
// accumulates dW += dyᵀ·x and dB += Σ dy into the layer's gradients. When dx
// is not nil it sets dx = dy·W, or adds it when accumulate is set.
func (l *Linear) Backward(dx, dy, x []float32, rows int, accumulate bool) {
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
	if l.gW != nil {
		kernels.Sgemm(true, false, l.Out, l.In, rows, 1, dy, l.Out, x, l.In, 1, l.gW, l.In)
	}
	if l.gB != nil {
		ColSums(l.gB, dy, rows, l.Out)
	}
}

// ColSums adds the column sums of m [rows, cols] to dst (in float64): the
// bias gradient of a Linear layer.
func ColSums(dst, m []float32, rows, cols int) {
	kernels.Parallel(cols, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			var s float64
			for r := range rows {
				s += float64(m[r*cols+c])
			}
			dst[c] += float32(s)
		}
	})
}

// LNTape is what LayerNorm's backward needs: the normalised input and the
// reciprocal standard deviation of every row.
type LNTape struct {
	xhat, rstd []float32
}

// ForwardTrain is Forward recording what the backward pass needs in arena
// buffers (y may alias x). Mean and variance are two-pass float64 sums, so
// tiny eps (BERT's 1e-12) stay accurate.
func (l *LayerNorm) ForwardTrain(ar *Arena, y, x []float32, rows int) LNTape {
	d := l.Dim
	tp := LNTape{xhat: ar.Get(rows * d), rstd: ar.Get(rows)}
	kernels.Parallel(rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*d : (r+1)*d]
			var s float64
			for _, v := range xr {
				s += float64(v)
			}
			mean := s / float64(d)
			var q float64
			for _, v := range xr {
				t := float64(v) - mean
				q += t * t
			}
			rstd := float32(1 / math.Sqrt(q/float64(d)+float64(l.Eps)))
			m := float32(mean)
			xh := tp.xhat[r*d : (r+1)*d]
			yr := y[r*d : (r+1)*d]
			for c, v := range xr {
				h := (v - m) * rstd
				xh[c] = h
				yr[c] = h*l.G[c] + l.B[c]
			}
			tp.rstd[r] = rstd
		}
	})
	return tp
}

// backward is BackwardInto with the layer's own gradient buffers.
func (l *LayerNorm) backward(dx, dy []float32, rows int, tp LNTape) {
	l.BackwardInto(dx, dy, rows, tp, l.gG, l.gB)
}

// BackwardInto adds d loss / d x to dx given dy and accumulates the gain
// and bias gradients into gG and gB (skipped when nil). dx must not alias
// dy.
func (l *LayerNorm) BackwardInto(dx, dy []float32, rows int, tp LNTape, gG, gB []float32) {
	d := l.Dim
	kernels.Parallel(rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			dyr, xh, dxr := dy[r*d:(r+1)*d], tp.xhat[r*d:(r+1)*d], dx[r*d:(r+1)*d]
			var s1, s2 float64
			for c, g := range dyr {
				t := float64(g) * float64(l.G[c])
				s1 += t
				s2 += t * float64(xh[c])
			}
			m1, m2 := s1/float64(d), s2/float64(d)
			rstd := float64(tp.rstd[r])
			for c, g := range dyr {
				dxr[c] += float32(rstd * (float64(g)*float64(l.G[c]) - m1 - float64(xh[c])*m2))
			}
		}
	})
	if gG == nil {
		return
	}
	kernels.Parallel(d, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			var sg, sb float64
			for r := range rows {
				g := float64(dy[r*d+c])
				sg += g * float64(tp.xhat[r*d+c])
				sb += g
			}
			gG[c] += float32(sg)
			gB[c] += float32(sb)
		}
	})
}

// ActivationBackward sets d[i] *= act'(pre[i]) for QuickGELU (quick) or the
// exact GELU.
func ActivationBackward(d, pre []float32, quick bool) {
	kernels.Parallel((len(d)+4095)/4096, func(lo, hi int) {
		for i := lo * 4096; i < min(hi*4096, len(d)); i++ {
			x := float64(pre[i])
			var g float64
			if quick {
				s := 1 / (1 + math.Exp(-1.702*x))
				g = s + 1.702*x*s*(1-s)
			} else {
				g = 0.5*(1+math.Erf(x/math.Sqrt2)) + x*math.Exp(-0.5*x*x)/math.Sqrt(2*math.Pi)
			}
			d[i] = float32(float64(d[i]) * g)
		}
	})
}

// AttendBackward is the adjoint of attend: given dctx [batch·seq, w], the
// stacked projections qkv and the probabilities probs recorded by attend, it
// writes dqkv [batch·seq, 3w]. dp is scratch of len(probs).
func AttendBackward(dqkv, dctx, qkv, probs, dp []float32, batch, seq, w, heads int) {
	hd := w / heads
	scale := float32(1 / math.Sqrt(float64(hd)))
	kernels.Parallel(batch*heads, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			b, h := t/heads, t%heads
			p := probs[t*seq*seq : (t+1)*seq*seq]
			ds := dp[t*seq*seq : (t+1)*seq*seq]
			base := qkv[b*seq*3*w:]
			dbase := dqkv[b*seq*3*w:]
			dc := dctx[b*seq*w+h*hd:]
			// dP = dctx·vᵀ, dv = Pᵀ·dctx.
			kernels.Sgemm(false, true, seq, seq, hd, 1, dc, w, base[2*w+h*hd:], 3*w, 0, ds, seq)
			kernels.Sgemm(true, false, seq, hd, seq, 1, p, seq, dc, w, 0, dbase[2*w+h*hd:], 3*w)
			// Softmax: dS = P ⊙ (dP - Σ_j dP·P). Masked entries have P = 0.
			for i := range seq {
				pr, dr := p[i*seq:(i+1)*seq], ds[i*seq:(i+1)*seq]
				var s float64
				for j, v := range pr {
					s += float64(v * dr[j])
				}
				sf := float32(s)
				for j, v := range pr {
					dr[j] = v * (dr[j] - sf)
				}
			}
			// S = scale·q·kᵀ: dq = scale·dS·k, dk = scale·dSᵀ·q.
			kernels.Sgemm(false, false, seq, hd, seq, scale, ds, seq, base[w+h*hd:], 3*w, 0, dbase[h*hd:], 3*w)
			kernels.Sgemm(true, false, seq, hd, seq, scale, ds, seq, base[h*hd:], 3*w, 0, dbase[w+h*hd:], 3*w)
		}
	})
}

// blockTape records one Block's training forward.
type blockTape struct {
	ln1, ln2      LNTape
	h1, h2        []float32 // ln_1 and ln_2 outputs (inputs of in_proj and c_fc)
	qkv, probs    []float32
	ctx           []float32 // attention output before out_proj
	fpre, f       []float32 // c_fc output before and after the activation
	batch, seq    int
	causal        bool
	width, hidden int
}

// forwardTrain is Forward recording the activations the backward needs.
func (blk *Block) forwardTrain(ar *Arena, x []float32, batch, seq int, causal bool) *blockTape {
	rows := batch * seq
	w := blk.LN1.Dim
	hid := blk.MLP.FC.Out
	heads := blk.Attn.Heads
	tp := &blockTape{batch: batch, seq: seq, causal: causal, width: w, hidden: hid}
	tp.h1 = ar.Get(rows * w)
	tp.ln1 = blk.LN1.ForwardTrain(ar, tp.h1, x, rows)
	tp.qkv = ar.Get(rows * 3 * w)
	blk.Attn.In.Forward(tp.qkv, tp.h1, rows)
	tp.ctx = ar.Get(rows * w)
	tp.probs = ar.Get(batch * heads * seq * seq)
	attend(tp.ctx, tp.qkv, tp.probs, batch, seq, w, heads, causal)
	blk.Attn.Out.forward(x, tp.ctx, rows, kernels.EpiResidual)
	tp.h2 = ar.Get(rows * w)
	tp.ln2 = blk.LN2.ForwardTrain(ar, tp.h2, x, rows)
	tp.fpre = ar.Get(rows * hid)
	blk.MLP.FC.Forward(tp.fpre, tp.h2, rows)
	tp.f = ar.Get(rows * hid)
	copy(tp.f, tp.fpre)
	if blk.MLP.QuickGELU {
		kernels.QuickGELU(tp.f)
	} else {
		kernels.GELU(tp.f)
	}
	blk.MLP.Proj.forward(x, tp.f, rows, kernels.EpiResidual)
	return tp
}

// blockScratch holds the backward's temporaries, shared by the blocks of a
// tower.
type blockScratch struct {
	dh, dctx, dqkv, df, dp []float32
}

func newBlockScratch(ar *Arena, rows, w, hid, probs int) *blockScratch {
	return &blockScratch{dh: ar.Get(rows * w), dctx: ar.Get(rows * w), dqkv: ar.Get(rows * 3 * w),
		df: ar.Get(rows * hid), dp: ar.Get(probs)}
}

// backward turns dx (d loss / d block output) into d loss / d block input in
// place, accumulating the block's parameter gradients.
func (blk *Block) backward(dx []float32, tp *blockTape, s *blockScratch) {
	rows := tp.batch * tp.seq
	w, hid := tp.width, tp.hidden
	// x += c_proj(act(c_fc(ln_2(x)))).
	df := s.df[:rows*hid]
	blk.MLP.Proj.Backward(df, dx, tp.f, rows, false)
	ActivationBackward(df, tp.fpre, blk.MLP.QuickGELU)
	dh := s.dh[:rows*w]
	blk.MLP.FC.Backward(dh, df, tp.h2, rows, false)
	blk.LN2.backward(dx, dh, rows, tp.ln2)
	// x += out_proj(attention(in_proj(ln_1(x)))).
	dctx := s.dctx[:rows*w]
	blk.Attn.Out.Backward(dctx, dx, tp.ctx, rows, false)
	dqkv := s.dqkv[:rows*3*w]
	AttendBackward(dqkv, dctx, tp.qkv, tp.probs, s.dp[:len(tp.probs)], tp.batch, tp.seq, w, blk.Attn.Heads)
	blk.Attn.In.Backward(dh, dqkv, tp.h1, rows, false)
	blk.LN1.backward(dx, dh, rows, tp.ln1)
}

// forwardTrain runs every block recording its activations.
func (t *Transformer) forwardTrain(ar *Arena, x []float32, batch, seq int, causal bool) []*blockTape {
	tapes := make([]*blockTape, len(t.Blocks))
	for i := range t.Blocks {
		tapes[i] = t.Blocks[i].forwardTrain(ar, x, batch, seq, causal)
	}
	return tapes
}

// backward runs the blocks' backward passes in reverse on dx in place.
func (t *Transformer) backward(ar *Arena, dx []float32, tapes []*blockTape) {
	if len(tapes) == 0 {
		return
	}
	tp := tapes[0]
	s := newBlockScratch(ar, tp.batch*tp.seq, tp.width, tp.hidden, len(tp.probs))
	for i := len(t.Blocks) - 1; i >= 0; i-- {
		t.Blocks[i].backward(dx, tapes[i], s)
	}
}
