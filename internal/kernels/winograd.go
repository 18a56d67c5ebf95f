package kernels

import (
	"math"
	"sync"
	"sync/atomic"
)

// Winograd F(m×m, 3×3): a 3×3 convolution of stride 1 and padding 1 is
// computed on m×m output tiles, each from a p×p input patch d (p = m + 2),
// as
//
//	Y = Aᵀ [ Σ_channels (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
// 2016). The sum over input channels is p² matrix products, one per
// position ξ of the transformed tile: M_ξ[Out, tiles] = U_ξ[Out, In] ·
// V_ξ[In, tiles], each of them run by the GEMM microkernel on the same
// packed layouts as Conv's direct product. F(4×4, 3×3) (points 0, ±1, ±2,
// ∞) takes 36 multiply-adds per input channel for 16 outputs instead of
// 144, 4× fewer; F(2×2, 3×3) (points 0, ±1, ∞) 16 for 4 instead of 36,
// 2.25× fewer, for maps too small for enough 4×4 tiles (RN50's 7×7). The
// price is transforming the inputs and outputs (additions, a small part of
// the work when channels are many). The transforms change the rounding,
// not the result: on random data the error against a float64 reference
// is ~2e-6 of Σ|terms| for F(4×4) with many channels (1.3e-5 with one),
// ~1e-7 for F(2×2), like the direct product's (TestWinograd bounds it by
// 3e-5; the direct product 1e-5).

// winoAlgo is one F(m×m, 3×3) algorithm.
type winoAlgo struct {
	tile, patch, n int // m, p = m+2, p²
	slot           int // index of its weights in Conv.wino
	// g is G, patch×3 (weight applies it; TestWinogradWeight checks the
	// two agree).
	g [][3]float64
	// inputAVX2, outputAVX2 and storeAVX2 (nil: none) are the assembly
	// transforms, eight tiles at a time (see gen/winograd.go).
	inputAVX2  func(x *float32, hw, nch int, idx, mask *int32, tmp, v *float32, vstride, vstep int)
	outputAVX2 func(m *float32, mstride, mrow, nrows int, tmp, out, bias *float32, lo float32)
	storeAVX2  func(m *float32, mstride, mrow, nrows int, tmp, y *float32, offs *int, plane, ow int, bias *float32, lo float32)
}

var (
	winoF4 = &winoAlgo{tile: 4, patch: 6, n: 36,
		g: [][3]float64{
			{1.0 / 4, 0, 0},
			{-1.0 / 6, -1.0 / 6, -1.0 / 6},
			{-1.0 / 6, 1.0 / 6, -1.0 / 6},
			{1.0 / 24, 1.0 / 12, 1.0 / 6},
			{1.0 / 24, -1.0 / 12, 1.0 / 6},
			{0, 0, 1},
		},
		inputAVX2: winoInput4AVX2, outputAVX2: winoOutput4AVX2, storeAVX2: winoStore4AVX2}
	winoF2 = &winoAlgo{tile: 2, patch: 4, n: 16, slot: 1,
		g: [][3]float64{
			{1, 0, 0},
			{0.5, 0.5, 0.5},
			{0.5, -0.5, 0.5},
			{0, 0, 1},
		},
		inputAVX2: winoInput2AVX2, outputAVX2: winoOutput2AVX2}
)

// winoMaxN is the most positions of any algorithm (F(4×4, 3×3)'s 36).
const winoMaxN = 36

// winoMinTiles is the fewest tiles per image the Winograd path takes.
const winoMinTiles = 16

// winoDisabled makes Forward use the direct product for every shape (tests
// compare the two; SetWinograd).
var winoDisabled atomic.Bool

// SetWinograd enables or disables the Winograd path of Conv.Forward
// (enabled by default) and returns the previous setting. Tests and
// benchmarks use it to compare the two algorithms.
func SetWinograd(on bool) (was bool) { return !winoDisabled.Swap(!on) }

