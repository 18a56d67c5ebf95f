package evaluate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"

	"github.com/goclip/goclip/clip"
)

// LogReg is a multinomial logistic-regression model: scores = W·x + b.
type LogReg struct {
	Classes, Dim int
	// W holds Classes rows of Dim weights followed by the bias.
	W []float64
}

// Scores returns the class scores (logits) of x.
func (m *LogReg) Scores(x []float32) []float32 {
	out := make([]float32, m.Classes)
	d1 := m.Dim + 1
	for c := range m.Classes {
		row := m.W[c*d1 : (c+1)*d1]
		s := row[m.Dim]
		for i, v := range x {
			s += row[i] * float64(v)
		}
		out[c] = float32(s)
	}
	return out
}

// TrainOptions tunes TrainLogReg.
type TrainOptions struct {
	MaxIter int     // L-BFGS iterations (default 1000)
	Tol     float64 // stop when max |gradient| < Tol (default 1e-6)
	History int     // L-BFGS memory (default 10)
}

// problem is the data of one fit: n×d features (row-major), labels.
type problem struct {
	x      []float64
	y      []int
	n, d   int
	nc     int
	lambda float64
}

// objective returns the mean cross-entropy plus lambda/2·‖W‖² (the biases
// are not regularised) at w, and its gradient in g.
func (p *problem) objective(w, g []float64) float64 {
	d1 := p.d + 1
	workers := min(runtime.GOMAXPROCS(0), max(1, p.n/64))
	type part struct {
		loss float64
		g    []float64
	}
	parts := make([]part, workers)
	var wg sync.WaitGroup
	for k := range workers {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			lo, hi := k*p.n/workers, (k+1)*p.n/workers
			gg := make([]float64, len(w))
			z := make([]float64, p.nc)
			var loss float64
			for i := lo; i < hi; i++ {
				x := p.x[i*p.d : (i+1)*p.d]
				mx := math.Inf(-1)
				for c := range p.nc {
					row := w[c*d1 : (c+1)*d1]
					s := row[p.d]
					for j, v := range x {
						s += row[j] * v
					}
					z[c] = s
					mx = math.Max(mx, s)
				}
				var sum float64
				for c := range z {
					z[c] = math.Exp(z[c] - mx)
					sum += z[c]
				}
				yi := p.y[i]
				loss += math.Log(sum) - math.Log(z[yi])
				for c := range z {
					pc := z[c] / sum
					if c == yi {
						pc--
					}
					if pc == 0 {
						continue
					}
					row := gg[c*d1 : (c+1)*d1]
					for j, v := range x {
						row[j] += pc * v
					}
					row[p.d] += pc
				}
			}
			parts[k] = part{loss, gg}
		}(k)
	}
	wg.Wait()
	clear(g)
	var loss float64
	for _, pt := range parts {
		loss += pt.loss
		for i, v := range pt.g {
			g[i] += v
		}
	}
	inv := 1 / float64(p.n)
	loss *= inv
	for i := range g {
		g[i] *= inv
	}
	for c := range p.nc {
		row := w[c*d1 : c*d1+p.d]
		grow := g[c*d1 : c*d1+p.d]
		for j, v := range row {
			loss += 0.5 * p.lambda * v * v
			grow[j] += p.lambda * v
		}
	}
	return loss
}

// TrainLogReg fits L2-regularised multinomial logistic regression
// (mean cross-entropy + lambda/2·‖W‖², biases unregularised) with L-BFGS
// and a backtracking Armijo line search. It stops when the largest
// gradient component is below Tol, when an iteration no longer lowers the
// loss by a relative 1e-12, or after MaxIter iterations. init, if not nil,
// warm-starts the weights. It returns the model and the iterations used.
func TrainLogReg(ctx context.Context, x [][]float32, y []int, classes int, lambda float64, o TrainOptions, init *LogReg) (*LogReg, int, error) {
	p, err := newProblem(x, y, classes, lambda)
	if err != nil {
		return nil, 0, err
	}
	if o.MaxIter <= 0 {
		o.MaxIter = 1000
	}
	if o.Tol <= 0 {
		o.Tol = 1e-6
	}
	if o.History <= 0 {
		o.History = 10
	}
	d1 := p.d + 1
	w := make([]float64, classes*d1)
	if init != nil && init.Classes == classes && init.Dim == p.d {
		copy(w, init.W)
	}
	iters, err := lbfgs(ctx, p.objective, w, o)
	return &LogReg{Classes: classes, Dim: p.d, W: w}, iters, err
}

