package kernels

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

// Integer 1×1 convolutions: the ResNet's 1×1 convolutions (stride 1, no
// padding) are products y[Out, pixels] = W[Out, In] · x[In, pixels], and
// take the integer path of the int8 linear layers (int8.go) with the
// operands' roles swapped: the weight, quantised per output channel and
// held as 16-bit rows, is the microkernel's row operand, and the input,
// quantised per pixel (over its In channels), is packed into 16-pixel
// panels, pairs of channels adjacent, as the microkernel's panel operand.
// The 32-bit sums are exact; each output is scaled back by its channel's
// and its pixel's scales, then the bias, residual and ReLU are applied as
// in the float32 convolution.
//
// Weights and inputs get the same number of levels, q = ⌊√((2³¹−1)/kc)⌋
// each side of zero, kc ≤ 512 being the depth of a K block (the sums of
// one block are scaled to float32 before the next): 2896 at In = 256,
// 2047 from In = 512 on, 12 bits or more. Not int8 weights: a ResNet's 16
// blocks compound the convolutions' errors, and int8 weights there moved
// the fixture ResNet's image features to cosine 0.998 of the reference.

// convQ is a quantised 1×1 convolution weight in 16-bit rows.
type convQ struct {
	kp    int       // In rounded up to even
	kc    int       // depth of a K block, even
	qmax  int32     // levels of the weights and of the inputs, each side of 0
	w     []int16   // Out rows of kp values
	scale []float32 // per output channel
}

// PackConvInt8 quantises the weight w [out, in, 1, 1] of a 1×1
// convolution of stride 1 and no padding for integer products (see
// above: ⌊√((2³¹−1)/kc)⌋ levels, one scale per output channel), for
// Forward. It panics if w is shorter than out·in or in is beyond CanInt8.
func PackConvInt8(w []float32, out, in int) *Conv {
	if out <= 0 || !CanInt8(in) || len(w) < out*in {
		panic(fmt.Sprintf("kernels.PackConvInt8: weight of %d elements for out=%d in=%d", len(w), out, in))
	}
	kp := (in + 1) &^ 1
	kc := qblock(kp)
	q := &convQ{kp: kp, kc: kc, qmax: convQmax(kc), w: make([]int16, out*kp), scale: make([]float32, out)}
	levels := float64(q.qmax)
	Parallel(out, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			row := w[o*in : (o+1)*in]
			sc, inv, ok := weightScale(row, levels)
			q.scale[o] = sc
			if !ok {
				continue
			}
			dst := q.w[o*kp : o*kp+in]
			for i, v := range row {
				dst[i] = int16(quantWeight(v, inv, levels))
			}
		}
	})
	return &Conv{In: in, Out: out, K: 1, Stride: 1, Pad: 0, q: q}
}

// convQmax returns the levels of weights and inputs for K blocks of depth
// kc.
func convQmax(kc int) int32 {
	return int32(min(32767, math.Floor(math.Sqrt(float64(1<<31-1)/float64(kc)))))
}

// Int8 reports whether c's weight is quantised (see PackConvInt8).
func (c *Conv) Int8() bool { return c.q != nil }

// convQTask is one int8 Forward call.
type convQTask struct {
	c          *Conv
	x, y, bias []float32
	epi        ConvEpilogue
	hw         int       // pixels per image
	n, nPan    int       // pixels of all images, 16-pixel panels
	xq         []int16   // nPan panels of kp pairs × 16 pixels × 2
	xs         []float32 // per pixel (nPan·16)
	qmax       int32
	useAsm     bool
	packing    bool
	mBlock     int // output channels per task
	mBlocks    int
	pBlock     int // panels per task
	pBlocks    int
	tasks      int          // panels to pack, or product tasks
	next       atomic.Int64 // the next one to take
}

var convQTaskPool = sync.Pool{New: func() any { return new(convQTask) }}

// qgatherPool recycles the buffers packPanel gathers straddling panels in.
var qgatherPool = sync.Pool{New: func() any { return new([]float32) }}

