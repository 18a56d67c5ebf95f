package kernels

import (
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// int8 weights: a PackedB may hold its weight quantised to 8-bit integers,
// one scale per output feature (symmetric, round to nearest: w ≈ q·s with
// s = max|w_row|/127), a quarter of the float32 memory. LinearPacked then
// quantises each row of its input to 16-bit integers (±32767) with a scale
// of its own, multiplies the integers exactly with 32-bit sums, one K
// block (at most 512 deep) at a time, so that no sum can overflow
// (512·32767·127 < 2³¹), and scales each block's sums back to float32,
// adding the blocks in float32: the input keeps 16 bits, the weight's 8
// bits are the approximation. On amd64 with AVX2 the products run in
// VPMADDWD, 16 multiply-adds per instruction against an FMA's 8; with the
// add and the broadcasts it needs, the microkernel runs ~1.15× the float32
// one on the Zen 3 measured (gen/int8.go writes it). Elsewhere they run in
// portable Go, slower than the float32 kernels.

// qnr is the number of columns of an int8 weight panel (two YMM vectors
// of 32-bit sums).
const qnr = 16

// qkcMax is the largest depth (values of k) of one block of an int8
// weight panel: 512·16 16-bit values, 16 KB, stay in L1 while a block of
// rows runs over them.
const qkcMax = 512

// qkMax is the largest k the int8 path takes.
const qkMax = 1 << 16

// qweights is an int8 weight in panels: for each block of kc values of k
// (the last one shorter), npanel panels of kcLen/2 pairs × 16 columns × 2,
// the two values of a pair of k adjacent, as VPMADDWD takes them.
type qweights struct {
	kp     int // k rounded up to even (the extra value is zero)
	kc     int // depth of a block, even
	npanel int
	data   []int8
	scale  []float32 // per column, npanel·16 (zero past n)
}

// qmaxFor returns the largest input magnitude for int8 weights and K
// blocks of depth kc: 32767 for every kc up to qkcMax.
func qmaxFor(kc int) int32 {
	return int32(min(32767, (1<<31-1)/(127*kc)))
}

// qblock returns the depth of the K blocks of a product of depth kp (even):
// equal blocks of at most qkcMax, even.
func qblock(kp int) int {
	nb := (kp + qkcMax - 1) / qkcMax
	return ((kp+nb-1)/nb + 1) &^ 1
}

// CanInt8 reports whether a weight of depth k (input features) can be
// held as int8 (see ToInt8): k at most 65536.
func CanInt8(k int) bool { return k > 0 && k <= qkMax }

// PackLinearInt8 quantises an nn.Linear weight w[n,k] (out × in, row-major)
// to int8, one scale per output feature, and packs it for LinearPacked.
// It panics if w is shorter than n·k or k is beyond CanInt8.
func PackLinearInt8(w []float32, n, k int) *PackedB {
	if n <= 0 || !CanInt8(k) || len(w) < n*k {
		panic(fmt.Sprintf("kernels.PackLinearInt8: weight of %d elements for %d×%d", len(w), n, k))
	}
	kp := (k + 1) &^ 1
	q := &qweights{kp: kp, kc: qblock(kp), npanel: (n + qnr - 1) / qnr}
	q.data = make([]int8, q.npanel*qnr*kp)
	q.scale = make([]float32, q.npanel*qnr)
	// One panel (16 output features) per task: each writes its own
	// bytes of the layout.
	Parallel(q.npanel, func(lo, hi int) {
		for j := lo * qnr; j < min(hi*qnr, n); j++ {
			q.packRow(j, w[j*k:j*k+k])
		}
	})
	return &PackedB{n: n, k: k, q: q}
}

// packRow quantises output feature j (its weights row) into q.
func (q *qweights) packRow(j int, row []float32) {
	sc, inv, ok := weightScale(row, 127)
	q.scale[j] = sc
	if !ok {
		return // values stay zero
	}
	quant := func(v float32) int8 { return int8(quantWeight(v, inv, 127)) }
	k := len(row)
	pan, col := j/qnr, j%qnr
	for pc := 0; pc < q.kp; pc += q.kc {
		kcLen := min(q.kc, q.kp-pc)
		dst := q.data[pc*q.npanel*qnr+pan*kcLen*qnr : pc*q.npanel*qnr+(pan+1)*kcLen*qnr]
		for t := 0; t < kcLen/2; t++ {
			i := pc + 2*t
			if i+1 < k {
				dst[t*2*qnr+2*col] = quant(row[i])
				dst[t*2*qnr+2*col+1] = quant(row[i+1])
			} else if i < k {
				dst[t*2*qnr+2*col] = quant(row[i])
			}
		}
	}
}

// ToInt8 returns a copy of p quantised to int8 (see PackLinearInt8); p is
// unchanged. A weight beyond CanInt8 is returned as is.
func (p *PackedB) ToInt8() *PackedB {
	if p.q != nil || !CanInt8(p.k) {
		return p
	}
	return PackLinearInt8(p.Unpack(), p.n, p.k)
}

// Int8Accelerated reports whether int8 products run in assembly on this
// CPU and build (amd64 with AVX2, not purego, kernel not forced to "go");
// elsewhere they run in portable Go, slower than the float32 products.
func Int8Accelerated() bool { return qAsm() }

// Int8Kernel names the int8 microkernels in use: "vnni" (AVX512_VNNI's
// VPDPWSSD), "avx2" (VPMADDWD) or "go". The two assembly kernels give the
// same bits.
func Int8Kernel() string { return int8Kernel() }

// Int8 reports whether p's weight is int8.
func (p *PackedB) Int8() bool { return p.q != nil }

// unpack returns the dequantised weight q·s in nn.Linear layout.
func (q *qweights) unpack(n, k int) []float32 {
	w := make([]float32, n*k)
	for j := range n {
		pan, col := j/qnr, j%qnr
		for i := range k {
			pc := i / q.kc * q.kc
			kcLen := min(q.kc, q.kp-pc)
			off := pc*q.npanel*qnr + pan*kcLen*qnr + ((i-pc)/2)*2*qnr + 2*col + (i-pc)%2
			w[j*k+i] = float32(q.data[off]) * q.scale[j]
		}
	}
	return w
}

// quantRow quantises src to dst (len(src) values, symmetric, at most qmax
// in magnitude) and returns the scale s with src ≈ dst·s. A row whose
// largest magnitude is below 2⁻¹⁰⁰ counts as zero; a row holding an
// infinity or NaN gets scale NaN, so that the outputs it feeds are NaN as
// they would be in float32.
func quantRow(useAsm bool, dst []int16, src []float32, qmax int32) float32 {
	dst = dst[:len(src)]
	sc, inv := inputScale(absMaxBits(useAsm, src), qmax)
	if inv == 0 {
		clear(dst)
		return sc
	}
	roundRow(useAsm, dst, src, inv)
	return sc
}

// inputScale returns, for values whose largest magnitude has the bit
// pattern bits (see absMaxBits), the scale sc = amax/qmax of their
// quantisation to ±qmax and its inverse. Values below 2⁻¹⁰⁰ count as zero
// (sc = inv = 0); an infinity or NaN gives sc = NaN and inv = 0: the
// values are written as 0 and the outputs they feed are NaN.
func inputScale(bits uint32, qmax int32) (sc, inv float32) {
	amax := math.Float32frombits(bits)
	switch {
	case bits >= 0x7f800000:
		return float32(math.NaN()), 0
	case amax < 0x1p-100:
		return 0, 0
	}
	return amax / float32(qmax), float32(qmax) / amax
}

// weightScale returns the scale sc = max|row|/levels of a weight row
// quantised to ±levels and the factor inv its values are multiplied by
// before rounding (see quantWeight). ok is false for a zero row (sc = 0)
// and for one holding an infinity or NaN (sc = NaN): their integers stay
// 0.
func weightScale(row []float32, levels float64) (sc float32, inv float64, ok bool) {
	bits := absMaxBits(true, row)
	if bits == 0 {
		return 0, 0, false
	}
	if bits >= 0x7f800000 {
		return float32(math.NaN()), 0, false
	}
	amax := float64(math.Float32frombits(bits))
	return float32(amax / levels), levels / amax, true
}

// quantWeight rounds v·inv to the nearest integer (ties to even) within
// ±levels.
func quantWeight(v float32, inv, levels float64) float64 {
	return max(-levels, min(levels, math.RoundToEven(float64(v)*inv)))
}

// absMaxBitsGo is the portable absMaxBits: the largest bit pattern of
// |src[i]| (for non-negative floats the bit patterns order as the
// values, and a NaN is above any of them).
func absMaxBitsGo(src []float32) uint32 {
	var m uint32
	for _, v := range src {
		m = max(m, math.Float32bits(v)&0x7fffffff)
	}
	return m
}

// roundRowGo is the portable roundRow: dst[i] = src[i]·inv rounded to
// nearest (ties to even), saturated to int16, as VCVTPS2DQ and VPACKSSDW
// do it.
func roundRowGo(dst []int16, src []float32, inv float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		r := math.RoundToEven(float64(v * inv))
		dst[i] = int16(max(-32768, min(32767, r)))
	}
}

