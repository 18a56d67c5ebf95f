package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestRowVariants checks every microkernel and each of its row-count
// variants against the naive tile product, for several depths, both
// accumulate modes and a row stride wider than the tile.
func TestRowVariants(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, base := range available {
		for _, k := range append([]*microKernel{base}, base.rows...) {
			for _, depth := range []int{1, 2, 3, 4, 5, 7, 8, 9, 64, 255, 256} {
				for _, accum := range []int{0, 1} {
					t.Run(fmt.Sprintf("%s/mr=%d/k=%d/accum=%d", base.name, k.mr, depth, accum), func(t *testing.T) {
						a := randSlice(r, depth*k.mr)
						b := randSlice(r, depth*k.nr)
						ldc := k.nr + 3
						c := randSlice(r, k.mr*ldc)
						c0 := append([]float32(nil), c...)
						k.fn(depth, &a[0], &b[0], &c[0], ldc, accum)
						for i := range k.mr {
							for j := range ldc {
								got := c[i*ldc+j]
								if j >= k.nr {
									if got != c0[i*ldc+j] {
										t.Fatalf("wrote outside the tile at (%d,%d)", i, j)
									}
									continue
								}
								var s, mag float64
								for p := range depth {
									v := float64(a[p*k.mr+i]) * float64(b[p*k.nr+j])
									s += v
									mag += math.Abs(v)
								}
								if accum == 1 {
									s += float64(c0[i*ldc+j])
									mag += math.Abs(float64(c0[i*ldc+j]))
								}
								if d := math.Abs(float64(got) - s); d > 1e-5*(mag+1e-30) {
									t.Fatalf("(%d,%d): got %v want %v", i, j, got, s)
								}
							}
						}
					})
				}
			}
		}
	}
}

// TestForRows checks the variant choice on the shapes that matter.
func TestForRows(t *testing.T) {
	for _, k := range available {
		if len(k.rows) == 0 {
			continue
		}
		for _, tc := range []struct{ m, want int }{{1, 1}, {2, 2}, {6, 6}, {50, 5}, {1600, 6}, {12, 6}} {
			if got := k.forRows(tc.m).mr; got != tc.want {
				t.Errorf("%s.forRows(%d).mr = %d, want %d", k.name, tc.m, got, tc.want)
			}
		}
	}
}
