package kernels

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Native bfloat16 products: on CPUs with AVX512_BF16, ToBF16 lays a weight
// out for VDPBF16PS instead of for widening (see bf16.go), and LinearPacked
// rounds each row of its input to bfloat16 as well and multiplies the two
// in VDPBF16PS: per pair of k, both products (exact in float32) added into
// a float32 sum, so one instruction does 32 multiply-adds where a 512-bit
// FMA does 16: twice the float32 kernel's arithmetic per instruction, and
// half its weight bytes. The input's rounding to bfloat16 is what PyTorch's bf16
// autocast does too. Elsewhere the same layout and arithmetic run in
// portable Go (tests use it to check the path's accuracy on any machine).

// bnr is the number of columns of a native bf16 weight panel (two ZMM
// vectors of float32 sums).
const bnr = 32

// bkcMax is the largest depth (values of k) of one block of a native bf16
// panel: 256·32 bf16 values, 16 KB, stay in L1 while a block of rows runs
// over them.
const bkcMax = 256

// bweights is a weight in native bf16 panels: for each block of kc values
// of k (the last one shorter), npanel panels of kcLen/2 pairs × 32 columns
// × 2, the two values of a pair of k adjacent, as VDPBF16PS takes them.
type bweights struct {
	kp     int // k rounded up to even (the extra value is zero)
	kc     int // depth of a block, even
	npanel int
	data   []uint16
}

// bblock returns the depth of the K blocks of a product of depth kp
// (even): equal blocks of at most bkcMax, even.
func bblock(kp int) int {
	nb := (kp + bkcMax - 1) / bkcMax
	return ((kp+nb-1)/nb + 1) &^ 1
}

// toBF16DAZ is toBF16 with a denormal rounded to a zero of its sign, as
// VCVTNEPS2BF16 does (and VDPBF16PS reads denormals as zero).
func toBF16DAZ(v float32) uint16 {
	b := math.Float32bits(v)
	if b&0x7f800000 == 0 {
		return uint16(b>>16) & 0x8000
	}
	return toBF16(v)
}

// fromBF16 widens a bfloat16 value.
func fromBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// packBF16Pairs rounds an nn.Linear weight w[n,k] to bfloat16 in the
// native layout, one panel per task, writing each panel in order (its 32
// rows read side by side).
func packBF16Pairs(w []float32, n, k int) *bweights {
	kp := (k + 1) &^ 1
	q := &bweights{kp: kp, kc: bblock(kp), npanel: (n + bnr - 1) / bnr}
	q.data = make([]uint16, q.npanel*bnr*kp)
	Parallel(q.npanel, func(lo, hi int) {
		for pan := lo; pan < hi; pan++ {
			cols := min(bnr, n-pan*bnr)
			for pc := 0; pc < kp; pc += q.kc {
				kcLen := min(q.kc, kp-pc)
				dst := q.data[pc*q.npanel*bnr+pan*kcLen*bnr:][:kcLen*bnr]
				for t := 0; t < kcLen/2; t++ {
					i := pc + 2*t
					d := dst[t*2*bnr : t*2*bnr+2*cols]
					for c := range cols {
						row := w[(pan*bnr+c)*k:][:k]
						d[2*c] = toBF16DAZ(row[i])
						if i+1 < k {
							d[2*c+1] = toBF16DAZ(row[i+1])
						}
					}
				}
			}
		}
	})
	return q
}

// PackLinearBF16 rounds an nn.Linear weight w[n,k] (out × in, row-major)
// to bfloat16 for LinearPacked: the same weight as
// PackLinear(w, n, k).ToBF16(), without the float32 copy where the
// native layout is used (see BF16Native). It panics if w is shorter than
// n·k.
func PackLinearBF16(w []float32, n, k int) *PackedB {
	if n <= 0 || k <= 0 || len(w) < n*k {
		panic(fmt.Sprintf("kernels.PackLinearBF16: weight of %d elements for %d×%d", len(w), n, k))
	}
	if !bf16Native() {
		return PackLinear(w, n, k).ToBF16()
	}
	return &PackedB{n: n, k: k, bp: packBF16Pairs(w, n, k)}
}

