package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestToBF16(t *testing.T) {
	for _, tc := range []struct {
		in   float32
		want uint16
	}{
		{1, 0x3f80},
		{-2, 0xc000},
		{0, 0},
		{float32(math.Inf(1)), 0x7f80},
		{float32(math.Inf(-1)), 0xff80},
		{math.Float32frombits(0x3f808000), 0x3f80}, // tie, even stays
		{math.Float32frombits(0x3f818000), 0x3f82}, // tie, odd rounds up
		{math.Float32frombits(0x3f808001), 0x3f81}, // above the tie
		{math.Float32frombits(0x7f7fffff), 0x7f80}, // max float rounds to +Inf
	} {
		if got := toBF16(tc.in); got != tc.want {
			t.Errorf("toBF16(%v = %#x) = %#x, want %#x", tc.in, math.Float32bits(tc.in), got, tc.want)
		}
	}
	if n := toBF16(float32(math.NaN())); n&0x7f80 != 0x7f80 || n&0x7f == 0 {
		t.Errorf("toBF16(NaN) = %#x, not a NaN", n)
	}
}

// TestLinearPackedBF16 checks, on every kernel and odd shapes, that a
// bf16-packed weight gives exactly the float32 product with the weight
// rounded to bfloat16 first, and that Unpack returns the rounded weight.
func TestLinearPackedBF16(t *testing.T) {
	old, _ := SetBF16Layout("widen")
	defer SetBF16Layout(old)
	r := rand.New(rand.NewPCG(5, 6))
	withKernels(t, func(t *testing.T) {
		for _, s := range []struct{ m, n, k int }{{1, 1, 1}, {5, 17, 33}, {50, 64, 300}, {7, 100, 513}, {13, 48, 256}, {50, 1203, 512}} {
			x, w := randSlice(r, s.m*s.k), randSlice(r, s.n*s.k)
			bias := randSlice(r, s.n)
			wr := make([]float32, len(w))
			for i, v := range w {
				wr[i] = math.Float32frombits(uint32(toBF16(v)) << 16)
			}
			p := PackLinear(w, s.n, s.k).ToBF16()
			if !p.BF16() || p.Bytes() != 2*PackedLen(s.n, s.k) {
				t.Fatalf("ToBF16: BF16 %v, %d bytes", p.BF16(), p.Bytes())
			}
			for _, epi := range []Epilogue{EpiNone, EpiQuickGELU, EpiResidual} {
				got := randSlice(r, s.m*s.n)
				want := append([]float32(nil), got...)
				LinearPacked(got, x, p, bias, s.m, epi)
				LinearPacked(want, x, PackLinear(wr, s.n, s.k), bias, s.m, epi)
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("%dx%dx%d %v: [%d] %v, want %v", s.m, s.n, s.k, epi, i, got[i], want[i])
					}
				}
			}
			u := p.Unpack()
			for i := range u {
				if u[i] != wr[i] {
					t.Fatalf("Unpack[%d] = %v, want %v", i, u[i], wr[i])
				}
			}
		}
	})
}
