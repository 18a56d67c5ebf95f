package kernels

import (
	"fmt"
	"unsafe"
)

// Assembly microkernels are checked once, when the package starts, against
// the portable tile product on small integers (every product and sum exact
// in float32, so any correct kernel gives the same bits whatever its order
// of operations): both the store and the accumulate form, each bias
// variant, tiles of several depths, and that nothing outside the tile is
// written. A kernel that fails is not offered (see init in dispatch.go) and
// goclip says so on stderr. This guards the kernels the development
// machines cannot run (the AVX-512 and VNNI ones run here only in the
// tests' assembly interpreter, asmvm_test.go): on a CPU where one
// misbehaves, goclip falls back to the next kernel rather than computing
// wrong features.

// tileGo is the portable product of an mr×nr tile (mr ≤ 8, nr ≤ 64), with
// the microkernel contract of sgemm_amd64.s: a holds k columns of mr
// values, b k rows of nr values; C (row stride ldc) is set to, or with
// accum incremented by, A·B (+ bias[0:nr] on every row when bias is not
// nil).
func tileGo(mr, nr, k int, a, b, c *float32, ldc int, accum int, bias *float32) {
	var acc [8 * 64]float32
	ap := unsafe.Slice(a, mr*k)
	bp := unsafe.Slice(b, nr*k)
	for p := range k {
		brow := bp[p*nr : p*nr+nr]
		for i, av := range ap[p*mr : p*mr+mr] {
			row := acc[i*nr : i*nr+nr]
			for j, bv := range brow {
				row[j] += av * bv
			}
		}
	}
	cs := unsafe.Slice(c, (mr-1)*ldc+nr)
	var bs []float32
	if bias != nil {
		bs = unsafe.Slice(bias, nr)
	}
	for i := range mr {
		row := cs[i*ldc : i*ldc+nr]
		for j := range row {
			v := acc[i*nr+j]
			if bs != nil {
				v += bs[j]
			}
			if accum != 0 {
				row[j] += v
			} else {
				row[j] = v
			}
		}
	}
}

