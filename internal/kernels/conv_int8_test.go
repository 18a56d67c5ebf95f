package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestConvInt8 checks integer 1×1 convolutions on every kernel, odd shapes
// and every epilogue: the exact integer product scaled back (to float32
// rounding), within the quantisation's error bound of the float32
// convolution, and the same bits from the assembly and portable kernels.
func TestConvInt8(t *testing.T) {
	shapes := []struct{ batch, hw, in, out int }{
		{1, 1, 1, 1}, {1, 49, 64, 20}, {2, 49, 33, 7}, {3, 7, 300, 13}, {1, 196, 1025, 40}, {2, 16, 2, 6}, {1, 17, 48, 150},
	}
	// At least two workers, so that the larger shapes are split on any
	// machine.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0))))
	first := map[any][]float32{}
	withKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for si, s := range shapes {
			x := randSlice(r, s.batch*s.in*s.hw)
			w := randSlice(r, s.out*s.in)
			bias := randSlice(r, s.out)
			if si == 1 {
				for ch := range s.in {
					x[ch*s.hw+3] = 0 // a zero pixel
				}
				clear(w[:s.in]) // a zero channel
			}
			c := PackConvInt8(w, s.out, s.in)
			if !c.Int8() {
				t.Fatal("Int8() false")
			}
			qmax := float64(convQmax(qblock((s.in + 1) &^ 1)))
			qw, sw := quantRef(w, s.out, s.in, qmax)
			// Per pixel quantisation, as the convolution makes it.
			n := s.batch * s.hw
			qx := make([]float64, n*s.in)
			sx := make([]float64, n)
			for g := range n {
				b, p := g/s.hw, g%s.hw
				var amax float32
				for ch := range s.in {
					amax = max(amax, float32(math.Abs(float64(x[(b*s.in+ch)*s.hw+p]))))
				}
				if amax == 0 {
					continue
				}
				sx[g] = float64(amax / float32(qmax))
				inv := float32(qmax) / amax
				for ch := range s.in {
					qx[g*s.in+ch] = math.RoundToEven(float64(x[(b*s.in+ch)*s.hw+p] * inv))
				}
			}
			for _, epi := range []ConvEpilogue{ConvBias, ConvBiasReLU, ConvResidualReLU} {
				y0 := randSlice(r, s.batch*s.out*s.hw)
				got := append([]float32(nil), y0...)
				if oh, ow := c.Forward(got, x, s.batch, 1, s.hw, bias, epi); oh != 1 || ow != s.hw {
					t.Fatalf("Forward returned %d×%d", oh, ow)
				}
				for g := range n {
					b, p := g/s.hw, g%s.hw
					for o := range s.out {
						var sum, qmag, mag, ref, bound float64
						for ch := range s.in {
							xv, wv := float64(x[(b*s.in+ch)*s.hw+p]), float64(w[o*s.in+ch])
							sum += qx[g*s.in+ch] * float64(qw[o*s.in+ch])
							qmag += math.Abs(qx[g*s.in+ch] * float64(qw[o*s.in+ch]))
							mag += math.Abs(xv * wv)
							ref += xv * wv
							bound += math.Abs(xv)*sw[o]/2 + math.Abs(wv)*sx[g]/2 + sw[o]*sx[g]/4
						}
						exact := sum*sw[o]*sx[g] + float64(bias[o])
						ref += float64(bias[o])
						i := (b*s.out+o)*s.hw + p
						extra := math.Abs(float64(bias[o]))
						if epi == ConvResidualReLU {
							exact += float64(y0[i])
							ref += float64(y0[i])
							extra += math.Abs(float64(y0[i]))
						}
						if epi != ConvBias {
							exact, ref = max(exact, 0), max(ref, 0)
						}
						v := float64(got[i])
						// Exact but for float32 rounding (scaling, K
						// block sums, bias and residual adds).
						if d := math.Abs(v - exact); d > 2e-6*(qmag*sw[o]*sx[g]+extra) {
							t.Fatalf("%+v %v: y[%d] = %v, integer product %v", s, epi, i, v, exact)
						}
						if d := math.Abs(v - ref); d > bound+1e-5*(mag+extra)+1e-6 {
							t.Fatalf("%+v %v: y[%d] = %v, float32 convolution %v: error %g beyond the bound %g", s, epi, i, v, ref, d, bound)
						}
					}
				}
				sameAsFirstKernel(t, first, [2]int{si, int(epi)}, got, fmt.Sprintf("%+v %v", s, epi))
			}
		}
	})
}

// BenchmarkConvInt8RN50 times RN50's 1×1 convolutions at batch 1 and 32
// with float32 and with int8 weights, side by side.
func BenchmarkConvInt8RN50(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range []struct {
		name        string
		in, out, hw int
	}{
		{"l1c1_256x64_56", 256, 64, 56},
		{"l1c3_64x256_56", 64, 256, 56},
		{"l3c1_1024x256_14", 1024, 256, 14},
		{"l3c3_256x1024_14", 256, 1024, 14},
		{"l4c1_2048x512_7", 2048, 512, 7},
		{"l4c3_512x2048_7", 512, 2048, 7},
	} {
		w := randSlice(r, s.out*s.in)
		fc, qc := PackConv(w, s.out, s.in, 1, 1, 0), PackConvInt8(w, s.out, s.in)
		bias := randSlice(r, s.out)
		for _, batch := range []int{1, 32} {
			x := randSlice(r, batch*s.hw*s.hw*s.in)
			y := make([]float32, batch*s.hw*s.hw*s.out)
			for _, threads := range []int{1, 2} {
				for _, v := range []struct {
					name string
					c    *Conv
				}{{"fp32", fc}, {"int8", qc}} {
					b.Run(fmt.Sprintf("%s/batch=%d/threads=%d/%s", s.name, batch, threads, v.name), func(b *testing.B) {
						defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
						benchGemm(b, batch*s.hw*s.hw, s.out, s.in, func() { v.c.Forward(y, x, batch, s.hw, s.hw, bias, ConvBiasReLU) })
					})
				}
			}
		}
	}
}

// TestConvInt8Extremes: the largest sums do not overflow (every weight and
// input at its largest level), and a NaN pixel gives NaN outputs there
// only.
func TestConvInt8Extremes(t *testing.T) {
	withKernels(t, func(t *testing.T) {
		for _, in := range []int{1, 3, 256, 2048, 4095} {
			const hw, out = 20, 7
			w := make([]float32, out*in)
			for i := range w {
				w[i] = -2
			}
			x := make([]float32, in*hw)
			for i := range x {
				x[i] = 3
			}
			x[5] = float32(math.NaN()) // pixel 5, channel 0
			y := make([]float32, out*hw)
			PackConvInt8(w, out, in).Forward(y, x, 1, 1, hw, nil, ConvBias)
			for o := range out {
				for p := range hw {
					v := y[o*hw+p]
					if p == 5 {
						if !math.IsNaN(float64(v)) {
							t.Fatalf("in=%d: NaN pixel gave %v", in, v)
						}
						continue
					}
					if d := math.Abs(float64(v) + 6*float64(in)); d > 1e-5*6*float64(in) {
						t.Fatalf("in=%d: y[%d,%d] = %v, want %d", in, o, p, v, -6*in)
					}
				}
			}
		}
	})
}
