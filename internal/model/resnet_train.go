package model

import (
	"math"

	"github.com/goclip/goclip/internal/kernels"
)

// Training passes of the ModifiedResNet: unfolded convolutions (im2col +
// GEMM) with BatchNorm in train mode (batch statistics; the running
// statistics are updated as PyTorch does), ReLU, average pooling and the
// attention pool.

// convs returns every convolution of the tower.
func (r *ModifiedResNet) convs() []*Conv2d {
	cs := []*Conv2d{&r.Stem[0], &r.Stem[1], &r.Stem[2]}
	for li := range r.Layers {
		for bi := range r.Layers[li] {
			b := &r.Layers[li][bi]
			cs = append(cs, &b.Conv1, &b.Conv2, &b.Conv3)
			if b.Down != nil {
				cs = append(cs, b.Down)
			}
		}
	}
	return cs
}

// im2col writes the K·K·In patch rows of image x [In, h, w] into col
// [In·K·K, oh·ow], or with back set adds col back into x (the adjoint).
func (c *Conv2d) im2col(col, x []float32, h, w, oh, ow int, back bool) {
	ohw := oh * ow
	kernels.Parallel(c.In, func(lo, hi int) {
		for ci := lo; ci < hi; ci++ {
			plane := x[ci*h*w : (ci+1)*h*w]
			for ky := range c.K {
				for kx := range c.K {
					row := col[((ci*c.K+ky)*c.K+kx)*ohw:]
					for oy := range oh {
						iy := oy*c.Stride - c.Pad + ky
						for ox := range ow {
							ix := ox*c.Stride - c.Pad + kx
							inside := iy >= 0 && iy < h && ix >= 0 && ix < w
							switch {
							case back && inside:
								plane[iy*w+ix] += row[oy*ow+ox]
							case !back && inside:
								row[oy*ow+ox] = plane[iy*w+ix]
							case !back:
								row[oy*ow+ox] = 0
							}
						}
					}
				}
			}
		}
	})
}

// cbTape records one convolution + train-mode BatchNorm (+ ReLU).
type cbTape struct {
	x           []float32 // input [batch, In, h, w]
	xhat        []float32 // normalised convolution output
	rstd        []float32 // per channel
	y           []float32 // output (after the ReLU when relu)
	batch, h, w int
	oh, ow      int
	relu        bool
}

// forwardTrain computes relu?(bn(conv(x))) with batch statistics into a new
// arena buffer, updating the BatchNorm running statistics.
func (c *Conv2d) forwardTrain(ar *Arena, x []float32, batch, h, w int, relu bool) *cbTape {
	oh, ow := c.outSize(h), c.outSize(w)
	ohw := oh * ow
	kk := c.In * c.K * c.K
	tp := &cbTape{x: x, batch: batch, h: h, w: w, oh: oh, ow: ow, relu: relu}
	z := ar.Get(batch * c.Out * ohw)
	direct := c.K == 1 && c.Stride == 1 && c.Pad == 0
	var col []float32
	if !direct {
		col = ar.Get(kk * ohw)
	}
	for b := range batch {
		src := x[b*c.In*h*w : (b+1)*c.In*h*w]
		if !direct {
			c.im2col(col, src, h, w, oh, ow, false)
			src = col
		}
		kernels.MatMul(z[b*c.Out*ohw:(b+1)*c.Out*ohw], c.Raw, src, c.Out, ohw, kk)
	}
	tp.rstd = ar.Get(c.Out)
	tp.y = ar.Get(len(z))
	n := float64(batch * ohw)
	bn := c.BN
	kernels.Parallel(c.Out, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			var s, q float64
			for b := range batch {
				for _, v := range z[(b*c.Out+o)*ohw : (b*c.Out+o+1)*ohw] {
					s += float64(v)
					q += float64(v) * float64(v)
				}
			}
			mean := s / n
			variance := max(q/n-mean*mean, 0)
			rstd := float32(1 / math.Sqrt(variance+bnEps))
			tp.rstd[o] = rstd
			m, g, beta := float32(mean), bn.G[o], bn.B[o]
			for b := range batch {
				off := (b*c.Out + o) * ohw
				for i, v := range z[off : off+ohw] {
					xh := (v - m) * rstd
					z[off+i] = xh
					y := xh*g + beta
					if relu && y < 0 {
						y = 0
					}
					tp.y[off+i] = y
				}
			}
			unbiased := variance
			if n > 1 {
				unbiased = variance * n / (n - 1)
			}
			bn.Mean[o] = float32(0.9*float64(bn.Mean[o]) + 0.1*mean)
			bn.Var[o] = float32(0.9*float64(bn.Var[o]) + 0.1*unbiased)
		}
	})
	tp.xhat = z
	return tp
}

