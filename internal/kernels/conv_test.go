package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
)

// refConv is the float64 reference convolution on NCHW tensors: it returns
// epi(conv(x) + bias (+ res)) (NCHW) and the magnitude Σ|terms| of each
// output for the tolerance.
func refConv(x, w, bias, res []float32, batch, in, h, wd, out, k, stride, pad int, epi ConvEpilogue) (want, mag []float64) {
	oh, ow := (h+2*pad-k)/stride+1, (wd+2*pad-k)/stride+1
	want = make([]float64, batch*oh*ow*out)
	mag = make([]float64, len(want))
	for b := range batch {
		for oy := range oh {
			for ox := range ow {
				for o := range out {
					var s, a float64
					if bias != nil {
						s, a = float64(bias[o]), math.Abs(float64(bias[o]))
					}
					for ci := range in {
						for ky := range k {
							for kx := range k {
								iy, ix := oy*stride-pad+ky, ox*stride-pad+kx
								if iy < 0 || iy >= h || ix < 0 || ix >= wd {
									continue
								}
								v := float64(x[((b*in+ci)*h+iy)*wd+ix]) * float64(w[((o*in+ci)*k+ky)*k+kx])
								s += v
								a += math.Abs(v)
							}
						}
					}
					i := ((b*out+o)*oh+oy)*ow + ox
					if epi == ConvResidualReLU {
						s += float64(res[i])
						a += math.Abs(float64(res[i]))
					}
					if epi != ConvBias {
						s = math.Max(s, 0)
					}
					want[i], mag[i] = s, a+1e-30
				}
			}
		}
	}
	return want, mag
}

func TestConv(t *testing.T) {
	cases := []struct {
		batch, in, h, w, out, k, stride, pad int
	}{
		{1, 1, 1, 1, 1, 1, 1, 0},
		{2, 3, 9, 7, 5, 3, 2, 1},     // a stem: strided 3×3 with padding
		{1, 17, 11, 13, 33, 3, 1, 1}, // odd channels
		{3, 8, 6, 6, 19, 1, 1, 0},    // direct 1×1
		{2, 5, 7, 9, 7, 1, 2, 0},     // strided 1×1
		{1, 4, 8, 5, 6, 5, 1, 2},
		{2, 2, 3, 3, 3, 3, 1, 3},      // padding wider than the image
		{1, 70, 10, 10, 130, 3, 1, 1}, // several K blocks, odd rows
		{1, 3, 40, 37, 4, 3, 1, 1},    // several pixel blocks, rows across panels
		{2, 300, 5, 5, 7, 1, 1, 0},    // 1×1 over several K blocks
		{1, 33, 18, 18, 200, 3, 1, 1}, // channel blocks split across workers
		{1, 40, 28, 28, 50, 1, 1, 0},  // shared packing: 4 pixel blocks of 196
		{1, 40, 23, 23, 50, 1, 1, 0},  // shared packing, a partial last panel
		// One pixel block that each worker packs for itself (own).
		{1, 700, 14, 14, 40, 1, 1, 0}, // three K blocks, 196 pixels
		{3, 300, 7, 7, 31, 1, 1, 0},   // 147 pixels of three images, odd rows
		{1, 64, 13, 13, 30, 3, 2, 1},  // strided 3×3: 49 pixels, gathers
		{3, 4, 23, 21, 5, 3, 2, 1},    // strided 3×3: pixel blocks that start mid-row and mid-image
	}
	// At least two workers, so that the shared and own packings are
	// taken on any machine.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0))))
	r := rand.New(rand.NewPCG(4, 5))
	withKernels(t, func(t *testing.T) {
		for _, c := range cases {
			x := randSlice(r, c.batch*c.in*c.h*c.w)
			w := randSlice(r, c.out*c.in*c.k*c.k)
			bias := randSlice(r, c.out)
			pc := PackConv(w, c.out, c.in, c.k, c.stride, c.pad)
			oh, ow := pc.OutSize(c.h), pc.OutSize(c.w)
			for _, epi := range []ConvEpilogue{ConvBias, ConvBiasReLU, ConvResidualReLU} {
				name := fmt.Sprintf("%+v/epi=%d", c, epi)
				res := randSlice(r, c.batch*oh*ow*c.out)
				y := append([]float32(nil), res...)
				gh, gw := pc.Forward(y, x, c.batch, c.h, c.w, bias, epi)
				if gh != oh || gw != ow {
					t.Fatalf("%s: output %d×%d, want %d×%d", name, gh, gw, oh, ow)
				}
				want, mag := refConv(x, w, bias, res, c.batch, c.in, c.h, c.w, c.out, c.k, c.stride, c.pad, epi)
				checkClose(t, name, y, want, mag, 1e-5)
			}
		}
	})
}

