package model

import (
	"math"

	"github.com/goclip/goclip/internal/kernels"
)

// Conv2d is a bias-carrying convolution (BatchNorm folded in at load) over
// NCHW tensors, computed as im2col + GEMM. W is [Out, In·K·K].
type Conv2d struct {
	W, B                    []float32
	In, Out, K, Stride, Pad int
	// Raw and BN are the unfolded convolution weight [Out, In·K·K] and its
	// BatchNorm, kept for training (nil for a plain convolution). After
	// they change, Refold recomputes W and B.
	Raw  []float32
	BN   *BatchNorm
	gRaw []float32 // gradient of Raw (see Model.Params)
}

// BatchNorm is a BatchNorm2d (eps 1e-5, momentum 0.1): gain, bias and the
// running statistics used in eval mode.
type BatchNorm struct {
	G, B, Mean, Var []float32
	gG, gB          []float32 // gradients (see Model.Params)
}

// bnEps is BatchNorm2d's default epsilon.
const bnEps = 1e-5

// Refold recomputes the inference weights W and B from Raw and BN in eval
// mode (running statistics).
func (c *Conv2d) Refold() {
	if c.Raw == nil || c.BN == nil {
		return
	}
	per := c.In * c.K * c.K
	for o := range c.Out {
		s := float64(c.BN.G[o]) / math.Sqrt(float64(c.BN.Var[o])+bnEps)
		for i := range per {
			c.W[o*per+i] = float32(float64(c.Raw[o*per+i]) * s)
		}
		c.B[o] = float32(float64(c.BN.B[o]) - float64(c.BN.Mean[o])*s)
	}
}

// outSize returns the spatial output size for input h.
func (c *Conv2d) outSize(h int) int { return (h+2*c.Pad-c.K)/c.Stride + 1 }

// Forward convolves x [batch, In, h, w] into y [batch, Out, oh, ow], applying
// ReLU when relu is set, and returns oh, ow.
func (c *Conv2d) Forward(ar *Arena, y, x []float32, batch, h, w int, relu bool) (int, int) {
	oh, ow := c.outSize(h), c.outSize(w)
	ohw := oh * ow
	kk := c.In * c.K * c.K
	var col []float32
	direct := c.K == 1 && c.Stride == 1 && c.Pad == 0
	if !direct {
		col = ar.Get(kk * ohw)
	}
	for b := range batch {
		xb := x[b*c.In*h*w : (b+1)*c.In*h*w]
		src := xb
		if !direct {
			kernels.Parallel(kk, func(lo, hi int) {
				for r := lo; r < hi; r++ {
					ci, ky, kx := r/(c.K*c.K), r/c.K%c.K, r%c.K
					dst := col[r*ohw : (r+1)*ohw]
					plane := xb[ci*h*w:]
					for oy := range oh {
						iy := oy*c.Stride - c.Pad + ky
						for ox := range ow {
							ix := ox*c.Stride - c.Pad + kx
							v := float32(0)
							if iy >= 0 && iy < h && ix >= 0 && ix < w {
								v = plane[iy*w+ix]
							}
							dst[oy*ow+ox] = v
						}
					}
				}
			})
			src = col
		}
		yb := y[b*c.Out*ohw : (b+1)*c.Out*ohw]
		kernels.MatMul(yb, c.W, src, c.Out, ohw, kk)
		kernels.Parallel(c.Out, func(lo, hi int) {
			for o := lo; o < hi; o++ {
				bias := c.B[o]
				row := yb[o*ohw : (o+1)*ohw]
				for i, v := range row {
					v += bias
					if relu && v < 0 {
						v = 0
					}
					row[i] = v
				}
			}
		})
	}
	return oh, ow
}

// avgPool applies AvgPool2d(k) (stride k, no padding) to x [n, h, w] planes.
func avgPool(y, x []float32, planes, h, w, k int) (int, int) {
	oh, ow := h/k, w/k
	inv := float32(k * k)
	kernels.Parallel(planes, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			src := x[p*h*w:]
			dst := y[p*oh*ow:]
			for oy := range oh {
				for ox := range ow {
					var s float32
					for dy := range k {
						for dx := range k {
							s += src[(oy*k+dy)*w+ox*k+dx]
						}
					}
					dst[oy*ow+ox] = s / inv
				}
			}
		}
	})
	return oh, ow
}

// Bottleneck is ModifiedResNet's block: 1×1, 3×3, avgpool(stride), 1×1
// (expansion 4), with an avgpool + 1×1 downsample on the identity path.
type Bottleneck struct {
	Conv1, Conv2, Conv3 Conv2d
	Down                *Conv2d
	Stride              int
}

// Forward maps x [batch, in, h, w] to y [batch, 4·planes, h/s, w/s].
func (bn *Bottleneck) Forward(ar *Arena, y, x []float32, batch, h, w int) (int, int) {
	defer ar.release(ar.mark())
	planes := bn.Conv1.Out
	a := ar.Get(batch * planes * h * w)
	bn.Conv1.Forward(ar, a, x, batch, h, w, true)
	b := ar.Get(batch * planes * h * w)
	bn.Conv2.Forward(ar, b, a, batch, h, w, true)
	oh, ow := h, w
	if bn.Stride > 1 {
		oh, ow = avgPool(a, b, batch*planes, h, w, bn.Stride)
		a, b = b, a
	}
	bn.Conv3.Forward(ar, y, b, batch, oh, ow, false)
	id := x
	if bn.Down != nil {
		src := x
		dh, dw := h, w
		if bn.Stride > 1 {
			p := ar.Get(batch * bn.Conv1.In * oh * ow)
			dh, dw = avgPool(p, x, batch*bn.Conv1.In, h, w, bn.Stride)
			src = p
		}
		id = ar.Get(batch * bn.Down.Out * oh * ow)
		bn.Down.Forward(ar, id, src, batch, dh, dw, false)
	}
	n := batch * bn.Conv3.Out * oh * ow
	kernels.Parallel(n/4096+1, func(lo, hi int) {
		for i := lo * 4096; i < min(hi*4096, n); i++ {
			v := y[i] + id[i]
			if v < 0 {
				v = 0
			}
			y[i] = v
		}
	})
	return oh, ow
}