// qgemmGo is the portable int8 microkernel: an r×16 tile of C from r rows
// of a (16-bit, row stride lda values) over kp pairs of k and a widened
// panel b, scaled by sa[0:r] and sw[0:16], plus bias[0:16] when bias is
// not nil, stored or (accum ≠ 0) added to C (same contract and the same
// bits as qgemmAVX2R*).
func qgemmGo(r, kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int) {
	as := unsafe.Slice(a, (r-1)*lda+2*kp)
	bs := unsafe.Slice(b, 2*qnr*kp)
	cs := unsafe.Slice(c, (r-1)*ldc+qnr)
	sas := unsafe.Slice(sa, r)
	sws := unsafe.Slice(sw, qnr)
	var bs16 []float32
	if bias != nil {
		bs16 = unsafe.Slice(bias, qnr)
	}
	for i := range r {
		var acc [qnr]int32
		arow := as[i*lda : i*lda+2*kp]
		for t := range kp {
			a0, a1 := int32(arow[2*t]), int32(arow[2*t+1])
			bp := bs[t*2*qnr : (t+1)*2*qnr : (t+1)*2*qnr]
			for j := range qnr {
				acc[j] += a0*int32(bp[2*j]) + a1*int32(bp[2*j+1])
			}
		}
		crow := cs[i*ldc : i*ldc+qnr : i*ldc+qnr]
		for j := range qnr {
			// Conversions round each step, as the vector code does
			// (no fused multiply-add).
			v := float32(float32(float32(acc[j])*sas[i]) * sws[j])
			if bs16 != nil {
				v += bs16[j]
			}
			if accum != 0 {
				crow[j] += v
			} else {
				crow[j] = v
			}
		}
	}
}

