package model

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/goclip/goclip/internal/kernels"
)

// Conv2d is a bias-carrying convolution (BatchNorm folded in at load) over
// NCHW tensors. W is the folded weight [Out, In, K, K] (PyTorch's layout);
// the inference forward multiplies by its copy packed once for the GEMM
// microkernel (see kernels.Conv).
type Conv2d struct {
	W, B                    []float32
	In, Out, K, Stride, Pad int
	// Raw and BN are the unfolded convolution weight [Out, In·K·K] and its
	// BatchNorm, kept for training (nil for a plain convolution). After
	// they change, Refold recomputes W and B.
	Raw    []float32
	BN     *BatchNorm
	gRaw   []float32 // gradient of Raw (see Model.Params)
	packed *kernels.Conv
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
// mode (running statistics) and packs W for the forward pass.
func (c *Conv2d) Refold() { c.refold(false) }

// int8able reports whether the convolution takes integer products (see
// kernels.PackConvInt8): 1×1, stride 1, no padding.
func (c *Conv2d) int8able() bool {
	return c.K == 1 && c.Stride == 1 && c.Pad == 0 && kernels.CanInt8(c.In)
}

// refold is Refold, packing W for integer products instead when int8 is
// set and the convolution takes them (a model loaded in Int8).
func (c *Conv2d) refold(int8 bool) {
	if c.Raw != nil && c.BN != nil {
		per := c.In * c.K * c.K
		for o := range c.Out {
			s := float64(c.BN.G[o]) / math.Sqrt(float64(c.BN.Var[o])+bnEps)
			for i := range per {
				c.W[o*per+i] = float32(float64(c.Raw[o*per+i]) * s)
			}
			c.B[o] = float32(float64(c.BN.B[o]) - float64(c.BN.Mean[o])*s)
		}
	}
	if int8 && c.int8able() {
		c.packed = kernels.PackConvInt8(c.W, c.Out, c.In)
		return
	}
	c.packed = kernels.PackConv(c.W, c.Out, c.In, c.K, c.Stride, c.Pad)
}

// outSize returns the spatial output size for input h.
func (c *Conv2d) outSize(h int) int { return (h+2*c.Pad-c.K)/c.Stride + 1 }

// forward convolves x [batch, In, h, w] into y [batch, Out, oh, ow] with
// the fused epilogue epi, and returns oh, ow.
func (c *Conv2d) forward(y, x []float32, batch, h, w int, epi kernels.ConvEpilogue) (int, int) {
	if c.packed == nil {
		panic("model: Conv2d used before Refold")
	}
	return c.packed.Forward(y, x, batch, h, w, c.B, epi)
}

// avgPool applies AvgPool2d(k) (stride k, no padding) to x [n, h, w] planes.
func avgPool(y, x []float32, planes, h, w, k int) (int, int) {
	runPooled[avgPoolTask](&avgPoolPool, planes, avgPoolTask{y: y, x: x, h: h, w: w, k: k})
	return h / k, w / k
}

// avgPoolTask is avgPool's per-plane loop (a pooled task, not a closure:
// see tasks.go).
type avgPoolTask struct {
	y, x    []float32
	h, w, k int
}

var avgPoolPool = sync.Pool{New: func() any { return new(avgPoolTask) }}

func (t *avgPoolTask) RunRange(lo, hi int) {
	h, w, k := t.h, t.w, t.k
	oh, ow := h/k, w/k
	inv := float32(k * k)
	for p := lo; p < hi; p++ {
		src := t.x[p*h*w : (p+1)*h*w]
		dst := t.y[p*oh*ow : (p+1)*oh*ow]
		for oy := range oh {
			d := dst[oy*ow : (oy+1)*ow]
			if k == 2 {
				// The window summed in PyTorch's order, row by row.
				r0 := src[2*oy*w:][:2*ow]
				r1 := src[(2*oy+1)*w:][:2*ow]
				for ox := range d {
					d[ox] = (r0[2*ox] + r0[2*ox+1] + r1[2*ox] + r1[2*ox+1]) / inv
				}
				continue
			}
			for ox := range d {
				var s float32
				for dy := range k {
					for dx := range k {
						s += src[(oy*k+dy)*w+ox*k+dx]
					}
				}
				d[ox] = s / inv
			}
		}
	}
}

// Bottleneck is ModifiedResNet's block: 1×1, 3×3, avgpool(stride), 1×1
// (expansion 4), with an avgpool + 1×1 downsample on the identity path.
type Bottleneck struct {
	Conv1, Conv2, Conv3 Conv2d
	Down                *Conv2d
	Stride              int
}

// Forward maps x [batch, in, h, w] to y [batch, 4·planes, h/s, w/s]. y may
// be x itself when the block has no downsample (the identity is then
// updated in place instead of copied).
func (bn *Bottleneck) Forward(ar *Arena, y, x []float32, batch, h, w int) (int, int) {
	defer ar.release(ar.mark())
	planes, in := bn.Conv1.Out, bn.Conv1.In
	a := ar.Get(batch * planes * h * w)
	bn.Conv1.forward(a, x, batch, h, w, kernels.ConvBiasReLU)
	b := ar.Get(batch * planes * h * w)
	bn.Conv2.forward(b, a, batch, h, w, kernels.ConvBiasReLU)
	oh, ow := h, w
	if bn.Stride > 1 {
		oh, ow = avgPool(a, b, batch*planes, h, w, bn.Stride)
		a, b = b, a
	}
	// y = identity, then y = relu(y + conv3(b) + bias).
	n := batch * bn.Conv3.Out * oh * ow
	if bn.Down != nil {
		src := x
		if bn.Stride > 1 {
			p := ar.Get(batch * in * oh * ow)
			avgPool(p, x, batch*in, h, w, bn.Stride)
			src = p
		}
		bn.Down.forward(y, src, batch, oh, ow, kernels.ConvBias)
	} else if &y[0] != &x[0] {
		copy(y[:n], x[:n])
	}
	bn.Conv3.forward(y, b, batch, oh, ow, kernels.ConvResidualReLU)
	return oh, ow
}

// AttentionPool is ModifiedResNet's QKV attention pooling: the mean token
// (plus positional embedding) attends over all spatial tokens.
type AttentionPool struct {
	Pos        []float32 // [hw+1, dim]
	Q, K, V, C Linear
	Heads, Dim int
	gPos       []float32 // gradient (see Model.Params)

	kv atomic.Pointer[poolWeights] // see weights
}

// poolWeights are the key and value weights as Forward reads them, made
// from the packed weights kp and vp (unpacked where the layer keeps only
// those).
type poolWeights struct {
	kp, vp *kernels.PackedB
	wk, wv []float32 // K's and V's weights, [out, in]
}

// weights returns the key and value weights for Forward, made once per
// packing of K and V (a training step repacks them).
func (ap *AttentionPool) weights() *poolWeights {
	if w := ap.kv.Load(); w != nil && w.kp == ap.K.packed && w.vp == ap.V.packed {
		return w
	}
	w := &poolWeights{kp: ap.K.packed, vp: ap.V.packed, wk: ap.K.W, wv: ap.V.W}
	if w.wk == nil {
		w.wk = ap.K.packed.Unpack()
	}
	if w.wv == nil {
		w.wv = ap.V.packed.Unpack()
	}
	ap.kv.Store(w)
	return w
}

// Forward pools x [batch, dim, hw] into out [batch, C.Out].
//
// Only the first token's attention output is needed, so the key and value
// projections of all hw+1 tokens are never formed: per head h, with q the
// query and t_j the tokens, q·(Wk_h t_j + bk_h) = (Wk_hᵀ q)·t_j + q·bk_h,
// whose last term is the same for every j and cancels in the softmax; and
// Σ_j p_j (Wv_h t_j + bv_h) = Wv_h (Σ_j p_j t_j) + bv_h as Σ_j p_j = 1.
// That is about 30 MFLOP per image for RN50 instead of 840, but the
// weights' 59 MB are read for each image at batch 1: both Wk_hᵀ q and
// Σ_j p_j t_j are sums of rows (kernels.AddRows), which read Wk and the
// tokens once in memory order, and the (image, head) tasks go head by head
// so that a batch's images share the head's weights in cache: on two
// threads the pool ran 1.35–1.7× faster at batch 1 and 2.1–2.4× at batch
// 32 than with dot products over a transposed copy of Wk and image-major
// tasks.
func (ap *AttentionPool) Forward(ar *Arena, out, x []float32, batch, hw int, trace Tracer) {
	d, seq := ap.Dim, hw+1
	tok := ar.Get(batch * seq * d) // [batch, seq, d]
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
		addTo(tb[:seq*d], ap.Pos[:seq*d])
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
	wt := ap.weights()
	ctx := ar.Get(batch * d)
	hd := d / ap.Heads
	scale := float32(1 / math.Sqrt(float64(hd)))
	per := 2*d + seq + hd
	scratch := ar.Get(batch * ap.Heads * per)
	runPooled[poolTask](&poolTaskPool, batch*ap.Heads, poolTask{scratch: scratch, q: q, tok: tok, ctx: ctx,
		wt: wt, bv: ap.V.B, d: d, hd: hd, seq: seq, per: per, scale: scale, batch: batch})
	if trace != nil {
		trace("visual/pooled", ctx, []int{batch, d})
	}
	ap.C.Forward(out, ctx, batch)
}

// poolTask is AttentionPool.Forward's per-(image, head) loop (a pooled
// task, not a closure: see tasks.go).
type poolTask struct {
	scratch, q, tok, ctx []float32
	wt                   *poolWeights
	bv                   []float32
	d, hd, seq, per      int
	batch                int // tasks run head-major: t = h·batch + b
	scale                float32
}

var poolTaskPool = sync.Pool{New: func() any { return new(poolTask) }}

func (pt *poolTask) RunRange(lo, hi int) {
	d, hd, seq, per, scale := pt.d, pt.hd, pt.seq, pt.per, pt.scale
	wt, bv := pt.wt, pt.bv
	for t := lo; t < hi; t++ {
		buf := pt.scratch[t*per : (t+1)*per]
		qk, pooled := buf[:d], buf[d:2*d]
		sc, qs := buf[2*d:2*d+seq], buf[2*d+seq:]
		h, b := t/pt.batch, t%pt.batch
		qh := pt.q[b*d+h*hd : b*d+h*hd+hd]
		for c := range qs {
			qs[c] = qh[c] * scale
		}
		// qk = Wk_hᵀ q (scaled): the query seen in token space.
		clear(qk)
		kernels.AddRows(qk, wt.wk[h*hd*d:(h+1)*hd*d], d, qs)
		tb := pt.tok[b*seq*d:]
		mx := float32(math.Inf(-1))
		for j := range sc {
			s := kernels.Dot(qk, tb[j*d:])
			sc[j] = s
			mx = max(mx, s)
		}
		var sum float32
		for j := range sc {
			sc[j] = float32(math.Exp(float64(sc[j] - mx)))
			sum += sc[j]
		}
		for j := range sc {
			sc[j] /= sum
		}
		// pooled = Σ_j p_j t_j, then ctx_h = Wv_h pooled + bv_h.
		clear(pooled)
		kernels.AddRows(pooled, tb[:seq*d], d, sc)
		o := pt.ctx[b*d+h*hd : b*d+h*hd+hd]
		for c := range o {
			o[c] = kernels.Dot(pooled, wt.wv[(h*hd+c)*d:])
			if bv != nil {
				o[c] += bv[h*hd+c]
			}
		}
	}
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

// earlyChunk is how many images the stem and the first earlyStages
// stages run at a time (see Forward): one image through the stem and the
// first stage, then the whole batch, was 5–6% faster on RN50 at batch 32
// than the whole batch throughout, and 2% faster than also taking the
// second stage image by image (alternated per pass in one process; the
// same bits). Variables only for the tests.
var earlyChunk, earlyStages = 1, 1

// Forward maps pixels [batch, 3, S, S] to features [batch, embed] in out.
//
// The stem and the first stage work on 112² and 56² maps (RN50 at 224),
// megabytes per image: they run earlyChunk images at a time, whose maps
// stay in the caches; the later stages' smaller maps run on the whole
// batch, whose pixels fill more of each product's tiles. A traced pass
// runs every stage on the whole batch.
func (r *ModifiedResNet) Forward(ar *Arena, out, pixels []float32, batch int, trace Tracer) {
	chunk := min(batch, earlyChunk)
	if trace != nil {
		chunk = batch
	}
	h, w, ch := r.earlyShape()
	x := ar.Get(batch * ch * h * w)
	per, perOut := 3*r.ImageSize*r.ImageSize, ch*h*w
	for b0 := 0; b0 < batch; b0 += chunk {
		n := min(chunk, batch-b0)
		m := ar.mark()
		r.early(ar, x[b0*perOut:(b0+n)*perOut], pixels[b0*per:(b0+n)*per], n, trace)
		ar.release(m)
	}
	li0 := min(earlyStages, len(r.Layers))
	var first Tracer // layer1.0 is traced by the run that starts with it
	if li0 == 0 {
		first = trace
	}
	x, h, w, ch = runStages(ar, r.Layers[li0:], x, nil, batch, h, w, ch, first)
	if trace != nil {
		trace("visual/layer4", x, []int{batch, ch, h, w})
	}
	r.Pool.Forward(ar, out, x, batch, h*w, trace)
}

// runStages runs the Bottleneck stages layers on x [batch, ch, h, w] and
// returns their output and its shape: a block that changes shape writes a
// new arena buffer, an identity block updates its input in place. With
// dst, the output ends in dst (written by the last block that changes
// shape, or copied). trace, if not nil, receives the first block's output
// as "visual/layer1.0".
func runStages(ar *Arena, layers [][]Bottleneck, x, dst []float32, batch, h, w, ch int, trace Tracer) ([]float32, int, int, int) {
	lastL, lastB := -1, -1 // the last block that changes shape
	for li, layer := range layers {
		for bi := range layer {
			if layer[bi].Down != nil {
				lastL, lastB = li, bi
			}
		}
	}
	for li, layer := range layers {
		for bi := range layer {
			blk := &layer[bi]
			y := x
			if blk.Down != nil {
				if dst != nil && li == lastL && bi == lastB {
					y = dst
				} else {
					y = ar.Get(batch * blk.Conv3.Out * (h / blk.Stride) * (w / blk.Stride))
				}
			}
			h, w = blk.Forward(ar, y, x, batch, h, w)
			x, ch = y, blk.Conv3.Out
			if trace != nil && li == 0 && bi == 0 {
				trace("visual/layer1.0", x, []int{batch, ch, h, w})
			}
		}
	}
	if dst != nil && &x[0] != &dst[0] {
		copy(dst, x[:len(dst)])
	}
	return x, h, w, ch
}

// earlyShape returns the size and channels of the first stage's output.
func (r *ModifiedResNet) earlyShape() (h, w, ch int) {
	h = r.Stem[0].outSize(r.ImageSize) / 2
	ch = r.Stem[2].Out
	for _, layer := range r.Layers[:min(earlyStages, len(r.Layers))] {
		for _, blk := range layer {
			h /= blk.Stride
			ch = blk.Conv3.Out
		}
	}
	return h, h, ch
}

// early runs the stem and the first stage on batch images, into dst
// (their share of the first stage's output).
func (r *ModifiedResNet) early(ar *Arena, dst, pixels []float32, batch int, trace Tracer) {
	h, w := r.ImageSize, r.ImageSize
	bufSize := func(c, h, w int) int { return batch * c * h * w }
	a := ar.Get(bufSize(r.Stem[0].Out, r.Stem[0].outSize(h), r.Stem[0].outSize(w)))
	h, w = r.Stem[0].forward(a, pixels, batch, h, w, kernels.ConvBiasReLU)
	b := ar.Get(bufSize(r.Stem[1].Out, h, w))
	r.Stem[1].forward(b, a, batch, h, w, kernels.ConvBiasReLU)
	c := ar.Get(bufSize(r.Stem[2].Out, h, w))
	r.Stem[2].forward(c, b, batch, h, w, kernels.ConvBiasReLU)
	ch := r.Stem[2].Out
	x := ar.Get(bufSize(ch, h/2, w/2))
	h, w = avgPool(x, c, batch*ch, h, w, 2)
	if trace != nil {
		trace("visual/stem", x, []int{batch, ch, h, w})
	}
	runStages(ar, r.Layers[:min(earlyStages, len(r.Layers))], x, dst, batch, h, w, ch, trace)
}