// forwardInt8 is Forward for an int8 weight (arguments checked).
func (c *Conv) forwardInt8(y, x []float32, batch, hw int, bias []float32, epi ConvEpilogue) {
	q := c.q
	t := convQTaskPool.Get().(*convQTask)
	n := batch * hw
	nPan := (n + qnr - 1) / qnr
	xq, xs := t.xq, t.xs
	if need := nPan * qnr * q.kp; cap(xq) < need {
		xq = make([]int16, need)
	}
	if cap(xs) < nPan*qnr {
		xs = make([]float32, nPan*qnr)
	}
	*t = convQTask{c: c, x: x, y: y, bias: bias, epi: epi, hw: hw, n: n, nPan: nPan,
		xq: xq[:nPan*qnr*q.kp], xs: xs[:nPan*qnr], qmax: q.qmax, useAsm: qAsm()}

	workers := Workers()
	if 2*float64(c.Out)*float64(n)*float64(c.In) < minParallelFlops {
		workers = 1
	}
	t.packing = true
	t.run(workers, nPan)
	t.packing = false

	// Tasks: blocks of 16 panels (256 pixels) × blocks of output channels,
	// the channels split finer when there are few pixel blocks.
	t.pBlock = min(nPan, 16)
	t.pBlocks = (nPan + t.pBlock - 1) / t.pBlock
	t.mBlock = min(144, (c.Out+5)/6*6)
	for t.pBlocks*((c.Out+t.mBlock-1)/t.mBlock) < 4*workers && t.mBlock > 12 {
		t.mBlock = (t.mBlock/2 + 5) / 6 * 6
	}
	t.mBlocks = (c.Out + t.mBlock - 1) / t.mBlock
	t.run(workers, t.mBlocks*t.pBlocks)

	*t = convQTask{xq: t.xq[:0], xs: t.xs[:0]}
	convQTaskPool.Put(t)
}

// run does n tasks of the current phase on up to workers threads, each
// taking the next task until none is left. (Splitting them into one
// fixed share per thread left one thread waiting whenever the other vCPU
// ran slower: RN50's int8 image tower at batch 1 on two threads is 4–15%
// faster so, medians of 24 alternated pairs of passes in three processes.)
func (t *convQTask) run(workers, n int) {
	t.tasks = n
	t.next.Store(0)
	parallelTask(min(workers, n), t) // inline with one worker
}

// RunRange is a worker: while packing, it quantises and packs the next
// panel of the input, else computes the next task of the product, until
// none is left (lo and hi only size the pool's split).
func (t *convQTask) RunRange(lo, hi int) {
	var bp *[]float32
	if t.packing {
		bp = qgatherPool.Get().(*[]float32)
		defer qgatherPool.Put(bp)
	}
	for {
		i := int(t.next.Add(1) - 1)
		if i >= t.tasks {
			return
		}
		if t.packing {
			t.packPanel(i, bp)
			continue
		}
		mb, pb := i/t.pBlocks, i%t.pBlocks
		t.block(mb*t.mBlock, min(t.c.Out, (mb+1)*t.mBlock), pb*t.pBlock, min(t.nPan, (pb+1)*t.pBlock))
	}
}

// block computes output channels m0…m1-1 of panels p0…p1-1 and applies
// the epilogue to them.
func (t *convQTask) block(m0, m1, p0, p1 int) {
	c, q := t.c, t.c.q
	hw, out := t.hw, c.Out
	r := qRows(m1 - m0)
	var tmp [6 * qnr]float32
	residual := t.epi == ConvResidualReLU
	for pc := 0; pc < q.kp; pc += q.kc {
		kcLen := min(q.kc, q.kp-pc)
		accum := 0
		if pc > 0 || residual {
			accum = 1
		}
		for pan := p0; pan < p1; pan++ {
			panel := &t.xq[pan*qnr*q.kp+pc*qnr]
			g0 := pan * qnr
			lanes := min(qnr, t.n-g0)
			b, p := g0/hw, g0%hw
			direct := lanes == qnr && p+qnr <= hw
			for co := m0; co < m1; co += r {
				rr := min(r, m1-co)
				a := &q.w[co*q.kp+pc]
				if direct {
					qkernel(t.useAsm, rr, kcLen/2, a, q.kp, panel, &t.y[(b*out+co)*hw+p], hw, &q.scale[co], &t.xs[g0], nil, accum)
					continue
				}
				qkernel(t.useAsm, rr, kcLen/2, a, q.kp, panel, &tmp[0], qnr, &q.scale[co], &t.xs[g0], nil, 0)
				scatterTile(t.y, tmp[:], qnr, rr, lanes, out, hw, co, g0, accum != 0)
			}
		}
	}
	convEpilogue(t.y, t.bias, out, hw, m0, m1, p0*qnr, min(t.n, p1*qnr), t.epi != ConvBias, current.Load().simd)
}

