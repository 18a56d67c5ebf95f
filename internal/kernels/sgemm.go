package kernels

import (
	"fmt"
	"sync"
	"unsafe"
)

// Sgemm computes C = alpha·op(A)·op(B) + beta·C, the BLAS SGEMM on row-major
// matrices: op(A) is m×k (A is m×k with row stride lda, or k×m when transA),
// op(B) is k×n (B is k×n with row stride ldb, or n×k when transB) and C is
// m×n with row stride ldc. When beta is 0, C is not read (NaNs in C do not
// propagate). The work is split over the shared worker pool.
//
// It panics if a slice is too short for its shape and stride.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("kernels.Sgemm: negative size m=%d n=%d k=%d", m, n, k))
	}
	if m == 0 || n == 0 {
		return
	}
	checkMatrix("C", c, m, n, ldc)
	if k == 0 || alpha == 0 {
		scaleC(c, 0, m, 0, n, ldc, beta)
		return
	}
	if transA {
		checkMatrix("A", a, k, m, lda)
	} else {
		checkMatrix("A", a, m, k, lda)
	}
	if transB {
		checkMatrix("B", b, n, k, ldb)
	} else {
		checkMatrix("B", b, k, n, ldb)
	}
	runGemm(gemm{
		kern: current.Load(), transA: transA, transB: transB,
		m: m, n: n, k: k, alpha: alpha,
		a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc,
	})
}

// checkMatrix panics unless s holds a rows×cols matrix of row stride ld.
func checkMatrix(name string, s []float32, rows, cols, ld int) {
	if ld < cols {
		panic(fmt.Sprintf("kernels.Sgemm: ld%s=%d < %d columns", name, ld, cols))
	}
	if rows > 0 && cols > 0 && len(s) < (rows-1)*ld+cols {
		panic(fmt.Sprintf("kernels.Sgemm: %s has %d elements, need %d for %d×%d with stride %d",
			name, len(s), (rows-1)*ld+cols, rows, cols, ld))
	}
}