// winoWeights is a Conv's weight in the Winograd domain of one algorithm:
// for each position ξ, U_ξ[Out, In] laid out like Conv.a (K blocks of
// depth kc over the input channels, each mPanels panels of kcLen×mr
// values), ξ after ξ.
type winoWeights struct {
	kc int
	u  []float32
}

// winoAlgo returns the Winograd algorithm this convolution takes for h×w
// inputs, or nil for the direct product: 3×3, stride 1, padding 1, at
// least winoMinTiles tiles per image and clearly fewer multiply-adds per
// image (p² per tile against 9 per output). F(4×4) where it qualifies,
// else F(2×2). The choice depends on the image size only, never on the
// batch, so that a batch split over threads takes the same path as the
// whole batch.
func (c *Conv) winoAlgo(h, w int) *winoAlgo {
	if c.K != 3 || c.Stride != 1 || c.Pad != 1 || winoDisabled.Load() {
		return nil
	}
	if !winoVector(c.kern) && c.kern != goKernel && min(c.In, c.Out) < winoScalarMinChannels {
		// Scalar transforms beside an assembly product (arm64): on
		// amd64, forced so, 1.7–2.5× slower than direct at 32–64
		// channels, even at 128, 1.35× faster at 256 and 512.
		return nil
	}
	for _, a := range []*winoAlgo{winoF4, winoF2} {
		tiles := ((h + a.tile - 1) / a.tile) * ((w + a.tile - 1) / a.tile)
		// At least 1.6× fewer multiply-adds than the direct 9 per
		// output, and a panel's worth of tiles: F(4×4) on RN50's 7×7
		// maps (four tiles) was 10–30% slower than direct at batch 1.
		if tiles >= winoMinTiles && 16*a.n*tiles < 9*10*h*w {
			return a
		}
	}
	return nil
}

// winoWeights returns the weights transformed for a, computing them on
// first use (kept for the Conv's lifetime: p²/9 times the direct weights'
// size, so convolutions that never take this path never pay for it).
func (c *Conv) winoWeights(a *winoAlgo) *winoWeights {
	i := a.slot
	c.winoOnce[i].Do(func() {
		mr := c.kern.mr
		in, out := c.In, c.Out
		kc := blockDepth(in, c.kern.kc)
		rows := c.mPanels * mr
		ww := &winoWeights{kc: kc, u: make([]float32, a.n*rows*in)}
		// Output channels split over the pool: RN50's transforms take
		// ~0.6 s of CPU, once, on the first image.
		Parallel(out, func(o0, o1 int) {
			var g [9]float64
			t := make([]float64, a.n)
			for o := o0; o < o1; o++ {
				for ci := range in {
					for tap := range 9 {
						g[tap] = float64(c.weight(o, ci*9+tap))
					}
					a.weight(t, &g)
					off := panelAt(ci, o, in, kc, mr, c.mPanels)
					for xi, v := range t {
						ww.u[xi*rows*in+off] = float32(v)
					}
				}
			}
		})
		c.wino[i] = ww
	})
	return c.wino[i]
}

// weight returns W[o, p] (p = input channel·K² + tap) from the packed a.
func (c *Conv) weight(o, p int) float32 {
	return c.a[panelAt(p, o, c.In*c.K*c.K, c.kc, c.kern.mr, c.mPanels)]
}

// input sets v = Bᵀ d B and output y = Aᵀ m A (row-major, scalar). They
// call the transforms directly, not through function values, so that the
// callers' arrays stay on the stack.
func (a *winoAlgo) input(v, d []float32) {
	if a.tile == 4 {
		winoInput4(v, d)
	} else {
		winoInput2(v, d)
	}
}

func (a *winoAlgo) output(y, m []float32) {
	if a.tile == 4 {
		winoOutput4(y, m)
	} else {
		winoOutput2(y, m)
	}
}