// packPanel quantises the 16 pixels of panel pan: each pixel's In values
// (one per channel) get the pixel's own scale, and are written as pairs of
// adjacent channels, 16 pixels side by side (the layout of an int8 weight
// panel, K blocks following each other). A panel whose pixels are not 16
// consecutive ones of one image is gathered into a buffer first.
func (t *convQTask) packPanel(pan int, buf *[]float32) {
	c, q := t.c, t.c.q
	in, hw := c.In, t.hw
	dst := t.xq[pan*qnr*q.kp : (pan+1)*qnr*q.kp]
	g0 := pan * qnr
	lanes := min(qnr, t.n-g0)
	src, stride := t.x[(g0/hw)*in*hw+g0%hw:], hw
	if lanes < qnr || g0%hw+qnr > hw {
		if cap(*buf) < in*qnr {
			*buf = make([]float32, in*qnr)
		}
		src, stride = (*buf)[:in*qnr], qnr
		clear(src)
		for l := 0; l < lanes; {
			g := g0 + l
			b, p := g/hw, g%hw
			cnt := min(lanes-l, hw-p)
			for ch := range in {
				copy(src[ch*qnr+l:ch*qnr+l+cnt], t.x[(b*in+ch)*hw+p:])
			}
			l += cnt
		}
	}
	var bits [qnr]uint32
	panelAbsMax(t.useAsm, &bits, src, stride, in)
	// inv stays 0 for lanes past the end and for zero, tiny, infinite or
	// NaN pixels, whose values are then written as 0.
	var inv [qnr]float32
	for l := range qnr {
		var sc float32
		if l < lanes {
			sc, inv[l] = inputScale(bits[l], t.qmax)
		}
		t.xs[g0+l] = sc
	}
	pairs := in / 2
	panelPack(t.useAsm, dst, src, stride, pairs, &inv)
	if in%2 == 1 {
		// The odd last channel, paired with a zero.
		row := src[(in-1)*stride:]
		last := dst[pairs*2*qnr : (pairs+1)*2*qnr]
		for l := range qnr {
			last[2*l] = roundLane(row[l], inv[l])
			last[2*l+1] = 0
		}
	}
}

// roundLane is v·inv rounded to nearest (ties to even), 0 where inv is 0.
func roundLane(v, inv float32) int16 {
	if inv == 0 {
		return 0
	}
	return int16(math.RoundToEven(float64(v * inv)))
}

// panelAbsMaxGo is the portable panelAbsMax: bits[l] is raised to the
// largest bit pattern of |src[r·stride+l]| over rows r < rows.
func panelAbsMaxGo(bits *[qnr]uint32, src []float32, stride, rows int) {
	for r := range rows {
		row := src[r*stride : r*stride+qnr]
		for l, v := range row {
			bits[l] = max(bits[l], math.Float32bits(v)&0x7fffffff)
		}
	}
}

// panelPackGo is the portable panelPack: for each pair of rows, the 16
// lanes rounded with inv and written as pairs (see qPanelPackAVX2).
func panelPackGo(dst []int16, src []float32, stride, pairs int, inv *[qnr]float32) {
	for r := range pairs {
		a, b := src[2*r*stride:][:qnr], src[(2*r+1)*stride:][:qnr]
		d := dst[r*2*qnr : (r+1)*2*qnr]
		for l := range qnr {
			d[2*l] = roundLane(a[l], inv[l])
			d[2*l+1] = roundLane(b[l], inv[l])
		}
	}
}