// AttentionPool is ModifiedResNet's QKV attention pooling: the mean token
// (plus positional embedding) attends over all spatial tokens.
type AttentionPool struct {
	Pos        []float32 // [hw+1, dim]
	Q, K, V, C Linear
	Heads, Dim int
	gPos       []float32 // gradient (see Model.Params)
}

// Forward pools x [batch, dim, hw] into out [batch, C.Out].
func (ap *AttentionPool) Forward(ar *Arena, out, x []float32, batch, hw int, trace Tracer) {
	d, seq := ap.Dim, hw+1
	tok := ar.Get(batch * seq * d)
	for b := range batch {
		tb := tok[b*seq*d:]
		xb := x[b*d*hw:]
		for c := range d {
			var s float32
			plane := xb[c*hw : (c+1)*hw]
			for i, v := range plane {
				tb[(i+1)*d+c] = v
				s += v
			}
			tb[c] = s / float32(hw)
		}
		for i := range seq * d {
			tb[i] += ap.Pos[i]
		}
	}
	if trace != nil {
		q0 := make([]float32, batch*d)
		for b := range batch {
			copy(q0[b*d:(b+1)*d], tok[b*seq*d:])
		}
		trace("visual/attnpool_query", q0, []int{batch, d})
	}
	q := ar.Get(batch * d)
	first := ar.Get(batch * d)
	for b := range batch {
		copy(first[b*d:(b+1)*d], tok[b*seq*d:])
	}
	ap.Q.Forward(q, first, batch)
	k := ar.Get(batch * seq * d)
	v := ar.Get(batch * seq * d)
	ap.K.Forward(k, tok, batch*seq)
	ap.V.Forward(v, tok, batch*seq)
	ctx := ar.Get(batch * d)
	hd := d / ap.Heads
	scale := float32(1 / math.Sqrt(float64(hd)))
	kernels.Parallel(batch*ap.Heads, func(lo, hi int) {
		sc := make([]float32, seq)
		qs := make([]float32, hd)
		for t := lo; t < hi; t++ {
			b, h := t/ap.Heads, t%ap.Heads
			qh := q[b*d+h*hd : b*d+h*hd+hd]
			for c := range qs {
				qs[c] = qh[c] * scale
			}
			mx := float32(math.Inf(-1))
			for j := range seq {
				s := kernels.Dot(qs, k[(b*seq+j)*d+h*hd:])
				sc[j] = s
				mx = max(mx, s)
			}
			var sum float32
			for j := range sc {
				sc[j] = float32(math.Exp(float64(sc[j] - mx)))
				sum += sc[j]
			}
			o := ctx[b*d+h*hd : b*d+h*hd+hd]
			for c := range o {
				o[c] = 0
			}
			for j, p := range sc {
				p /= sum
				vj := v[(b*seq+j)*d+h*hd:]
				for c := range o {
					o[c] += p * vj[c]
				}
			}
		}
	})
	if trace != nil {
		trace("visual/pooled", ctx, []int{batch, d})
	}
	ap.C.Forward(out, ctx, batch)
}

// ModifiedResNet is OpenAI's ResNet image tower: a 3-conv stem with average
// pooling, four stages of Bottlenecks, and attention pooling.
type ModifiedResNet struct {
	Stem      [3]Conv2d
	Layers    [][]Bottleneck
	Pool      AttentionPool
	ImageSize int
	EmbedDim  int
}

// Forward maps pixels [batch, 3, S, S] to features [batch, embed] in out.
func (r *ModifiedResNet) Forward(ar *Arena, out, pixels []float32, batch int, trace Tracer) {
	h, w := r.ImageSize, r.ImageSize
	bufSize := func(c, h, w int) int { return batch * c * h * w }
	a := ar.Get(bufSize(r.Stem[0].Out, r.Stem[0].outSize(h), r.Stem[0].outSize(w)))
	h, w = r.Stem[0].Forward(ar, a, pixels, batch, h, w, true)
	b := ar.Get(bufSize(r.Stem[1].Out, h, w))
	r.Stem[1].Forward(ar, b, a, batch, h, w, true)
	c := ar.Get(bufSize(r.Stem[2].Out, h, w))
	r.Stem[2].Forward(ar, c, b, batch, h, w, true)
	ch := r.Stem[2].Out
	x := ar.Get(bufSize(ch, h/2, w/2))
	h, w = avgPool(x, c, batch*ch, h, w, 2)
	if trace != nil {
		trace("visual/stem", x, []int{batch, ch, h, w})
	}
	for li := range r.Layers {
		for bi := range r.Layers[li] {
			blk := &r.Layers[li][bi]
			oh, ow := h/blk.Stride, w/blk.Stride
			y := ar.Get(bufSize(blk.Conv3.Out, oh, ow))
			h, w = blk.Forward(ar, y, x, batch, h, w)
			x, ch = y, blk.Conv3.Out
			if trace != nil && li == 0 && bi == 0 {
				trace("visual/layer1.0", x, []int{batch, ch, h, w})
			}
		}
	}
	if trace != nil {
		trace("visual/layer4", x, []int{batch, ch, h, w})
	}
	r.Pool.Forward(ar, out, x, batch, h*w, trace)
}
