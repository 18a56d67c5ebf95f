package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func randVec(r *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * std)
	}
	return v
}

func to64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// checkFD compares analytic gradients (float32 passes) with central
// differences of a float64 loss over the same values. Up to 24 elements per
// tensor are probed; the bound is 1e-3 of the tensor's largest gradient.
func checkFD(t *testing.T, vals, grads map[string][]float32, loss func(p params64) float64) {
	t.Helper()
	p := params64{}
	for n, v := range vals {
		p[n] = to64(v)
	}
	r := rand.New(rand.NewPCG(7, 7))
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	slices.Sort(names)
	const h = 1e-5
	for _, n := range names {
		g := grads[n]
		if len(g) != len(vals[n]) {
			t.Errorf("%s: %d gradients for %d values", n, len(g), len(vals[n]))
			continue
		}
		var scale float64
		for _, v := range g {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		idx := r.Perm(len(g))
		if len(idx) > 24 {
			idx = idx[:24]
		}
		worst := 0.0
		for _, i := range idx {
			old := p[n][i]
			p[n][i] = old + h
			lp := loss(p)
			p[n][i] = old - h
			lm := loss(p)
			p[n][i] = old
			num := (lp - lm) / (2 * h)
			d := math.Abs(num - float64(g[i]))
			worst = math.Max(worst, d)
			if d > 1e-3*scale+1e-7 {
				t.Errorf("%s[%d]: analytic %.7g, numeric %.7g (max |grad| %.3g)", n, i, g[i], num, scale)
			}
		}
		if scale == 0 && worst == 0 && len(g) > 0 {
			t.Logf("%s: gradient identically zero", n)
		}
	}
}

// checkDirectional is a cheaper checkFD for expensive losses: per tensor it
// compares the derivative along a random direction, Σ g·u, with a central
// difference (bound: 1e-3·‖g‖·‖u‖), and probes one element.
func checkDirectional(t *testing.T, vals, grads map[string][]float32, loss func(p params64) float64) {
	t.Helper()
	p := params64{}
	for n, v := range vals {
		p[n] = to64(v)
	}
	r := rand.New(rand.NewPCG(9, 9))
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	slices.Sort(names)
	const h = 1e-7 // BatchNorm and ReLU make the loss strongly curved: 1e-5 is too coarse
	for _, n := range names {
		g, x := grads[n], p[n]
		u := make([]float64, len(x))
		var an, gn, un float64
		for i := range u {
			u[i] = r.NormFloat64()
			an += float64(g[i]) * u[i]
			gn += float64(g[i]) * float64(g[i])
			un += u[i] * u[i]
		}
		if i := r.IntN(len(u)); len(u) > 1 {
			// Also one element on its own.
			e := make([]float64, len(u))
			e[i] = math.Sqrt(un)
			u = append(u, e...)
		}
		for k := 0; k < len(u); k += len(x) {
			dir := u[k : k+len(x)]
			want := an
			if k > 0 {
				want = float64(g[slices.IndexFunc(dir, func(v float64) bool { return v != 0 })]) * math.Sqrt(un)
			}
			old := slices.Clone(x)
			for i := range x {
				x[i] = old[i] + h*dir[i]
			}
			lp := loss(p)
			for i := range x {
				x[i] = old[i] - h*dir[i]
			}
			lm := loss(p)
			copy(x, old)
			num := (lp - lm) / (2 * h)
			if d := math.Abs(num - want); d > 1e-3*math.Sqrt(gn*un)+1e-6 {
				t.Errorf("%s: directional derivative %.7g, numeric %.7g (‖g‖‖u‖ %.3g)", n, want, num, math.Sqrt(gn*un))
			}
		}
	}
}

func TestLinearBackwardFD(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ rows, in, out int }{{1, 3, 2}, {5, 7, 9}, {13, 16, 4}} {
		t.Run(fmt.Sprintf("%dx%dto%d", tc.rows, tc.in, tc.out), func(t *testing.T) {
			l := Linear{W: randVec(r, tc.out*tc.in, 0.5), B: randVec(r, tc.out, 0.5), In: tc.in, Out: tc.out}
			l.Pack()
			l.gW, l.gB = make([]float32, len(l.W)), make([]float32, len(l.B))
			x := randVec(r, tc.rows*tc.in, 1)
			dy := randVec(r, tc.rows*tc.out, 1)
			dx := make([]float32, len(x))
			l.Backward(dx, dy, x, tc.rows, false)
			checkFD(t, map[string][]float32{"W": l.W, "B": l.B, "x": x},
				map[string][]float32{"W": l.gW, "B": l.gB, "x": dx},
				func(p params64) float64 {
					return dot64(to64(dy), linear64(p["x"], p["W"], p["B"], tc.rows, tc.in, tc.out))
				})
		})
	}
}