// scaleC sets C[r0:r1, c0:c1] *= beta (zero when beta is 0).
func scaleC(c []float32, r0, r1, c0, c1, ldc int, beta float32) {
	if beta == 1 {
		return
	}
	for i := r0; i < r1; i++ {
		row := c[i*ldc+c0 : i*ldc+c1]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// gemm is one Sgemm or LinearPacked call.
type gemm struct {
	kern           *microKernel
	transA, transB bool
	m, n, k        int
	alpha          float32
	a              []float32
	lda            int
	b              []float32
	ldb            int
	beta           float32
	c              []float32
	ldc            int

	packed *PackedB // non-nil: B is pre-packed (then b, ldb, transB unused)
	epi    Epilogue // applied to each finished block of C (LinearPacked)
	bias   []float32

	pm, pn int // worker grid chosen by run
}

// Work sizes below which splitting over workers costs more than it saves.
const minParallelFlops = 1 << 20

// run partitions C into a grid of worker tiles and computes them.
func (g *gemm) run() {
	w := Workers()
	if 2*g.m*g.n*g.k < minParallelFlops {
		w = 1
	}
	g.pm, g.pn = g.grid(w)
	parallelTask(g.pm*g.pn, g)
}

// RunRange computes worker tiles lo..hi-1 of the grid chosen by run.
func (g *gemm) RunRange(lo, hi int) {
	mr, nr := g.kern.mr, g.kern.nr
	mTiles := (g.m + mr - 1) / mr
	nTiles := (g.n + nr - 1) / nr
	pm, pn := g.pm, g.pn
	for t := lo; t < hi; t++ {
		ti, tj := t/pn, t%pn
		m0 := min(g.m, (ti*mTiles/pm)*mr)
		m1 := min(g.m, ((ti+1)*mTiles/pm)*mr)
		n0 := min(g.n, (tj*nTiles/pn)*nr)
		n1 := min(g.n, ((tj+1)*nTiles/pn)*nr)
		if m0 < m1 && n0 < n1 {
			g.tile(m0, m1, n0, n1)
		}
	}
}

// gemmPool recycles gemm descriptors, so a product allocates nothing.
var gemmPool = sync.Pool{New: func() any { return new(gemm) }}

// runGemm runs the product described by d on a pooled descriptor.
func runGemm(d gemm) {
	d.kern = d.kern.forRows(d.m)
	g := gemmPool.Get().(*gemm)
	*g = d
	g.run()
	*g = gemm{} // drop references to the caller's slices
	gemmPool.Put(g)
}

// grid chooses pm×pn worker tiles (pm·pn ≤ w) minimising the largest
// tile's padded work plus its packing.
func (g *gemm) grid(w int) (pm, pn int) {
	mr, nr := g.kern.mr, g.kern.nr
	mTiles := (g.m + mr - 1) / mr
	nTiles := (g.n + nr - 1) / nr
	best := -1.0
	pm, pn = 1, 1
	for p := 1; p <= w; p++ {
		q := w / p
		if p > mTiles || q > nTiles {
			continue
		}
		rows := float64((mTiles + p - 1) / p * mr)
		cols := float64((nTiles + q - 1) / q * nr)
		k := float64(g.k)
		// In multiply-adds: the tile's product; packing A (or B), which
		// costs about four cycles an element, i.e. 64 multiply-adds; and
		// streaming the tile's share of pre-packed weights from memory.
		// At 2 threads this splits 50 rows (ViT-B/32, batch 1) by columns,
		// each worker reading half the weights (+1-4% on those products),
		// and 1600 rows by rows, each worker packing half of A (+2-4%).
		cost := rows*cols*k + 64*rows*k
		if g.packed == nil {
			cost += 64 * cols * k
		} else {
			cost += 6 * cols * k
		}
		if best < 0 || cost < best {
			best, pm, pn = cost, p, q
		}
	}
	return pm, pn
}

// Packing buffers are recycled per role, so that a small buffer is not
// handed out (and dropped) where a large one is needed.
const (
	bufA = iota // packed A block, mc×kc
	bufB        // packed B panel, kc×nc
	bufT        // one edge tile, mr×nr
	numBufs
)

var bufPools [numBufs]sync.Pool

func getBuf(role, n int) *[]float32 {
	if p, ok := bufPools[role].Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	s := make([]float32, n)
	return &s
}

func putBuf(role int, p *[]float32) { bufPools[role].Put(p) }

// tile computes C[m0:m1, n0:n1] on the calling goroutine.
func (g *gemm) tile(m0, m1, n0, n1 int) {
	kern := g.kern
	mr, nr, kc, mc := kern.mr, kern.nr, kern.kc, kern.mc
	if g.packed != nil {
		kc = g.packed.kc
	}
	nc := n1 - n0
	if g.packed == nil {
		nc = min(nc, 4096)
	}
	abuf := getBuf(bufA, mc*kc)
	defer putBuf(bufA, abuf)
	tbuf := getBuf(bufT, mr*nr)
	defer putBuf(bufT, tbuf)
	var bbuf *[]float32
	if g.packed == nil {
		ncPad := (nc + nr - 1) / nr * nr
		bbuf = getBuf(bufB, ncPad*kc)
		defer putBuf(bufB, bbuf)
	}
	if g.beta != 0 && g.beta != 1 {
		scaleC(g.c, m0, m1, n0, n1, g.ldc, g.beta)
	}
	for jc := n0; jc < n1; jc += nc {
		ncLen := min(nc, n1-jc)
		if g.packed == nil {
			// BLIS order: B panel (kc×nc) outside, A blocks inside.
			for pc := 0; pc < g.k; pc += kc {
				kcLen := min(kc, g.k-pc)
				g.packB(*bbuf, pc, kcLen, jc, ncLen)
				for ic := m0; ic < m1; ic += mc {
					mcLen := min(mc, m1-ic)
					g.packA(*abuf, ic, mcLen, pc, kcLen)
					accum := pc > 0 || g.beta != 0
					g.macro(*abuf, *bbuf, kcLen*nr, ic, mcLen, jc, ncLen, kcLen, accum, nil, *tbuf, false)
				}
			}
			continue
		}
		// Pre-packed B: finish each row block over all of K, then apply
		// the epilogue while it is hot in cache. The bias is added by the
		// microkernel in the first K block where it can.
		pb := g.packed
		var wbuf *[]float32
		if pb.half != nil {
			wbuf = getBuf(bufB, kc*nr)
			defer putBuf(bufB, wbuf)
		}
		fused := g.bias != nil && kern.fnBias != nil && !noFusedBias
		epiBias := g.bias
		if fused {
			epiBias = nil
		}
		for ic := m0; ic < m1; ic += mc {
			mcLen := min(mc, m1-ic)
			for pc := 0; pc < g.k; pc += kc {
				kcLen := min(kc, g.k-pc)
				g.packA(*abuf, ic, mcLen, pc, kcLen)
				off := pc*pb.npanel*nr + (jc/nr)*kcLen*nr
				accum := pc > 0 || g.beta != 0
				var bias []float32
				if fused && pc == 0 {
					bias = g.bias
				}
				if pb.half == nil {
					g.macro(*abuf, pb.data[off:], kcLen*nr, ic, mcLen, jc, ncLen, kcLen, accum, bias, *tbuf, true)
					continue
				}
				// bfloat16 weights: widen one panel at a time into L1.
				for jr := 0; jr < ncLen; jr += nr {
					pb.widenPanel(*wbuf, off+(jr/nr)*kcLen*nr, kcLen*nr)
					g.macro(*abuf, *wbuf, kcLen*nr, ic, mcLen, jc+jr, min(nr, ncLen-jr), kcLen, accum, bias, *tbuf, false)
				}
			}
			applyEpilogue(g.epi, g.c, g.ldc, ic, ic+mcLen, jc, jc+ncLen, epiBias, kern.simd)
		}
	}
}

// noFusedBias turns the bias fusion off (tests compare both paths).
var noFusedBias bool

// macro runs the microkernel over an mcLen×ncLen block of C at (ic, jc).
// bp holds consecutive NR-wide panels, bstride floats apart. A non-nil
// bias (indexed by column of C) is added to the block's product (the
// kernel's fnBias does it for whole tiles). With streamed set, bp is
// weights pre-packed at load, coming from memory: where the kernel has an
// fnNext form and at least four row tiles read each panel, the row tile
// i of a panel prefetches quarter i mod 4 of the next one.
func (g *gemm) macro(ap, bp []float32, bstride, ic, mcLen, jc, ncLen, kcLen int, accum bool, bias, tmp []float32, streamed bool) {
	kern := g.kern
	mr, nr := kern.mr, kern.nr
	acc := 0
	if accum {
		acc = 1
	}
	c, ldc := g.c, g.ldc
	next := streamed && kern.fnNext != nil && (mcLen+mr-1)/mr >= 4 && (bias == nil || kern.fnNextBias != nil)
	// What one fnNext call prefetches: a quarter of a micro-panel of
	// kcLen×nr float32 (kcLen/4 lines for AVX2, kcLen/2 for AVX-512).
	quarter := uintptr(kcLen * nr)
	for jr := 0; jr < ncLen; jr += nr {
		nrLen := min(nr, ncLen-jr)
		bpan := &bp[(jr/nr)*bstride]
		following := uintptr(unsafe.Pointer(bpan)) + 4*uintptr(bstride)
		for ir := 0; ir < mcLen; ir += mr {
			mrLen := min(mr, mcLen-ir)
			apan := &ap[(ir/mr)*kcLen*mr]
			off := (ic+ir)*ldc + jc + jr
			if mrLen == mr && nrLen == nr && next {
				at := following + uintptr(ir/mr%4)*quarter
				if bias != nil {
					kern.fnNextBias(kcLen, apan, bpan, &c[off], ldc, acc, &bias[jc+jr], at)
				} else {
					kern.fnNext(kcLen, apan, bpan, &c[off], ldc, acc, at)
				}
				continue
			}
			if mrLen == mr && nrLen == nr {
				if bias != nil {
					kern.fnBias(kcLen, apan, bpan, &c[off], ldc, acc, &bias[jc+jr])
				} else {
					kern.fn(kcLen, apan, bpan, &c[off], ldc, acc)
				}
				continue
			}
			kern.fn(kcLen, apan, bpan, &tmp[0], nr, 0)
			for i := 0; i < mrLen; i++ {
				dst := c[off+i*ldc : off+i*ldc+nrLen]
				src := tmp[i*nr : i*nr+nrLen]
				if bias != nil {
					addTo(src, bias[jc+jr:jc+jr+nrLen])
				}
				if accum {
					for j, v := range src {
						dst[j] += v
					}
				} else {
					copy(dst, src)
				}
			}
		}
	}
}

// packA packs alpha·op(A)[ic:ic+mcLen, pc:pc+kcLen] into MR-row
// micro-panels: panel r holds, for each p, the MR values of rows
// ic+r·MR … (zero past the end).
func (g *gemm) packA(dst []float32, ic, mcLen, pc, kcLen int) {
	mr := g.kern.mr
	for ir := 0; ir < mcLen; ir += mr {
		pan := dst[(ir/mr)*kcLen*mr : (ir/mr+1)*kcLen*mr]
		rows := min(mr, mcLen-ir)
		if rows < mr {
			clear(pan)
		}
		if g.transA {
			// op(A)[i,p] = a[p*lda+i]: contiguous along i.
			gatherRows(pan, g.a, pc*g.lda+ic+ir, g.lda, kcLen, rows, mr, g.alpha)
		} else {
			interleave(pan, g.a, (ic+ir)*g.lda+pc, g.lda, rows, mr, kcLen, g.alpha)
		}
	}
}

// packB packs op(B)[pc:pc+kcLen, jc:jc+ncLen] into NR-column micro-panels
// of kcLen×NR values each (zero past the end).
func (g *gemm) packB(dst []float32, pc, kcLen, jc, ncLen int) {
	packBPanels(dst, g.b, g.ldb, g.transB, g.kern.nr, pc, kcLen, jc, ncLen)
}

// packBPanels packs op(B)[pc:pc+kcLen, jc:jc+ncLen] (B is k×n, or n×k when
// trans) into nr-column panels of kcLen×nr values.
func packBPanels(dst, b []float32, ldb int, trans bool, nr, pc, kcLen, jc, ncLen int) {
	for jr := 0; jr < ncLen; jr += nr {
		pan := dst[(jr/nr)*kcLen*nr : (jr/nr+1)*kcLen*nr]
		cols := min(nr, ncLen-jr)
		if cols < nr {
			clear(pan)
		}
		j0 := jc + jr
		if trans {
			// op(B)[p,j] = b[j*ldb+p]: contiguous along p.
			interleave(pan, b, j0*ldb+pc, ldb, cols, nr, kcLen, 1)
		} else {
			gatherRows(pan, b, pc*ldb+j0, ldb, kcLen, cols, nr, 1)
		}
	}
}

// gatherRows sets dst[p*stride+i] = alpha·src[off+p*ld+i] for p < klen,
// i < width.
func gatherRows(dst, src []float32, off, ld, klen, width, stride int, alpha float32) {
	for p := 0; p < klen; p++ {
		d := dst[p*stride : p*stride+width]
		s := src[off+p*ld : off+p*ld+width]
		if alpha == 1 {
			copy(d, s)
			continue
		}
		for i, v := range s {
			d[i] = alpha * v
		}
	}
}

// interleave sets dst[p*stride+r] = alpha·src[off+r*ld+p] for r < nrows,
// p < klen: nrows contiguous rows woven into one panel, by 8×8 transposes
// for groups of 5 to 8 rows (a 6-row A micro-panel) and four rows at a
// time otherwise. Positions r ≥ nrows of each p that a transpose touches
// are set to zero or to values written afterwards (see interleaveVec).
func interleave(dst, src []float32, off, ld, nrows, stride, klen int, alpha float32) {
	dst = dst[:klen*stride]
	r := 0
	if alpha == 1 {
		// A group's eight-wide stores must not reach an earlier group's
		// values of the next p: only the first group may spill over.
		for ; nrows-r >= 5 && (r == 0 || r+8 <= stride); r += 8 {
			rows := min(8, nrows-r)
			done := interleaveVec(dst[r:], src, off+r*ld, ld, stride, rows, klen)
			for p := done; p < klen; p++ {
				d := dst[p*stride+r:][:rows]
				for i := range d {
					d[i] = src[off+(r+i)*ld+p]
				}
			}
		}
		r = min(r, nrows)
	}
	for ; r+4 <= nrows; r += 4 {
		s0 := src[off+r*ld : off+r*ld+klen]
		s1 := src[off+(r+1)*ld:][:len(s0)]
		s2 := src[off+(r+2)*ld:][:len(s0)]
		s3 := src[off+(r+3)*ld:][:len(s0)]
		if alpha == 1 {
			for p := range s0 {
				d := dst[p*stride+r:][:4]
				d[0], d[1], d[2], d[3] = s0[p], s1[p], s2[p], s3[p]
			}
		} else {
			for p := range s0 {
				d := dst[p*stride+r:][:4]
				d[0], d[1], d[2], d[3] = alpha*s0[p], alpha*s1[p], alpha*s2[p], alpha*s3[p]
			}
		}
	}
	for ; r < nrows; r++ {
		s := src[off+r*ld : off+r*ld+klen]
		for p, v := range s {
			dst[p*stride+r] = alpha * v
		}
	}
}
