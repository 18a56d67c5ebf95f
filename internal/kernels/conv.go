package kernels

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Conv is a 2-D convolution (square kernel, equal stride and padding in
// both directions, no groups or dilation) on NCHW tensors whose weight is
// packed once into the GEMM microkernel's row panels, so that a call only
// packs the input. The convolution is the product
// y[Out, pixels] = W[Out, In·K·K] · patches[In·K·K, pixels] over the output
// pixels of all images, computed as an implicit GEMM: the patch matrix is
// never built, each kc×nc block of it is packed straight from the images
// (16-wide runs of an input row where it can, a gather otherwise), and the
// bias, ReLU and a residual add are applied to each finished block while
// it is in cache. Work is split into (output-channel block, pixel block)
// tasks that the pool's workers take in turn. 3×3 convolutions of stride
// 1 and padding 1 on large enough maps are computed by Winograd's
// algorithm instead (see winograd.go). A Conv is read-only after PackConv
// (but for the Winograd weights it adds on first use, once) and safe for
// concurrent use.
type Conv struct {
	In, Out, K, Stride, Pad int

	kern    *microKernel
	kc      int
	mPanels int // ceil(Out / mr)
	// a holds, for each K block pc (kc rows of the patch matrix, the last
	// one possibly shorter), mPanels panels of kcLen×mr weights starting at
	// pc·mPanels·mr: a[.. + q·mr + r] = W[panel·mr + r, pc + q].
	a []float32

	// The weight in the Winograd domains of F(4×4) and F(2×2), for 3×3
	// convolutions of stride 1 (see winograd.go), computed on first use.
	winoOnce [2]sync.Once
	wino     [2]*winoWeights

	// q holds the weight as int8 instead (1×1 convolutions of stride 1,
	// see PackConvInt8); kern and a are then unset.
	q *convQ
}

// ConvEpilogue selects what Conv.Forward does after the product.
type ConvEpilogue int

const (
	// ConvBias: y = conv(x) + bias.
	ConvBias ConvEpilogue = iota
	// ConvBiasReLU: y = max(conv(x) + bias, 0).
	ConvBiasReLU
	// ConvResidualReLU: y = max(y + conv(x) + bias, 0), where y holds the
	// residual on entry.
	ConvResidualReLU
)

// PackConv packs a PyTorch Conv2d weight w [out, in, k, k] (OIHW,
// row-major) for Forward with the current kernel (see SetKernel). It
// panics if a size is not positive or w is shorter than out·in·k·k.
func PackConv(w []float32, out, in, k, stride, pad int) *Conv {
	if out <= 0 || in <= 0 || k <= 0 || stride <= 0 || pad < 0 || len(w) < out*in*k*k {
		panic(fmt.Sprintf("kernels.PackConv: weight of %d elements for out=%d in=%d k=%d stride=%d pad=%d",
			len(w), out, in, k, stride, pad))
	}
	kern := current.Load()
	mr := kern.mr
	kk := in * k * k
	c := &Conv{In: in, Out: out, K: k, Stride: stride, Pad: pad, kern: kern,
		kc: blockDepth(kk, kern.kc), mPanels: (out + mr - 1) / mr}
	c.a = make([]float32, c.mPanels*mr*kk)
	for pc := 0; pc < kk; pc += c.kc {
		kcLen := min(c.kc, kk-pc)
		for pan := range c.mPanels {
			dst := c.a[pc*c.mPanels*mr+pan*kcLen*mr:][:kcLen*mr]
			for r := range min(mr, out-pan*mr) {
				row := w[(pan*mr+r)*kk+pc:][:kcLen]
				for q, v := range row {
					dst[q*mr+r] = v
				}
			}
		}
	}
	return c
}

// blockDepth returns the depth of the K blocks a product of depth kk is
// split into: blocks of equal depth, up to 5/4 of the kernel's kc: 288 =
// 1×288, not 256 + 32, whose short second block would cost nearly as much
// as the first (every block loads and stores its C tiles).
func blockDepth(kk, kc int) int {
	blocks := (kk + kc*5/4 - 1) / (kc * 5 / 4)
	return (kk + blocks - 1) / blocks
}

// panelAt returns where element (k, lane) of a K-blocked panel layout
// lies: for each K block of depth kc starting at pc (the last one
// shorter), panels of width lanes, each kcLen×width values, the block's
// panels starting at pc·panels·width. Conv's packed weight (lanes: output
// channels, width mr) and the Winograd weights and inputs (lanes: tiles,
// width nr) are laid out so.
func panelAt(k, lane, kk, kc, width, panels int) int {
	pc := k / kc * kc
	kcLen := min(kc, kk-pc)
	return pc*panels*width + lane/width*kcLen*width + (k-pc)*width + lane%width
}

// OutSize returns the output size along a spatial dimension of input size n.
func (c *Conv) OutSize(n int) int { return (n+2*c.Pad-c.K)/c.Stride + 1 }

// Forward convolves x [batch, In, h, w] into y [batch, Out, oh, ow] (both
// NCHW), adds bias [Out] (nil: none) and applies epi. It returns oh, ow.
// The algorithm (direct, Winograd F(4×4) or F(2×2)) depends on the shape
// of one image, not on batch.
// y must not overlap x. It panics if a slice is too short.
func (c *Conv) Forward(y, x []float32, batch, h, w int, bias []float32, epi ConvEpilogue) (oh, ow int) {
	oh, ow = c.OutSize(h), c.OutSize(w)
	if batch <= 0 || oh <= 0 || ow <= 0 {
		return max(oh, 0), max(ow, 0)
	}
	if len(x) < batch*c.In*h*w || len(y) < batch*c.Out*oh*ow || (bias != nil && len(bias) < c.Out) {
		panic(fmt.Sprintf("kernels.Conv.Forward: len(y)=%d len(x)=%d len(bias)=%d for batch=%d %d×%d in=%d out=%d",
			len(y), len(x), len(bias), batch, h, w, c.In, c.Out))
	}
	if epi < ConvBias || epi > ConvResidualReLU {
		panic(fmt.Sprintf("kernels.Conv.Forward: unknown epilogue %d", int(epi)))
	}
	if c.q != nil {
		c.forwardInt8(y, x, batch, h*w, bias, epi)
		return oh, ow
	}
	if a := c.winoAlgo(h, w); a != nil {
		c.forwardWinograd(a, y, x, batch, h, w, bias, epi)
		return oh, ow
	}
	t := convTaskPool.Get().(*convTask)
	*t = convTask{c: c, x: x, y: y, bias: bias, epi: epi, batch: batch, h: h, w: w, oh: oh, ow: ow}
	t.plan(Workers())
	if t.shared && !t.own {
		// Few pixel blocks: pack each once, then split the output channels.
		need := t.nBlocks * t.unit
		if cap(t.pre) < need {
			t.pre = make([]float32, need)
		}
		t.packing = true
		parallelTask(min(t.workers, t.nBlocks*t.kBlocks), t)
		t.packing = false
		t.next.Store(0)
	}
	parallelTask(t.workers, t)
	pre := t.pre
	*t = convTask{pre: pre[:0]}
	convTaskPool.Put(t)
	return oh, ow
}

// convNC is the pixel block (columns of the product) of one task: its
// packed kc×convNC patch block stays in L2.
const convNC = 256

// convTask is one Forward call. The product's columns are the output
// pixels of all images in a row (pixel g is pixel g mod oh·ow of image
// g / (oh·ow)), so that small feature maps still fill whole register
// tiles; the tasks are (channel block, pixel block) pairs, handed out
// through next.
type convTask struct {
	c                   *Conv
	x, y, bias          []float32
	epi                 ConvEpilogue
	batch, h, w, oh, ow int

	mBlock, mBlocks, nBlocks, kBlocks, tasks, workers int
	nPan                                              int // nr-wide panels of all pixels
	// shared: the patches of each pixel block are packed once into pre
	// (unit floats each: every K block's panels) by a first pass whose
	// tasks are (pixel block, K block), while packing is set. own: there
	// is one pixel block, and each worker packs it into its own scratch
	// before its first task instead (see plan).
	shared, packing, own bool
	unit                 int
	pre                  []float32
	next                 atomic.Int64
}

var convTaskPool = sync.Pool{New: func() any { return new(convTask) }}

// plan splits the work into tasks: one per pixel block when there are
// enough of them to keep the workers busy; otherwise the patches are
// packed once (shared), into pixel blocks of equal width (784 pixels are
// four blocks of 196, not three of 256 and one of 16: 5–15% faster at
// two threads), and the output channels split into blocks.
func (t *convTask) plan(workers int) {
	c := t.c
	mr, nr := c.kern.mr, c.kern.nr
	n := t.batch * t.oh * t.ow
	kk := c.In * c.K * c.K
	t.nPan = (n + nr - 1) / nr
	t.nBlocks = (n + convNC - 1) / convNC
	t.kBlocks = (kk + c.kc - 1) / c.kc
	t.mBlock = c.mPanels * mr
	if 2*float64(c.Out)*float64(n)*float64(kk) < minParallelFlops {
		workers = 1
	}
	if workers > 1 && t.nBlocks < 2*workers {
		t.shared = true
		t.unit = kk * ((t.nPan + t.nBlocks - 1) / t.nBlocks * nr)
		for t.nBlocks*((c.Out+t.mBlock-1)/t.mBlock) < 4*workers && t.mBlock > 2*mr {
			t.mBlock = (t.mBlock/2 + mr - 1) / mr * mr
		}
	}
	// One pixel block (14×14 and 7×7 maps at batch 1): rather than one
	// worker packing it while the others wait, and then reading what
	// that worker wrote, each packs it for itself: it costs a few percent
	// of the product and RN50's image tower at batch 1 on two threads ran
	// 3–19% faster (median of 24 alternated pairs of passes, three
	// processes); its 14×14 and 7×7 1×1 convolutions alone 2–24%.
	t.own = t.shared && t.nBlocks == 1
	t.mBlocks = (c.Out + t.mBlock - 1) / t.mBlock
	t.tasks = t.mBlocks * t.nBlocks
	t.workers = min(workers, t.tasks)
}

// pixels returns the pixels g0…g1-1 of pixel block nb: blocks of convNC,
// or with shared packing, nBlocks blocks of equal width in whole panels.
func (t *convTask) pixels(nb int) (g0, g1 int) {
	n := t.batch * t.oh * t.ow
	if !t.shared {
		return nb * convNC, min(n, (nb+1)*convNC)
	}
	nr := t.c.kern.nr
	return min(n, nb*t.nPan/t.nBlocks*nr), min(n, (nb+1)*t.nPan/t.nBlocks*nr)
}

// RunRange is a worker: it takes tasks until none is left.
func (t *convTask) RunRange(lo, hi int) {
	s := convScratchPool.Get().(*convScratch)
	defer convScratchPool.Put(s)
	if t.packing {
		for {
			i := int(t.next.Add(1) - 1)
			if i >= t.nBlocks*t.kBlocks {
				return
			}
			nb, kb := i/t.kBlocks, i%t.kBlocks
			g0, g1 := t.pixels(nb)
			t.packBlock(s, t.pre[nb*t.unit:(nb+1)*t.unit], kb*t.c.kc, g0, g1)
		}
	}
	packed := false
	for {
		i := int(t.next.Add(1) - 1)
		if i >= t.tasks {
			return
		}
		mb, nb := i/t.nBlocks, i%t.nBlocks
		g0, g1 := t.pixels(nb)
		var pre []float32
		switch {
		case t.own:
			if !packed {
				t.packOwn(s, g0, g1)
				packed = true
			}
			pre = s.own[:t.unit]
		case t.shared:
			pre = t.pre[nb*t.unit : (nb+1)*t.unit]
		}
		t.block(s, pre, mb*t.mBlock, min(t.c.Out, (mb+1)*t.mBlock), g0, g1)
	}
}

// convScratch is one worker's packing buffers.
type convScratch struct {
	own []float32 // every K block of the only pixel block, when own
	b   []float32 // packed patch block, kc × ncPad
	tmp []float32 // one edge tile, mr × nr
	idx []int     // per kernel tap and pixel: offset in x of channel 0's input, or -1 (padding)
	run []int     // per kernel tap and panel: offset of a contiguous run, or -1
}

var convScratchPool = sync.Pool{New: func() any { return new(convScratch) }}

// packBlock packs the K block starting at pc of pixels g0…g1-1 into unit
// (laid out as block expects a shared packing).
func (t *convTask) packBlock(s *convScratch, unit []float32, pc, g0, g1 int) {
	c := t.c
	nr := c.kern.nr
	kk := c.In * c.K * c.K
	ncPad := (g1 - g0 + nr - 1) / nr * nr
	kcLen := min(c.kc, kk-pc)
	t.offsets(s, g0, g1)
	t.packB(unit[pc*ncPad:][:kcLen*ncPad], s.idx, s.run, pc, kcLen, g1-g0, nr)
}

// packOwn packs every K block of pixels g0…g1-1 into s.own, laid out as
// a shared packing.
func (t *convTask) packOwn(s *convScratch, g0, g1 int) {
	if cap(s.own) < t.unit {
		s.own = make([]float32, t.unit)
	}
	for pc := 0; pc < t.c.In*t.c.K*t.c.K; pc += t.c.kc {
		t.packBlock(s, s.own[:t.unit], pc, g0, g1)
	}
}

// block computes output channels m0…m1-1 for pixels g0…g1-1, packing the
// patches itself unless pre holds them.
func (t *convTask) block(s *convScratch, pre []float32, m0, m1, g0, g1 int) {
	c := t.c
	kern := c.kern
	mr, nr, kc := kern.mr, kern.nr, c.kc
	kk := c.In * c.K * c.K
	ncLen := g1 - g0
	nPan := (ncLen + nr - 1) / nr
	if pre == nil {
		if need := kc * nPan * nr; cap(s.b) < need {
			s.b = make([]float32, need)
		}
		t.offsets(s, g0, g1)
	}
	if cap(s.tmp) < mr*nr {
		s.tmp = make([]float32, mr*nr)
	}
	n := t.oh * t.ow // ldc of an image's output
	residual := t.epi == ConvResidualReLU
	fn := kern.streamA()
	for pc := 0; pc < kk; pc += kc {
		kcLen := min(kc, kk-pc)
		var bp []float32
		if pre != nil {
			bp = pre[pc*nPan*nr:][:kcLen*nPan*nr]
		} else {
			bp = s.b[:kcLen*nPan*nr]
			t.packB(bp, s.idx, s.run, pc, kcLen, ncLen, nr)
		}
		accum := 0
		if pc > 0 || residual {
			accum = 1
		}
		ablk := c.a[pc*c.mPanels*mr:]
		for ir := m0; ir < m1; ir += mr {
			mrLen := min(mr, m1-ir)
			ap := &ablk[(ir/mr)*kcLen*mr]
			for jp := range nPan {
				gf := g0 + jp*nr
				nrLen := min(nr, g1-gf)
				b, p := gf/n, gf%n
				off := (b*c.Out+ir)*n + p
				if mrLen == mr && nrLen == nr && p+nr <= n {
					fn(kcLen, ap, &bp[jp*kcLen*nr], &t.y[off], n, accum)
					continue
				}
				fn(kcLen, ap, &bp[jp*kcLen*nr], &s.tmp[0], nr, 0)
				scatterTile(t.y, s.tmp, nr, mrLen, nrLen, c.Out, n, ir, gf, accum != 0)
			}
		}
	}
	convEpilogue(t.y, t.bias, c.Out, n, m0, m1, g0, g1, t.epi != ConvBias, kern.simd)
}

// offsets fills s.idx with, for each kernel tap (ky, kx) and pixel g0…g1-1,
// the offset in x of its input in input channel 0, or -1 where it falls in
// the padding; and s.run with, for each tap and nr-wide panel, the offset
// of the panel's first input when the panel's inputs are contiguous in x
// (else -1).
func (t *convTask) offsets(s *convScratch, g0, g1 int) {
	c := t.c
	nr := c.kern.nr
	ncLen := g1 - g0
	nPan := (ncLen + nr - 1) / nr
	n, chw := t.oh*t.ow, c.In*t.h*t.w
	if need := c.K * c.K * ncLen; cap(s.idx) < need {
		s.idx = make([]int, need)
	}
	if need := c.K * c.K * nPan; cap(s.run) < need {
		s.run = make([]int, need)
	}
	// Tap by tap, output row by output row: an arithmetic progression
	// with -1 past the edges. (Computing each entry's image, row and
	// column by divisions took a third of RN50's first convolution, 3×3
	// of stride 2 on 224² images: now 1.30–1.54× faster, one thread or
	// two, medians of 31 alternated runs.)
	k, stride, pad, h, w, oh, ow := c.K, c.Stride, c.Pad, t.h, t.w, t.oh, t.ow
	idx := s.idx[:k*k*ncLen]
	b0, oy0, ox0 := g0/n, g0%n/ow, g0%n%ow
	for tap := range k * k {
		ky, kx := tap/k, tap%k
		tab := idx[tap*ncLen:][:ncLen]
		b, oy, ox := b0, oy0, ox0
		for i := 0; i < ncLen; {
			seg := tab[i:min(ncLen, i+ow-ox)]
			if iy := oy*stride - pad + ky; uint(iy) >= uint(h) {
				for j := range seg {
					seg[j] = -1
				}
			} else {
				row, ix := b*chw+iy*w, ox*stride-pad+kx
				for j := range seg {
					seg[j] = -1
					if uint(ix) < uint(w) {
						seg[j] = row + ix
					}
					ix += stride
				}
			}
			i += len(seg)
			if ox = 0; oy+1 == oh {
				oy, b = 0, b+1
			} else {
				oy++
			}
		}
	}
	for tap := range c.K * c.K {
		tab := idx[tap*ncLen:][:ncLen]
		run := s.run[tap*nPan:][:nPan]
		for jp := range run {
			seg := tab[jp*nr : min(ncLen, (jp+1)*nr)]
			run[jp] = seg[0]
			for i, o := range seg {
				if o < 0 || o != seg[0]+i {
					run[jp] = -1
					break
				}
			}
		}
	}
}

// packB packs rows pc…pc+kcLen-1 of the patch matrix, for the ncLen pixels
// idx and run describe (see offsets), into nr-wide panels of kcLen×nr
// values (zero past the last column). Row p of the patch matrix is input
// channel p/(K·K) at kernel tap p%(K·K), as in the OIHW weight.
func (t *convTask) packB(dst []float32, idx, run []int, pc, kcLen, ncLen, nr int) {
	c := t.c
	kk2, hw := c.K*c.K, t.h*t.w
	nPan := (ncLen + nr - 1) / nr
	if ncLen%nr != 0 {
		// Zero the padding columns of the last panel.
		last := dst[(nPan-1)*kcLen*nr:][:kcLen*nr]
		for q := range kcLen {
			clear(last[q*nr+ncLen%nr : (q+1)*nr])
		}
	}
	for q := range kcLen {
		p := pc + q
		x := t.x[p/kk2*hw:]
		tab := idx[p%kk2*ncLen:][:ncLen]
		runs := run[p%kk2*nPan:][:nPan]
		for jp, r := range runs {
			d := dst[jp*kcLen*nr+q*nr:][:min(nr, ncLen-jp*nr)]
			if r >= 0 {
				if len(d) == 16 {
					// Four 16-byte moves: a [16]float32 copy is a memmove call.
					src := x[r : r+16 : r+16]
					*(*[4]float32)(d[0:4]) = *(*[4]float32)(src[0:4])
					*(*[4]float32)(d[4:8]) = *(*[4]float32)(src[4:8])
					*(*[4]float32)(d[8:12]) = *(*[4]float32)(src[8:12])
					*(*[4]float32)(d[12:16]) = *(*[4]float32)(src[12:16])
				} else {
					copy(d, x[r:])
				}
				continue
			}
			tb := tab[jp*nr:][:len(d)]
			for i, o := range tb {
				if o >= 0 {
					d[i] = x[o]
				} else {
					d[i] = 0
				}
			}
		}
	}
}

// scatterTile writes (or with accum adds) the rows×cols corner of an edge
// tile tmp (row stride ld) into y [images, out, hw] at output channel co
// and pixel g0 of all images' pixels in a row, splitting it where it
// crosses from one image into the next.
func scatterTile(y, tmp []float32, ld, rows, cols, out, hw, co, g0 int, accum bool) {
	for l := 0; l < cols; {
		// Columns l … l+cnt-1 lie in one image.
		b, p := (g0+l)/hw, (g0+l)%hw
		cnt := min(cols-l, hw-p)
		for i := range rows {
			dst := y[(b*out+co+i)*hw+p:][:cnt]
			src := tmp[i*ld+l:][:cnt]
			if accum {
				addTo(dst, src)
			} else {
				copy(dst, src)
			}
		}
		l += cnt
	}
}

// convEpilogue adds the bias (nil: none) to output channels m0…m1-1 of
// pixels g0…g1-1 of y [images, out, hw] (all images' pixels in a row),
// then applies ReLU when relu is set.
func convEpilogue(y, bias []float32, out, hw, m0, m1, g0, g1 int, relu bool, simd simdLevel) {
	for g := g0; g < g1; {
		b, p := g/hw, g%hw
		cnt := min(g1-g, hw-p)
		for o := m0; o < m1; o++ {
			var bv float32
			if bias != nil {
				bv = bias[o]
			}
			biasAct(y[(b*out+o)*hw+p:][:cnt], bv, relu, simd)
		}
		g += cnt
	}
}

// biasActGo is the portable biasAct: x[i] = x[i] + b, then max(·, 0)
// when relu is set (NaN stays NaN).
func biasActGo(x []float32, b float32, relu bool) {
	for i, v := range x {
		v += b
		if relu && v < 0 {
			v = 0
		}
		x[i] = v
	}
}
