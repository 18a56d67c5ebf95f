//go:build amd64 && !purego

package kernels

import "math"

//go:noescape
func quickGELUAVX2(x *float32, n int)

//go:noescape
func expShiftSumAVX2(x *float32, n int, shift float32) (sum float32)

//go:noescape
func dotAVX2(a, b *float32, n int) float32

// useAVX2 reports whether the selected kernel allows the AVX2 helpers
// (GOCLIP_KERNEL=go turns them off too).
func useAVX2() bool { return current.Load().simd >= simdAVX2 }

// Dot returns Σ a[i]·b[i] over len(a) elements.
func Dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s float32
	n := 0
	if useAVX2() && len(a) >= 8 {
		n = len(a) &^ 7
		s = dotAVX2(&a[0], &b[0], n)
	}
	if n < len(a) {
		s += dotGo(a[n:], b[n:])
	}
	return s
}

//go:noescape
func lnStatsAVX2(x *float32, n int) (sum, sumsq float64)

//go:noescape
func lnApplyAVX2(y, x, gamma, beta *float32, n int, mean, rstd float32)

// rowStats returns Σx and Σx² of x in float64.
func rowStats(x []float32) (sum, sumsq float64) {
	n := 0
	if useAVX2() && len(x) >= 8 {
		n = len(x) &^ 7
		sum, sumsq = lnStatsAVX2(&x[0], n)
	}
	s, q := rowStatsGo(x[n:])
	return sum + s, sumsq + q
}

// lnApply sets y = (x-mean)·rstd·g + b (g, b may be nil).
func lnApply(y, x, g, b []float32, mean, rstd float32) {
	n := 0
	if useAVX2() && g != nil && b != nil && len(x) >= 8 {
		n = len(x) &^ 7
		lnApplyAVX2(&y[0], &x[0], &g[0], &b[0], n, mean, rstd)
		g, b = g[n:], b[n:]
	}
	lnApplyGo(y[n:], x[n:], g, b, mean, rstd)
}

//go:noescape
func transpose8AVX2(dst *float32, stride int, src *float32, ld int, blocks int, rows int)

// interleaveVec sets dst[p*stride+r] = src[off+r*ld+p] for r < rows (5 to
// 8) by 8×8 transposes where it can, and returns how many leading p it
// did. Each p's store is eight wide: with rows < 8 it also writes zeros to
// dst[p*stride+rows … p*stride+7], so the caller must own them (padding,
// or values it writes afterwards: the next p's, when stride < 8).
func interleaveVec(dst, src []float32, off, ld, stride, rows, klen int) int {
	if !useAVX2() || rows < 5 || rows > 8 || stride < rows {
		return 0
	}
	blocks := klen / 8
	for blocks > 0 && (8*blocks-1)*stride+8 > len(dst) {
		blocks-- // the last store would run past dst
	}
	if blocks == 0 {
		return 0
	}
	// Bounds: the last element read and written.
	_ = src[off+(rows-1)*ld+8*blocks-1]
	_ = dst[(8*blocks-1)*stride+7]
	transpose8AVX2(&dst[0], stride, &src[off], ld, blocks, rows)
	return 8 * blocks
}

//go:noescape
func maxAVX2(x *float32, n int) float32

//go:noescape
func scaleAVX2(x *float32, n int, s float32)

func quickGELU(x []float32, simd simdLevel) {
	if simd >= simdAVX2 && len(x) >= 8 {
		n := len(x) &^ 7
		quickGELUAVX2(&x[0], n)
		x = x[n:]
	}
	quickGELUGo(x)
}

//go:noescape
func geluAVX2(x *float32, n int)

// gelu applies the exact GELU in place (see geluGo).
func gelu(x []float32, simd simdLevel) {
	if simd >= simdAVX2 && len(x) >= 8 {
		n := len(x) &^ 7
		geluAVX2(&x[0], n)
		x = x[n:]
	}
	geluGo(x)
}

// softmaxRowSIMD is softmaxRow with vector max, exp and scaling; the tail
// of fewer than 8 elements goes through a -Inf padded block.
func softmaxRowSIMD(x []float32) {
	n := len(x) &^ 7
	mx := float32(math.Inf(-1))
	if n > 0 {
		mx = maxAVX2(&x[0], n)
	}
	for _, v := range x[n:] {
		if v > mx {
			mx = v
		}
	}
	if math.IsInf(float64(mx), -1) || mx != mx {
		softmaxRowGo(x)
		return
	}
	var sum float32
	if n > 0 {
		sum = expShiftSumAVX2(&x[0], n, mx)
	}
	if tail := x[n:]; len(tail) > 0 {
		var blk [8]float32
		for i := range blk {
			blk[i] = float32(math.Inf(-1))
		}
		copy(blk[:], tail)
		sum += expShiftSumAVX2(&blk[0], 8, mx)
		copy(tail, blk[:])
	}
	inv := 1 / sum
	if n > 0 {
		scaleAVX2(&x[0], n, inv)
	}
	for i := n; i < len(x); i++ {
		x[i] *= inv
	}
}

func softmaxRow(x []float32, simd simdLevel) {
	if simd >= simdAVX2 {
		softmaxRowSIMD(x)
		return
	}
	softmaxRowGo(x)
}
