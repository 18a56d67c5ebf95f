package kernels

import (
	"fmt"
	"sync"
)

// Conv is a 2-D convolution (square kernel, equal stride and padding in
// both directions, no groups or dilation) whose weight is packed once into
// the GEMM microkernel's layout. It runs on channels-last (NHWC)
// activations, where a convolution is a product of patch rows and the
// weight: a 1×1, stride 1 convolution multiplies the input rows directly;
// other convolutions gather patches (im2col) a block of output pixels at a
// time, so the gathered block stays in cache. Bias, ReLU and a residual add
// are fused. A Conv is read-only after PackConv and safe for concurrent use.
type Conv struct {
	In, Out, K, Stride, Pad int
	w                       *PackedB // [Out, K·K·In], columns ordered (ky, kx, ci)
}

// ConvEpilogue selects what Conv.Forward does after adding the bias.
type ConvEpilogue int

const (
	// ConvBias: y = conv(x) + bias.
	ConvBias ConvEpilogue = iota
	// ConvBiasReLU: y = max(conv(x) + bias, 0).
	ConvBiasReLU
	// ConvResidualReLU: y = max(y + conv(x) + bias, 0), where y holds the
	// residual on entry.
	ConvResidualReLU
)

// PackConv packs a PyTorch Conv2d weight w [out, in, k, k] (OIHW,
// row-major) for Forward with the current kernel (see SetKernel). It
// panics if a size is not positive or w is shorter than out·in·k·k.
func PackConv(w []float32, out, in, k, stride, pad int) *Conv {
	if out <= 0 || in <= 0 || k <= 0 || stride <= 0 || pad < 0 || len(w) < out*in*k*k {
		panic(fmt.Sprintf("kernels.PackConv: weight of %d elements for out=%d in=%d k=%d stride=%d pad=%d",
			len(w), out, in, k, stride, pad))
	}
	kk := k * k * in
	wr := w[:out*kk]
	if k > 1 {
		// OIHW → O(ky,kx,I): a patch row of an NHWC image is contiguous
		// along the channels of each kernel tap.
		wr = make([]float32, out*kk)
		for o := range out {
			src, dst := w[o*kk:(o+1)*kk], wr[o*kk:(o+1)*kk]
			for ci := range in {
				for t := range k * k {
					dst[t*in+ci] = src[ci*k*k+t]
				}
			}
		}
	}
	return &Conv{In: in, Out: out, K: k, Stride: stride, Pad: pad, w: PackLinear(wr, out, kk)}
}

// OutSize returns the output size along a spatial dimension of input size n.
func (c *Conv) OutSize(n int) int { return (n+2*c.Pad-c.K)/c.Stride + 1 }

// Forward convolves x [batch, h, w, In] (NHWC) into y [batch, oh, ow, Out]
// (NHWC), adds bias [Out] (nil: none) and applies epi. It returns oh, ow.
// y must not overlap x. It panics if a slice is too short.
func (c *Conv) Forward(y, x []float32, batch, h, w int, bias []float32, epi ConvEpilogue) (oh, ow int) {
	return c.forward(y, x, batch, h, w, bias, epi, false)
}

// ForwardNCHW is Forward for an input in PyTorch's NCHW layout x [batch,
// In, h, w]; the output is still NHWC. It suits a network's first
// convolution, whose input has few channels.
func (c *Conv) ForwardNCHW(y, x []float32, batch, h, w int, bias []float32, epi ConvEpilogue) (oh, ow int) {
	return c.forward(y, x, batch, h, w, bias, epi, true)
}

// convRowFloats is the size (floats) of the patch block gathered at a
// time; convMinRows the fewest output pixels per block, so that the
// product still reuses each weight panel over many rows. (Variables so
// that tests can exercise the blocking on small images.)
var (
	convRowFloats = 1 << 20
	convMinRows   = 576
)

var colPool = sync.Pool{New: func() any { return new([]float32) }}

func (c *Conv) forward(y, x []float32, batch, h, w int, bias []float32, epi ConvEpilogue, nchw bool) (int, int) {
	oh, ow := c.OutSize(h), c.OutSize(w)
	if batch <= 0 || oh <= 0 || ow <= 0 {
		return max(oh, 0), max(ow, 0)
	}
	m := batch * oh * ow
	kk := c.K * c.K * c.In
	if len(x) < batch*h*w*c.In || len(y) < m*c.Out || (bias != nil && len(bias) < c.Out) {
		panic(fmt.Sprintf("kernels.Conv.Forward: len(y)=%d len(x)=%d len(bias)=%d for batch=%d %d×%d in=%d out=%d",
			len(y), len(x), len(bias), batch, h, w, c.In, c.Out))
	}
	if epi < ConvBias || epi > ConvResidualReLU {
		panic(fmt.Sprintf("kernels.Conv.Forward: unknown epilogue %d", int(epi)))
	}
	gemmEpi := EpiNone
	if epi == ConvResidualReLU {
		gemmEpi = EpiResidual
	}
	direct := c.K == 1 && c.Stride == 1 && c.Pad == 0 && !nchw
	rows := m
	var colp *[]float32
	if !direct {
		rows = min(m, max(convMinRows, convRowFloats/kk))
		colp = colPool.Get().(*[]float32)
		if cap(*colp) < rows*kk {
			*colp = make([]float32, rows*kk)
		}
		defer colPool.Put(colp)
	}
	g := convGeom{in: c.In, k: c.K, stride: c.Stride, pad: c.Pad, h: h, w: w, oh: oh, ow: ow}
	for r0 := 0; r0 < m; r0 += rows {
		n := min(rows, m-r0)
		var src []float32
		if direct {
			src = x[r0*kk:]
		} else {
			col := (*colp)[:n*kk]
			Parallel(n, func(lo, hi int) {
				if nchw {
					g.im2colNCHW(col, x, r0, lo, hi)
				} else {
					g.im2colNHWC(col, x, r0, lo, hi)
				}
			})
			src = col
		}
		dst := y[r0*c.Out : (r0+n)*c.Out]
		LinearPacked(dst, src[:n*kk], c.w, bias, n, gemmEpi)
		if epi != ConvBias {
			ReLU(dst)
		}
	}
	return oh, ow
}