// weight sets t = G g Gᵀ (patch×patch, row-major) for a 3×3 kernel g
// (row-major), in float64: G's rows applied to g's columns, then to the
// rows of the result (both 1-D steps written out, as the input and
// output transforms are).
func (a *winoAlgo) weight(t []float64, g *[9]float64) {
	var gg [18]float64 // G g, patch×3
	if a.tile == 4 {
		for j := range 3 {
			winoWeight4(gg[j:], 3, g[j], g[3+j], g[6+j])
		}
		for i := range 6 {
			winoWeight4(t[i*6:], 1, gg[i*3], gg[i*3+1], gg[i*3+2])
		}
		return
	}
	for j := range 3 {
		winoWeight2(gg[j:], 3, g[j], g[3+j], g[6+j])
	}
	for i := range 4 {
		winoWeight2(t[i*4:], 1, gg[i*3], gg[i*3+1], gg[i*3+2])
	}
}

// winoWeight4 sets dst[k·stride] = (G (g0, g1, g2)ᵀ)_k for F(4×4)'s G.
func winoWeight4(dst []float64, stride int, g0, g1, g2 float64) {
	s, d := g0+g2, g0+4*g2
	dst[0] = g0 / 4
	dst[stride] = -(s + g1) / 6
	dst[2*stride] = -(s - g1) / 6
	dst[3*stride] = (d + 2*g1) / 24
	dst[4*stride] = (d - 2*g1) / 24
	dst[5*stride] = g2
}

// winoWeight2 sets dst[k·stride] = (G (g0, g1, g2)ᵀ)_k for F(2×2)'s G.
func winoWeight2(dst []float64, stride int, g0, g1, g2 float64) {
	s := g0 + g2
	dst[0] = g0
	dst[stride] = (s + g1) / 2
	dst[2*stride] = (s - g1) / 2
	dst[3*stride] = g2
}

// winoInput4 sets v = Bᵀ d B for a 6×6 input patch d (row-major).
func winoInput4(v, d []float32) {
	v, d = v[:36], d[:36]
	var t [36]float32
	for j := range 6 { // Bᵀ d, column by column
		d0, d1, d2, d3, d4, d5 := d[j], d[6+j], d[12+j], d[18+j], d[24+j], d[30+j]
		t[j] = 4*d0 - 5*d2 + d4
		t[6+j] = (d3 + d4) - 4*(d1+d2)
		t[12+j] = (d4 - d3) + 4*(d1-d2)
		t[18+j] = (d4 - d2) + 2*(d3-d1)
		t[24+j] = (d4 - d2) - 2*(d3-d1)
		t[30+j] = 4*d1 - 5*d3 + d5
	}
	for i := range 6 { // (Bᵀ d) B, row by row
		r := t[i*6 : i*6+6 : i*6+6]
		o := v[i*6 : i*6+6 : i*6+6]
		d0, d1, d2, d3, d4, d5 := r[0], r[1], r[2], r[3], r[4], r[5]
		o[0] = 4*d0 - 5*d2 + d4
		o[1] = (d3 + d4) - 4*(d1+d2)
		o[2] = (d4 - d3) + 4*(d1-d2)
		o[3] = (d4 - d2) + 2*(d3-d1)
		o[4] = (d4 - d2) - 2*(d3-d1)
		o[5] = 4*d1 - 5*d3 + d5
	}
}

// winoOutput4 sets y = Aᵀ m A, the 4×4 output tile of the 6×6 product m.
func winoOutput4(y, m []float32) {
	y, m = y[:16], m[:36]
	var t [24]float32
	for j := range 6 { // Aᵀ m, column by column
		m0, m1, m2, m3, m4, m5 := m[j], m[6+j], m[12+j], m[18+j], m[24+j], m[30+j]
		s12, d12, s34, d34 := m1+m2, m1-m2, m3+m4, m3-m4
		t[j] = m0 + s12 + s34
		t[6+j] = d12 + 2*d34
		t[12+j] = s12 + 4*s34
		t[18+j] = d12 + 8*d34 + m5
	}
	for i := range 4 { // (Aᵀ m) A, row by row
		r := t[i*6 : i*6+6 : i*6+6]
		s12, d12, s34, d34 := r[1]+r[2], r[1]-r[2], r[3]+r[4], r[3]-r[4]
		y[i*4] = r[0] + s12 + s34
		y[i*4+1] = d12 + 2*d34
		y[i*4+2] = s12 + 4*s34
		y[i*4+3] = d12 + 8*d34 + r[5]
	}
}

