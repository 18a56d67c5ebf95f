package kernels

import (
	"fmt"
	"math"
	"sync"
)

// opTask is one element-wise or row-wise operation split over the pool.
// Tasks come from opPool, so that a warmed-up forward pass allocates
// nothing (a closure handed to Parallel would escape to the heap).
type opTask struct {
	op         opKind
	y, x, g, b []float32
	cols       int
	eps, s     float32
	simd       simdLevel
}

type opKind int

const (
	opLayerNorm opKind = iota // rows of x into y
	opSoftmax                 // rows of x
	opQuickGELU               // x[lo:hi]
	opGELU                    // x[lo:hi]
	opAdd                     // y[lo:hi] += x[lo:hi]
	opScale                   // x[lo:hi] *= s
)

var opPool = sync.Pool{New: func() any { return new(opTask) }}

// RunRange runs the operation over rows (row-wise ops) or elements lo..hi-1.
func (t *opTask) RunRange(lo, hi int) {
	switch t.op {
	case opLayerNorm:
		c := t.cols
		for r := lo; r < hi; r++ {
			layerNormRow(t.y[r*c:r*c+c], t.x[r*c:r*c+c], t.g, t.b, t.eps)
		}
	case opSoftmax:
		c := t.cols
		for r := lo; r < hi; r++ {
			softmaxRow(t.x[r*c:r*c+c], t.simd)
		}
	case opQuickGELU:
		quickGELU(t.x[lo:hi], t.simd)
	case opGELU:
		gelu(t.x[lo:hi], t.simd)
	case opAdd:
		addTo(t.y[lo:hi], t.x[lo:hi])
	case opScale:
		s := t.s
		for i := range t.x[lo:hi] {
			t.x[lo+i] *= s
		}
	}
}

// runOp runs t over [0, n): inline when work (elements touched) is below
// ~64K, else on the pool.
func runOp(n, work int, t opTask) {
	if n <= 0 {
		return
	}
	if work < 1<<16 {
		t.RunRange(0, n)
		return
	}
	p := opPool.Get().(*opTask)
	*p = t
	parallelTask(n, p)
	*p = opTask{}
	opPool.Put(p)
}

// LayerNorm normalises each of the rows of x[rows,cols] into y (which may
// be x), with PyTorch's nn.LayerNorm semantics: biased variance and eps
// inside the square root, y = (x-mean)/sqrt(var+eps)·g + b. g and b have
// cols elements; either may be nil (1 and 0). Mean and variance are
// accumulated in float64, so the result is at least as accurate as
// PyTorch's float32 accumulation.
func LayerNorm(y, x, g, b []float32, rows, cols int, eps float32) {
	if len(x) < rows*cols || len(y) < rows*cols || (g != nil && len(g) < cols) || (b != nil && len(b) < cols) {
		panic(fmt.Sprintf("kernels.LayerNorm: len(y)=%d len(x)=%d len(g)=%d len(b)=%d for %d×%d",
			len(y), len(x), len(g), len(b), rows, cols))
	}
	if rows <= 0 || cols <= 0 {
		return
	}
	runOp(rows, rows*cols, opTask{op: opLayerNorm, y: y, x: x, g: g, b: b, cols: cols, eps: eps})
}

func layerNormRow(y, x, g, b []float32, eps float32) {
	n := len(x)
	// Σx and Σx² in float64: the cancellation in Σx²/n - mean² costs
	// ~1e-16·(1+mean²/var) relative, far below float32 precision.
	s, q := rowStats(x)
	mean := s / float64(n)
	variance := max(q/float64(n)-mean*mean, 0)
	rstd := float32(1 / math.Sqrt(variance+float64(eps)))
	if g != nil {
		g = g[:n]
	}
	if b != nil {
		b = b[:n]
	}
	lnApply(y[:n], x, g, b, float32(mean), rstd)
}

// rowStatsGo returns Σx and Σx² of x in float64.
func rowStatsGo(x []float32) (sum, sumsq float64) {
	var s0, s1, q0, q1 float64
	i := 0
	for ; i+2 <= len(x); i += 2 {
		v0, v1 := float64(x[i]), float64(x[i+1])
		s0 += v0
		s1 += v1
		q0 += v0 * v0
		q1 += v1 * v1
	}
	for ; i < len(x); i++ {
		v := float64(x[i])
		s0 += v
		q0 += v * v
	}
	return s0 + s1, q0 + q1
}

// lnApplyGo sets y = (x-m)·rstd·g + b, with g and b optional.
func lnApplyGo(y, x, g, b []float32, m, rstd float32) {
	y = y[:len(x)]
	switch {
	case g != nil && b != nil:
		g, b = g[:len(x)], b[:len(x)]
		for i, v := range x {
			y[i] = (v-m)*rstd*g[i] + b[i]
		}
	case g != nil:
		g = g[:len(x)]
		for i, v := range x {
			y[i] = (v - m) * rstd * g[i]
		}
	case b != nil:
		b = b[:len(x)]
		for i, v := range x {
			y[i] = (v-m)*rstd + b[i]
		}
	default:
		for i, v := range x {
			y[i] = (v - m) * rstd
		}
	}
}

// SoftmaxRows replaces each of the rows of x[rows,cols] by its softmax,
// exp(x-max)/Σexp(x-max).
func SoftmaxRows(x []float32, rows, cols int) {
	if len(x) < rows*cols {
		panic(fmt.Sprintf("kernels.SoftmaxRows: len(x)=%d for %d×%d", len(x), rows, cols))
	}
	if rows <= 0 || cols <= 0 {
		return
	}
	runOp(rows, rows*cols, opTask{op: opSoftmax, x: x, cols: cols, simd: current.Load().simd})
}