// convGeom is the geometry of one convolution call.
type convGeom struct {
	in, k, stride, pad int
	h, w, oh, ow       int
}

// im2colNHWC writes the patch rows of output pixels base+lo … base+hi-1
// into col (row i at col[i·K·K·In]) from the NHWC image x.
func (g *convGeom) im2colNHWC(col, x []float32, base, lo, hi int) {
	kk := g.k * g.k * g.in
	for i := lo; i < hi; i++ {
		r := base + i
		b, p := r/(g.oh*g.ow), r%(g.oh*g.ow)
		oy, ox := p/g.ow, p%g.ow
		row := col[i*kk : (i+1)*kk]
		for ky := range g.k {
			iy := oy*g.stride - g.pad + ky
			for kx := range g.k {
				ix := ox*g.stride - g.pad + kx
				dst := row[(ky*g.k+kx)*g.in : (ky*g.k+kx+1)*g.in]
				if iy < 0 || iy >= g.h || ix < 0 || ix >= g.w {
					clear(dst)
					continue
				}
				off := ((b*g.h+iy)*g.w + ix) * g.in
				copy(dst, x[off:off+g.in])
			}
		}
	}
}

// im2colNCHW is im2colNHWC for an NCHW image.
func (g *convGeom) im2colNCHW(col, x []float32, base, lo, hi int) {
	kk := g.k * g.k * g.in
	plane := g.h * g.w
	for i := lo; i < hi; i++ {
		r := base + i
		b, p := r/(g.oh*g.ow), r%(g.oh*g.ow)
		oy, ox := p/g.ow, p%g.ow
		row := col[i*kk : (i+1)*kk]
		img := x[b*g.in*plane : (b+1)*g.in*plane]
		for ky := range g.k {
			iy := oy*g.stride - g.pad + ky
			for kx := range g.k {
				ix := ox*g.stride - g.pad + kx
				dst := row[(ky*g.k+kx)*g.in : (ky*g.k+kx+1)*g.in]
				if iy < 0 || iy >= g.h || ix < 0 || ix >= g.w {
					clear(dst)
					continue
				}
				for ci := range dst {
					dst[ci] = img[ci*plane+iy*g.w+ix]
				}
			}
		}
	}
}

// ReLU sets x[i] = max(x[i], 0) (NaN stays NaN), split over the worker
// pool when x is large.
func ReLU(x []float32) {
	const chunk = 1 << 14
	if len(x) <= chunk {
		relu(x)
		return
	}
	Parallel((len(x)+chunk-1)/chunk, func(lo, hi int) {
		relu(x[lo*chunk : min(hi*chunk, len(x))])
	})
}

// reluGo is the portable ReLU.
func reluGo(x []float32) {
	for i, v := range x {
		if v < 0 {
			x[i] = 0
		}
	}
}

// AvgPoolNHWC applies AvgPool2d(k) (stride k, no padding, floor) to x
// [batch, h, w, c] (NHWC) into y [batch, h/k, w/k, c], applying ReLU to the
// inputs first when relu is set. It returns the output size.
func AvgPoolNHWC(y, x []float32, batch, h, w, c, k int, relu bool) (oh, ow int) {
	if k <= 0 {
		panic(fmt.Sprintf("kernels.AvgPoolNHWC: kernel size %d", k))
	}
	oh, ow = h/k, w/k
	if len(x) < batch*h*w*c || len(y) < batch*oh*ow*c {
		panic(fmt.Sprintf("kernels.AvgPoolNHWC: len(y)=%d len(x)=%d for batch=%d %d×%d×%d k=%d",
			len(y), len(x), batch, h, w, c, k))
	}
	area := float32(k * k)
	Parallel(batch*oh, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			b, oy := r/oh, r%oh
			for ox := range ow {
				dst := y[((b*oh+oy)*ow+ox)*c : ((b*oh+oy)*ow+ox+1)*c]
				clear(dst)
				for dy := range k {
					for dx := range k {
						off := ((b*h+oy*k+dy)*w + ox*k + dx) * c
						src := x[off : off+c]
						if relu {
							for i, v := range src {
								if !(v <= 0) {
									dst[i] += v
								}
							}
						} else {
							addTo(dst, src)
						}
					}
				}
				for i := range dst {
					dst[i] /= area
				}
			}
		}
	})
	return oh, ow
}