func TestLayerNormBackwardFD(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ rows, dim int }{{1, 4}, {6, 17}} {
		t.Run(fmt.Sprintf("%dx%d", tc.rows, tc.dim), func(t *testing.T) {
			l := LayerNorm{G: randVec(r, tc.dim, 1), B: randVec(r, tc.dim, 1), Dim: tc.dim, Eps: 1e-5}
			l.gG, l.gB = make([]float32, tc.dim), make([]float32, tc.dim)
			x := randVec(r, tc.rows*tc.dim, 2)
			for i := range x {
				x[i] += 3 // a mean far from 0
			}
			var ar Arena
			y := make([]float32, len(x))
			tp := l.ForwardTrain(&ar, y, x, tc.rows)
			want := layerNorm64(to64(x), to64(l.G), to64(l.B), tc.rows, tc.dim, 1e-5)
			for i := range y {
				if math.Abs(float64(y[i])-want[i]) > 1e-5 {
					t.Fatalf("forward y[%d] = %g, want %g", i, y[i], want[i])
				}
			}
			dy := randVec(r, len(x), 1)
			dx := make([]float32, len(x))
			l.backward(dx, dy, tc.rows, tp)
			checkFD(t, map[string][]float32{"G": l.G, "B": l.B, "x": x},
				map[string][]float32{"G": l.gG, "B": l.gB, "x": dx},
				func(p params64) float64 {
					return dot64(to64(dy), layerNorm64(p["x"], p["G"], p["B"], tc.rows, tc.dim, 1e-5))
				})
		})
	}
}

func TestActivationBackwardFD(t *testing.T) {
	x := []float32{-6, -2.5, -1, -0.3, 0, 0.2, 0.9, 1.7, 4, 9}
	for _, quick := range []bool{true, false} {
		d := make([]float32, len(x))
		for i := range d {
			d[i] = 1
		}
		ActivationBackward(d, x, quick)
		for i, v := range x {
			const h = 1e-6
			num := (act64([]float64{float64(v) + h}, quick)[0] - act64([]float64{float64(v) - h}, quick)[0]) / (2 * h)
			if math.Abs(num-float64(d[i])) > 1e-6 {
				t.Errorf("quick=%v: act'(%g) = %.8g, numeric %.8g", quick, v, d[i], num)
			}
		}
	}
}

// tinyConfig is a small ViT CLIP for gradient checks.
func tinyConfig(quick bool) Config {
	return Config{EmbedDim: 6, QuickGELU: quick, LayerNormEps: 1e-5,
		Vision: VisionConfig{ImageSize: 8, Width: 8, Heads: 2, Layers: 2, PatchSize: 4},
		Text:   TextConfig{ContextLength: 7, VocabSize: 20, Width: 8, Heads: 2, Layers: 2}}
}

func TestBlockBackwardFD(t *testing.T) {
	for _, tc := range []struct {
		quick, causal bool
	}{{true, false}, {true, true}, {false, false}, {false, true}} {
		t.Run(fmt.Sprintf("quick=%v,causal=%v", tc.quick, tc.causal), func(t *testing.T) {
			m, err := Random(tinyConfig(tc.quick), 11)
			if err != nil {
				t.Fatal(err)
			}
			ps := m.Params()
			const prefix = "transformer.resblocks.0."
			blk := &m.Text.Transformer.Blocks[0]
			r := rand.New(rand.NewPCG(5, 6))
			randomizeNorms(m, r)
			batch, seq, w := 2, 5, 8
			x := randVec(r, batch*seq*w, 1)
			y := slices.Clone(x)
			var ar Arena
			tp := blk.forwardTrain(&ar, y, batch, seq, tc.causal)
			want := block64(paramsOf(m), prefix, to64(x), batch, seq, w, blk.Attn.Heads, tc.causal, tc.quick, 1e-5)
			for i := range y {
				if math.Abs(float64(y[i])-want[i]) > 1e-4 {
					t.Fatalf("forward y[%d] = %g, want %g", i, y[i], want[i])
				}
			}
			dy := randVec(r, len(x), 1)
			dx := slices.Clone(dy)
			blk.backward(dx, tp, newBlockScratch(&ar, batch*seq, w, blk.MLP.FC.Out, len(tp.probs)))
			vals := map[string][]float32{"x": x}
			grads := map[string][]float32{"x": dx}
			for _, p := range ps {
				if len(p.Name) > len(prefix) && p.Name[:len(prefix)] == prefix {
					vals[p.Name], grads[p.Name] = p.Value, p.Grad
				}
			}
			checkFD(t, vals, grads, func(p params64) float64 {
				full := paramsOf(m)
				for k, v := range p {
					full[k] = v
				}
				return dot64(to64(dy), block64(full, prefix, full["x"], batch, seq, w, blk.Attn.Heads, tc.causal, tc.quick, 1e-5))
			})
		})
	}
}