// qkernel runs the int8 microkernel of r rows, in assembly or portable Go.
func qkernel(useAsm bool, r, kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int) {
	if useAsm {
		qgemmAsm(r, kp, a, lda, b, c, ldc, sa, sw, bias, accum)
		return
	}
	qgemmGo(r, kp, a, lda, b, c, ldc, sa, sw, bias, accum)
}

// widenGo is the portable widen: dst[i] = src[i].
func widenGo(dst []int16, src []int8) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] = int16(v)
	}
}

// widen writes the 16-bit form of an int8 panel into dst.
func (g *qgemm) widen(dst []int16, src []int8) {
	if g.useAsm {
		widenAsm(dst, src)
		return
	}
	widenGo(dst, src)
}

// qgemm is one LinearPacked call on an int8 weight.
type qgemm struct {
	w      *PackedB
	x, y   []float32
	bias   []float32
	m      int
	epi    Epilogue
	xq     []int16   // x quantised, m rows of lda values
	lda    int       // kp
	sa     []float32 // row scales
	qmax   int32
	quant  bool // RunRange quantises rows (else computes tiles)
	pm, pn int
	useAsm bool
}

var qgemmPool = sync.Pool{New: func() any { return new(qgemm) }}

// qbuf is the quantised input of one call, recycled.
type qbuf struct {
	xq []int16
	sa []float32
}