func TestConvNoBias(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 7))
	x, w := randSlice(r, 2*3*5*5), randSlice(r, 4*3*9)
	pc := PackConv(w, 4, 3, 3, 1, 1)
	y := make([]float32, 2*5*5*4)
	pc.Forward(y, x, 2, 5, 5, nil, ConvBias)
	want, mag := refConv(x, w, nil, nil, 2, 3, 5, 5, 4, 3, 1, 1, ConvBias)
	checkClose(t, "nobias", y, want, mag, 1e-5)
}

func TestConvBadInputPanics(t *testing.T) {
	pc := PackConv(make([]float32, 2*3*9), 2, 3, 3, 1, 1)
	for name, f := range map[string]func(){
		"short weight": func() { PackConv(make([]float32, 5), 2, 3, 3, 1, 1) },
		"zero stride":  func() { PackConv(make([]float32, 54), 2, 3, 3, 0, 1) },
		"short x":      func() { pc.Forward(make([]float32, 50), make([]float32, 10), 1, 5, 5, nil, ConvBias) },
		"short y":      func() { pc.Forward(make([]float32, 10), make([]float32, 75), 1, 5, 5, nil, ConvBias) },
		"short bias":   func() { pc.Forward(make([]float32, 50), make([]float32, 75), 1, 5, 5, []float32{1}, ConvBias) },
		"bad epilogue": func() { pc.Forward(make([]float32, 50), make([]float32, 75), 1, 5, 5, nil, ConvEpilogue(9)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestBiasAct(t *testing.T) {
	withKernels(t, func(t *testing.T) {
		simd := current.Load().simd
		for _, n := range []int{0, 1, 7, 8, 9, 31, 100} {
			for _, relu := range []bool{false, true} {
				x := make([]float32, n)
				for i := range x {
					x[i] = float32(i%7) - 3
				}
				if n > 2 {
					x[1] = float32(math.NaN())
				}
				want := append([]float32(nil), x...)
				biasActGo(want, 0.5, relu)
				biasAct(x, 0.5, relu, simd)
				for i := range x {
					if math.Float32bits(x[i]) != math.Float32bits(want[i]) {
						t.Fatalf("n=%d relu=%v: x[%d] = %g, want %g", n, relu, i, x[i], want[i])
					}
				}
			}
		}
	})
}

// BenchmarkConvRN50 times the convolutions of RN50's image tower at batch
// 1 (weights packed), reporting GFLOP/s (and per CPU-second on one
// thread, robust on a busy machine).
func BenchmarkConvRN50(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range []struct {
		name                   string
		in, out, k, stride, hw int
	}{
		{"stem2_32x32x3_112", 32, 32, 3, 1, 112},
		{"stem3_32x64x3_112", 32, 64, 3, 1, 112},
		{"l1c1_256x64x1_56", 256, 64, 1, 1, 56},
		{"l1c2_64x64x3_56", 64, 64, 3, 1, 56},
		{"l1c3_64x256x1_56", 64, 256, 1, 1, 56},
		{"l2c2_128x128x3_56", 128, 128, 3, 1, 56},
		{"l3c2_256x256x3_14", 256, 256, 3, 1, 14},
		{"l3c1_1024x256x1_14", 1024, 256, 1, 1, 14},
		{"l3c3_256x1024x1_14", 256, 1024, 1, 1, 14},
		{"l4c2_512x512x3_7", 512, 512, 3, 1, 7},
		{"l4c1_2048x512x1_7", 2048, 512, 1, 1, 7},
		{"l4c3_512x2048x1_7", 512, 2048, 1, 1, 7},
	} {
		pad := s.k / 2
		pc := PackConv(randSlice(r, s.out*s.in*s.k*s.k), s.out, s.in, s.k, s.stride, pad)
		x := randSlice(r, s.hw*s.hw*s.in)
		oh := pc.OutSize(s.hw)
		y := make([]float32, oh*oh*s.out)
		bias := randSlice(r, s.out)
		for _, threads := range []int{1, 2} {
			for _, wino := range []bool{true, false} {
				algo := "direct"
				if a := pc.winoAlgo(s.hw, s.hw); a != nil {
					algo = fmt.Sprintf("winograd%d", a.tile)
				} else if !wino {
					continue
				}
				if !wino {
					algo = "direct"
				}
				b.Run(fmt.Sprintf("%s/threads=%d/%s", s.name, threads, algo), func(b *testing.B) {
					defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
					defer SetWinograd(SetWinograd(wino))
					benchGemm(b, oh*oh, s.out, s.in*s.k*s.k, func() { pc.Forward(y, x, 1, s.hw, s.hw, bias, ConvBiasReLU) })
				})
			}
		}
	}
}

// TestWinograd checks the Winograd paths of 3×3 convolutions against the
// float64 reference (within 3e-5 of Σ|terms|; the direct product 1e-5), on
// maps that are and are not whole 4×4 tiles, over
// several K blocks, output blocks and tile chunks, with every epilogue,
// on every kernel; that an image's output is the same bits alone as in a
// batch; and reports its error beside the direct product's.
func TestWinograd(t *testing.T) {
	type tcase struct {
		batch, in, h, w, out int
		x, w9, bias, res     []float32
		want, mag            []float64 // conv + bias
	}
	cases := []*tcase{
		// F(2×2, 3×3): maps of fewer than 16 4×4 tiles.
		{batch: 4, in: 17, h: 7, w: 7, out: 33},
		{batch: 3, in: 5, h: 9, w: 11, out: 6},     // partial tiles
		{batch: 2, in: 600, h: 8, w: 8, out: 20},   // several K blocks
		{batch: 1, in: 512, h: 7, w: 7, out: 40},   // RN50's last stage
		{batch: 1, in: 40, h: 10, w: 12, out: 200}, // output blocks split across workers
		// F(4×4, 3×3).
		{batch: 4, in: 1, h: 16, w: 16, out: 1},
		{batch: 6, in: 3, h: 17, w: 15, out: 5}, // partial tiles in both directions
		{batch: 2, in: 17, h: 13, w: 19, out: 33},
		{batch: 1, in: 64, h: 16, w: 16, out: 64},
		{batch: 8, in: 8, h: 16, w: 14, out: 19},
		{batch: 2, in: 600, h: 16, w: 16, out: 20}, // several K blocks
		{batch: 1, in: 40, h: 56, w: 56, out: 13},  // many panels
		{batch: 4, in: 300, h: 14, w: 14, out: 70}, // several tile chunks
		{batch: 1, in: 33, h: 18, w: 18, out: 200}, // output blocks split across workers
		// One panel: the input transform split into channel parts
		// that cross K blocks (175 channels each, blocks of 234).
		{batch: 1, in: 700, h: 7, w: 7, out: 24},
		{batch: 1, in: 130, h: 14, w: 14, out: 20}, // F(4×4), four parts
	}
	// At least two workers, so that work is split on any machine.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0))))
	r := rand.New(rand.NewPCG(8, 9))
	for _, c := range cases {
		c.x = randSlice(r, c.batch*c.in*c.h*c.w)
		c.w9 = randSlice(r, c.out*c.in*9)
		c.bias = randSlice(r, c.out)
		c.res = randSlice(r, c.batch*c.h*c.w*c.out)
		c.want, c.mag = refConv(c.x, c.w9, c.bias, nil, c.batch, c.in, c.h, c.w, c.out, 3, 1, 1, ConvBias)
	}
	withKernels(t, func(t *testing.T) {
		for _, c := range cases {
			pc := PackConv(c.w9, c.out, c.in, 3, 1, 1)
			a := pc.winoAlgo(c.h, c.w)
			if a == nil {
				if winoVector(pc.kern) || pc.kern == goKernel || min(c.in, c.out) >= winoScalarMinChannels {
					t.Fatalf("%dx%d: Winograd path not taken", c.h, c.w)
				}
				continue // too few channels for scalar transforms here
			}
			for _, epi := range []ConvEpilogue{ConvBias, ConvBiasReLU, ConvResidualReLU} {
				name := fmt.Sprintf("F(%d)/batch=%d in=%d %dx%d out=%d/epi=%d", a.tile, c.batch, c.in, c.h, c.w, c.out, epi)
				want := make([]float64, len(c.want))
				mag := make([]float64, len(c.mag))
				for i, v := range c.want {
					mag[i] = c.mag[i]
					switch epi {
					case ConvBiasReLU:
						v = math.Max(v, 0)
					case ConvResidualReLU:
						v = math.Max(v+float64(c.res[i]), 0)
						mag[i] += math.Abs(float64(c.res[i]))
					}
					want[i] = v
				}
				errs := [2]float64{}
				for i, on := range []bool{true, false} {
					y := append([]float32(nil), c.res...)
					was := SetWinograd(on)
					pc.Forward(y, c.x, c.batch, c.h, c.w, c.bias, epi)
					SetWinograd(was)
					// The transforms' constants (up to 8 and 1/24) cost
					// F(4×4) a few times the direct product's rounding:
					// 2e-6 of Σ|terms| with many channels, up to 1.3e-5
					// with one.
					tol := 1e-5
					if on {
						tol = 3e-5
					}
					checkClose(t, fmt.Sprintf("%s/winograd=%v", name, on), y, want, mag, tol)
					for k, v := range y {
						errs[i] = math.Max(errs[i], math.Abs(float64(v)-want[k])/mag[k])
					}
					if !on {
						continue
					}
					// Whole tiles stored by the assembly or through the
					// buffer: the same bits.
					buf := append([]float32(nil), c.res...)
					winoNoStore = true
					pc.Forward(buf, c.x, c.batch, c.h, c.w, c.bias, epi)
					winoNoStore = false
					for k, v := range buf {
						if math.Float32bits(v) != math.Float32bits(y[k]) {
							t.Fatalf("%s: [%d] = %g through the buffer, %g stored directly", name, k, v, y[k])
						}
					}
					if c.batch == 1 {
						continue
					}
					// The last image alone: the same bits.
					per := c.out * c.h * c.w
					one := append([]float32(nil), c.res[(c.batch-1)*per:]...)
					pc.Forward(one, c.x[(c.batch-1)*c.in*c.h*c.w:], 1, c.h, c.w, c.bias, epi)
					for k, v := range one {
						if math.Float32bits(v) != math.Float32bits(y[(c.batch-1)*per+k]) {
							t.Fatalf("%s: last image alone [%d] = %g, in the batch %g", name, k, v, y[(c.batch-1)*per+k])
						}
					}
				}
				if epi == ConvBias {
					t.Logf("%s: max error / Σ|terms|: Winograd %.2g, direct %.2g", name, errs[0], errs[1])
				}
			}
		}
	})
}

// TestWinogradAlgo checks which shapes take which Winograd algorithm and
// which stay direct (not 3×3 stride 1 padding 1, or fewer than
// winoMinTiles 2×2 tiles per image), whatever the batch.
func TestWinogradAlgo(t *testing.T) {
	for _, c := range []struct{ k, stride, pad, h, w, tile int }{
		{3, 1, 1, 224, 224, 4},
		{3, 1, 1, 56, 56, 4},
		{3, 1, 1, 14, 14, 4},
		{3, 1, 1, 13, 16, 4},
		{3, 1, 1, 12, 12, 2},
		{3, 1, 1, 7, 7, 2},
		{3, 1, 1, 8, 8, 2},
		{3, 1, 1, 8, 6, 0},
		{3, 1, 1, 6, 6, 0},
		{3, 1, 1, 5, 5, 0},
		{3, 2, 1, 56, 56, 0},
		{1, 1, 0, 56, 56, 0},
		{3, 1, 0, 56, 56, 0},
		{5, 1, 2, 56, 56, 0},
	} {
		// 256 channels: enough for any kernel's transforms.
		pc := PackConv(make([]float32, 256*256*c.k*c.k), 256, 256, c.k, c.stride, c.pad)
		tile := 0
		if a := pc.winoAlgo(c.h, c.w); a != nil {
			tile = a.tile
		}
		if tile != c.tile {
			t.Errorf("%+v: F(%d×%d) taken (0: direct)", c, tile, tile)
		}
	}
	// An assembly product without vector transforms (arm64): Winograd
	// only from 256 channels.
	for _, c := range []struct{ in, out, tile int }{{64, 64, 0}, {128, 256, 0}, {256, 256, 4}, {512, 300, 4}} {
		pc := PackConv(make([]float32, c.out*c.in*9), c.out, c.in, 3, 1, 1)
		k := *pc.kern
		k.simd = simdNone
		pc.kern = &k
		tile := 0
		if a := pc.winoAlgo(56, 56); a != nil {
			tile = a.tile
		}
		if tile != c.tile {
			t.Errorf("scalar transforms, %d→%d channels: F(%d×%d) taken (0: direct)", c.in, c.out, tile, tile)
		}
	}
}

// TestWinogradConcurrentFirstUse runs a fresh convolution from several
// goroutines at once, so that they race to transform its weights (one
// does, the others wait), and checks every result against a sequential
// run; under -race (.ci/run) it also checks the transform's publication.
func TestWinogradConcurrentFirstUse(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 11))
	const batch, in, out, hw = 1, 256, 256, 16 // 256: Winograd on every kernel
	w := randSlice(r, out*in*9)
	x := randSlice(r, batch*in*hw*hw)
	want := make([]float32, batch*out*hw*hw)
	PackConv(w, out, in, 3, 1, 1).Forward(want, x, batch, hw, hw, nil, ConvBiasReLU)
	pc := PackConv(w, out, in, 3, 1, 1)
	if pc.winoAlgo(hw, hw) == nil {
		t.Fatal("Winograd path not taken")
	}
	const n = 4
	got := make([][]float32, n)
	var wg sync.WaitGroup
	for i := range n {
		got[i] = make([]float32, len(want))
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc.Forward(got[i], x, batch, hw, hw, nil, ConvBiasReLU)
		}()
	}
	wg.Wait()
	for i := range n {
		for k := range want {
			if math.Float32bits(got[i][k]) != math.Float32bits(want[k]) {
				t.Fatalf("goroutine %d: [%d] = %g, want %g", i, k, got[i][k], want[k])
			}
		}
	}
}

// TestWinogradWeight checks each algorithm's written-out weight transform
// against G g Gᵀ computed from its matrix G.
func TestWinogradWeight(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	for _, a := range []*winoAlgo{winoF4, winoF2} {
		for range 20 {
			var g [9]float64
			for i := range g {
				g[i] = r.NormFloat64()
			}
			got := make([]float64, a.n)
			a.weight(got, &g)
			for i := range a.patch {
				for j := range a.patch {
					var want float64
					for k := range 3 {
						for l := range 3 {
							want += a.g[i][k] * g[k*3+l] * a.g[j][l]
						}
					}
					if d := math.Abs(got[i*a.patch+j] - want); d > 1e-12*(1+math.Abs(want)) {
						t.Fatalf("F(%d): U[%d][%d] = %v, want %v", a.tile, i, j, got[i*a.patch+j], want)
					}
				}
			}
		}
	}
}
