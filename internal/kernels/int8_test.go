package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// quantRef quantises w[n,k] per row as PackLinearInt8 specifies (levels
// 127; PackConvInt8: its own): integers and scales.
func quantRef(w []float32, n, k int, levels float64) ([]int32, []float64) {
	q := make([]int32, n*k)
	s := make([]float64, n)
	for j := range n {
		var amax float64
		for _, v := range w[j*k : j*k+k] {
			amax = math.Max(amax, math.Abs(float64(v)))
		}
		if amax == 0 {
			continue
		}
		s[j] = float64(float32(amax / levels))
		for i, v := range w[j*k : j*k+k] {
			q[j*k+i] = int32(math.RoundToEven(float64(v) * (levels / amax)))
		}
	}
	return q, s
}

// TestLinearInt8 checks the int8 product on every kernel and odd shapes:
// exactly the integer product scaled back (to float32 rounding), within
// the quantisation's own error bound of the float32 product, the same
// bits from the assembly and the portable kernel, and every epilogue.
func TestLinearInt8(t *testing.T) {
	shapes := []struct{ m, n, k int }{{1, 1, 1}, {3, 16, 2}, {5, 17, 33}, {50, 64, 300}, {7, 100, 513}, {13, 48, 256}, {50, 203, 1025}, {61, 40, 3072}, {144 + 7, 35, 40}}
	type key struct {
		shape int
		epi   Epilogue
	}
	first := map[any][]float32{}
	withKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(8, 9))
		for si, s := range shapes {
			x, w, bias := randSlice(r, s.m*s.k), randSlice(r, s.n*s.k), randSlice(r, s.n)
			if si == 2 {
				clear(x[s.k : 2*s.k]) // a zero row
				clear(w[:s.k])        // a zero column
			}
			p := PackLinearInt8(w, s.n, s.k)
			if !p.Int8() || p.N() != s.n || p.K() != s.k {
				t.Fatalf("PackLinearInt8: Int8 %v, %d×%d", p.Int8(), p.N(), p.K())
			}
			if cols := (s.n + 15) / 16 * 16; p.Bytes() != cols*((s.k+1)&^1)+4*cols {
				t.Errorf("Bytes %d for %d×%d", p.Bytes(), s.n, s.k)
			}
			qw, sw := quantRef(w, s.n, s.k, 127)
			// The dequantised weight.
			u := p.Unpack()
			for i := range u {
				if want := float32(qw[i]) * float32(sw[i/s.k]); u[i] != want {
					t.Fatalf("%v Unpack[%d] = %v, want %v", s, i, u[i], want)
				}
			}
			// The quantised input, as LinearPacked makes it.
			qmax := qmaxFor(qblock((s.k + 1) &^ 1))
			qx := make([]int16, s.k)
			for _, epi := range []Epilogue{EpiNone, EpiQuickGELU, EpiGELU, EpiResidual} {
				b := bias
				if epi == EpiNone {
					b = nil
				}
				y0 := randSlice(r, s.m*s.n)
				got := append([]float32(nil), y0...)
				LinearPacked(got, x, p, b, s.m, epi)
				exact := make([]float32, s.m*s.n)
				for i := range s.m {
					sa := float64(quantRow(qAsm(), qx, x[i*s.k:(i+1)*s.k], qmax))
					for j := range s.n {
						var sum int64
						var mag, qmag, bound float64
						for l := range s.k {
							xv, wv := float64(x[i*s.k+l]), float64(w[j*s.k+l])
							sum += int64(qx[l]) * int64(qw[j*s.k+l])
							qmag += math.Abs(float64(qx[l]) * float64(qw[j*s.k+l]))
							mag += math.Abs(xv * wv)
							bound += math.Abs(xv)*sw[j]/2 + math.Abs(wv)*sa/2 + sa*sw[j]/4
						}
						v := float64(sum) * sa * sw[j]
						exact[i*s.n+j] = float32(v)
						if b != nil {
							v += float64(b[j])
						}
						// Against the float32 product: within the
						// quantisation bound.
						var ref float64
						for l := range s.k {
							ref += float64(x[i*s.k+l]) * float64(w[j*s.k+l])
						}
						g := float64(got[i*s.n+j])
						switch epi {
						case EpiResidual:
							g -= float64(y0[i*s.n+j])
							ref += float64(b[j])
						case EpiNone:
						default:
							continue // checked below
						}
						if epi == EpiNone {
							// Exact but for float32 rounding of the
							// sums of K blocks.
							if d := math.Abs(g - v); d > 1e-6*qmag*sa*sw[j] {
								t.Fatalf("%v: [%d,%d] %v, integer product %v", s, i, j, g, v)
							}
						} else if d := math.Abs(g - v); d > 1e-5*(mag+math.Abs(float64(b[j]))+math.Abs(float64(y0[i*s.n+j]))) {
							t.Fatalf("%v %v: [%d,%d] %v, integer product %v", s, epi, i, j, g, v)
						}
						if d := math.Abs(g - ref); d > bound+1e-5*mag+1e-6 {
							t.Fatalf("%v %v: [%d,%d] %v, float32 product %v: error %g beyond the bound %g", s, epi, i, j, g, ref, d, bound)
						}
					}
				}
				if epi == EpiQuickGELU || epi == EpiGELU {
					// The epilogue applied to the exact product.
					want := exact
					for i := range s.m {
						row := want[i*s.n : (i+1)*s.n]
						addTo(row, b)
						if epi == EpiQuickGELU {
							quickGELUGo(row)
						} else {
							geluGo(row)
						}
					}
					for i := range got {
						if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
							t.Fatalf("%v %v: [%d] %v, want %v", s, epi, i, got[i], want[i])
						}
					}
				}
				if epi != EpiQuickGELU && epi != EpiGELU { // each kernel's activations have their own last bits
					sameAsFirstKernel(t, first, key{si, epi}, got, fmt.Sprintf("%v %v", s, epi))
				}
			}
		}
	})
}

