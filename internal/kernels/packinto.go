package kernels

import "fmt"

// PackedLen returns how many float32 values PackLinear's packed form of an
// n×k nn.Linear weight takes with the current kernel: the size of the
// buffer PackLinearInto needs.
func PackedLen(n, k int) int {
	nr := current.Load().nr
	return (n + nr - 1) / nr * nr * k
}

// PackLinearInto is PackLinear packing into buf, a buffer of at least
// PackedLen(n, k) values that the caller allocated (a loader may, say,
// prefault it in one system call); the result aliases buf[:PackedLen(n, k)].
// It panics if w is shorter than n·k or buf is too short.
func PackLinearInto(buf, w []float32, n, k int) *PackedB {
	if n <= 0 || k <= 0 || len(w) < n*k {
		panic(fmt.Sprintf("kernels.PackLinearInto: weight of %d elements for %d×%d", len(w), n, k))
	}
	return packInto(buf, w, n, k, true)
}

// PackMatMul packs a k×n matrix b (row-major) for LinearPacked, which then
// computes y = x·b (+ bias): the packed form of the nn.Linear weight bᵀ,
// made without transposing b first. It panics if b is shorter than k·n.
func PackMatMul(b []float32, k, n int) *PackedB {
	if n <= 0 || k <= 0 || len(b) < n*k {
		panic(fmt.Sprintf("kernels.PackMatMul: matrix of %d elements for %d×%d", len(b), k, n))
	}
	return packInto(make([]float32, PackedLen(n, k)), b, n, k, false)
}

// packInto packs w, an n×k nn.Linear weight (trans) or a k×n matrix, into
// buf in LinearPacked's layout.
func packInto(buf, w []float32, n, k int, trans bool) *PackedB {
	ld := n
	if trans {
		ld = k
	}
	kern := current.Load()
	nr := kern.nr
	p := &PackedB{n: n, k: k, kern: kern, kc: kern.kc, npanel: (n + nr - 1) / nr}
	size := p.npanel * nr * k
	if len(buf) < size {
		panic(fmt.Sprintf("kernels.PackLinearInto: buffer of %d values for %d×%d (needs %d)", len(buf), n, k, size))
	}
	p.data = buf[:size:size]
	Parallel(((k+p.kc-1)/p.kc)*p.npanel, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			blk, pan := t/p.npanel, t%p.npanel
			pc := blk * p.kc
			kcLen := min(p.kc, k-pc)
			dst := p.data[pc*p.npanel*nr+pan*kcLen*nr:]
			packBPanels(dst, w, ld, trans, nr, pc, kcLen, pan*nr, min(nr, n-pan*nr))
		}
	})
	return p
}