// backwardTrain adds d loss / d x to dx given dy (which it overwrites) and
// accumulates the gradients of Raw and the BatchNorm.
func (c *Conv2d) backwardTrain(ar *Arena, dx, dy []float32, tp *cbTape) {
	batch, h, w, ohw := tp.batch, tp.h, tp.w, tp.oh*tp.ow
	kk := c.In * c.K * c.K
	n := float64(batch * ohw)
	bn := c.BN
	kernels.Parallel(c.Out, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			var sb, sg float64
			for b := range batch {
				off := (b*c.Out + o) * ohw
				for i := off; i < off+ohw; i++ {
					if tp.relu && tp.y[i] <= 0 {
						dy[i] = 0
					}
					sb += float64(dy[i])
					sg += float64(dy[i]) * float64(tp.xhat[i])
				}
			}
			bn.gG[o] += float32(sg)
			bn.gB[o] += float32(sb)
			g, rstd := bn.G[o], tp.rstd[o]
			m1, m2 := float32(sb/n), float32(sg/n)
			for b := range batch {
				off := (b*c.Out + o) * ohw
				for i := off; i < off+ohw; i++ {
					dy[i] = g * rstd * (dy[i] - m1 - tp.xhat[i]*m2)
				}
			}
		}
	})
	// dy now holds d loss / d conv output.
	direct := c.K == 1 && c.Stride == 1 && c.Pad == 0
	var col, dcol []float32
	if !direct {
		col, dcol = ar.Get(kk*ohw), ar.Get(kk*ohw)
	}
	for b := range batch {
		xb := tp.x[b*c.In*h*w : (b+1)*c.In*h*w]
		dxb := dx[b*c.In*h*w : (b+1)*c.In*h*w]
		dyb := dy[b*c.Out*ohw : (b+1)*c.Out*ohw]
		if direct {
			kernels.Sgemm(false, true, c.Out, kk, ohw, 1, dyb, ohw, xb, ohw, 1, c.gRaw, kk)
			kernels.Sgemm(true, false, kk, ohw, c.Out, 1, c.Raw, kk, dyb, ohw, 1, dxb, ohw)
			continue
		}
		c.im2col(col, xb, h, w, tp.oh, tp.ow, false)
		kernels.Sgemm(false, true, c.Out, kk, ohw, 1, dyb, ohw, col, ohw, 1, c.gRaw, kk)
		kernels.Sgemm(true, false, kk, ohw, c.Out, 1, c.Raw, kk, dyb, ohw, 0, dcol, ohw)
		c.im2col(dcol, dxb, h, w, tp.oh, tp.ow, true)
	}
}

// avgPoolBackward adds the adjoint of avgPool (k×k, stride k) to dx.
func avgPoolBackward(dx, dy []float32, planes, h, w, k int) {
	oh, ow := h/k, w/k
	inv := 1 / float32(k*k)
	kernels.Parallel(planes, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			src := dy[p*oh*ow:]
			dst := dx[p*h*w:]
			for oy := range oh {
				for ox := range ow {
					g := src[oy*ow+ox] * inv
					for ddy := range k {
						for ddx := range k {
							dst[(oy*k+ddy)*w+ox*k+ddx] += g
						}
					}
				}
			}
		}
	})
}