// winoInput2 sets v = Bᵀ d B for a 4×4 input patch d (row-major).
func winoInput2(v, d []float32) {
	v, d = v[:16], d[:16]
	var t [16]float32
	for j := range 4 { // Bᵀ d, column by column
		d0, d1, d2, d3 := d[j], d[4+j], d[8+j], d[12+j]
		t[j] = d0 - d2
		t[4+j] = d1 + d2
		t[8+j] = d2 - d1
		t[12+j] = d1 - d3
	}
	for i := range 4 { // (Bᵀ d) B, row by row
		r := t[i*4 : i*4+4 : i*4+4]
		o := v[i*4 : i*4+4 : i*4+4]
		o[0] = r[0] - r[2]
		o[1] = r[1] + r[2]
		o[2] = r[2] - r[1]
		o[3] = r[1] - r[3]
	}
}

// winoOutput2 sets y = Aᵀ m A, the 2×2 output tile of the 4×4 product m.
func winoOutput2(y, m []float32) {
	y, m = y[:4], m[:16]
	var t [8]float32
	for j := range 4 { // Aᵀ m, column by column
		m0, m1, m2, m3 := m[j], m[4+j], m[8+j], m[12+j]
		t[j] = m0 + m1 + m2
		t[4+j] = m1 - m2 - m3
	}
	for i := range 2 { // (Aᵀ m) A, row by row
		r := t[i*4 : i*4+4 : i*4+4]
		y[i*2] = r[0] + r[1] + r[2]
		y[i*2+1] = r[1] - r[2] - r[3]
	}
}

// winoStride pads the distance between the blocks of two positions to an
// odd number of cache lines: the transforms read or write all positions
// of a tile at once, and at a distance of a multiple of 4 KB they would all
// fall in one set of the L1 cache, evicting one another.
func winoStride(n int) int {
	const line = 16 // floats per cache line
	lines := (n + line - 1) / line
	return (lines | 1) * line
}

// winoVBudget bounds the transformed inputs of one chunk of tiles (bytes):
// a chunk's V is written once and read by every output block, so it should
// stay in the last-level cache.
const winoVBudget = 6 << 20

// winoTask is one Winograd Forward call, run chunk of tiles by chunk. Tile
// t of the call is tile (t mod tW, t/tW mod tH) of image t/(tH·tW).
type winoTask struct {
	c          *Conv
	a          *winoAlgo
	u          *winoWeights
	x, y, bias []float32
	epi        ConvEpilogue
	batch      int
	h, w       int
	tH, tW     int

	// The chunk: tiles t0 … t0+tn-1 in nPan panels of nr; v holds, for
	// each ξ, its transformed inputs laid out like Conv's packed patch
	// blocks (K blocks of depth kc, each nPan panels of kcLen×nr).
	t0, tn, nPan int
	v            []float32
	vStride      int // between positions in v
	// The product's tasks: (tile block of tb panels, output block of ob
	// rows) pairs; transform is set while the input transform runs, whose
	// tasks are (panel, channel part) pairs, parts channel parts a panel.
	transform        bool
	parts            int
	tb, ob, nTB, nOB int
	tasks            int
	next             atomic.Int64
}

var winoTaskPool = sync.Pool{New: func() any { return new(winoTask) }}

