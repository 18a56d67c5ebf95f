package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// withKernels runs f once per microkernel available here, restoring the
// selection afterwards.
func withKernels(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	old := Kernel()
	defer SetKernel(old)
	for _, name := range Kernels() {
		if err := SetKernel(name); err != nil {
			t.Fatal(err)
		}
		t.Run(name, f)
	}
	// The AVX-512 kernel's 6×32 tile, in portable Go, where the CPU has
	// no AVX-512: packing, tiling and edges for 32-wide panels run here
	// too (only the assembly itself cannot; it is checked at start-up).
	if !slices.ContainsFunc(available, func(k *microKernel) bool { return k.nr == 32 }) {
		emu := &microKernel{name: "go6x32", mr: 6, nr: 32, kc: 256, mc: 144, simd: available[0].simd,
			fn: func(k int, a, b, c *float32, ldc int, accum int) { tileGo(6, 32, k, a, b, c, ldc, accum, nil) }}
		saved := available
		available = append([]*microKernel{emu}, available...)
		defer func() { available = saved }()
		if err := SetKernel(emu.name); err != nil {
			t.Fatal(err)
		}
		t.Run(emu.name, f)
	}
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// refGemm is the float64 reference: C = alpha·op(A)·op(B) + beta·C. It also
// returns Σ|alpha·a·b| per element, the scale for the error bound.
func refGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) (want, mag []float64) {
	want = make([]float64, m*n)
	mag = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
				sa += math.Abs(float64(av) * float64(bv))
			}
			w := float64(alpha) * s
			if beta != 0 {
				w += float64(beta) * float64(c[i*ldc+j])
				sa += math.Abs(float64(beta) * float64(c[i*ldc+j]))
			}
			want[i*n+j] = w
			mag[i*n+j] = math.Abs(float64(alpha))*sa + 1e-30
		}
	}
	return want, mag
}

var gemmSizes = []int{1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 127, 128, 130}

type gemmCase struct {
	transA, transB bool
	m, n, k        int
	padA, padB     int
	padC           int
	alpha, beta    float32
}

func gemmCases() []gemmCase {
	r := rand.New(rand.NewPCG(1, 2))
	var cs []gemmCase
	// Every size on each axis at least once, the rest sampled.
	for i, s := range gemmSizes {
		cs = append(cs, gemmCase{m: s, n: gemmSizes[(i*7)%len(gemmSizes)], k: gemmSizes[(i*11+3)%len(gemmSizes)], alpha: 1})
	}
	alphas := []float32{1, -0.5, 2}
	betas := []float32{0, 1, 0.25}
	for range 60 {
		cs = append(cs, gemmCase{
			transA: r.IntN(2) == 1, transB: r.IntN(2) == 1,
			m: gemmSizes[r.IntN(len(gemmSizes))], n: gemmSizes[r.IntN(len(gemmSizes))], k: gemmSizes[r.IntN(len(gemmSizes))],
			padA: r.IntN(3) * 3, padB: r.IntN(3) * 5, padC: r.IntN(3) * 2,
			alpha: alphas[r.IntN(3)], beta: betas[r.IntN(3)],
		})
	}
	// K larger than one cache block, several row blocks.
	cs = append(cs, gemmCase{m: 301, n: 77, k: 600, alpha: 1, beta: 1},
		gemmCase{transB: true, m: 50, n: 200, k: 513, padA: 1, alpha: 1})
	return cs
}

func TestSgemm(t *testing.T) {
	withKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, tc := range gemmCases() {
			name := fmt.Sprintf("%v%v_%dx%dx%d_pad%d.%d.%d_a%g_b%g", tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.padA, tc.padB, tc.padC, tc.alpha, tc.beta)
			ar, ac := tc.m, tc.k
			if tc.transA {
				ar, ac = tc.k, tc.m
			}
			br, bc := tc.k, tc.n
			if tc.transB {
				br, bc = tc.n, tc.k
			}
			lda, ldb, ldc := ac+tc.padA, bc+tc.padB, tc.n+tc.padC
			a := randSlice(r, (ar-1)*lda+ac)
			b := randSlice(r, (br-1)*ldb+bc)
			c := randSlice(r, (tc.m-1)*ldc+tc.n+tc.padC) // trailing pad must stay untouched
			orig := append([]float32(nil), c...)
			want, mag := refGemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
			Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
			tol := 1e-6 * math.Sqrt(float64(tc.k)+1)
			bad := 0
			for i := 0; i < tc.m; i++ {
				for j := 0; j < ldc; j++ {
					got := c[i*ldc+j]
					if j >= tc.n {
						if i*ldc+j < len(c) && got != orig[i*ldc+j] {
							t.Errorf("%s: padding C[%d,%d] changed", name, i, j)
							bad++
						}
						continue
					}
					w := want[i*tc.n+j]
					if e := math.Abs(float64(got)-w) / mag[i*tc.n+j]; e > tol || math.IsNaN(float64(got)) {
						if bad < 3 {
							t.Errorf("%s: C[%d,%d] = %g, want %g (rel err %.2g > %.2g)", name, i, j, got, w, e, tol)
						}
						bad++
					}
				}
			}
		}
	})
}

