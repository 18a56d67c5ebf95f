package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestRowVariants checks every microkernel, each of its row-count
// variants and its A-streaming and prefetching forms against the naive tile product, for several depths, both
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
						checkTile(t, k, depth, accum, a, b, nil, c0, c, ldc)
						if k.fnStreamA != nil {
							copy(c, c0)
							k.fnStreamA(depth, &a[0], &b[0], &c[0], ldc, accum)
							checkTile(t, k, depth, accum, a, b, nil, c0, c, ldc)
						}
						if k.fnNext != nil {
							// The prefetch address need not be mapped.
							copy(c, c0)
							k.fnNext(depth, &a[0], &b[0], &c[0], ldc, accum, 64)
							checkTile(t, k, depth, accum, a, b, nil, c0, c, ldc)
						}
					})
				}
			}
		}
	}
}

// TestBiasVariants checks each microkernel that adds a bias (fnBias,
// fnNextBias) against the naive tile product plus the bias, in both accumulate modes.
func TestBiasVariants(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	n := 0
	for _, base := range available {
		for _, k := range append([]*microKernel{base}, base.rows...) {
			if k.fnBias == nil {
				continue
			}
			n++
			for _, depth := range []int{1, 5, 64, 256} {
				for _, accum := range []int{0, 1} {
					a := randSlice(r, depth*k.mr)
					b := randSlice(r, depth*k.nr)
					bias := randSlice(r, k.nr+1)[1:] // unaligned
					ldc := k.nr + 5
					c := randSlice(r, k.mr*ldc)
					c0 := append([]float32(nil), c...)
					k.fnBias(depth, &a[0], &b[0], &c[0], ldc, accum, &bias[0])
					checkTile(t, k, depth, accum, a, b, bias, c0, c, ldc)
					if k.fnNextBias != nil {
						copy(c, c0)
						k.fnNextBias(depth, &a[0], &b[0], &c[0], ldc, accum, &bias[0], 64)
						checkTile(t, k, depth, accum, a, b, bias, c0, c, ldc)
					}
				}
			}
		}
	}
	t.Logf("%d bias kernels checked", n)
}

// TestFusedBias checks LinearPacked with the bias fused into the kernel
// against the bias added afterwards, on shapes with edge tiles.
func TestFusedBias(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	defer func() { noFusedBias = false }()
	for _, sz := range [][3]int{{1, 16, 8}, {7, 33, 300}, {50, 100, 768}, {13, 48, 513}} {
		m, n, k := sz[0], sz[1], sz[2]
		x, bias := randSlice(r, m*k), randSlice(r, n)
		w := PackLinear(randSlice(r, n*k), n, k)
		for _, epi := range []Epilogue{EpiNone, EpiQuickGELU, EpiResidual} {
			y0 := randSlice(r, m*n)
			var got [2][]float32
			for i, off := range []bool{true, false} {
				noFusedBias = off
				got[i] = append([]float32(nil), y0...)
				LinearPacked(got[i], x, w, bias, m, epi)
			}
			for i := range got[0] {
				want, v := float64(got[0][i]), float64(got[1][i])
				if math.Abs(v-want) > 1e-5*(math.Abs(want)+1) {
					t.Fatalf("%v %v: [%d] fused %v, unfused %v", sz, epi, i, v, want)
				}
			}
		}
	}
}

// checkTile compares the tile c [mr×ldc] a kernel of k's shape computed
// from packed panels a and b (depth k steps) against the naive product,
// plus bias[j] when bias is not nil and plus c0 when accum is 1; columns
// past nr must hold c0 unchanged.
func checkTile(t *testing.T, k *microKernel, depth, accum int, a, b, bias, c0, c []float32, ldc int) {
	t.Helper()
	for i := range k.mr {
		for j := range ldc {
			got := c[i*ldc+j]
			if j >= k.nr {
				if got != c0[i*ldc+j] {
					t.Fatalf("%s mr=%d: wrote outside the tile at (%d,%d)", k.name, k.mr, i, j)
				}
				continue
			}
			var s, mag float64
			if bias != nil {
				s, mag = float64(bias[j]), math.Abs(float64(bias[j]))
			}
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
				t.Fatalf("%s mr=%d k=%d accum=%d (%d,%d): got %v want %v", k.name, k.mr, depth, accum, i, j, got, s)
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
