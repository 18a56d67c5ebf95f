package kernels

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"
)

// simdLevel says which vector helpers (exp, activations) may be used
// alongside a microkernel.
type simdLevel int

const (
	simdNone simdLevel = iota
	simdAVX2
)

// microKernel describes one register-tile kernel of the packed SGEMM and the
// cache blocking that suits it.
type microKernel struct {
	name   string
	mr, nr int // register tile: rows of A, columns of B
	kc, mc int // cache blocks: depth of a packed panel, rows of a packed A block
	// fn computes an mr×nr tile of C from packed panels; see sgemm_amd64.s.
	fn func(k int, a, b, c *float32, ldc int, accum int)
	// fnBias, where not nil, is fn that also adds bias[0:nr] to each row
	// of the tile before storing it: LinearPacked fuses a layer's bias
	// into its first K block with it.
	fnBias biasKernel
	// fnStreamA, where not nil, is fn for products whose A operand is
	// the one streamed from memory, each A micro-panel meeting few B
	// micro-panels (the convolutions: weights as A, pixels or Winograd
	// tiles as B): it prefetches A a micro-panel ahead instead of the
	// next B micro-panel. Only a full-height kernel has one.
	fnStreamA func(k int, a, b, c *float32, ldc int, accum int)
	// fnNext and fnNextBias, where not nil, are fn and fnBias that
	// prefetch a quarter of a micro-panel (kc/4 cache lines) from the
	// address next instead of the whole of the following B micro-panel:
	// for weights pre-packed at load, which stream from memory, the row
	// tiles that read one panel each fetch a different quarter of the
	// next (see gemm.macro).
	fnNext     nextKernel
	fnNextBias nextBiasKernel
	simd       simdLevel
	// rows are variants of this kernel with fewer rows (same nr, kc and
	// packed-B layout), for products whose row count is not a multiple
	// of mr; see forRows.
	rows []*microKernel
}

// streamA returns the kernel function for a product whose A operand
// streams from memory: fnStreamA where k has one, else fn.
func (k *microKernel) streamA() func(k int, a, b, c *float32, ldc int, accum int) {
	if k.fnStreamA != nil {
		return k.fnStreamA
	}
	return k.fn
}

// biasKernel is a microkernel that adds a bias; see microKernel.fnBias.
type biasKernel func(k int, a, b, c *float32, ldc int, accum int, bias *float32)

// nextKernel and nextBiasKernel are microkernels told what to prefetch;
// see microKernel.fnNext. The address may lie past the panels: a
// prefetch does not fault.
type (
	nextKernel     func(k int, a, b, c *float32, ldc int, accum int, next uintptr)
	nextBiasKernel func(k int, a, b, c *float32, ldc int, accum int, bias *float32, next uintptr)
)

// rowEfficiency is the relative cost per computed row of a kernel of mr
// rows against the full one (fewer accumulators hide less latency and
// amortise each B load over fewer FMAs); index mr.
var rowEfficiency = [...]float64{0, 1.8, 1.4, 1.2, 1.1, 1.04, 1, 1, 1}

// forRows returns the variant of k that computes m rows at the least
// padded cost: 50 rows (ViT-B/32 at batch 1) run as ten 5-row tiles
// instead of nine 6-row tiles of which the last is two-thirds padding.
func (k *microKernel) forRows(m int) *microKernel {
	if len(k.rows) == 0 || m%k.mr == 0 {
		return k
	}
	cost := func(v *microKernel) float64 {
		return float64((m+v.mr-1)/v.mr*v.mr) * rowEfficiency[min(v.mr, len(rowEfficiency)-1)]
	}
	best, bc := k, cost(k)
	for _, v := range k.rows {
		if c := cost(v); c < bc {
			best, bc = v, c
		}
	}
	return best
}

// rowKernels are the functions of one generated kernel family (see
// sgemm_rows_amd64.s): index r-1 holds the r-row form; next and
// nextBias have only their 5- and 6-row forms, streamA only a 6-row one.
type rowKernels struct {
	fn       [6]func(k int, a, b, c *float32, ldc int, accum int)
	bias     [6]biasKernel
	streamA  func(k int, a, b, c *float32, ldc int, accum int)
	next     [6]nextKernel
	nextBias [6]nextBiasKernel
}