func TestSgemmBetaZeroIgnoresNaN(t *testing.T) {
	withKernels(t, func(t *testing.T) {
		m, n, k := 13, 37, 9
		a, b := make([]float32, m*k), make([]float32, k*n)
		for i := range a {
			a[i] = 1
		}
		for i := range b {
			b[i] = 2
		}
		c := make([]float32, m*n)
		for i := range c {
			c[i] = float32(math.NaN())
		}
		Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
		for i, v := range c {
			if v != 18 {
				t.Fatalf("C[%d] = %g, want 18", i, v)
			}
		}
	})
}

func TestSgemmKZero(t *testing.T) {
	c := []float32{1, 2, 3, 4}
	Sgemm(false, false, 2, 2, 0, 1, nil, 0, nil, 2, 0.5, c, 2)
	for i, want := range []float32{0.5, 1, 1.5, 2} {
		if c[i] != want {
			t.Fatalf("C = %v, want β·C", c)
		}
	}
}

func TestSgemmShortSlicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a short C")
		}
	}()
	Sgemm(false, false, 4, 4, 4, 1, make([]float32, 16), 4, make([]float32, 16), 4, 0, make([]float32, 15), 4)
}

func refLinear(x, w, bias []float32, m, n, k int) (want, mag []float64) {
	want = make([]float64, m*n)
	mag = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for p := 0; p < k; p++ {
				v := float64(x[i*k+p]) * float64(w[j*k+p])
				s += v
				sa += math.Abs(v)
			}
			if bias != nil {
				s += float64(bias[j])
				sa += math.Abs(float64(bias[j]))
			}
			want[i*n+j] = s
			mag[i*n+j] = sa + 1e-30
		}
	}
	return want, mag
}

func TestLinearAndMatMul(t *testing.T) {
	withKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, sz := range [][3]int{{1, 1, 1}, {50, 64, 33}, {7, 130, 300}, {65, 17, 5}} {
			m, n, k := sz[0], sz[1], sz[2]
			x, w, bias := randSlice(r, m*k), randSlice(r, n*k), randSlice(r, n)
			for _, bb := range [][]float32{nil, bias} {
				y := randSlice(r, m*n)
				Linear(y, x, w, bb, m, n, k)
				want, mag := refLinear(x, w, bb, m, n, k)
				checkClose(t, fmt.Sprintf("Linear %v bias=%v", sz, bb != nil), y, want, mag, 1e-6*math.Sqrt(float64(k)+1))
			}
			// MatMul with b = wᵀ laid out k×n.
			bt := make([]float32, k*n)
			for j := 0; j < n; j++ {
				for p := 0; p < k; p++ {
					bt[p*n+j] = w[j*k+p]
				}
			}
			c := randSlice(r, m*n)
			MatMul(c, x, bt, m, n, k)
			want, mag := refLinear(x, w, nil, m, n, k)
			checkClose(t, fmt.Sprintf("MatMul %v", sz), c, want, mag, 1e-6*math.Sqrt(float64(k)+1))
		}
	})
}

func checkClose(t *testing.T, name string, got []float32, want, mag []float64, tol float64) {
	t.Helper()
	bad := 0
	for i, w := range want {
		if e := math.Abs(float64(got[i])-w) / mag[i]; !(e <= tol) {
			if bad < 3 {
				t.Errorf("%s: [%d] = %g, want %g (rel err %.2g > %.2g)", name, i, got[i], w, e, tol)
			}
			bad++
		}
	}
}

func TestLinearPacked(t *testing.T) {
	withKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, sz := range [][3]int{{1, 3, 2}, {50, 96, 77}, {33, 65, 600}, {130, 40, 17}, {301, 70, 300}, {50, 1203, 512}} {
			m, n, k := sz[0], sz[1], sz[2]
			x, w, bias := randSlice(r, m*k), randSlice(r, n*k), randSlice(r, n)
			pw := PackLinear(w, n, k)
			for _, epi := range []Epilogue{EpiNone, EpiQuickGELU, EpiGELU, EpiResidual} {
				for _, bb := range [][]float32{nil, bias} {
					name := fmt.Sprintf("%v %v bias=%v", sz, epi, bb != nil)
					y := randSlice(r, m*n)
					res := append([]float32(nil), y...)
					LinearPacked(y, x, pw, bb, m, epi)
					want, mag := refLinear(x, w, bb, m, n, k)
					for i := range want {
						v := want[i]
						switch epi {
						case EpiQuickGELU:
							want[i] = v / (1 + math.Exp(-1.702*v))
							mag[i] = mag[i] + 1e-6 // the activation adds ~ulps
						case EpiGELU:
							want[i] = v * 0.5 * (1 + math.Erf(v/math.Sqrt2))
						case EpiResidual:
							want[i] = v + float64(res[i])
							mag[i] += math.Abs(float64(res[i]))
						}
					}
					checkClose(t, name, y, want, mag, 2e-6*math.Sqrt(float64(k)+1))
				}
			}
		}
	})
}