// winoScratch is one worker's buffers: the products M of one task (p² ×
// ob × tb·nr values), and the vector transforms' tables and tiles.
type winoScratch struct {
	m         []float32
	idx, mask [winoMaxN * 8]int32
	tmp       [winoMaxN * 8]float32
	out       []float32 // winoOutRows × 8 tiles × tile² outputs
	offs      [8]int    // eight tiles' offsets in y (storeAVX2)
	zero      []float32 // a bias of zeros
}

// winoNoStore makes the output transform go through its buffer for every
// tile (tests compare the two ways).
var winoNoStore bool

// winoOutRows is how many rows the vector output transform does per call.
const winoOutRows = 16

// vector reports whether the AVX2 transforms apply: eight tiles per
// vector, in panels of a multiple of eight, offsets within int32.
func (t *winoTask) vector() bool { return winoVector(t.c.kern) && int64(len(t.x)) < 1<<31 }

// winoVector reports whether this build has vector transforms for a
// product by kern.
func winoVector(kern *microKernel) bool {
	return winoAsm && kern.simd >= simdAVX2 && kern.nr%8 == 0
}

// winoScalarMinChannels is the fewest input and output channels for which
// the scalar transforms pay beside an assembly product.
const winoScalarMinChannels = 256

var winoScratchPool = sync.Pool{New: func() any { return new(winoScratch) }}

// forwardWinograd is Forward for a 3×3, stride-1, padding-1 convolution
// by algorithm a.
func (c *Conv) forwardWinograd(a *winoAlgo, y, x []float32, batch, h, w int, bias []float32, epi ConvEpilogue) {
	u := c.winoWeights(a)
	mr, nr := c.kern.mr, c.kern.nr
	t := winoTaskPool.Get().(*winoTask)
	v := t.v
	*t = winoTask{c: c, a: a, u: u, x: x, y: y, bias: bias, epi: epi, batch: batch, h: h, w: w,
		tH: (h + a.tile - 1) / a.tile, tW: (w + a.tile - 1) / a.tile}
	tiles := batch * t.tH * t.tW
	workers := Workers()
	chunkPan := max(1, winoVBudget/(4*a.n*c.In*nr))
	if workers > 1 {
		chunkPan = max(chunkPan, 2*workers)
	}
	rows := c.mPanels * mr
	for t0 := 0; t0 < tiles; t0 += chunkPan * nr {
		t.t0, t.tn = t0, min(chunkPan*nr, tiles-t0)
		t.nPan = (t.tn + nr - 1) / nr
		t.vStride = winoStride(c.In * t.nPan * nr)
		if need := a.n * t.vStride; cap(v) < need {
			v = make([]float32, need)
		}
		t.v = v[:a.n*t.vStride]
		// Input transform: a task per panel, or with fewer panels than
		// two per worker (14×14 and 7×7 maps at batch 1: one), per part
		// of a panel's channels, so that the workers share it rather than
		// one doing it while the others wait (RN50's 14×14 and 7×7 3×3
		// convolutions at batch 1 on two threads: +14–16% and +5–12%,
		// medians of 21 alternated pairs in three processes).
		t.transform = true
		t.parts = 1
		if workers > 1 && t.nPan < 2*workers {
			t.parts = max(1, min((2*workers+t.nPan-1)/t.nPan, c.In/32))
		}
		t.tasks = t.nPan * t.parts
		t.next.Store(0)
		parallelTask(min(workers, t.tasks), t)
		// Products and output transform: tile blocks of up to 2 panels,
		// output blocks of up to 96 rows, halved until every worker has
		// a few tasks.
		t.transform = false
		t.tb = min(2, t.nPan)
		t.ob = min(rows, 16*mr)
		for {
			t.nTB = (t.nPan + t.tb - 1) / t.tb
			t.nOB = (rows + t.ob - 1) / t.ob
			if t.nTB*t.nOB >= 3*workers || (t.tb == 1 && t.ob <= 2*mr) {
				break
			}
			if t.tb > 1 {
				t.tb = 1
			} else {
				t.ob = (t.ob/2 + mr - 1) / mr * mr
			}
		}
		t.tasks = t.nTB * t.nOB
		t.next.Store(0)
		parallelTask(min(workers, t.tasks), t)
	}
	*t = winoTask{v: v[:0]}
	winoTaskPool.Put(t)
}

