package train

import (
	"math"
	"testing"

	"github.com/goclip/goclip/internal/model"
)

// TestAdamW checks two steps against the PyTorch AdamW formulas computed
// in float64.
func TestAdamW(t *testing.T) {
	cfg := AdamWConfig{Beta1: 0.9, Beta2: 0.98, Eps: 1e-6, WeightDecay: 0.2}
	for _, tc := range []struct {
		name    string
		noDecay bool
	}{{"decayed", false}, {"no decay", true}} {
		t.Run(tc.name, func(t *testing.T) {
			p := &model.Param{Name: "w", Shape: []int{3}, Value: []float32{1, -2, 0.5}, Grad: make([]float32, 3), NoDecay: tc.noDecay}
			grads := [][]float32{{0.1, -0.3, 2}, {-0.2, 0.05, 1}}
			lrs := []float64{1e-2, 5e-3}
			o := NewAdamW(cfg, []*model.Param{p})
			w := []float64{1, -2, 0.5}
			m, v := make([]float64, 3), make([]float64, 3)
			for s, g := range grads {
				copy(p.Grad, g)
				o.Update(lrs[s])
				step := float64(s + 1)
				for i := range w {
					if !tc.noDecay {
						w[i] *= 1 - lrs[s]*cfg.WeightDecay
					}
					m[i] = cfg.Beta1*m[i] + (1-cfg.Beta1)*float64(g[i])
					v[i] = cfg.Beta2*v[i] + (1-cfg.Beta2)*float64(g[i])*float64(g[i])
					mh := m[i] / (1 - math.Pow(cfg.Beta1, step))
					vh := v[i] / (1 - math.Pow(cfg.Beta2, step))
					w[i] -= lrs[s] * mh / (math.Sqrt(vh) + cfg.Eps)
				}
			}
			for i := range w {
				if math.Abs(float64(p.Value[i])-w[i]) > 1e-6 {
					t.Errorf("w[%d] = %v, want %v", i, p.Value[i], w[i])
				}
			}
			if o.Step != 2 {
				t.Errorf("step = %d, want 2", o.Step)
			}
		})
	}
}

func TestSchedule(t *testing.T) {
	s := Schedule{Base: 1e-3, Warmup: 10, Total: 110}
	for _, tc := range []struct {
		step int64
		want float64
	}{
		{0, 1e-4}, {4, 5e-4}, {9, 1e-3}, {10, 1e-3}, {60, 5e-4}, {110, 0}, {200, 0},
	} {
		if got := s.LR(tc.step); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("LR(%d) = %v, want %v", tc.step, got, tc.want)
		}
	}
}

func TestClipGradNorm(t *testing.T) {
	ps := []*model.Param{{Grad: []float32{3, 0}}, {Grad: []float32{4}}}
	if n := ClipGradNorm(ps, 10); n != 5 || ps[0].Grad[0] != 3 {
		t.Fatalf("no-op clip: norm %v, grad %v", n, ps[0].Grad)
	}
	n := ClipGradNorm(ps, 1)
	if n != 5 {
		t.Fatalf("norm = %v, want 5", n)
	}
	if after := GradNorm(ps); math.Abs(after-1) > 1e-5 {
		t.Fatalf("norm after clipping = %v, want 1", after)
	}
}

func TestClampLogitScale(t *testing.T) {
	p := &model.Param{Name: "logit_scale", Value: []float32{7}}
	clampLogitScale([]*model.Param{p})
	if p.Value[0] != MaxLogitScale {
		t.Fatalf("clamped to %v, want ln 100", p.Value[0])
	}
	p.Value[0] = -1
	clampLogitScale([]*model.Param{p})
	if p.Value[0] != 0 {
		t.Fatalf("clamped to %v, want 0", p.Value[0])
	}
}

func TestFloatToHalf(t *testing.T) {
	for _, f := range []float32{0, 1, -1, 0.5, 65504, 1e-7, 6.1e-5, 3.14159, -2.71828, 1e-3, 70000} {
		h := FloatToHalf(f)
		back := halfToFloat(h)
		want := f
		if f > 65504 {
			want = float32(math.Inf(1))
		}
		tol := math.Max(math.Abs(float64(f))/1024, 6e-8)
		if math.IsInf(float64(want), 0) {
			if !math.IsInf(float64(back), 1) {
				t.Errorf("%v -> %v, want +Inf", f, back)
			}
			continue
		}
		if math.Abs(float64(back-want)) > tol {
			t.Errorf("%v -> %#04x -> %v", f, h, back)
		}
	}
	if h := FloatToHalf(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("NaN -> %#04x", h)
	}
}

func halfToFloat(h uint16) float32 {
	sign := float64(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	e := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	switch e {
	case 0:
		return float32(sign * m * math.Pow(2, -24))
	case 31:
		if m == 0 {
			return float32(sign * math.Inf(1))
		}
		return float32(math.NaN())
	}
	return float32(sign * (1 + m/1024) * math.Pow(2, float64(e-15)))
}

func TestPlotLoss(t *testing.T) {
	var log []StepLog
	for i := range 300 {
		log = append(log, StepLog{Step: int64(i), Loss: 5*math.Exp(-float64(i)/80) + 0.3*math.Sin(float64(i))})
	}
	for _, l := range [][]StepLog{nil, log[:1], log} {
		if err := PlotLoss(t.TempDir()+"/loss.png", l); err != nil {
			t.Fatal(err)
		}
	}
}
