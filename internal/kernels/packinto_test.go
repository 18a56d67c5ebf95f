package kernels

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestPackLinearIntoMatchesPackLinear(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range [][2]int{{1, 1}, {7, 5}, {33, 130}, {64, 512}, {130, 257}} {
		n, k := s[0], s[1]
		w := make([]float32, n*k)
		for i := range w {
			w[i] = float32(r.NormFloat64())
		}
		want := PackLinear(w, n, k)
		buf := make([]float32, PackedLen(n, k)+3) // longer than needed is fine
		got := PackLinearInto(buf, w, n, k)
		if !slices.Equal(got.data, want.data) || got.N() != n || got.K() != k {
			t.Fatalf("%d×%d: PackLinearInto differs from PackLinear", n, k)
		}
		if &got.data[0] != &buf[0] {
			t.Errorf("%d×%d: the packed weight does not alias the buffer", n, k)
		}
		if !slices.Equal(got.Unpack(), w) {
			t.Errorf("%d×%d: Unpack does not give the weight back", n, k)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%d×%d: a short buffer was accepted", n, k)
				}
			}()
			PackLinearInto(buf[:PackedLen(n, k)-1], w, n, k)
		}()
	}
}