// bottleneckTape records one Bottleneck's training forward.
type bottleneckTape struct {
	c1, c2, c3, down *cbTape
	pooled, dpooled  []float32 // avgpool(conv2 branch) and avgpool(x) (stride > 1)
	out              []float32
	h, w, oh, ow     int
	batch            int
}

func (bn *Bottleneck) forwardTrain(ar *Arena, x []float32, batch, h, w int) *bottleneckTape {
	tp := &bottleneckTape{batch: batch, h: h, w: w, oh: h, ow: w}
	planes := bn.Conv1.Out
	tp.c1 = bn.Conv1.forwardTrain(ar, x, batch, h, w, true)
	tp.c2 = bn.Conv2.forwardTrain(ar, tp.c1.y, batch, h, w, true)
	src := tp.c2.y
	if bn.Stride > 1 {
		tp.oh, tp.ow = h/bn.Stride, w/bn.Stride
		tp.pooled = ar.Get(batch * planes * tp.oh * tp.ow)
		avgPool(tp.pooled, src, batch*planes, h, w, bn.Stride)
		src = tp.pooled
	}
	tp.c3 = bn.Conv3.forwardTrain(ar, src, batch, tp.oh, tp.ow, false)
	id := x
	if bn.Down != nil {
		dsrc := x
		if bn.Stride > 1 {
			tp.dpooled = ar.Get(batch * bn.Conv1.In * tp.oh * tp.ow)
			avgPool(tp.dpooled, x, batch*bn.Conv1.In, h, w, bn.Stride)
			dsrc = tp.dpooled
		}
		tp.down = bn.Down.forwardTrain(ar, dsrc, batch, tp.oh, tp.ow, false)
		id = tp.down.y
	}
	tp.out = ar.Get(len(tp.c3.y))
	for i, v := range tp.c3.y {
		tp.out[i] = max(v+id[i], 0)
	}
	return tp
}

// backward adds d loss / d x to dx given dout (which it overwrites).
func (bn *Bottleneck) backward(ar *Arena, dx, dout []float32, tp *bottleneckTape) {
	batch, planes := tp.batch, bn.Conv1.Out
	for i, v := range tp.out {
		if v <= 0 {
			dout[i] = 0
		}
	}
	// Identity path first: the convolution branch overwrites its dy.
	if bn.Down == nil {
		addTo(dx[:len(dout)], dout)
	} else {
		dd := ar.Get(len(dout))
		copy(dd, dout)
		if bn.Stride > 1 {
			dp := ar.Get(len(tp.dpooled))
			clear(dp)
			bn.Down.backwardTrain(ar, dp, dd, tp.down)
			avgPoolBackward(dx, dp, batch*bn.Conv1.In, tp.h, tp.w, bn.Stride)
		} else {
			bn.Down.backwardTrain(ar, dx, dd, tp.down)
		}
	}
	d2 := ar.Get(len(tp.c2.y))
	clear(d2)
	if bn.Stride > 1 {
		dp := ar.Get(len(tp.pooled))
		clear(dp)
		bn.Conv3.backwardTrain(ar, dp, dout, tp.c3)
		avgPoolBackward(d2, dp, batch*planes, tp.h, tp.w, bn.Stride)
	} else {
		bn.Conv3.backwardTrain(ar, d2, dout, tp.c3)
	}
	d1 := ar.Get(len(tp.c1.y))
	clear(d1)
	bn.Conv2.backwardTrain(ar, d1, d2, tp.c2)
	bn.Conv1.backwardTrain(ar, dx, d1, tp.c1)
}

// poolTape records the attention pool's training forward.
type poolTape struct {
	tok, first, q, k, v, probs, ctx []float32
	batch, hw                       int
}

