package kernels

import (
	"math"
	"testing"
)

// TestGELUDense sweeps the exact GELU over [-14, 14] in steps of ~1e-5 on
// every path and bounds its error against float64 math.Erf: 5e-7 relative
// (PyTorch's own float32 GELU rounds x/√2 first, which alone costs up to
// ~1e-6 relative in the tail).
func TestGELUDense(t *testing.T) {
	withSIMD(t, func(t *testing.T) {
		const n = 2_800_001
		xs := make([]float32, n)
		for i := range xs {
			xs[i] = float32(-14 + 28*float64(i)/float64(n-1))
		}
		got := append([]float32(nil), xs...)
		GELU(got)
		worst, at := 0.0, float32(0)
		for i, v := range xs {
			// erfc keeps the tail that 1+erf rounds away in float64.
			want := float64(v) * 0.5 * math.Erfc(-float64(v)/math.Sqrt2)
			d := math.Abs(float64(got[i]) - want)
			if math.Abs(want) < 1e-36 { // below float32's normal range
				if d > 1e-36 {
					t.Fatalf("GELU(%g) = %g, want %g", v, got[i], want)
				}
				continue
			}
			if r := d / math.Abs(want); r > worst {
				worst, at = r, v
			}
		}
		t.Logf("worst relative error %.3g at x=%g", worst, at)
		if worst > 5e-7 {
			t.Errorf("GELU worst relative error %.3g at x=%g, want ≤ 5e-7", worst, at)
		}
	})
}
