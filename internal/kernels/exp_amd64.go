//go:build amd64 && !purego

package kernels

import "math"

//go:noescape
func quickGELUAVX2(x *float32, n int)

//go:noescape
func expShiftSumAVX2(x *float32, n int, shift float32) (sum float32)

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