// randomizeNorms gives LayerNorm gains and biases random values (Random sets
// them to 1 and 0, which would hide mistakes in their gradients).
func randomizeNorms(m *Model, r *rand.Rand) {
	for _, p := range m.Params() {
		if p.NoDecay && p.Name != "logit_scale" {
			for i := range p.Value {
				p.Value[i] = float32(1 + 0.3*r.NormFloat64())
				if len(p.Name) > 5 && p.Name[len(p.Name)-5:] == ".bias" {
					p.Value[i] -= 1
				}
			}
		}
	}
	m.AfterUpdate()
}

func TestTowerBackwardFD(t *testing.T) {
	for _, quick := range []bool{true, false} {
		t.Run(fmt.Sprintf("quick=%v", quick), func(t *testing.T) {
			cfg := tinyConfig(quick)
			m, err := Random(cfg, 21)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(8, 9))
			randomizeNorms(m, r)
			base := paramsOf(m)
			// Image tower and pixels.
			batch := 2
			s := cfg.Vision.ImageSize
			pixels := randVec(r, batch*3*s*s, 1)
			feat, back, err := m.EncodeImageTrain(pixels, batch)
			if err != nil {
				t.Fatal(err)
			}
			want := image64(cfg, base, to64(pixels), batch)
			for i := range want {
				if math.Abs(float64(feat[i])-want[i]) > 1e-4 {
					t.Fatalf("image feature %d = %g, float64 reference %g", i, feat[i], want[i])
				}
			}
			dfeat := randVec(r, len(feat), 1)
			m.ZeroGrad()
			dpix := slices.Clone(back(dfeat))
			vals := map[string][]float32{"pixels": pixels}
			grads := map[string][]float32{"pixels": dpix}
			for _, p := range m.Params() {
				vals[p.Name], grads[p.Name] = p.Value, slices.Clone(p.Grad)
			}
			with := func(p params64) params64 {
				full := params64{}
				for k, v := range base {
					full[k] = v
				}
				for k, v := range p {
					full[k] = v
				}
				return full
			}
			t.Run("image", func(t *testing.T) {
				checkFD(t, vals, grads, func(p params64) float64 {
					return dot64(to64(dfeat), image64(cfg, with(p), p["pixels"], batch))
				})
			})
			// Text tower: EOT (id 19) at different positions, padding after.
			tokens := [][]int32{{18, 3, 7, 19, 0, 0, 0}, {18, 5, 5, 11, 2, 1, 19}, {18, 19, 0, 0, 0, 0, 0}}
			tfeat, tback, err := m.EncodeTextTrain(tokens)
			if err != nil {
				t.Fatal(err)
			}
			twant := text64(cfg, base, tokens)
			for i := range twant {
				if math.Abs(float64(tfeat[i])-twant[i]) > 1e-4 {
					t.Fatalf("text feature %d = %g, float64 reference %g", i, tfeat[i], twant[i])
				}
			}
			dt := randVec(r, len(tfeat), 1)
			m.ZeroGrad()
			tback(dt)
			vals = map[string][]float32{}
			grads = map[string][]float32{}
			for _, p := range m.Params() {
				vals[p.Name], grads[p.Name] = p.Value, slices.Clone(p.Grad)
			}
			t.Run("text", func(t *testing.T) {
				checkFD(t, vals, grads, func(p params64) float64 {
					return dot64(to64(dt), text64(cfg, with(p), tokens))
				})
				// Unused vocabulary rows get exactly zero.
				g := m.Param("token_embedding.weight").Grad
				w := cfg.Text.Width
				for id := 12; id < 18; id++ {
					for _, v := range g[id*w : (id+1)*w] {
						if v != 0 {
							t.Fatalf("token %d is not in the batch but has gradient %g", id, v)
						}
					}
				}
			})
		})
	}
}