func newProblem(x [][]float32, y []int, classes int, lambda float64) (*problem, error) {
	if len(x) == 0 || len(x) != len(y) {
		return nil, fmt.Errorf("evaluate: %d feature rows for %d labels", len(x), len(y))
	}
	if classes < 1 {
		return nil, errors.New("evaluate: no classes")
	}
	if lambda < 0 || math.IsNaN(lambda) {
		return nil, fmt.Errorf("evaluate: regularisation %v must be ≥ 0", lambda)
	}
	d := len(x[0])
	p := &problem{x: make([]float64, len(x)*d), y: y, n: len(x), d: d, nc: classes, lambda: lambda}
	for i, row := range x {
		if len(row) != d {
			return nil, fmt.Errorf("evaluate: feature row %d has %d values, row 0 has %d", i, len(row), d)
		}
		if y[i] < 0 || y[i] >= classes {
			return nil, fmt.Errorf("evaluate: label %d of row %d is not a class index (%d classes)", y[i], i, classes)
		}
		for j, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("evaluate: feature row %d has a non-finite value", i)
			}
			p.x[i*d+j] = float64(v)
		}
	}
	return p, nil
}

// lbfgs minimises f from w (updated in place).
func lbfgs(ctx context.Context, f func(w, g []float64) float64, w []float64, o TrainOptions) (int, error) {
	n := len(w)
	g := make([]float64, n)
	fx := f(w, g)
	var ss, ys [][]float64
	var rhos []float64
	dir := make([]float64, n)
	alpha := make([]float64, o.History)
	wNew := make([]float64, n)
	gNew := make([]float64, n)
	it := 0
	for ; it < o.MaxIter; it++ {
		if err := ctx.Err(); err != nil {
			return it, err
		}
		if maxAbs(g) < o.Tol {
			break
		}
		// Two-loop recursion: dir = -H·g.
		copy(dir, g)
		for k := len(ss) - 1; k >= 0; k-- {
			alpha[k] = rhos[k] * dotf(ss[k], dir)
			axpy(-alpha[k], ys[k], dir)
		}
		if k := len(ss) - 1; k >= 0 {
			scale(dotf(ss[k], ys[k])/dotf(ys[k], ys[k]), dir)
		} else {
			scale(1/math.Max(norm2(g), 1e-300), dir) // first step: unit length
		}
		for k := range ss {
			b := rhos[k] * dotf(ys[k], dir)
			axpy(alpha[k]-b, ss[k], dir)
		}
		scale(-1, dir)
		gd := dotf(g, dir)
		if gd >= 0 { // not a descent direction: restart from steepest descent
			ss, ys, rhos = ss[:0], ys[:0], rhos[:0]
			copy(dir, g)
			scale(-1/math.Max(norm2(g), 1e-300), dir)
			gd = dotf(g, dir)
		}
		t := 1.0
		var fNew float64
		ok := false
		for range 50 {
			copy(wNew, w)
			axpy(t, dir, wNew)
			fNew = f(wNew, gNew)
			if fNew <= fx+1e-4*t*gd {
				ok = true
				break
			}
			t *= 0.5
		}
		if !ok {
			break // no decrease possible at float precision
		}
		s := make([]float64, n)
		yv := make([]float64, n)
		for i := range s {
			s[i] = wNew[i] - w[i]
			yv[i] = gNew[i] - g[i]
		}
		if sy := dotf(s, yv); sy > 1e-12 {
			if len(ss) == o.History {
				ss, ys, rhos = ss[1:], ys[1:], rhos[1:]
			}
			ss, ys, rhos = append(ss, s), append(ys, yv), append(rhos, 1/sy)
		}
		copy(w, wNew)
		copy(g, gNew)
		dec := fx - fNew
		fx = fNew
		if dec <= 1e-12*math.Max(1, math.Abs(fx)) {
			it++
			break
		}
	}
	return it, nil
}

