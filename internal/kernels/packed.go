package kernels

import "fmt"

// PackedB is an nn.Linear weight packed once into the GEMM microkernel's
// panel layout, for LinearPacked. It is read-only after PackLinear and safe
// for concurrent use.
type PackedB struct {
	n, k   int
	kern   *microKernel // kernel whose panel width the layout uses
	kc     int
	npanel int // ceil(n / kern.nr)
	// data holds, for each K block pc (of kc rows, the last one shorter),
	// npanel panels of kcLen×nr values, starting at pc·npanel·nr.
	data []float32
	// half holds the same panels as bfloat16 instead (see ToBF16); data
	// is then nil.
	half []uint16
	// q holds the weight as int8 instead (see ToInt8); kern, kc, data
	// and half are then unset.
	q *qweights
	// bp holds the weight as bfloat16 in the native products' layout
	// instead (see ToBF16 and bf16dot.go); kern, kc, data and half are
	// then unset.
	bp *bweights
}

// N returns the number of output features (rows of the packed weight).
func (p *PackedB) N() int { return p.n }

// K returns the number of input features (columns of the packed weight).
func (p *PackedB) K() int { return p.k }

// PackLinear packs an nn.Linear weight w[n,k] (out × in, row-major) for
// LinearPacked with the current kernel (see SetKernel). It panics if w is
// shorter than n·k.
func PackLinear(w []float32, n, k int) *PackedB {
	if n <= 0 || k <= 0 || len(w) < n*k {
		panic(fmt.Sprintf("kernels.PackLinear: weight of %d elements for %d×%d", len(w), n, k))
	}
	return PackLinearInto(make([]float32, PackedLen(n, k)), w, n, k)
}

// Unpack returns the packed weight in its original nn.Linear layout w[n,k]
// (out × in, row-major), exactly as given to PackLinear: packing only moves
// values, so a weight need not be kept beside its packed copy.
func (p *PackedB) Unpack() []float32 {
	if p.q != nil {
		return p.q.unpack(p.n, p.k)
	}
	if p.bp != nil {
		return p.bp.unpack(p.n, p.k)
	}
	if p.half != nil {
		// Unpack the widened bf16 values.
		q := *p
		q.half = nil
		q.data = make([]float32, len(p.half))
		bf16To32(q.data, p.half)
		return q.Unpack()
	}
	nr := p.kern.nr
	w := make([]float32, p.n*p.k)
	for pc := 0; pc < p.k; pc += p.kc {
		kcLen := min(p.kc, p.k-pc)
		for pan := range p.npanel {
			src := p.data[pc*p.npanel*nr+pan*kcLen*nr:]
			cols := min(nr, p.n-pan*nr)
			for j := range cols {
				row := w[(pan*nr+j)*p.k+pc : (pan*nr+j)*p.k+pc+kcLen]
				for q := range row {
					row[q] = src[q*nr+j]
				}
			}
		}
	}
	return w
}

// Epilogue selects the element-wise operation LinearPacked fuses after the
// matrix product. The bias, when not nil, is always added first.
type Epilogue int

const (
	// EpiNone: y = x·wᵀ + bias.
	EpiNone Epilogue = iota
	// EpiQuickGELU: y = q(x·wᵀ + bias) with q(v) = v·sigmoid(1.702·v).
	EpiQuickGELU
	// EpiGELU: y = g(x·wᵀ + bias) with the exact g(v) = v·Φ(v) (erf form).
	EpiGELU
	// EpiResidual: y += x·wᵀ + bias. On entry y holds the residual stream
	// (y = residual + x·wᵀ + bias, computed in place).
	EpiResidual
)

func (e Epilogue) String() string {
	switch e {
	case EpiNone:
		return "none"
	case EpiQuickGELU:
		return "quickgelu"
	case EpiGELU:
		return "gelu"
	case EpiResidual:
		return "residual"
	}
	return fmt.Sprintf("Epilogue(%d)", int(e))
}

// LinearPacked computes y[m,n] = epi(x[m,k]·wᵀ + bias) for a weight packed
// by PackLinear, with bias[n] optional (nil). See Epilogue for the fused
// operations. y must not overlap x. It panics if a slice is too short.
func LinearPacked(y, x []float32, w *PackedB, bias []float32, m int, epi Epilogue) {
	n, k := w.n, w.k
	if m <= 0 {
		return
	}
	if len(x) < m*k || len(y) < m*n || (bias != nil && len(bias) < n) {
		panic(fmt.Sprintf("kernels.LinearPacked: len(y)=%d len(x)=%d len(bias)=%d for m=%d n=%d k=%d",
			len(y), len(x), len(bias), m, n, k))
	}
	if epi < EpiNone || epi > EpiResidual {
		panic(fmt.Sprintf("kernels.LinearPacked: unknown %v", epi))
	}
	if w.q != nil {
		linearInt8(y, x, w, bias, m, epi)
		return
	}
	if w.bp != nil {
		linearBF16(y, x, w, bias, m, epi)
		return
	}
	beta := float32(0)
	if epi == EpiResidual {
		beta = 1
	}
	runGemm(gemm{
		kern: w.kern, m: m, n: n, k: k, alpha: 1,
		a: x, lda: k, beta: beta, c: y, ldc: n,
		packed: w, epi: epi, bias: bias,
	})
}

// applyEpilogue finishes c[r0:r1, c0:c1]: adds the bias and applies the
// activation.
func applyEpilogue(epi Epilogue, c []float32, ldc, r0, r1, c0, c1 int, bias []float32, simd simdLevel) {
	if bias == nil && (epi == EpiNone || epi == EpiResidual) {
		return
	}
	var b []float32
	if bias != nil {
		b = bias[c0:c1]
	}
	for i := r0; i < r1; i++ {
		row := c[i*ldc+c0 : i*ldc+c1]
		if b != nil {
			addTo(row, b)
		}
		switch epi {
		case EpiQuickGELU:
			quickGELU(row, simd)
		case EpiGELU:
			gelu(row, simd)
		}
	}
}
