package kernels

import (
	"fmt"
	"math"
)

// bfloat16 weights: a PackedB may hold its panels as bfloat16 (the top 16
// bits of a float32, rounded to nearest even) instead of float32, halving
// the memory and bandwidth of the weights. The products still run in
// float32: each kc×nr panel is widened into a small buffer in L1 right
// before the microkernels use it (on CPUs with AVX512_BF16 or AMX a native
// bf16 product would be faster; this machine has neither).

// toBF16 rounds v to the nearest bfloat16 (ties to even); NaN stays NaN.
func toBF16(v float32) uint16 {
	b := math.Float32bits(v)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep it a (quiet) NaN
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// bf16To32Go widens n bfloat16 values of src into dst.
func bf16To32Go(dst []float32, src []uint16) {
	src = src[:len(dst)]
	for i, h := range src {
		dst[i] = math.Float32frombits(uint32(h) << 16)
	}
}

// ToBF16 returns a copy of p whose panels are bfloat16; p is unchanged.
// LinearPacked on the copy computes with the rounded weights: on CPUs with
// AVX512_BF16 in VDPBF16PS, its input rounded to bfloat16 too (see
// bf16dot.go); elsewhere in float32, the panels widened as they are used.
func (p *PackedB) ToBF16() *PackedB {
	if p.half != nil || p.q != nil || p.bp != nil {
		return p
	}
	if bf16Native() {
		return &PackedB{n: p.n, k: p.k, bp: packBF16Pairs(p.Unpack(), p.n, p.k)}
	}
	q := *p
	q.data = nil
	q.half = make([]uint16, len(p.data))
	Parallel((len(p.data)+(1<<16)-1)>>16, func(lo, hi int) {
		for i := lo << 16; i < min(hi<<16, len(p.data)); i++ {
			q.half[i] = toBF16(p.data[i])
		}
	})
	return &q
}

// BF16 reports whether p's panels are bfloat16.
func (p *PackedB) BF16() bool { return p.half != nil || p.bp != nil }

// Bytes returns the memory the packed panels take.
func (p *PackedB) Bytes() int {
	if p.q != nil {
		return len(p.q.data) + 4*len(p.q.scale)
	}
	if p.half != nil {
		return 2 * len(p.half)
	}
	if p.bp != nil {
		return 2 * len(p.bp.data)
	}
	return 4 * len(p.data)
}

// widenPanel writes the float32 form of the bf16 panel that starts at
// element off of p into dst (n values).
func (p *PackedB) widenPanel(dst []float32, off, n int) {
	if off+n > len(p.half) {
		panic(fmt.Sprintf("kernels: bf16 panel [%d,%d) of %d", off, off+n, len(p.half)))
	}
	bf16To32(dst[:n], p.half[off:off+n])
}