func TestPackedUnpack(t *testing.T) {
	withKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, sz := range [][2]int{{1, 1}, {3, 2}, {96, 77}, {65, 600}, {40, 17}, {70, 300}} {
			n, k := sz[0], sz[1]
			w := randSlice(r, n*k)
			got := PackLinear(w, n, k).Unpack()
			if len(got) != len(w) {
				t.Fatalf("%v: Unpack returned %d values, want %d", sz, len(got), len(w))
			}
			for i := range w {
				if got[i] != w[i] {
					t.Fatalf("%v: Unpack()[%d] = %g, want %g", sz, i, got[i], w[i])
				}
			}
		}
	})
}

func TestParallel(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2, 3, 8} {
		runtime.GOMAXPROCS(procs)
		for _, n := range []int{0, 1, 2, 3, 7, 64, 1000} {
			hits := make([]int32, n)
			Parallel(n, func(lo, hi int) {
				if lo >= hi {
					t.Errorf("empty chunk [%d,%d)", lo, hi)
				}
				for i := lo; i < hi; i++ {
					hits[i]++
				}
			})
			for i, h := range hits {
				if h != 1 {
					t.Fatalf("procs=%d n=%d: index %d visited %d times", procs, n, i, h)
				}
			}
		}
	}
}

func TestParallelSgemm(t *testing.T) {
	// Concurrent callers share the pool and the packing buffers.
	r := rand.New(rand.NewPCG(9, 10))
	m, n, k := 40, 70, 90
	a, b := randSlice(r, m*k), randSlice(r, k*n)
	want := make([]float32, m*n)
	MatMul(want, a, b, m, n, k)
	Parallel(8, func(lo, hi int) {
		for range hi - lo {
			c := make([]float32, m*n)
			MatMul(c, a, b, m, n, k)
			for i := range c {
				if c[i] != want[i] {
					t.Errorf("concurrent MatMul differs at %d", i)
					return
				}
			}
		}
	})
}

// TestInterleave checks the packing of rows into panels: tight (stride =
// rows, an A micro-panel) and padded; the padding may be set to zero (the
// callers clear it anyway) but nothing else.
func TestInterleave(t *testing.T) {
	withKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(17, 18))
		for _, nrows := range []int{1, 4, 5, 6, 7, 8, 13, 16, 21, 32} {
			for _, pad := range []int{0, 1, 3, 16} {
				for _, klen := range []int{1, 7, 8, 9, 16, 64, 70} {
					for _, alpha := range []float32{1, -2} {
						stride := nrows + pad
						ld := klen + 5
						off := 2
						src := randSlice(r, off+nrows*ld)
						dst := randSlice(r, klen*stride)
						orig := append([]float32(nil), dst...)
						interleave(dst, src, off, ld, nrows, stride, klen, alpha)
						for p := 0; p < klen; p++ {
							for c := 0; c < stride; c++ {
								got := dst[p*stride+c]
								if c >= nrows {
									if got != orig[p*stride+c] && got != 0 {
										t.Fatalf("nrows=%d stride=%d klen=%d: padding dst[%d,%d] = %g", nrows, stride, klen, p, c, got)
									}
									continue
								}
								if want := alpha * src[off+c*ld+p]; got != want {
									t.Fatalf("nrows=%d stride=%d klen=%d alpha=%g: dst[%d,%d] = %g, want %g", nrows, stride, klen, alpha, p, c, got, want)
								}
							}
						}
					}
				}
			}
		}
	})
}

// TestGridSplit checks how two workers share the ViT-B/32 products with
// pre-packed weights: 50 rows split by columns (each streams half the
// weights), 1600 rows by rows (each packs half of A).
func TestGridSplit(t *testing.T) {
	k := current.Load()
	if len(k.rows) == 0 {
		t.Skipf("kernel %s has no row variants; the split is tuned for the AVX2 kernel", k.name)
	}
	for _, tc := range []struct{ m, k, n, pm, pn int }{
		{50, 768, 2304, 1, 2}, {50, 3072, 768, 1, 2}, {1600, 768, 3072, 2, 1}, {1600, 3072, 768, 2, 1},
	} {
		g := gemm{kern: k.forRows(tc.m), m: tc.m, n: tc.n, k: tc.k, packed: &PackedB{}}
		if pm, pn := g.grid(2); pm != tc.pm || pn != tc.pn {
			t.Errorf("%d×%d×%d: grid %d×%d, want %d×%d", tc.m, tc.k, tc.n, pm, pn, tc.pm, tc.pn)
		}
	}
}