func (ap *AttentionPool) forwardTrain(ar *Arena, out, x []float32, batch, hw int) *poolTape {
	d, seq := ap.Dim, hw+1
	tp := &poolTape{batch: batch, hw: hw}
	tok := ar.Get(batch * seq * d)
	for b := range batch {
		tb := tok[b*seq*d:]
		xb := x[b*d*hw:]
		for c := range d {
			var s float32
			for i, v := range xb[c*hw : (c+1)*hw] {
				tb[(i+1)*d+c] = v
				s += v
			}
			tb[c] = s / float32(hw)
		}
		for i := range seq * d {
			tb[i] += ap.Pos[i]
		}
	}
	tp.tok = tok
	tp.first = ar.Get(batch * d)
	for b := range batch {
		copy(tp.first[b*d:(b+1)*d], tok[b*seq*d:])
	}
	tp.q, tp.k, tp.v = ar.Get(batch*d), ar.Get(batch*seq*d), ar.Get(batch*seq*d)
	ap.Q.Forward(tp.q, tp.first, batch)
	ap.K.Forward(tp.k, tok, batch*seq)
	ap.V.Forward(tp.v, tok, batch*seq)
	tp.probs = ar.Get(batch * ap.Heads * seq)
	tp.ctx = ar.Get(batch * d)
	hd := d / ap.Heads
	scale := 1 / math.Sqrt(float64(hd))
	for t := range batch * ap.Heads {
		b, h := t/ap.Heads, t%ap.Heads
		qh := tp.q[b*d+h*hd : b*d+h*hd+hd]
		p := tp.probs[t*seq : (t+1)*seq]
		mx := math.Inf(-1)
		sc := make([]float64, seq)
		for j := range seq {
			var s float64
			for c, kv := range tp.k[(b*seq+j)*d+h*hd : (b*seq+j)*d+h*hd+hd] {
				s += float64(qh[c]) * float64(kv)
			}
			sc[j] = s * scale
			mx = math.Max(mx, sc[j])
		}
		var sum float64
		for j := range sc {
			sc[j] = math.Exp(sc[j] - mx)
			sum += sc[j]
		}
		o := tp.ctx[b*d+h*hd : b*d+h*hd+hd]
		clear(o)
		for j := range seq {
			p[j] = float32(sc[j] / sum)
			for c, vv := range tp.v[(b*seq+j)*d+h*hd : (b*seq+j)*d+h*hd+hd] {
				o[c] += p[j] * vv
			}
		}
	}
	ap.C.Forward(out, tp.ctx, batch)
	return tp
}

// backward returns d loss / d x [batch, dim, hw] in a new arena buffer.
func (ap *AttentionPool) backward(ar *Arena, dout []float32, tp *poolTape) []float32 {
	batch, hw, d := tp.batch, tp.hw, ap.Dim
	seq := hw + 1
	hd := d / ap.Heads
	scale := float32(1 / math.Sqrt(float64(hd)))
	dctx := ar.Get(batch * d)
	ap.C.Backward(dctx, dout, tp.ctx, batch, false)
	dq, dk, dv := ar.Get(batch*d), ar.Get(batch*seq*d), ar.Get(batch*seq*d)
	for t := range batch * ap.Heads {
		b, h := t/ap.Heads, t%ap.Heads
		p := tp.probs[t*seq : (t+1)*seq]
		dc := dctx[b*d+h*hd : b*d+h*hd+hd]
		qh := tp.q[b*d+h*hd : b*d+h*hd+hd]
		ds := make([]float32, seq)
		var s float64
		for j := range seq {
			vj := tp.v[(b*seq+j)*d+h*hd : (b*seq+j)*d+h*hd+hd]
			dvj := dv[(b*seq+j)*d+h*hd : (b*seq+j)*d+h*hd+hd]
			var dp float32
			for c := range hd {
				dp += dc[c] * vj[c]
				dvj[c] = p[j] * dc[c]
			}
			ds[j] = dp
			s += float64(p[j] * dp)
		}
		dqh := dq[b*d+h*hd : b*d+h*hd+hd]
		clear(dqh)
		for j := range seq {
			g := p[j] * (ds[j] - float32(s)) * scale
			kj := tp.k[(b*seq+j)*d+h*hd : (b*seq+j)*d+h*hd+hd]
			dkj := dk[(b*seq+j)*d+h*hd : (b*seq+j)*d+h*hd+hd]
			for c := range hd {
				dqh[c] += g * kj[c]
				dkj[c] = g * qh[c]
			}
		}
	}
	dtok := ar.Get(batch * seq * d)
	ap.K.Backward(dtok, dk, tp.tok, batch*seq, false)
	ap.V.Backward(dtok, dv, tp.tok, batch*seq, true)
	dfirst := ar.Get(batch * d)
	ap.Q.Backward(dfirst, dq, tp.first, batch, false)
	dx := ar.Get(batch * d * hw)
	for b := range batch {
		tb := dtok[b*seq*d : (b+1)*seq*d]
		addTo(tb[:d], dfirst[b*d:(b+1)*d])
		addTo(ap.gPos, tb)
		for c := range d {
			m := tb[c] / float32(hw)
			for i := range hw {
				dx[(b*d+c)*hw+i] = tb[(i+1)*d+c] + m
			}
		}
	}
	return dx
}