// sameAsFirstKernel records got under k the first time (the first kernel
// of withKernels) and afterwards checks that got has the same bits.
func sameAsFirstKernel(t *testing.T, first map[any][]float32, k any, got []float32, what string) {
	t.Helper()
	f, ok := first[k]
	if !ok {
		first[k] = got
		return
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(f[i]) {
			t.Fatalf("%s: [%d] %v, the first kernel gave %v", what, i, got[i], f[i])
		}
	}
}

// TestQuantRow checks the input quantisation, vectorised and portable,
// on odd lengths and special values: the same integers, within qmax,
// within half a step of the input.
func TestQuantRow(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for n := 1; n <= 70; n++ {
		for kind := range 6 {
			x := randSlice(r, n)
			switch kind {
			case 1:
				clear(x)
			case 2:
				for i := range x {
					x[i] *= 1e-40
				}
			case 3:
				x[r.IntN(n)] = nan
			case 4:
				x[r.IntN(n)] = -inf
			case 5:
				// Ties: halves of the step.
				for i := range x {
					x[i] = float32(r.IntN(41)-20) / 2
				}
				x[0] = 10
			}
			for _, qmax := range []int32{32767, 5504, 2} {
				got := make([]int16, n)
				s := quantRow(true, got, x, qmax)
				want := make([]int16, n)
				bits := absMaxBitsGo(x)
				var ws float32
				switch amax := math.Float32frombits(bits); {
				case bits >= 0x7f800000:
					ws = nan
				case amax < 0x1p-100:
				default:
					roundRowGo(want, x, float32(qmax)/amax)
					ws = amax / float32(qmax)
				}
				if math.Float32bits(s) != math.Float32bits(ws) && !(s != s && ws != ws) {
					t.Fatalf("n=%d kind %d: scale %v, want %v", n, kind, s, ws)
				}
				for i := range got {
					if got[i] != want[i] || int32(got[i]) > qmax || int32(got[i]) < -qmax {
						t.Fatalf("n=%d kind %d qmax %d: [%d] = %d, want %d", n, kind, qmax, i, got[i], want[i])
					}
					if s == s && s > 0 && math.Abs(float64(got[i])*float64(s)-float64(x[i])) > float64(s)*(0.501+math.Abs(float64(got[i]))*0x1p-22) {
						t.Fatalf("n=%d kind %d: [%d] %d·%v far from %v", n, kind, i, got[i], s, x[i])
					}
				}
			}
		}
	}
}

// TestLinearInt8Extremes: the largest sums do not overflow, and an
// infinite or NaN input row gives NaN outputs.
func TestLinearInt8Extremes(t *testing.T) {
	withKernels(t, func(t *testing.T) {
		for _, k := range []int{1, 767, 3072, 4096, qkMax} {
			x := make([]float32, 2*k)
			w := make([]float32, 3*k)
			for i := range x {
				x[i] = 1
			}
			for i := range w {
				w[i] = -1
			}
			x[k] = float32(math.Inf(1))
			p := PackLinearInt8(w, 3, k)
			y := make([]float32, 6)
			LinearPacked(y, x, p, nil, 2, EpiNone)
			for j := range 3 {
				if d := math.Abs(float64(y[j]) + float64(k)); d > 1e-6*float64(k) {
					t.Fatalf("k=%d: %v, want %d", k, y[j], -k)
				}
				if !math.IsNaN(float64(y[3+j])) {
					t.Fatalf("k=%d: infinite input gave %v, want NaN", k, y[3+j])
				}
			}
		}
	})
	if CanInt8(qkMax+1) || CanInt8(0) {
		t.Error("CanInt8 accepts out-of-range depths")
	}
}