// BF16Native reports whether ToBF16 and PackLinearBF16 use the native
// layout (see SetBF16Layout).
func BF16Native() bool { return bf16Native() }

// unpack returns the weight's bfloat16 values widened, in nn.Linear
// layout.
func (q *bweights) unpack(n, k int) []float32 {
	w := make([]float32, n*k)
	for j := range n {
		pan, col := j/bnr, j%bnr
		for i := range k {
			pc := i / q.kc * q.kc
			kcLen := min(q.kc, q.kp-pc)
			w[j*k+i] = fromBF16(q.data[pc*q.npanel*bnr+pan*kcLen*bnr+(i-pc)/2*2*bnr+2*col+(i-pc)%2])
		}
	}
	return w
}

// bgemmGo is the portable native bf16 microkernel: an r×32 tile of C from
// r rows of a (bfloat16, row stride lda values) over kp pairs of k and a
// panel b, plus bias[0:32] when bias is not nil, stored or (accum ≠ 0)
// added to C. Per pair it adds the odd product, then the even one, each
// rounded, as VDPBF16PS is specified to (the products are exact); inputs
// are never denormal (see toBF16DAZ).
func bgemmGo(r, kp int, a *uint16, lda int, b *uint16, c *float32, ldc int, bias *float32, accum int) {
	as := unsafe.Slice(a, (r-1)*lda+2*kp)
	bs := unsafe.Slice(b, 2*bnr*kp)
	cs := unsafe.Slice(c, (r-1)*ldc+bnr)
	var bb []float32
	if bias != nil {
		bb = unsafe.Slice(bias, bnr)
	}
	for i := range r {
		var acc [bnr]float32
		arow := as[i*lda : i*lda+2*kp]
		for t := range kp {
			a0, a1 := fromBF16(arow[2*t]), fromBF16(arow[2*t+1])
			bp := bs[t*2*bnr : (t+1)*2*bnr : (t+1)*2*bnr]
			for j := range bnr {
				s := acc[j] + a1*fromBF16(bp[2*j+1])
				acc[j] = s + a0*fromBF16(bp[2*j])
			}
		}
		crow := cs[i*ldc : i*ldc+bnr : i*ldc+bnr]
		for j := range bnr {
			v := acc[j]
			if bb != nil {
				v += bb[j]
			}
			if accum != 0 {
				crow[j] += v
			} else {
				crow[j] = v
			}
		}
	}
}

// bgemmFunc is the form of a native bf16 microkernel.
type bgemmFunc func(r, kp int, a *uint16, lda int, b *uint16, c *float32, ldc int, bias *float32, accum int)

// bgemm is one LinearPacked call on a native bf16 weight.
type bgemm struct {
	w      *PackedB
	x, y   []float32
	bias   []float32
	m      int
	epi    Epilogue
	xb     []uint16 // x rounded, m rows of lda values
	lda    int      // kp
	cvt    bool     // RunRange converts rows (else computes tiles)
	pm, pn int
	useAsm bool
}

var bgemmPool = sync.Pool{New: func() any { return new(bgemm) }}

// bbuf is the rounded input of one call, recycled.
type bbuf struct{ xb []uint16 }

var bbufPool sync.Pool

// bgridKernel describes the native bf16 tile to the grid planner.
var bgridKernel = &microKernel{name: "bf16", mr: 6, nr: bnr}

// linearBF16 is LinearPacked for a native bf16 weight (arguments
// checked).
func linearBF16(y, x []float32, w *PackedB, bias []float32, m int, epi Epilogue) {
	q := w.bp
	g := bgemmPool.Get().(*bgemm)
	b, _ := bbufPool.Get().(*bbuf)
	if b == nil {
		b = new(bbuf)
	}
	if cap(b.xb) < m*q.kp {
		b.xb = make([]uint16, m*q.kp)
	}
	*g = bgemm{w: w, x: x, y: y, bias: bias, m: m, epi: epi,
		xb: b.xb[:m*q.kp], lda: q.kp, useAsm: bAsm()}

	g.cvt = true
	runRows(g, m, w.k)
	g.cvt = false
	g.pm, g.pn = gridFor(bgridKernel, w, m)
	parallelTask(g.pm*g.pn, g)

	*g = bgemm{}
	bgemmPool.Put(g)
	bbufPool.Put(b)
}