// resnetTape records the ModifiedResNet's training forward.
type resnetTape struct {
	stem       [3]*cbTape
	stemH      int // spatial size after the stem convolutions (before the pool)
	blocks     [][]*bottleneckTape
	pool       *poolTape
	batch      int
	finalShape [3]int // channels, h, w entering the attention pool
}

func (r *ModifiedResNet) forwardTrain(ar *Arena, out, pixels []float32, batch int) *resnetTape {
	tp := &resnetTape{batch: batch}
	h := r.ImageSize
	tp.stem[0] = r.Stem[0].forwardTrain(ar, pixels, batch, h, h, true)
	h = tp.stem[0].oh
	tp.stem[1] = r.Stem[1].forwardTrain(ar, tp.stem[0].y, batch, h, h, true)
	tp.stem[2] = r.Stem[2].forwardTrain(ar, tp.stem[1].y, batch, h, h, true)
	tp.stemH = h
	ch := r.Stem[2].Out
	x := ar.Get(batch * ch * (h / 2) * (h / 2))
	h, _ = avgPool(x, tp.stem[2].y, batch*ch, h, h, 2)
	for li := range r.Layers {
		var bt []*bottleneckTape
		for bi := range r.Layers[li] {
			blk := &r.Layers[li][bi]
			t := blk.forwardTrain(ar, x, batch, h, h)
			bt = append(bt, t)
			x, h, ch = t.out, t.oh, blk.Conv3.Out
		}
		tp.blocks = append(tp.blocks, bt)
	}
	tp.finalShape = [3]int{ch, h, h}
	tp.pool = r.Pool.forwardTrain(ar, out, x, batch, h*h)
	return tp
}

func (r *ModifiedResNet) backward(ar *Arena, tp *resnetTape, dout []float32) []float32 {
	batch := tp.batch
	dx := r.Pool.backward(ar, dout, tp.pool)
	for li := len(r.Layers) - 1; li >= 0; li-- {
		for bi := len(r.Layers[li]) - 1; bi >= 0; bi-- {
			blk := &r.Layers[li][bi]
			t := tp.blocks[li][bi]
			din := ar.Get(batch * blk.Conv1.In * t.h * t.w)
			clear(din)
			blk.backward(ar, din, dx, t)
			dx = din
		}
	}
	h := tp.stemH
	d2 := ar.Get(len(tp.stem[2].y))
	clear(d2)
	avgPoolBackward(d2, dx, batch*r.Stem[2].Out, h, h, 2)
	d1 := ar.Get(len(tp.stem[1].y))
	clear(d1)
	r.Stem[2].backwardTrain(ar, d1, d2, tp.stem[2])
	d0 := ar.Get(len(tp.stem[0].y))
	clear(d0)
	r.Stem[1].backwardTrain(ar, d0, d1, tp.stem[1])
	dpix := ar.Get(len(tp.stem[0].x))
	clear(dpix)
	r.Stem[0].backwardTrain(ar, dpix, d0, tp.stem[0])
	return dpix
}