// RunRange is a worker: it takes tasks until none is left.
func (t *winoTask) RunRange(lo, hi int) {
	s := winoScratchPool.Get().(*winoScratch)
	defer winoScratchPool.Put(s)
	if t.transform {
		vec := t.vector()
		for {
			i := int(t.next.Add(1) - 1)
			if i >= t.tasks {
				return
			}
			jp, part := i/t.parts, i%t.parts
			c0, c1 := t.c.In*part/t.parts, t.c.In*(part+1)/t.parts
			if vec {
				t.inputPanelAVX2(s, jp, c0, c1)
			} else {
				t.inputPanel(jp, c0, c1)
			}
		}
	}
	for {
		i := int(t.next.Add(1) - 1)
		if i >= t.tasks {
			return
		}
		tb, ob := i/t.nOB, i%t.nOB
		p0, p1 := tb*t.tb, min(t.nPan, (tb+1)*t.tb)
		r0, r1 := ob*t.ob, min(t.c.mPanels*t.c.kern.mr, (ob+1)*t.ob)
		t.product(s, p0, p1, r0, r1)
	}
}

// inputPanel transforms the input patches of the chunk's tile panel jp,
// for input channels lo…hi-1, into v.
func (t *winoTask) inputPanel(jp, lo, hi int) {
	c := t.c
	nr := c.kern.nr
	in, kc := c.In, t.u.kc
	hw := t.h * t.w
	vStride := t.vStride
	a := t.a
	pt, n := a.patch, a.n
	var d, tv [winoMaxN]float32
	for j := range nr {
		tile := jp*nr + j
		if tile >= t.tn {
			// Padding columns of the last panel: zero.
			for ci := lo; ci < hi; ci++ {
				off := t.vOffset(ci, jp, j, kc)
				for xi := range n {
					t.v[xi*vStride+off] = 0
				}
			}
			continue
		}
		g := t.t0 + tile
		b, oy0, ox0 := t.tileAt(g)
		iy0, ix0 := oy0-1, ox0-1
		inside := iy0 >= 0 && ix0 >= 0 && iy0+pt <= t.h && ix0+pt <= t.w
		for ci := lo; ci < hi; ci++ {
			plane := t.x[(b*in+ci)*hw:][:hw]
			if inside {
				for r := range pt {
					row := plane[(iy0+r)*t.w+ix0:][:pt]
					copy(d[r*pt:r*pt+pt], row)
				}
			} else {
				for r := range pt {
					iy := iy0 + r
					for s := range pt {
						ix := ix0 + s
						if iy < 0 || iy >= t.h || ix < 0 || ix >= t.w {
							d[r*pt+s] = 0
						} else {
							d[r*pt+s] = plane[iy*t.w+ix]
						}
					}
				}
			}
			a.input(tv[:n], d[:n])
			off := t.vOffset(ci, jp, j, kc)
			for xi, val := range tv[:n] {
				t.v[xi*vStride+off] = val
			}
		}
	}
}

// tileAt returns the image of tile g of the call and the position of the
// tile's first output in it.
func (t *winoTask) tileAt(g int) (b, oy, ox int) {
	b, p := g/(t.tH*t.tW), g%(t.tH*t.tW)
	return b, p / t.tW * t.a.tile, p % t.tW * t.a.tile
}

// vOffset is the offset within a position's block of v of input channel ci
// in column j of panel jp.
func (t *winoTask) vOffset(ci, jp, j, kc int) int {
	nr := t.c.kern.nr
	return panelAt(ci, jp*nr+j, t.c.In, kc, nr, t.nPan)
}