var qbufPool sync.Pool

// qgridKernel describes the int8 tile to the grid planner.
var qgridKernel = &microKernel{name: "int8", mr: 6, nr: qnr}

// linearInt8 is LinearPacked for an int8 weight (arguments checked).
func linearInt8(y, x []float32, w *PackedB, bias []float32, m int, epi Epilogue) {
	q := w.q
	g := qgemmPool.Get().(*qgemm)
	b, _ := qbufPool.Get().(*qbuf)
	if b == nil {
		b = new(qbuf)
	}
	if cap(b.xq) < m*q.kp {
		b.xq = make([]int16, m*q.kp)
	}
	if cap(b.sa) < m {
		b.sa = make([]float32, m)
	}
	*g = qgemm{w: w, x: x, y: y, bias: bias, m: m, epi: epi,
		xq: b.xq[:m*q.kp], lda: q.kp, sa: b.sa[:m], qmax: qmaxFor(q.kc), useAsm: qAsm()}

	// Quantise the rows, then compute the tiles.
	g.quant = true
	runRows(g, m, w.k)
	g.quant = false
	g.pm, g.pn = gridFor(qgridKernel, w, m)
	parallelTask(g.pm*g.pn, g)

	*g = qgemm{}
	qgemmPool.Put(g)
	qbufPool.Put(b)
}

// RunRange quantises rows lo..hi-1 of x, or computes worker tiles lo..hi-1.
func (g *qgemm) RunRange(lo, hi int) {
	k, kp := g.w.k, g.lda
	if g.quant {
		for i := lo; i < hi; i++ {
			dst := g.xq[i*kp : (i+1)*kp]
			g.sa[i] = quantRow(g.useAsm, dst[:k], g.x[i*k:(i+1)*k], g.qmax)
			if kp > k {
				dst[k] = 0
			}
		}
		return
	}
	for t := lo; t < hi; t++ {
		if m0, m1, n0, n1 := workerTile(t, g.pm, g.pn, g.m, g.w.n, qnr); m0 < m1 && n0 < n1 {
			g.tile(m0, m1, n0, n1)
		}
	}
}

// runRows runs t over the m rows of an input of k values each: on the
// pool when they hold many values, else on the calling goroutine.
func runRows(t Task, m, k int) {
	if m*k >= 1<<16 {
		parallelTask(m, t)
	} else {
		t.RunRange(0, m)
	}
}

// gridFor returns the pm×pn grid of worker tiles for an m-row product by
// w in tiles of kern's shape: one tile where the product is too small
// to split.
func gridFor(kern *microKernel, w *PackedB, m int) (pm, pn int) {
	wk := Workers()
	if 2*m*w.n*w.k < minParallelFlops {
		wk = 1
	}
	plan := gemm{kern: kern, m: m, n: w.n, k: w.k, packed: w}
	return plan.grid(wk)
}

// workerTile returns the rows m0..m1 and columns n0..n1 of the output that
// worker tile t of a pm×pn grid computes: whole 6-row tiles and whole
// panels of nr columns, split as evenly as they go.
func workerTile(t, pm, pn, m, n, nr int) (m0, m1, n0, n1 int) {
	mTiles := (m + 5) / 6
	nTiles := (n + nr - 1) / nr
	ti, tj := t/pn, t%pn
	m0 = min(m, (ti*mTiles/pm)*6)
	m1 = min(m, ((ti+1)*mTiles/pm)*6)
	n0 = min(n, (tj*nTiles/pn)*nr)
	n1 = min(n, ((tj+1)*nTiles/pn)*nr)
	return m0, m1, n0, n1
}