func dotf(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func axpy(a float64, x, y []float64) {
	for i := range x {
		y[i] += a * x[i]
	}
}

func scale(a float64, x []float64) {
	for i := range x {
		x[i] *= a
	}
}

func norm2(x []float64) float64 { return math.Sqrt(dotf(x, x)) }

func maxAbs(x []float64) float64 {
	var m float64
	for _, v := range x {
		m = math.Max(m, math.Abs(v))
	}
	return m
}

// ProbeOptions tunes LinearProbe.
type ProbeOptions struct {
	// Lambda, when > 0, fixes the regularisation; otherwise it is chosen on
	// a validation split of the training set.
	Lambda float64
	// ValFraction of each class's training images is held out for the
	// choice (default 0.2; at least one image stays in training).
	ValFraction float64
	Seed        uint64 // shuffles the validation split (default 1)
	Train       TrainOptions
	// Progress, if set, is told each fit of the sweep as (done, total).
	Progress func(done, total int)
}

// LambdaScore is one point of the regularisation sweep.
type LambdaScore struct {
	Lambda  float64 `json:"lambda"`
	ValAcc  float64 `json:"val_acc"`
	ValLoss float64 `json:"val_loss"`
}

// ProbeResult is the outcome of a linear probe.
type ProbeResult struct {
	Lambda  float64                `json:"lambda"`
	Sweep   []LambdaScore          `json:"sweep,omitempty"`
	Metrics *ClassificationMetrics `json:"metrics"`
	Iters   int                    `json:"iterations"`
}

// LinearProbe fits logistic regression on L2-normalised training features
// and scores it on the test features. The regularisation strength is
// chosen as in the CLIP paper: a sweep over a validation split, here a
// logarithmic grid 1e-6 … 1e2 (one point per decade, from strong to weak,
// warm-started), refined at quarter-decades around the best; the best
// validation accuracy wins (ties: lower validation loss). The final model
// is refitted on all training images.
func LinearProbe(ctx context.Context, trainX [][]float32, trainY []int, testX [][]float32, testY []int, classes []string, o ProbeOptions) (*ProbeResult, error) {
	if len(trainX) == 0 || len(testX) == 0 {
		return nil, errors.New("evaluate: linear probe needs training and test images")
	}
	tr := normalizeAll(trainX)
	te := normalizeAll(testX)
	nc := len(classes)
	res := &ProbeResult{Lambda: o.Lambda}
	if o.Lambda <= 0 {
		lam, sweep, err := selectLambda(ctx, tr, trainY, nc, o)
		if err != nil {
			return nil, err
		}
		res.Lambda, res.Sweep = lam, sweep
	}
	m, it, err := TrainLogReg(ctx, tr, trainY, nc, res.Lambda, o.Train, nil)
	if err != nil {
		return nil, err
	}
	res.Iters = it
	scores := make([][]float32, len(te))
	for i, x := range te {
		scores[i] = m.Scores(x)
	}
	res.Metrics, err = Classification(scores, testY, classes)
	return res, err
}

// splitValidation holds out round(frac·count) of each class's samples
// (at most count-1), chosen by a seeded shuffle.
func splitValidation(y []int, nc int, frac float64, seed uint64) (train, val []int) {
	byClass := make([][]int, nc)
	for i, c := range y {
		byClass[c] = append(byClass[c], i)
	}
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for _, idx := range byClass {
		r.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		k := min(int(math.Round(frac*float64(len(idx)))), len(idx)-1)
		k = max(k, 0)
		val = append(val, idx[:k]...)
		train = append(train, idx[k:]...)
	}
	sort.Ints(train)
	sort.Ints(val)
	return train, val
}

func selectLambda(ctx context.Context, x [][]float32, y []int, nc int, o ProbeOptions) (float64, []LambdaScore, error) {
	if o.ValFraction <= 0 || o.ValFraction >= 1 {
		o.ValFraction = 0.2
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	for _, c := range y {
		if c < 0 || c >= nc {
			return 0, nil, fmt.Errorf("evaluate: label %d is not a class index (%d classes)", c, nc)
		}
	}
	tri, vai := splitValidation(y, nc, o.ValFraction, o.Seed)
	if len(vai) == 0 {
		return 0, nil, errors.New("evaluate: too few training images for a validation split (give --lambda)")
	}
	pick := func(idx []int) ([][]float32, []int) {
		xs := make([][]float32, len(idx))
		ys := make([]int, len(idx))
		for k, i := range idx {
			xs[k], ys[k] = x[i], y[i]
		}
		return xs, ys
	}
	trX, trY := pick(tri)
	vaX, vaY := pick(vai)
	var sweep []LambdaScore
	var prev *LogReg
	done, total := 0, 9+6
	eval := func(lam float64) (LambdaScore, error) {
		m, _, err := TrainLogReg(ctx, trX, trY, nc, lam, o.Train, prev)
		if err != nil {
			return LambdaScore{}, err
		}
		prev = m
		var hit int
		var loss float64
		for i, xv := range vaX {
			s := m.Scores(xv)
			if Argmax(s) == vaY[i] {
				hit++
			}
			loss += crossEntropy(s, vaY[i])
		}
		sc := LambdaScore{lam, float64(hit) / float64(len(vaX)), loss / float64(len(vaX))}
		sweep = append(sweep, sc)
		done++
		if o.Progress != nil {
			o.Progress(done, total)
		}
		return sc, nil
	}
	better := func(a, b LambdaScore) bool {
		return a.ValAcc > b.ValAcc || (a.ValAcc == b.ValAcc && a.ValLoss < b.ValLoss)
	}
	best := LambdaScore{ValAcc: -1}
	for e := 2; e >= -6; e-- { // strong to weak, warm-started
		sc, err := eval(math.Pow(10, float64(e)))
		if err != nil {
			return 0, nil, err
		}
		if better(sc, best) {
			best = sc
		}
	}
	center := math.Log10(best.Lambda)
	prev = nil
	for _, off := range []float64{0.75, 0.5, 0.25, -0.25, -0.5, -0.75} {
		sc, err := eval(math.Pow(10, center+off))
		if err != nil {
			return 0, nil, err
		}
		if better(sc, best) {
			best = sc
		}
	}
	return best.Lambda, sweep, nil
}

func crossEntropy(s []float32, y int) float64 {
	mx := math.Inf(-1)
	for _, v := range s {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for _, v := range s {
		sum += math.Exp(float64(v) - mx)
	}
	return math.Log(sum) + mx - float64(s[y])
}

func normalizeAll(v [][]float32) [][]float32 {
	out := make([][]float32, len(v))
	for i, x := range v {
		out[i] = clip.Normalize(x)
	}
	return out
}
