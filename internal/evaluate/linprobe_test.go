package evaluate

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// blobs returns n points per class around well-separated centres in dim
// dimensions (class c's centre is 3·e_c), with Gaussian noise sigma.
func blobs(r *rand.Rand, classes, n, dim int, sigma float64) ([][]float32, []int) {
	var x [][]float32
	var y []int
	for c := range classes {
		for range n {
			v := make([]float32, dim)
			for j := range v {
				v[j] = float32(r.NormFloat64() * sigma)
			}
			v[c] += 3
			x = append(x, v)
			y = append(y, c)
		}
	}
	return x, y
}

func TestObjectiveGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x, y := blobs(r, 3, 5, 4, 1)
	p, err := newProblem(x, y, 3, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	w := make([]float64, 3*5)
	for i := range w {
		w[i] = r.NormFloat64()
	}
	g := make([]float64, len(w))
	p.objective(w, g)
	tmp := make([]float64, len(w))
	for i := range w {
		const h = 1e-6
		w0 := w[i]
		w[i] = w0 + h
		fp := p.objective(w, tmp)
		w[i] = w0 - h
		fm := p.objective(w, tmp)
		w[i] = w0
		if num := (fp - fm) / (2 * h); math.Abs(num-g[i]) > 1e-6 {
			t.Errorf("d/dw[%d]: analytic %v, numeric %v", i, g[i], num)
		}
	}
}

func TestTrainSeparable(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x, y := blobs(r, 4, 30, 8, 0.3)
	m, it, err := TrainLogReg(context.Background(), x, y, 4, 1e-4, TrainOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if it == 0 || it >= 1000 {
		t.Errorf("%d iterations", it)
	}
	for i, v := range x {
		if Argmax(m.Scores(v)) != y[i] {
			t.Fatalf("training point %d misclassified", i)
		}
	}
	// The optimum: gradient ~0.
	p, _ := newProblem(x, y, 4, 1e-4)
	g := make([]float64, len(m.W))
	p.objective(m.W, g)
	if maxAbs(g) > 1e-5 {
		t.Errorf("gradient %v at the returned optimum", maxAbs(g))
	}
	// Heavier regularisation gives smaller weights.
	m2, _, _ := TrainLogReg(context.Background(), x, y, 4, 1, TrainOptions{}, nil)
	if norm2(m2.W) >= norm2(m.W) {
		t.Errorf("λ=1 weights %v not smaller than λ=1e-4 weights %v", norm2(m2.W), norm2(m.W))
	}
}

func TestLinearProbe(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	trX, trY := blobs(r, 3, 40, 6, 0.5)
	teX, teY := blobs(r, 3, 20, 6, 0.5)
	var steps int
	res, err := LinearProbe(context.Background(), trX, trY, teX, teY, []string{"a", "b", "c"}, ProbeOptions{Progress: func(d, n int) { steps = d }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Metrics.Acc1 < 0.95 {
		t.Errorf("test accuracy %v on separable blobs", res.Metrics.Acc1)
	}
	if res.Lambda < 1e-7 || res.Lambda > 1e3 || len(res.Sweep) != 15 || steps != 15 {
		t.Errorf("lambda %v, sweep %d points, %d progress steps", res.Lambda, len(res.Sweep), steps)
	}
	fixed, err := LinearProbe(context.Background(), trX, trY, teX, teY, []string{"a", "b", "c"}, ProbeOptions{Lambda: 0.01})
	if err != nil || fixed.Lambda != 0.01 || fixed.Sweep != nil {
		t.Errorf("fixed lambda: %v %+v", err, fixed)
	}
	// Too small for a validation split.
	if _, err := LinearProbe(context.Background(), trX[:1], trY[:1], teX, teY, []string{"a", "b", "c"}, ProbeOptions{}); err == nil {
		t.Error("one training image: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := LinearProbe(ctx, trX, trY, teX, teY, []string{"a", "b", "c"}, ProbeOptions{}); err == nil {
		t.Error("cancelled: no error")
	}
}

func TestSplitValidation(t *testing.T) {
	y := []int{0, 0, 0, 0, 0, 1, 2, 2}
	tr, va := splitValidation(y, 3, 0.4, 1)
	if len(tr)+len(va) != len(y) {
		t.Fatalf("%d + %d != %d", len(tr), len(va), len(y))
	}
	count := map[int]int{}
	for _, i := range va {
		count[y[i]]++
	}
	// class 0: round(2.0)=2, class 1: 1 image stays in training, class 2: round(0.8)=1.
	if count[0] != 2 || count[1] != 0 || count[2] != 1 {
		t.Errorf("validation per class %v", count)
	}
}

func TestTrainErrors(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		x  [][]float32
		y  []int
		nc int
		l  float64
	}{
		"empty":     {nil, nil, 2, 1},
		"mismatch":  {[][]float32{{1}}, []int{0, 1}, 2, 1},
		"ragged":    {[][]float32{{1}, {1, 2}}, []int{0, 1}, 2, 1},
		"bad label": {[][]float32{{1}}, []int{2}, 2, 1},
		"neg λ":     {[][]float32{{1}}, []int{0}, 2, -1},
		"NaN":       {[][]float32{{float32(math.NaN())}}, []int{0}, 2, 1},
	} {
		if _, _, err := TrainLogReg(ctx, tc.x, tc.y, tc.nc, tc.l, TrainOptions{}, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