// product computes the output rows r0…r1-1 (a multiple of mr apart, rows
// past Out are padding) of the tiles in panels p0…p1-1: the p² products
// into s.m, then the output transform into y.
func (t *winoTask) product(s *winoScratch, p0, p1, r0, r1 int) {
	c := t.c
	kern := c.kern
	mr, nr := kern.mr, kern.nr
	in, kc := c.In, t.u.kc
	rows := c.mPanels * mr
	cols := (p1 - p0) * nr
	mLen := r1 - r0
	mStride := winoStride(mLen * cols)
	if need := t.a.n * mStride; cap(s.m) < need {
		s.m = make([]float32, need)
	}
	m := s.m[:t.a.n*mStride]
	vStride := t.vStride
	uStride := rows * in
	fn := kern.streamA()
	for xi := range t.a.n {
		mx := m[xi*mStride:]
		for pc := 0; pc < in; pc += kc {
			kcLen := min(kc, in-pc)
			accum := 0
			if pc > 0 {
				accum = 1
			}
			ublk := t.u.u[xi*uStride+pc*rows:]
			vblk := t.v[xi*vStride+pc*t.nPan*nr:]
			for ir := r0; ir < r1; ir += mr {
				ap := &ublk[(ir/mr)*kcLen*mr]
				for jp := p0; jp < p1; jp++ {
					fn(kcLen, ap, &vblk[jp*kcLen*nr], &mx[(ir-r0)*cols+(jp-p0)*nr], cols, accum)
				}
			}
		}
	}
	if t.vector() {
		t.outputAVX2(s, m, mStride, p0, r0, min(r1, c.Out), cols)
	} else {
		t.output(m, mStride, p0, r0, min(r1, c.Out), cols)
	}
}

// inputPanelAVX2 is inputPanel eight tiles at a time: for each group of
// eight columns, a table of the p² patch elements' offsets in x (relative
// to the channel) and of which fall inside the image, then the gathers
// and transforms of channels lo…hi-1 in assembly.
func (t *winoTask) inputPanelAVX2(s *winoScratch, jp, lo, hi int) {
	c := t.c
	nr := c.kern.nr
	in, kc := c.In, t.u.kc
	hw := t.h * t.w
	a := t.a
	pt := a.patch
	for j0 := 0; j0 < nr; j0 += 8 {
		for l := range 8 {
			tile := jp*nr + j0 + l
			if tile >= t.tn {
				for q := range a.n {
					s.mask[q*8+l] = 0
					s.idx[q*8+l] = 0
				}
				continue
			}
			g := t.t0 + tile
			b, oy0, ox0 := t.tileAt(g)
			iy0, ix0 := oy0-1, ox0-1
			base := b*in*hw + iy0*t.w + ix0
			for r := range pt {
				iy := iy0 + r
				for k := range pt {
					ix := ix0 + k
					q := (r*pt+k)*8 + l
					s.idx[q] = int32(base + r*t.w + k)
					s.mask[q] = 0
					if iy >= 0 && iy < t.h && ix >= 0 && ix < t.w {
						s.mask[q] = -1
					}
				}
			}
		}
		// Channels lo…hi-1, a K block at a time.
		for c0 := lo; c0 < hi; {
			c1 := min(hi, (c0/kc+1)*kc)
			a.inputAVX2(&t.x[c0*hw], hw, c1-c0, &s.idx[0], &s.mask[0], &s.tmp[0],
				&t.v[t.vOffset(c0, jp, j0, kc)], t.vStride, nr)
			c0 = c1
		}
	}
}