// softmaxRowGo is the portable softmax of one row.
func softmaxRowGo(x []float32) {
	mx := float32(math.Inf(-1))
	for _, v := range x {
		if v > mx {
			mx = v
		}
	}
	if math.IsInf(float64(mx), -1) {
		// All -Inf (a fully masked row): PyTorch yields NaN.
		for i := range x {
			x[i] = float32(math.NaN())
		}
		return
	}
	sum := expShiftSumGo(x, mx)
	inv := float32(1 / sum)
	for i := range x {
		x[i] *= inv
	}
}

// expShiftSumGo sets x[i] = exp(x[i]-shift) and returns the sum.
func expShiftSumGo(x []float32, shift float32) float64 {
	var s float64
	for i, v := range x {
		e := expf(v - shift)
		x[i] = e
		s += float64(e)
	}
	return s
}

// QuickGELU applies CLIP's QuickGELU, x·sigmoid(1.702·x), in place.
func QuickGELU(x []float32) {
	runOp(len(x), len(x), opTask{op: opQuickGELU, x: x, simd: current.Load().simd})
}

func quickGELUGo(x []float32) {
	for i, v := range x {
		x[i] = v / (1 + expf(-1.702*v))
	}
}

// GELU applies the exact GELU, x·½(1+erf(x/√2)), in place (erf in float64).
func GELU(x []float32) {
	runOp(len(x), len(x), opTask{op: opGELU, x: x, simd: current.Load().simd})
}

// The exact GELU in float32: x·Φ(x) = ½x·(1 + erf(a)) with a = |x|/√2
// (sign folded in). Below geluSplit, erf(a) = a·P1(a²); above it,
// erfc(a) = e^(-a²)·P2(1/(1+a)), with a² = x²/2 carried as a rounded value
// plus its exact FMA residual so that e^(-a²) keeps float32 accuracy; for
// negative x the result then comes from erfc directly, without
// cancellation. The polynomials are least-squares fits (gen/erffit.go):
// GELU within 4e-7 relative of float64 math.Erf everywhere, ~1 ns per
// element with AVX2 (the float64 erf it replaces took ~30).
const geluSplit = 0.625

var (
	geluP1 = [...]float32{1.1283792, -0.37612635, 0.11283705, -0.026856001, 0.005171133, -0.00072781654}
	geluP2 = [...]float32{9.225588e-06, 0.56378907, 0.57157505, 0.20635198, 0.19146124, -2.5478554, 4.1030326, -2.898829, 0.81495607}
)

// geluGo is the portable exact GELU of x in place.
func geluGo(x []float32) {
	for i, v := range x {
		a := float32(math.Abs(float64(v))) * (1 / math.Sqrt2)
		var phi2 float32 // 1 + erf(v/√2)
		if a < geluSplit {
			s := a * a
			p := geluP1[5]
			for j := 4; j >= 0; j-- {
				p = p*s + geluP1[j]
			}
			e := a * p
			if v < 0 {
				e = -e
			}
			phi2 = 1 + e
		} else {
			t := 1 / (1 + a)
			p := geluP2[8]
			for j := 7; j >= 0; j-- {
				p = p*t + geluP2[j]
			}
			h := v * 0.5
			sh := h * v
			sl := float32(math.FMA(float64(h), float64(v), -float64(sh)))
			c := max(expf(-sh)*(1-sl)*p, 0)
			if v < 0 {
				phi2 = c
			} else {
				phi2 = 2 - c
			}
		}
		x[i] = 0.5 * v * phi2
	}
}

// Cosine returns the cosine similarity of a and b (len(a) values),
// accumulated in float64; 0 when either is a zero vector.
func Cosine(a, b []float32) float64 {
	b = b[:len(a)]
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// Normalized returns a new slice holding v scaled to unit L2 norm, the
// norm accumulated in float64; a zero vector gives zeros.
func Normalized(v []float32) []float32 {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	if ss == 0 {
		return out
	}
	inv := 1 / math.Sqrt(ss)
	for i, x := range v {
		out[i] = float32(float64(x) * inv)
	}
	return out
}

// Add sets dst[i] += src[i] for i < len(dst).
func Add(dst, src []float32) {
	src = src[:len(dst)]
	runOp(len(dst), len(dst), opTask{op: opAdd, y: dst, x: src})
}

func addTo(dst, src []float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] += src[i]
	}
}

// Axpy sets y[i] += a·x[i] for i < len(y).
func Axpy(y, x []float32, a float32) {
	x = x[:len(y)]
	for i, v := range x {
		y[i] += a * v
	}
}

// Scale sets x[i] *= s.
func Scale(x []float32, s float32) {
	runOp(len(x), len(x), opTask{op: opScale, x: x, s: s})
}

// expf returns e^x in float32 arithmetic (Cephes-style: range reduction by
// ln 2 in two parts and a degree-7 polynomial; within ~2 ulp over the
// clamped range [-87.3, 88]; 0 below it).
func expf(x float32) float32 {
	if x != x {
		return x
	}
	if x < -87.33654 {
		return 0 // underflow (denormal results are flushed), e^-Inf = 0
	}
	x = min(x, 88.0)
	n := float32(math.Floor(float64(x*1.44269504088896341 + 0.5)))
	r := x - n*0.693359375
	r -= n * -2.12194440e-4
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	p = p*r*r + r + 1
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}
