package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// withSIMD runs f with each kernel selection, which also selects the
// vector helpers (exp) used by the activations.
var withSIMD = withKernels

func TestLayerNorm(t *testing.T) {
	withSIMD(t, testLayerNorm)
}

func testLayerNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, sz := range [][2]int{{1, 1}, {3, 7}, {50, 768}, {100, 1000}} {
		rows, cols := sz[0], sz[1]
		x := randSlice(r, rows*cols)
		for i := range x {
			x[i] = x[i]*3 + 5 // offset mean, as in residual streams
		}
		g, b := randSlice(r, cols), randSlice(r, cols)
		for _, gb := range [][2][]float32{{nil, nil}, {g, b}, {g, nil}, {nil, b}} {
			y := make([]float32, rows*cols)
			const eps = 1e-5
			LayerNorm(y, x, gb[0], gb[1], rows, cols, eps)
			for i := 0; i < rows; i++ {
				row := x[i*cols : i*cols+cols]
				var mean, v float64
				for _, e := range row {
					mean += float64(e)
				}
				mean /= float64(cols)
				for _, e := range row {
					v += (float64(e) - mean) * (float64(e) - mean)
				}
				v /= float64(cols)
				for j, e := range row {
					n := (float64(e) - mean) / math.Sqrt(v+eps)
					want := n
					if gb[0] != nil {
						want *= float64(gb[0][j])
					}
					if gb[1] != nil {
						want += float64(gb[1][j])
					}
					// Relative to the magnitude of the terms.
					scale := math.Abs(n) + 1
					if gb[0] != nil {
						scale *= math.Abs(float64(gb[0][j])) + 1
					}
					if gb[1] != nil {
						scale += math.Abs(float64(gb[1][j]))
					}
					if got := float64(y[i*cols+j]); math.Abs(got-want) > 1e-6*scale {
						t.Fatalf("%v g=%v b=%v: y[%d,%d] = %g, want %g", sz, gb[0] != nil, gb[1] != nil, i, j, got, want)
					}
				}
			}
		}
	}
	// In place.
	x := []float32{1, 2, 3, 4}
	LayerNorm(x, x, nil, nil, 1, 4, 0)
	want := []float32{-1.3416408, -0.4472136, 0.4472136, 1.3416408}
	for i := range x {
		if math.Abs(float64(x[i]-want[i])) > 1e-6 {
			t.Fatalf("in place: %v, want %v", x, want)
		}
	}
}

func TestSoftmaxRows(t *testing.T) {
	withSIMD(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(13, 14))
		for _, sz := range [][2]int{{1, 1}, {2, 7}, {12 * 50, 50}, {3, 1000}} {
			rows, cols := sz[0], sz[1]
			x := randSlice(r, rows*cols)
			for i := range x {
				x[i] *= 8
			}
			orig := append([]float32(nil), x...)
			SoftmaxRows(x, rows, cols)
			for i := 0; i < rows; i++ {
				row := orig[i*cols : i*cols+cols]
				mx := math.Inf(-1)
				for _, v := range row {
					mx = math.Max(mx, float64(v))
				}
				// x-max is rounded to float32, as PyTorch does.
				shifted := func(v float32) float64 { return float64(v - float32(mx)) }
				var s float64
				for _, v := range row {
					s += math.Exp(shifted(v))
				}
				for j, v := range row {
					want := math.Exp(shifted(v)) / s
					if got := float64(x[i*cols+j]); math.Abs(got-want) > 2e-6*want+1e-30 {
						t.Fatalf("%v: [%d,%d] = %g, want %g (rel %.2g)", sz, i, j, got, want, math.Abs(got-want)/want)
					}
				}
			}
		}
		// A masked (-Inf) entry gets 0; large values do not overflow.
		x := []float32{float32(math.Inf(-1)), 1000, 1000}
		SoftmaxRows(x, 1, 3)
		if x[0] != 0 || x[1] != 0.5 || x[2] != 0.5 {
			t.Fatalf("softmax(-Inf, 1000, 1000) = %v", x)
		}
	})
}

func TestActivations(t *testing.T) {
	withSIMD(t, func(t *testing.T) {
		var xs []float32
		for v := -30.0; v <= 30; v += 0.0137 {
			xs = append(xs, float32(v))
		}
		xs = append(xs, 0, -100, 100, -1e-30, 1e-30, 1e-3, -1e-3)
		for _, f := range []struct {
			name string
			fn   func([]float32)
			ref  func(float64) float64
		}{
			{"QuickGELU", QuickGELU, func(v float64) float64 { return v / (1 + math.Exp(-float64(float32(1.702)*float32(v)))) }},
			{"GELU", GELU, func(v float64) float64 { return v * 0.5 * (1 + math.Erf(v/math.Sqrt2)) }},
		} {
			got := append([]float32(nil), xs...)
			f.fn(got)
			for i, v := range xs {
				want := f.ref(float64(v))
				// Relative error, with an absolute floor where the result
				// underflows towards 0 (large negative inputs).
				if d := math.Abs(float64(got[i]) - want); d > 1e-6*math.Abs(want)+1e-30 && d > 1e-12 {
					t.Errorf("%s(%g) = %g, want %g (rel %.2g)", f.name, v, got[i], want, d/math.Abs(want))
				}
			}
		}
	})
}

func TestExpf(t *testing.T) {
	worst := 0.0
	for v := -87.0; v <= 88; v += 0.001 {
		want := math.Exp(float64(float32(v)))
		got := float64(expf(float32(v)))
		worst = math.Max(worst, math.Abs(got-want)/want)
	}
	if worst > 3e-7 {
		t.Fatalf("expf worst relative error %.3g", worst)
	}
	t.Logf("expf worst relative error %.3g", worst)
}

func TestAddScale(t *testing.T) {
	for _, n := range []int{0, 1, 5, 1 << 17} {
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = float32(i), 2
		}
		Add(a, b)
		Scale(a, 0.5)
		for i, v := range a {
			if v != (float32(i)+2)*0.5 {
				t.Fatal(fmt.Sprintf("n=%d: a[%d] = %g", n, i, v))
			}
		}
	}
}

func TestDot(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, n := range []int{0, 1, 7, 8, 9, 31, 32, 33, 64, 100, 1000} {
		a, b := randSlice(r, n), randSlice(r, n+3) // b may be longer
		var want, mag float64
		for i := range a {
			want += float64(a[i]) * float64(b[i])
			mag += math.Abs(float64(a[i]) * float64(b[i]))
		}
		for _, f := range []struct {
			name string
			fn   func(a, b []float32) float32
		}{{"Dot", Dot}, {"dotGo", dotGo}} {
			got := f.fn(a, b)
			if math.Abs(float64(got)-want) > 1e-6*math.Sqrt(float64(n)+1)*(mag+1e-30) {
				t.Errorf("%s n=%d: %g, want %g", f.name, n, got, want)
			}
		}
	}
}