// RunRange rounds rows lo..hi-1 of x, or computes worker tiles lo..hi-1.
func (g *bgemm) RunRange(lo, hi int) {
	k, kp := g.w.k, g.lda
	if g.cvt {
		for i := lo; i < hi; i++ {
			dst := g.xb[i*kp : (i+1)*kp]
			roundBF16(g.useAsm, dst[:k], g.x[i*k:(i+1)*k])
			if kp > k {
				dst[k] = 0
			}
		}
		return
	}
	for t := lo; t < hi; t++ {
		if m0, m1, n0, n1 := workerTile(t, g.pm, g.pn, g.m, g.w.n, bnr); m0 < m1 && n0 < n1 {
			g.tile(m0, m1, n0, n1)
		}
	}
}

// roundBF16Go is the portable roundBF16.
func roundBF16Go(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = toBF16DAZ(v)
	}
}

// tile computes y[m0:m1, n0:n1] on the calling goroutine.
func (g *bgemm) tile(m0, m1, n0, n1 int) {
	q := g.w.bp
	n := g.w.n
	const mc = 144
	var tmp [6 * bnr]float32
	for ic := m0; ic < m1; ic += mc {
		mcLen := min(mc, m1-ic)
		r := qRows(mcLen)
		for pc := 0; pc < q.kp; pc += q.kc {
			kcLen := min(q.kc, q.kp-pc)
			accum := 0
			if pc > 0 || g.epi == EpiResidual {
				accum = 1
			}
			for jr := n0; jr < n1; jr += bnr {
				panel := q.data[pc*q.npanel*bnr+(jr/bnr)*kcLen*bnr:][:kcLen*bnr]
				cols := min(bnr, n1-jr)
				// The bias is added in the first K block.
				var bias []float32
				if pc == 0 && g.bias != nil {
					bias = g.bias[jr : jr+cols]
				}
				for ir := ic; ir < ic+mcLen; ir += r {
					rr := min(r, ic+mcLen-ir)
					a := &g.xb[ir*g.lda+pc]
					if cols == bnr {
						var bp *float32
						if bias != nil {
							bp = &bias[0]
						}
						bkernel(g.useAsm, rr, kcLen/2, a, g.lda, &panel[0], &g.y[ir*n+jr], n, bp, accum)
						continue
					}
					bkernel(g.useAsm, rr, kcLen/2, a, g.lda, &panel[0], &tmp[0], bnr, nil, 0)
					storePartial(g.y, n, ir, jr, tmp[:], bnr, rr, cols, bias, accum)
				}
			}
		}
		applyEpilogue(g.epi, g.y, n, ic, ic+mcLen, n0, n1, nil, current.Load().simd)
	}
}

// bkernel runs the native bf16 microkernel of r rows, in assembly or
// portable Go.
func bkernel(useAsm bool, r, kp int, a *uint16, lda int, b *uint16, c *float32, ldc int, bias *float32, accum int) {
	if useAsm {
		bgemmAsm(r, kp, a, lda, b, c, ldc, bias, accum)
		return
	}
	bgemmGo(r, kp, a, lda, b, c, ldc, bias, accum)
}

// BF16Kernel names the products of weights converted by ToBF16 from now
// on: "avx512bf16" (VDPBF16PS on bf16 inputs), "native-go" (the same
// arithmetic in portable Go, see SetBF16Layout) or "widen" (weights
// widened to float32 in L1, products in the float32 kernel).
func BF16Kernel() string {
	switch {
	case bf16Native() && bAsm():
		return "avx512bf16"
	case bf16Native():
		return "native-go"
	}
	return "widen"
}

// bf16Native reports whether ToBF16 lays weights out for the native
// products: on CPUs whose VDPBF16PS passed its check, unless the portable
// kernel was chosen or SetBF16Layout says otherwise.
func bf16Native() bool {
	switch bf16Layout.Load() {
	case layoutNative:
		return true
	case layoutWiden:
		return false
	}
	return bAsm()
}

const (
	layoutAuto int32 = iota
	layoutNative
	layoutWiden
)

var bf16Layout atomic.Int32

