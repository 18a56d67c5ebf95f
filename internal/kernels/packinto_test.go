package kernels

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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

// TestPackMatMul checks that a k×n matrix packed by PackMatMul is the
// packed form of its transpose (same panels as PackLinear's) on every
// kernel, and that a short matrix panics.
func TestPackMatMul(t *testing.T) {
	withKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(21, 22))
		for _, sz := range [][2]int{{1, 1}, {64, 2048}, {3, 17}, {300, 70}} {
			k, n := sz[0], sz[1]
			b := randSlice(r, k*n)
			bt := make([]float32, n*k)
			for p := range k {
				for j := range n {
					bt[j*k+p] = b[p*n+j]
				}
			}
			got, want := PackMatMul(b, k, n), PackLinear(bt, n, k)
			if !slices.Equal(got.data, want.data) || got.n != want.n || got.k != want.k {
				t.Fatalf("%d×%d: PackMatMul differs from PackLinear of the transpose", k, n)
			}
		}
		defer func() {
			if e := recover(); e == nil || !strings.Contains(fmt.Sprint(e), "PackMatMul") {
				t.Fatalf("short matrix: recovered %v, want a panic naming PackMatMul", e)
			}
		}()
		PackMatMul(make([]float32, 5), 2, 3)
	})
}