func TestParamsCoverStateDict(t *testing.T) {
	cfg := tinyConfig(true)
	m, err := Random(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := cfg.ExpectedShapes()
	sd := m.StateDict()
	if len(sd) != len(want) {
		t.Errorf("StateDict has %d tensors, the configuration %d", len(sd), len(want))
	}
	for _, ts := range sd {
		s, ok := want[ts.Name]
		if !ok || !slices.Equal(s, ts.Shape) {
			t.Errorf("%s: shape %v, want %v (known %v)", ts.Name, ts.Shape, s, ok)
		}
	}
	// Value aliases the live weights; logit_scale included.
	p := m.Param("logit_scale")
	p.Value[0] = 1.5
	if m.LogitScale != 1.5 {
		t.Errorf("logit_scale Value does not alias Model.LogitScale")
	}
	nd := map[string]bool{}
	for _, p := range m.Params() {
		nd[p.Name] = p.NoDecay
	}
	for name, want := range map[string]bool{"visual.conv1.weight": false, "visual.class_embedding": true,
		"ln_final.bias": true, "logit_scale": true, "text_projection": false, "transformer.resblocks.0.attn.in_proj_bias": true,
		"transformer.resblocks.0.mlp.c_fc.weight": false, "positional_embedding": false} {
		if nd[name] != want {
			t.Errorf("%s: NoDecay %v, want %v", name, nd[name], want)
		}
	}
}

func TestTrainingInputErrors(t *testing.T) {
	m, err := Random(tinyConfig(true), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.EncodeImageTrain(make([]float32, 5), 1); err == nil {
		t.Error("accepted 5 pixel values")
	}
	if _, _, err := m.EncodeTextTrain([][]int32{{1, 2}}); err == nil {
		t.Error("accepted a short token row")
	}
	if _, _, err := m.EncodeTextTrain([][]int32{{1, 2, 3, 4, 5, 6, 99}}); err == nil {
		t.Error("accepted a token outside the vocabulary")
	}
	if _, _, err := m.EncodeTextTrain(nil); err == nil {
		t.Error("accepted no texts")
	}
}

func TestResNetBackwardFD(t *testing.T) {
	cfg := Config{EmbedDim: 6, QuickGELU: true, LayerNormEps: 1e-5,
		// 64 pixels: the last stage is 2×2, so its batch-statistics BatchNorm
		// is well conditioned (1×1 with batch 2 normalises two values).
		Vision: VisionConfig{ImageSize: 64, Width: 4, Heads: 2, Layers4: [4]int{1, 2, 1, 1}},
		Text:   TextConfig{ContextLength: 7, VocabSize: 20, Width: 8, Heads: 2, Layers: 1}}
	m, err := Random(cfg, 31)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(12, 13))
	randomizeNorms(m, r)
	base := paramsOf(m)
	batch := 2
	s := cfg.Vision.ImageSize
	pixels := randVec(r, batch*3*s*s, 1)
	feat, back, err := m.EncodeImageTrain(pixels, batch)
	if err != nil {
		t.Fatal(err)
	}
	want := resnet64(cfg, base, to64(pixels), batch)
	for i := range want {
		if math.Abs(float64(feat[i])-want[i]) > 1e-3*math.Max(1, math.Abs(want[i])) {
			t.Fatalf("feature %d = %g, float64 reference %g", i, feat[i], want[i])
		}
	}
	dfeat := randVec(r, len(feat), 1)
	m.ZeroGrad()
	dpix := slices.Clone(back(dfeat))
	vals := map[string][]float32{"pixels": pixels}
	grads := map[string][]float32{"pixels": dpix}
	for _, p := range m.Params() {
		if strings.HasPrefix(p.Name, "visual.") {
			vals[p.Name], grads[p.Name] = p.Value, p.Grad
		}
	}
	checkDirectional(t, vals, grads, func(p params64) float64 {
		full := params64{}
		for k, v := range base {
			full[k] = v
		}
		for k, v := range p {
			full[k] = v
		}
		return dot64(to64(dfeat), resnet64(cfg, full, p["pixels"], batch))
	})
	// The training pass moved the running statistics; AfterUpdate refolds
	// them into the inference convolutions.
	m.AfterUpdate()
	out := make([]float32, batch*cfg.EmbedDim)
	m.EncodeImage(out, pixels, batch, nil)
	if len(m.StateDict()) != len(cfg.ExpectedShapes()) {
		t.Errorf("ResNet StateDict has %d tensors, want %d", len(m.StateDict()), len(cfg.ExpectedShapes()))
	}
}