// family returns the 6-row kernel of f, named name, with its row
// variants (same nr, kc and packed-B layout).
func (f *rowKernels) family(name string, nr int, simd simdLevel) *microKernel {
	k := &microKernel{name: name, mr: 6, nr: nr, kc: 256, mc: 144, fn: f.fn[5], fnBias: f.bias[5],
		fnStreamA: f.streamA, fnNext: f.next[5], fnNextBias: f.nextBias[5], simd: simd}
	for r := 1; r <= 5; r++ {
		k.rows = append(k.rows, &microKernel{name: name, mr: r, nr: nr, kc: 256, mc: 144 / r * r,
			fn: f.fn[r-1], fnBias: f.bias[r-1], fnNext: f.next[r-1], fnNextBias: f.nextBias[r-1], simd: simd})
	}
	return k
}

// goKernel is the portable microkernel, always available.
var goKernel = &microKernel{name: "go", mr: 4, nr: 4, kc: 256, mc: 128, fn: sgemmKernelGo}

var (
	available []*microKernel // best first; goKernel is last
	current   atomic.Pointer[microKernel]
)

func init() {
	for _, k := range archKernels() {
		if err := checkKernel(k); err != nil {
			fmt.Fprintf(os.Stderr, "goclip: %v: not using it (please report this CPU)\n", err)
			continue
		}
		available = append(available, k)
	}
	available = append(available, goKernel)
	k := available[0]
	if name := os.Getenv("GOCLIP_KERNEL"); name != "" {
		if err := SetKernel(name); err != nil {
			fmt.Fprintf(os.Stderr, "goclip: GOCLIP_KERNEL: %v; using %q\n", err, k.name)
		} else {
			return
		}
	}
	current.Store(k)
}

// Kernels returns the names of the GEMM microkernels this CPU and build can
// run, fastest first: a subset of "avx512", "avx2", "neon", and always "go".
func Kernels() []string {
	names := make([]string, len(available))
	for i, k := range available {
		names[i] = k.name
	}
	return names
}

// Kernel returns the name of the microkernel in use.
func Kernel() string { return current.Load().name }

// SetKernel selects the microkernel by name (one of Kernels()). The
// environment variable GOCLIP_KERNEL does the same at start-up. Weights
// packed by PackLinear keep the kernel they were packed for.
func SetKernel(name string) error {
	for _, k := range available {
		if k.name == name {
			current.Store(k)
			return nil
		}
	}
	return fmt.Errorf("kernel %q not available on this CPU/build (have %v)", name, Kernels())
}

// sgemmKernelGo is the portable 4×4 microkernel (same contract as the
// assembly ones).
func sgemmKernelGo(k int, a, b, c *float32, ldc int, accum int) {
	ap := unsafe.Slice(a, 4*k)
	bp := unsafe.Slice(b, 4*k)
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	var c20, c21, c22, c23, c30, c31, c32, c33 float32
	for p := 0; p < k; p++ {
		av := ap[4*p : 4*p+4 : 4*p+4]
		bv := bp[4*p : 4*p+4 : 4*p+4]
		b0, b1, b2, b3 := bv[0], bv[1], bv[2], bv[3]
		a0 := av[0]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		a1 := av[1]
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a2 := av[2]
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		a3 := av[3]
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	cs := unsafe.Slice(c, 3*ldc+4)
	rows := [4][4]float32{
		{c00, c01, c02, c03},
		{c10, c11, c12, c13},
		{c20, c21, c22, c23},
		{c30, c31, c32, c33},
	}
	for i := range rows {
		r := cs[i*ldc : i*ldc+4 : i*ldc+4]
		if accum != 0 {
			r[0] += rows[i][0]
			r[1] += rows[i][1]
			r[2] += rows[i][2]
			r[3] += rows[i][3]
		} else {
			r[0], r[1], r[2], r[3] = rows[i][0], rows[i][1], rows[i][2], rows[i][3]
		}
	}
}