// SetBF16Layout chooses how ToBF16 lays out weights from now on: "native"
// (for VDPBF16PS, the input rounded to bfloat16 too; on CPUs without
// AVX512_BF16 the products then run in portable Go, slowly: for tests of
// the path's accuracy on any machine), "widen" (widened to float32 as
// they are used, the products in float32), or "" (native where the CPU
// has AVX512_BF16, the default). It returns the previous setting.
func SetBF16Layout(layout string) (string, error) {
	names := []string{"", "native", "widen"}
	for i, n := range names {
		if n == layout {
			return names[bf16Layout.Swap(int32(i))], nil
		}
	}
	return names[bf16Layout.Load()], fmt.Errorf("bf16 layout %q: want native, widen or empty", layout)
}

// checkBKernel runs fn against bgemmGo on bf16 values that are small
// integers (every product and sum exact, so any order of operations
// gives the same bits), 1 to 6 rows, several depths, bias and accumulate
// forms, and checks that nothing past the tile is written.
func checkBKernel(name string, fn bgemmFunc) error {
	seed := uint32(11)
	next := func(n int) int {
		seed = seed*1664525 + 1013904223
		return int(seed>>8)%(2*n+1) - n
	}
	const maxRows, maxPairs, ldc = 6, 67, bnr + 3
	hbuf := make([]uint16, maxRows*(2*maxPairs+2)+2*bnr*maxPairs)
	fbuf := make([]float32, bnr+2*maxRows*ldc)
	bias := fbuf[:bnr]
	for r := 1; r <= maxRows; r++ {
		for _, kp := range []int{1, 5, maxPairs} {
			lda := 2*kp + 2
			a, b := hbuf[:r*lda], hbuf[r*lda:r*lda+2*bnr*kp]
			for i := range a {
				a[i] = toBF16(float32(next(16)))
			}
			for i := range b {
				b[i] = toBF16(float32(next(16)))
			}
			for i := range bias {
				bias[i] = float32(next(1000))
			}
			got := fbuf[bnr:][:r*ldc]
			want := fbuf[bnr+maxRows*ldc:][:r*ldc]
			for accum := range 2 {
				for _, bp := range []*float32{nil, &bias[0]} {
					for i := range got {
						got[i] = float32(next(100))
					}
					copy(want, got)
					fn(r, kp, &a[0], lda, &b[0], &got[0], ldc, bp, accum)
					bgemmGo(r, kp, &a[0], lda, &b[0], &want[0], ldc, bp, accum)
					for i := range got {
						if got[i] != want[i] {
							return fmt.Errorf("bf16 kernel %s: %d rows, %d pairs, accum %d, bias %v: C[%d,%d] = %v, want %v",
								name, r, kp, accum, bp != nil, i/ldc, i%ldc, got[i], want[i])
						}
					}
				}
			}
		}
	}
	return nil
}

// checkBConvert runs a conversion to bfloat16 against toBF16DAZ on values
// that exercise its cases: ties to even either way, a carry into the
// exponent, overflow to infinity, denormals, infinities, NaNs.
func checkBConvert(cvt func(dst []uint16, src []float32)) error {
	bits := []uint32{0, 0x80000000, 0x3f800000, 0x3f808000, 0x3f818000, 0x3f80ffff, 0x3f7fffff,
		0x7f7fffff, 0xff7fffff, 0x00000001, 0x807fffff, 0x00800000, 0x7f800000, 0xff800000,
		0x7fc00000, 0x7f800001, 0xffa00000, 0x40490fdb, 0xc0490fdb, 0x3dcccccd, 0x447a0000,
		0x33d6bf95, 0x1, 0x7f7f8000, 0x4b7fffff, 0xbf800001, 0x3f808001, 0x3e99999a, 0x00400000,
		0x7fffffff, 0x3c23d70a, 0xc2c80000}
	src := make([]float32, len(bits))
	for i, b := range bits {
		src[i] = math.Float32frombits(b)
	}
	dst := make([]uint16, len(src))
	cvt(dst, src)
	for i, v := range src {
		if want := toBF16DAZ(v); dst[i] != want {
			return fmt.Errorf("bf16 conversion of %#08x: %#04x, want %#04x", bits[i], dst[i], want)
		}
	}
	return nil
}