// storePartial writes the first cols columns of rr rows of a microkernel's
// tile tmp (rows nr apart) into y (rows ldy apart, from row ir, column
// jr), adding bias (when not nil) and adding to y when accum ≠ 0: the
// edge of an output whose width is not a multiple of the panel's.
func storePartial(y []float32, ldy, ir, jr int, tmp []float32, nr, rr, cols int, bias []float32, accum int) {
	for i := range rr {
		dst := y[(ir+i)*ldy+jr : (ir+i)*ldy+jr+cols]
		src := tmp[i*nr : i*nr+cols]
		if bias != nil {
			addTo(src, bias)
		}
		if accum != 0 {
			for j, v := range src {
				dst[j] += v
			}
		} else {
			copy(dst, src)
		}
	}
}

// qRows returns the number of rows the main microkernel of a block of m
// rows should take: 6, or 5 or 4 where fewer rows go to a narrow tail
// (50 rows run as ten 5-row tiles).
func qRows(m int) int {
	best, bc := 6, math.Inf(1)
	for r := 6; r >= 4; r-- {
		c := float64(m/r*r) * rowEfficiency[r]
		if rem := m % r; rem > 0 {
			c += float64(rem) * rowEfficiency[rem] * 1.5
		}
		if c < bc {
			best, bc = r, c
		}
	}
	return best
}

// qpanelPool recycles the widened weight panel of a worker.
var qpanelPool = sync.Pool{New: func() any { s := make([]int16, qkcMax*qnr); return &s }}

// tile computes y[m0:m1, n0:n1] on the calling goroutine.
func (g *qgemm) tile(m0, m1, n0, n1 int) {
	q := g.w.q
	n := g.w.n
	const mc = 144
	pbuf := qpanelPool.Get().(*[]int16)
	defer qpanelPool.Put(pbuf)
	var tmp [6 * qnr]float32
	for ic := m0; ic < m1; ic += mc {
		mcLen := min(mc, m1-ic)
		r := qRows(mcLen)
		for pc := 0; pc < q.kp; pc += q.kc {
			kcLen := min(q.kc, q.kp-pc)
			accum := 0
			if pc > 0 || g.epi == EpiResidual {
				accum = 1
			}
			for jr := n0; jr < n1; jr += qnr {
				off := pc*q.npanel*qnr + (jr/qnr)*kcLen*qnr
				panel := (*pbuf)[:kcLen*qnr]
				g.widen(panel, q.data[off:off+kcLen*qnr])
				cols := min(qnr, n1-jr)
				// The bias is added in the first K block.
				var bias []float32
				if pc == 0 && g.bias != nil {
					bias = g.bias[jr : jr+cols]
				}
				for ir := ic; ir < ic+mcLen; ir += r {
					rr := min(r, ic+mcLen-ir)
					a := &g.xq[ir*g.lda+pc]
					if cols == qnr {
						var bp *float32
						if bias != nil {
							bp = &bias[0]
						}
						qkernel(g.useAsm, rr, kcLen/2, a, g.lda, &panel[0], &g.y[ir*n+jr], n, &g.sa[ir], &q.scale[jr], bp, accum)
						continue
					}
					qkernel(g.useAsm, rr, kcLen/2, a, g.lda, &panel[0], &tmp[0], qnr, &g.sa[ir], &q.scale[jr], nil, 0)
					storePartial(g.y, n, ir, jr, tmp[:], qnr, rr, cols, bias, accum)
				}
			}
		}
		applyEpilogue(g.epi, g.y, n, ic, ic+mcLen, n0, n1, nil, current.Load().simd)
	}
}
