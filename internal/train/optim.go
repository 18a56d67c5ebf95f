package train

import (
	"fmt"
	"math"

	"github.com/goclip/goclip/internal/kernels"
	"github.com/goclip/goclip/internal/model"
)

// AdamWConfig holds the optimiser hyper-parameters. DefaultAdamW gives
// open_clip's defaults for ViT models.
type AdamWConfig struct {
	Beta1, Beta2 float64
	Eps          float64
	WeightDecay  float64
}

// DefaultAdamW returns open_clip's defaults: β = (0.9, 0.98), ε = 1e-6,
// weight decay 0.2.
func DefaultAdamW() AdamWConfig {
	return AdamWConfig{Beta1: 0.9, Beta2: 0.98, Eps: 1e-6, WeightDecay: 0.2}
}

// AdamW is PyTorch's torch.optim.AdamW (decoupled weight decay, bias
// correction, ε added to the bias-corrected √v) over a fixed list of
// parameters. Parameters with NoDecay set get no weight decay, as in
// open_clip's two parameter groups.
type AdamW struct {
	Config AdamWConfig
	Params []*model.Param
	// Step is the number of updates done (PyTorch's state["step"]).
	Step int64
	// M and V are the first and second moment estimates, one per
	// parameter, of the parameter's size.
	M, V [][]float32
}

// NewAdamW returns an optimiser with zeroed moments for params.
func NewAdamW(cfg AdamWConfig, params []*model.Param) *AdamW {
	o := &AdamW{Config: cfg, Params: params}
	for _, p := range params {
		o.M = append(o.M, make([]float32, len(p.Value)))
		o.V = append(o.V, make([]float32, len(p.Value)))
	}
	return o
}

// Update applies one AdamW step with learning rate lr using each
// parameter's Grad. Every element is updated independently, so the result
// does not depend on how the work is split across cores.
func (o *AdamW) Update(lr float64) {
	o.Step++
	c := o.Config
	bc1 := 1 - math.Pow(c.Beta1, float64(o.Step))
	bc2 := 1 - math.Pow(c.Beta2, float64(o.Step))
	stepSize := float32(lr / bc1)
	sqrtBC2 := float32(math.Sqrt(bc2))
	b1, b2 := float32(c.Beta1), float32(c.Beta2)
	eps := float32(c.Eps)
	for i, p := range o.Params {
		decay := float32(1)
		if !p.NoDecay {
			decay = float32(1 - lr*c.WeightDecay)
		}
		m, v, w, g := o.M[i], o.V[i], p.Value, p.Grad
		kernels.Parallel(len(w), func(lo, hi int) {
			for j := lo; j < hi; j++ {
				w[j] *= decay
				m[j] = b1*m[j] + (1-b1)*g[j]
				v[j] = b2*v[j] + (1-b2)*g[j]*g[j]
				denom := float32(math.Sqrt(float64(v[j])))/sqrtBC2 + eps
				w[j] -= stepSize * m[j] / denom
			}
		})
	}
}

// GradNorm returns the global L2 norm of the gradients of params, summed in
// float64 in parameter order (deterministic).
func GradNorm(params []*model.Param) float64 {
	var s float64
	for _, p := range params {
		var ps float64
		for _, g := range p.Grad {
			ps += float64(g) * float64(g)
		}
		s += ps
	}
	return math.Sqrt(s)
}

// ClipGradNorm scales the gradients so that their global L2 norm is at
// most maxNorm (torch.nn.utils.clip_grad_norm_: the factor is
// maxNorm/(norm+1e-6), applied only when it is below 1). It returns the
// norm before clipping. maxNorm <= 0 only measures.
func ClipGradNorm(params []*model.Param, maxNorm float64) float64 {
	n := GradNorm(params)
	if maxNorm <= 0 {
		return n
	}
	f := maxNorm / (n + 1e-6)
	if f >= 1 {
		return n
	}
	for _, p := range params {
		for j := range p.Grad {
			p.Grad[j] *= float32(f)
		}
	}
	return n
}

// Schedule is open_clip's cosine learning-rate schedule with linear
// warm-up: lr = base·(step+1)/warmup during warm-up, then
// base·½(1+cos(π·e/E)) with e = step-warmup and E = total-warmup.
type Schedule struct {
	Base   float64
	Warmup int64
	Total  int64
}

// LR returns the learning rate of step (0-based).
func (s Schedule) LR(step int64) float64 {
	if step < s.Warmup {
		return s.Base * float64(step+1) / float64(s.Warmup)
	}
	e := float64(step - s.Warmup)
	es := float64(s.Total - s.Warmup)
	if es <= 0 {
		return s.Base
	}
	if e > es {
		e = es
	}
	return 0.5 * (1 + math.Cos(math.Pi*e/es)) * s.Base
}

// MaxLogitScale is open_clip's clamp on the log-space logit scale: ln 100.
var MaxLogitScale = float32(math.Log(100))

// clampLogitScale clamps the logit_scale parameter to [0, ln 100] as
// open_clip does after every step.
func clampLogitScale(params []*model.Param) {
	for _, p := range params {
		if p.Name == "logit_scale" && len(p.Value) == 1 {
			p.Value[0] = min(max(p.Value[0], 0), MaxLogitScale)
		}
	}
}

// checkFinite returns an error naming the first parameter whose gradient
// holds a NaN or an infinity.
func checkFinite(params []*model.Param) error {
	for _, p := range params {
		for _, g := range p.Grad {
			if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) {
				return fmt.Errorf("gradient of %s is not finite", p.Name)
			}
		}
	}
	return nil
}