// checkKernel runs k (its row variants and bias forms too) against tileGo
// and returns what differs, or nil.
func checkKernel(k *microKernel) error {
	for _, v := range append([]*microKernel{k}, k.rows...) {
		if err := checkKernelTile(v.name, v.mr, v.nr, func(depth int, a, b, c *float32, ldc, accum int, bias *float32) {
			v.fn(depth, a, b, c, ldc, accum)
		}, false); err != nil {
			return err
		}
		if v.fnStreamA != nil {
			if err := checkKernelTile(v.name+" (A-streaming)", v.mr, v.nr, func(depth int, a, b, c *float32, ldc, accum int, bias *float32) {
				v.fnStreamA(depth, a, b, c, ldc, accum)
			}, false); err != nil {
				return err
			}
		}
		if v.fnBias != nil {
			if err := checkKernelTile(v.name+" (bias)", v.mr, v.nr, func(depth int, a, b, c *float32, ldc, accum int, bias *float32) {
				v.fnBias(depth, a, b, c, ldc, accum, bias)
			}, true); err != nil {
				return err
			}
		}
		if v.fnNext != nil {
			if err := checkKernelTile(v.name+" (prefetching)", v.mr, v.nr, func(depth int, a, b, c *float32, ldc, accum int, bias *float32) {
				v.fnNext(depth, a, b, c, ldc, accum, uintptr(unsafe.Pointer(b)))
			}, false); err != nil {
				return err
			}
		}
		if v.fnNextBias != nil {
			if err := checkKernelTile(v.name+" (prefetching, bias)", v.mr, v.nr, func(depth int, a, b, c *float32, ldc, accum int, bias *float32) {
				v.fnNextBias(depth, a, b, c, ldc, accum, bias, uintptr(unsafe.Pointer(b)))
			}, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkKernelTile compares fn, a microkernel of an mr×nr tile, with tileGo.
func checkKernelTile(name string, mr, nr int, fn func(k int, a, b, c *float32, ldc, accum int, bias *float32), withBias bool) error {
	if mr > 8 || nr > 64 {
		return fmt.Errorf("kernel %s: tile %d×%d larger than the check's", name, mr, nr)
	}
	seed := uint32(1)
	small := func() float32 { // -3 … 3
		seed = seed*1664525 + 1013904223
		return float32(int(seed>>29) - 3)
	}
	const maxDepth = 67
	ldc := nr + 5
	// One allocation for every depth: a, b, bias, got, want.
	buf := make([]float32, (mr+nr)*maxDepth+nr+2*mr*ldc)
	bias, got, want := buf[:nr], buf[nr:nr+mr*ldc], buf[nr+mr*ldc:nr+2*mr*ldc]
	for _, depth := range []int{1, 7, maxDepth} {
		ab := buf[nr+2*mr*ldc:]
		a, b := ab[:mr*depth], ab[mr*depth:(mr+nr)*depth]
		for _, s := range [][]float32{a, b, bias} {
			for i := range s {
				s[i] = small()
			}
		}
		var bp *float32
		if withBias {
			bp = &bias[0]
		}
		for accum := range 2 {
			for i := range got {
				got[i] = small()
			}
			copy(want, got)
			fn(depth, &a[0], &b[0], &got[0], ldc, accum, bp)
			tileGo(mr, nr, depth, &a[0], &b[0], &want[0], ldc, accum, bp)
			for i := range got {
				if got[i] != want[i] {
					return fmt.Errorf("kernel %s: depth %d accum %d: C[%d,%d] = %v, want %v",
						name, depth, accum, i/ldc, i%ldc, got[i], want[i])
				}
			}
		}
	}
	return nil
}

// qgemmFunc is an int8 microkernel of r rows (see qgemmGo).
type qgemmFunc func(r, kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int)

// checkQKernel runs fn, for every row count, against qgemmGo (the exact
// integer sums, scaled back in the same float32 steps) and returns what
// differs, or nil.
func checkQKernel(name string, fn qgemmFunc) error {
	seed := uint32(7)
	next := func(n int) int {
		seed = seed*1664525 + 1013904223
		return int(seed>>8)%(2*n+1) - n
	}
	const maxRows, maxPairs, ldc = 6, 67, qnr + 3
	// One allocation each for every row count and depth.
	ibuf := make([]int16, maxRows*(2*maxPairs+2)+2*qnr*maxPairs)
	fbuf := make([]float32, maxRows+2*qnr+2*maxRows*ldc)
	sa, sw, bias := fbuf[:maxRows], fbuf[maxRows:maxRows+qnr], fbuf[maxRows+qnr:maxRows+2*qnr]
	for r := 1; r <= maxRows; r++ {
		for _, kp := range []int{1, 5, maxPairs} {
			lda := 2*kp + 2
			a, b := ibuf[:r*lda], ibuf[r*lda:r*lda+2*qnr*kp]
			for i := range a {
				a[i] = int16(next(32767))
			}
			for i := range b {
				b[i] = int16(next(127))
			}
			for _, s := range [][]float32{sa[:r], sw, bias} {
				for i := range s {
					s[i] = float32(next(1000)) / 997
				}
			}
			got := fbuf[maxRows+2*qnr:][:r*ldc]
			want := fbuf[maxRows+2*qnr+maxRows*ldc:][:r*ldc]
			for accum := range 2 {
				for _, bp := range []*float32{nil, &bias[0]} {
					for i := range got {
						got[i] = float32(next(100))
					}
					copy(want, got)
					fn(r, kp, &a[0], lda, &b[0], &got[0], ldc, &sa[0], &sw[0], bp, accum)
					qgemmGo(r, kp, &a[0], lda, &b[0], &want[0], ldc, &sa[0], &sw[0], bp, accum)
					for i := range got {
						if got[i] != want[i] {
							return fmt.Errorf("int8 kernel %s: %d rows, %d pairs, accum %d, bias %v: C[%d,%d] = %v, want %v",
								name, r, kp, accum, bp != nil, i/ldc, i%ldc, got[i], want[i])
						}
					}
				}
			}
		}
	}
	return nil
}