func ExamplePackedB_ToInt8() {
	w := []float32{0.5, -1, 0.25, 2} // 2 outputs × 2 inputs
	p := PackLinear(w, 2, 2).ToInt8()
	y := make([]float32, 2)
	LinearPacked(y, []float32{1, 1}, p, nil, 1, EpiNone)
	fmt.Printf("%.3f %.3f\n", y[0], y[1])
	// Output: -0.496 2.252
}

// BenchmarkLinearInt8 times LinearPacked on the benchmark shapes with the
// float32 weight and with its int8 copy, side by side (GFLOP/s counts the
// multiply-adds as two operations either way).
func BenchmarkLinearInt8(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		x, w, y := randSlice(r, s.m*s.k), randSlice(r, s.n*s.k), make([]float32, s.m*s.n)
		bias := randSlice(r, s.n)
		pw := PackLinear(w, s.n, s.k)
		qw := pw.ToInt8()
		for _, threads := range []int{1, 2} {
			for _, v := range []struct {
				name string
				p    *PackedB
			}{{"fp32", pw}, {"int8", qw}} {
				b.Run(fmt.Sprintf("%s/threads=%d/%s", s.name, threads, v.name), func(b *testing.B) {
					defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
					benchGemm(b, s.m, s.n, s.k, func() { LinearPacked(y, x, v.p, bias, s.m, EpiNone) })
				})
			}
		}
	}
}

// TestInt8KernelsAgree runs the int8 products (linear layers and 1×1
// convolutions, odd shapes, every row count of the microkernels) with
// the VPDPWSSD kernels and with the VPMADDWD ones and checks that they
// give the same bits. It needs a CPU with AVX512_VNNI and AVX512VL.
func TestInt8KernelsAgree(t *testing.T) {
	if Int8Kernel() != "vnni" {
		t.Skipf("int8 kernel here is %q, not \"vnni\": this CPU has no AVX512_VNNI (or AVX512VL), so the VPDPWSSD kernels cannot run here", Int8Kernel())
	}
	defer setVNNI(true)
	r := rand.New(rand.NewPCG(5, 6))
	for _, s := range []struct{ m, n, k int }{{1, 1, 1}, {2, 17, 3}, {3, 33, 70}, {4, 16, 512}, {5, 40, 513}, {6, 64, 1025}, {50, 100, 768}, {13, 48, 3072}} {
		x, w, bias := randSlice(r, s.m*s.k), randSlice(r, s.n*s.k), randSlice(r, s.n)
		p := PackLinearInt8(w, s.n, s.k)
		var got [2][]float32
		for i, vnni := range []bool{false, true} {
			got[i] = make([]float32, s.m*s.n)
			setVNNI(vnni)
			LinearPacked(got[i], x, p, bias, s.m, EpiQuickGELU)
		}
		for i := range got[0] {
			if math.Float32bits(got[0][i]) != math.Float32bits(got[1][i]) {
				t.Fatalf("linear %v: [%d] VPMADDWD %v, VPDPWSSD %v", s, i, got[0][i], got[1][i])
			}
		}
	}
	for _, s := range []struct{ batch, hw, in, out int }{{1, 49, 64, 20}, {2, 17, 300, 13}, {1, 196, 1025, 40}} {
		x, w, bias := randSlice(r, s.batch*s.in*s.hw), randSlice(r, s.out*s.in), randSlice(r, s.out)
		c := PackConvInt8(w, s.out, s.in)
		var got [2][]float32
		for i, vnni := range []bool{false, true} {
			got[i] = make([]float32, s.batch*s.out*s.hw)
			setVNNI(vnni)
			c.Forward(got[i], x, s.batch, s.hw, 1, bias, ConvBiasReLU)
		}
		for i := range got[0] {
			if math.Float32bits(got[0][i]) != math.Float32bits(got[1][i]) {
				t.Fatalf("conv %v: [%d] VPMADDWD %v, VPDPWSSD %v", s, i, got[0][i], got[1][i])
			}
		}
	}
}