// outputAVX2 is output eight tiles and up to winoOutRows rows at a time:
// the transform, bias and ReLU in assembly, then each tile's valid
// outputs (and the residual) stored into y.
func (t *winoTask) outputAVX2(s *winoScratch, m []float32, stride, p0, r0, r1, cols int) {
	c := t.c
	nr := c.kern.nr
	oh, ow := t.h, t.w
	n := oh * ow
	residual := t.epi == ConvResidualReLU
	relu := t.epi != ConvBias
	lo := float32(math.Inf(-1))
	if relu && !residual {
		lo = 0
	}
	bias := t.bias
	if bias == nil {
		if len(s.zero) < c.Out {
			s.zero = make([]float32, c.Out)
		}
		bias = s.zero
	}
	a := t.a
	tl, t2 := a.tile, a.tile*a.tile
	if len(s.out) < winoOutRows*8*t2 {
		s.out = make([]float32, winoOutRows*8*t2)
	}
	first := t.t0 + p0*nr
	last := min(t.t0+t.tn, first+cols)
	for j0 := 0; j0 < cols && first+j0 < last; j0 += 8 {
		// Eight whole tiles and no residual: stored by the assembly.
		whole := a.storeAVX2 != nil && !residual && last-first-j0 >= 8
		for l := 0; whole && l < 8; l++ {
			g := first + j0 + l
			b, oy0, ox0 := t.tileAt(g)
			whole = oy0+tl <= oh && ox0+tl <= ow
			s.offs[l] = b*c.Out*n + oy0*ow + ox0
		}
		if whole && !winoNoStore {
			a.storeAVX2(&m[j0], stride, cols, r1-r0, &s.tmp[0], &t.y[r0*n], &s.offs[0], n, ow, &bias[r0], lo)
			continue
		}
		for o0 := r0; o0 < r1; o0 += winoOutRows {
			rows := min(winoOutRows, r1-o0)
			a.outputAVX2(&m[(o0-r0)*cols+j0], stride, cols, rows, &s.tmp[0], &s.out[0], &bias[o0], lo)
			for l := range min(8, last-first-j0) {
				g := first + j0 + l
				b, oy0, ox0 := t.tileAt(g)
				ni, nk := min(tl, oh-oy0), min(tl, ow-ox0)
				for o := o0; o < o0+rows; o++ {
					src := s.out[((o-o0)*8+l)*t2:][:t2]
					plane := t.y[(b*c.Out+o)*n:][:n]
					for i := range ni {
						dst := plane[(oy0+i)*ow+ox0:][:nk]
						row := src[i*tl : i*tl+tl]
						if !residual {
							copy(dst, row)
							continue
						}
						for k := range dst {
							v := row[k] + dst[k]
							if v < 0 {
								v = 0
							}
							dst[k] = v
						}
					}
				}
			}
		}
	}
}

// output applies the output transform, bias and epilogue to the products m
// (p² × mLen × cols, rows from r0, columns from panel p0) and stores the
// tiles' valid outputs for channels r0…r1-1 into y.
func (t *winoTask) output(m []float32, stride, p0, r0, r1, cols int) {
	c := t.c
	nr := c.kern.nr
	oh, ow := t.h, t.w
	n := oh * ow
	residual := t.epi == ConvResidualReLU
	relu := t.epi != ConvBias
	a := t.a
	tl := a.tile
	var mv [winoMaxN]float32
	var yv [16]float32
	first := t.t0 + p0*nr
	last := min(t.t0+t.tn, first+cols)
	for o := r0; o < r1; o++ {
		var bv float32
		if t.bias != nil {
			bv = t.bias[o]
		}
		row := m[(o-r0)*cols:]
		for g := first; g < last; g++ {
			j := g - first
			for xi := range a.n {
				mv[xi] = row[xi*stride+j]
			}
			a.output(yv[:tl*tl], mv[:a.n])
			b, oy0, ox0 := t.tileAt(g)
			plane := t.y[(b*c.Out+o)*n:][:n]
			for i := range min(tl, oh-oy0) {
				dst := plane[(oy0+i)*ow+ox0:]
				for k := range min(tl, ow-ox0) {
					v := yv[i*tl+k] + bv
					if residual {
						v += dst[k]
					}
					if relu && v < 0 {
						v = 0
					}
					dst[k] = v
				}
			}
		}
	}
}
