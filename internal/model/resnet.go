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
// from the packed weights kp and vp: per head h, Wk_h [head dim, dim] as
// the right-hand matrix of q_h·Wk_h (kernels.PackMatMul) and Wv_h as an
// nn.Linear weight, each packed for kernels.LinearPacked.
type poolWeights struct {
	kp, vp *kernels.PackedB
	k, v   []*kernels.PackedB
}

// weights returns the key and value weights for Forward, made once per
// packing of K and V (a training step repacks them).
func (ap *AttentionPool) weights() *poolWeights {
	if w := ap.kv.Load(); w != nil && w.kp == ap.K.packed && w.vp == ap.V.packed {
		return w
	}
	d, heads := ap.Dim, ap.Heads
	hd := d / heads
	wk, wv := ap.K.W, ap.V.W
	if wk == nil {
		wk = ap.K.packed.Unpack()
	}
	if wv == nil {
		wv = ap.V.packed.Unpack()
	}
	w := &poolWeights{kp: ap.K.packed, vp: ap.V.packed, k: make([]*kernels.PackedB, heads), v: make([]*kernels.PackedB, heads)}
	kernels.Parallel(heads, func(lo, hi int) {
		for h := lo; h < hi; h++ {
			w.k[h] = kernels.PackMatMul(wk[h*hd*d:(h+1)*hd*d], hd, d)
			w.v[h] = kernels.PackLinear(wv[h*hd*d:(h+1)*hd*d], hd, d)
		}
	})
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
// That is about 30 MFLOP per image for RN50 instead of 840, as three
// rounds of matrix products: per head, the batch's queries times Wk_h
// (each head's weights read once per batch); per image, all heads' scores
// against the tokens, their softmax, and the weighted token sums (the
// tokens read once per image); per head, the sums times Wv_hᵀ. Each row
// of each product depends on its own image only, so an image's features
// are the same bits alone as in any batch.
func (ap *AttentionPool) Forward(ar *Arena, out, x []float32, batch, hw int, trace Tracer) {
	d, seq, heads := ap.Dim, hw+1, ap.Heads
	hd := d / heads
	tok := ar.Get(batch * seq * d) // [batch, seq, d]
	for b := range batch {
		poolTokens(tok[b*seq*d:(b+1)*seq*d], x[b*d*hw:(b+1)*d*hw], ap.Pos, d, hw)
	}
	first := ar.Get(batch * d) // the mean tokens, the queries' inputs
	for b := range batch {
		copy(first[b*d:(b+1)*d], tok[b*seq*d:])
	}
	if trace != nil {
		trace("visual/attnpool_query", first, []int{batch, d})
	}
	q := ar.Get(batch * d)
	ap.Q.Forward(q, first, batch)
	// qs [heads, batch, hd]: each head's scaled queries.
	qs := ar.Get(heads * batch * hd)
	scale := float32(1 / math.Sqrt(float64(hd)))
	for b := range batch {
		for h := range heads {
			dst := qs[(h*batch+b)*hd : (h*batch+b+1)*hd]
			for c, v := range q[b*d+h*hd : b*d+(h+1)*hd] {
				dst[c] = v * scale
			}
		}
	}
	t := poolTask{wt: ap.weights(), tok: tok, qs: qs, bv: ap.V.B,
		qk:     ar.Get(heads * batch * d),   // [heads, batch, d]: Wk_hᵀ q per image
		scores: ar.Get(batch * heads * seq), // [batch, heads, seq]
		sums:   ar.Get(heads * batch * d),   // [heads, batch, d]: Σ_j p_j t_j
		ctxH:   ar.Get(heads * batch * hd),  // [heads, batch, hd]
		batch:  batch, seq: seq, d: d, hd: hd, heads: heads}
	for t.phase = range 3 {
		n := heads
		if t.phase == 1 {
			n = batch
		}
		runPooled[poolTask](&poolTaskPool, n, t)
	}
	ctx := ar.Get(batch * d)
	for h := range heads {
		for b := range batch {
			copy(ctx[b*d+h*hd:b*d+(h+1)*hd], t.ctxH[(h*batch+b)*hd:])
		}
	}
	if trace != nil {
		trace("visual/pooled", ctx, []int{batch, d})
	}
	ap.C.Forward(out, ctx, batch)
}

// poolTokens sets tok [hw+1, d] to the tokens of one image's map x [d, hw]
// plus the positional embedding pos [hw+1, d]: the channels' mean, then
// each position's channels. Channels go 64 at a time, position by
// position, so that the writes are sequential and the 64 rows read stay
// in L1 (channel by channel, the writes d floats apart alias in the L1
// cache: that took 2.2–2.4× as long).
func poolTokens(tok, x, pos []float32, d, hw int) {
	var sum [64]float32
	for c0 := 0; c0 < d; c0 += len(sum) {
		c1 := min(d, c0+len(sum))
		s := sum[:c1-c0]
		clear(s)
		for i := range hw {
			dst := tok[(i+1)*d+c0 : (i+1)*d+c1]
			p := pos[(i+1)*d+c0 : (i+1)*d+c1]
			for c := range dst {
				v := x[(c0+c)*hw+i]
				dst[c] = v + p[c]
				s[c] += v
			}
		}
		for c, v := range s {
			tok[c0+c] = v/float32(hw) + pos[c0+c]
		}
	}
}

// poolTask is one round of AttentionPool.Forward's products (a pooled
// task, not a closure: see tasks.go): phase 0 and 2 run per head, phase 1
// per image.
type poolTask struct {
	wt                                  *poolWeights
	tok, qs, bv, qk, scores, sums, ctxH []float32
	batch, seq, d, hd, heads, phase     int
}

var poolTaskPool = sync.Pool{New: func() any { return new(poolTask) }}

func (pt *poolTask) RunRange(lo, hi int) {
	n, seq, d, hd, heads := pt.batch, pt.seq, pt.d, pt.hd, pt.heads
	for i := lo; i < hi; i++ {
		switch pt.phase {
		case 0: // head i: qk_h = qs_h · Wk_h, i.e. Wk_hᵀ q per image
			kernels.LinearPacked(pt.qk[i*n*d:(i+1)*n*d], pt.qs[i*n*hd:(i+1)*n*hd], pt.wt.k[i], nil, n, kernels.EpiNone)
		case 1: // image i: every head's scores, softmax, Σ_j p_j t_j
			tb := pt.tok[i*seq*d : (i+1)*seq*d]
			sc := pt.scores[i*heads*seq : (i+1)*heads*seq]
			kernels.Sgemm(false, true, heads, seq, d, 1, pt.qk[i*d:], n*d, tb, d, 0, sc, seq)
			kernels.SoftmaxRows(sc, heads, seq)
			kernels.Sgemm(false, false, heads, d, seq, 1, sc, seq, tb, d, 0, pt.sums[i*d:], n*d)
		case 2: // head i: ctx_h = sums_h · Wv_hᵀ + bv_h
			var bias []float32
			if pt.bv != nil {
				bias = pt.bv[i*hd : (i+1)*hd]
			}
			kernels.LinearPacked(pt.ctxH[i*n*hd:(i+1)*n*hd], pt.sums[i*n*d:(i+1)*n*d], pt.wt.v[i], bias, n, kernels.EpiNone)
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
