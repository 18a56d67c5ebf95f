package imageproc

import (
	"fmt"
	"math"
	"strings"
	"sync"
)

// filterID names a Pillow resampling filter.
type filterID int

const (
	filterNearest filterID = iota
	filterBox
	filterBilinear
	filterHamming
	filterBicubic
	filterLanczos
)

// parseFilter maps an Options.Interpolation name to a filter.
func parseFilter(name string) (filterID, error) {
	switch strings.ToLower(name) {
	case "", "bicubic", "cubic":
		return filterBicubic, nil
	case "bilinear", "linear":
		return filterBilinear, nil
	case "nearest":
		return filterNearest, nil
	case "lanczos":
		return filterLanczos, nil
	case "box":
		return filterBox, nil
	case "hamming":
		return filterHamming, nil
	}
	return 0, fmt.Errorf("imageproc: unknown interpolation %q (want bicubic, bilinear, nearest, lanczos, box or hamming)", name)
}

// The filter kernels follow libImaging/Resample.c. Every intermediate
// product is wrapped in an explicit float64 conversion so that the compiler
// cannot fuse multiply-adds (the reference runs without FMA).

func boxKernel(x float64) float64 {
	if x > -0.5 && x <= 0.5 {
		return 1
	}
	return 0
}

func bilinearKernel(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

func hammingKernel(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x == 0 {
		return 1
	}
	if x >= 1 {
		return 0
	}
	x = float64(x * math.Pi)
	// 0.54f and 0.46f are float literals in the C source.
	c := float64(float64(float32(0.46)) * math.Cos(x))
	return float64(math.Sin(x)/x) * (float64(float32(0.54)) + c)
}

func bicubicKernel(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		t := float64((a+2)*x) - (a + 3)
		t = float64(float64(t*x) * x)
		return t + 1
	}
	if x < 2 {
		t := float64(float64(x-5)*x) + 8
		t = float64(t*x) - 4
		return t * a
	}
	return 0
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	x = float64(x * math.Pi)
	return math.Sin(x) / x
}

func lanczosKernel(x float64) float64 {
	if -3 <= x && x < 3 {
		return float64(sinc(x)) * float64(sinc(x/3))
	}
	return 0
}

func kernel(f filterID) (func(float64) float64, float64) {
	switch f {
	case filterBox:
		return boxKernel, 0.5
	case filterBilinear:
		return bilinearKernel, 1
	case filterHamming:
		return hammingKernel, 1
	case filterLanczos:
		return lanczosKernel, 3
	}
	return bicubicKernel, 2
}

// precisionBits is Pillow's PRECISION_BITS for 8-bit resampling.
const precisionBits = 32 - 8 - 2

// coeffs is a precomputed resampling table for one axis (Pillow's
// precompute_coeffs) for the outputs [lo, lo+len(min)): output lo+i reads
// n[i] inputs from min[i] with weights w[i*ksize:] (double) or wi[i*ksize:]
// (22-bit fixed point).
type coeffs struct {
	ksize int
	lo    int
	min   []int
	n     []int
	w     []float64
	wi    []int32
}

type coeffKey struct {
	in, out, lo, hi int
	f               filterID
}

var (
	coeffMu    sync.Mutex
	coeffCache = map[coeffKey]*coeffs{}
	coeffBytes int
)

// coeffCacheBytes bounds the memory held by cached coefficient tables.
const coeffCacheBytes = 32 << 20

// getCoeffs returns the (cached, read-only) table for resampling an axis of
// in samples to out samples, for the outputs [lo, hi) only.
func getCoeffs(in, out int, f filterID, lo, hi int) *coeffs {
	key := coeffKey{in, out, lo, hi, f}
	coeffMu.Lock()
	c := coeffCache[key]
	coeffMu.Unlock()
	if c != nil {
		return c
	}
	c = computeCoeffs(in, out, f, lo, hi)
	size := len(c.w)*12 + len(c.min)*16
	if size > coeffCacheBytes/4 {
		return c
	}
	coeffMu.Lock()
	if coeffBytes+size > coeffCacheBytes {
		clear(coeffCache)
		coeffBytes = 0
	}
	coeffCache[key] = c
	coeffBytes += size
	coeffMu.Unlock()
	return c
}

func computeCoeffs(inSize, outSize int, f filterID, lo, hi int) *coeffs {
	fn, sup := kernel(f)
	// box = (0, 0, in, out) as C floats: in1 - in0 is exact.
	scale := float64(inSize) / float64(outSize)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support := float64(sup * filterscale)
	ksize := int(math.Ceil(support))*2 + 1
	m := hi - lo
	c := &coeffs{
		ksize: ksize,
		lo:    lo,
		min:   make([]int, m),
		n:     make([]int, m),
		w:     make([]float64, m*ksize),
		wi:    make([]int32, m*ksize),
	}
	ss := 1.0 / filterscale
	for xx := lo; xx < hi; xx++ {
		j := xx - lo
		center := float64((float64(xx) + 0.5) * scale)
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		if xmax < 0 {
			xmax = 0
		}
		k := c.w[j*ksize : j*ksize+ksize]
		ww := 0.0
		for x := 0; x < xmax; x++ {
			w := fn(float64(float64(x+xmin)-center+0.5) * ss)
			k[x] = w
			ww += w
		}
		if ww != 0 {
			for x := 0; x < xmax; x++ {
				k[x] /= ww
			}
		}
		c.min[j] = xmin
		c.n[j] = xmax
		ki := c.wi[j*ksize : j*ksize+ksize]
		for x, w := range k {
			p := float64(w * (1 << precisionBits))
			if w < 0 {
				ki[x] = int32(-0.5 + p)
			} else {
				ki[x] = int32(0.5 + p)
			}
		}
	}
	return c
}

func clip8(v int32) uint8 {
	v >>= precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// roundUp is Pillow's ROUND_UP: round half away from zero, then truncate.
func roundUp(f float64) int32 {
	if f >= 0 {
		return int32(f + 0.5)
	}
	return int32(f - 0.5)
}

// funcTask adapts a function to rowTask (for the rarely used paths that
// may allocate).
type funcTask func(lo, hi int)

func (f funcTask) run(_, lo, hi int) { f(lo, hi) }

// parallelFunc is parallelRows for a plain function.
func parallelFunc(parallel bool, n, work int, fn func(lo, hi int)) {
	parallelRows(parallel, n, work, funcTask(fn), 0)
}

// region is a rectangle [x0, x1) × [y0, y1) of a resized image.
type region struct{ x0, y0, x1, y1 int }

func (r region) w() int { return r.x1 - r.x0 }
func (r region) h() int { return r.y1 - r.y0 }

// subImage copies the rectangle r of img.
func subImage(img *Image, r region) *Image {
	out := &Image{Mode: img.Mode, Width: r.w(), Height: r.h(), Palette: img.Palette}
	if img.Mode == ModeI {
		out.Pix32 = make([]int32, r.w()*r.h())
		for y := r.y0; y < r.y1; y++ {
			copy(out.Pix32[(y-r.y0)*r.w():], img.Pix32[y*img.Width+r.x0:y*img.Width+r.x1])
		}
		return out
	}
	nch := img.Mode.Channels()
	out.Pix = make([]uint8, r.w()*r.h()*nch)
	for y := r.y0; y < r.y1; y++ {
		copy(out.Pix[(y-r.y0)*r.w()*nch:], img.Pix[(y*img.Width+r.x0)*nch:(y*img.Width+r.x1)*nch])
	}
	return out
}

// rowsNeeded returns the source rows [lo, hi) that the vertical pass reads
// for output rows [y0, y1) (or those rows themselves without a vertical pass).
func rowsNeeded(cy *coeffs, y0, y1 int) (int, int) {
	if cy == nil {
		return y0, y1
	}
	lo, hi := cy.min[y0-cy.lo], 0
	for y := y0; y < y1; y++ {
		j := y - cy.lo
		if cy.min[j] < lo {
			lo = cy.min[j]
		}
		if e := cy.min[j] + cy.n[j]; e > hi {
			hi = e
		}
	}
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// resample32 is Pillow's mode-I resampler (double weights, each pass
// rounded to int32) restricted to region r.
func resample32(src []int32, srcW int, cx, cy *coeffs, r region, parallel bool) []int32 {
	rlo, rhi := rowsNeeded(cy, r.y0, r.y1)
	var tmp []int32
	var tmpStride, colOff int
	if cx != nil {
		ow := r.w()
		tmpStride = ow
		tmp = make([]int32, (rhi-rlo)*ow)
		parallelFunc(parallel, rhi-rlo, (rhi-rlo)*ow*cx.ksize, func(lo, hi int) {
			for y := lo; y < hi; y++ {
				row := src[(y+rlo)*srcW : (y+rlo+1)*srcW]
				d := tmp[y*ow : (y+1)*ow]
				for xx := r.x0; xx < r.x1; xx++ {
					j := xx - cx.lo
					k := cx.w[j*cx.ksize : j*cx.ksize+cx.n[j]]
					p := row[cx.min[j]:]
					ss := 0.0
					for t, w := range k {
						ss += float64(float64(p[t]) * w)
					}
					d[xx-r.x0] = roundUp(ss)
				}
			}
		})
	} else {
		tmp = src[rlo*srcW:]
		tmpStride = srcW
		colOff = r.x0
	}
	if cy == nil {
		if cx != nil {
			return tmp
		}
		out := make([]int32, r.w()*r.h())
		for y := 0; y < r.h(); y++ {
			copy(out[y*r.w():(y+1)*r.w()], tmp[y*tmpStride+colOff:])
		}
		return out
	}
	ow := r.w()
	out := make([]int32, r.h()*ow)
	parallelFunc(parallel, r.h(), r.h()*ow*cy.ksize, func(lo, hi int) {
		acc := make([]float64, ow)
		for yy := lo; yy < hi; yy++ {
			j := yy + r.y0 - cy.lo
			clear(acc)
			k := cy.w[j*cy.ksize : j*cy.ksize+cy.n[j]]
			for t, w := range k {
				row := tmp[(cy.min[j]+t-rlo)*tmpStride+colOff:]
				row = row[:ow]
				for i, p := range row {
					acc[i] += float64(float64(p) * w)
				}
			}
			o := out[yy*ow : (yy+1)*ow]
			for i, a := range acc {
				o[i] = roundUp(a)
			}
		}
	})
	return out
}

// nearestTable reproduces the coordinate walk of Pillow's ImagingScaleAffine
// (used by Image.resize with NEAREST): a running double sum from output 0,
// truncated. It returns the source index of outputs [lo, hi), -1 where the
// coordinate falls outside the image.
func nearestTable(in, out, lo, hi int) []int {
	a := float64(in) / float64(out)
	t := make([]int, hi-lo)
	xo := float64(a * 0.5)
	for x := 0; x < hi; x++ {
		if x >= lo {
			xi := -1
			if xo >= 0 {
				xi = int(xo)
			}
			if xi >= in {
				xi = -1
			}
			t[x-lo] = xi
		}
		xo += a
	}
	return t
}

func resizeNearest(img *Image, outW, outH int, r region) *Image {
	xt := nearestTable(img.Width, outW, r.x0, r.x1)
	yt := nearestTable(img.Height, outH, r.y0, r.y1)
	out := &Image{Mode: img.Mode, Width: r.w(), Height: r.h(), Palette: img.Palette}
	if img.Mode == ModeI {
		out.Pix32 = make([]int32, r.w()*r.h())
		for y, sy := range yt {
			if sy < 0 {
				continue
			}
			row := img.Pix32[sy*img.Width:]
			o := out.Pix32[y*r.w():]
			for x, sx := range xt {
				if sx >= 0 {
					o[x] = row[sx]
				}
			}
		}
		return out
	}
	nch := img.Mode.Channels()
	out.Pix = make([]uint8, r.w()*r.h()*nch)
	for y, sy := range yt {
		if sy < 0 {
			continue
		}
		row := img.Pix[sy*img.Width*nch:]
		o := out.Pix[y*r.w()*nch:]
		for x, sx := range xt {
			if sx >= 0 {
				copy(o[x*nch:x*nch+nch], row[sx*nch:sx*nch+nch])
			}
		}
	}
	return out
}

// muldiv255 is Pillow's MULDIV255: round(a*b/255) with integer arithmetic.
func muldiv255(a, b uint32) uint32 {
	t := a*b + 128
	return ((t >> 8) + t) >> 8
}

// unpremultiply converts RGBa → RGBA or La → LA in place (Pillow's
// rgba2rgbA/la2lA): values with alpha 0 or 255 are kept as they are.
func unpremultiply(pix []uint8, nch int) {
	for i := 0; i+nch <= len(pix); i += nch {
		p := pix[i : i+nch]
		a := uint32(p[nch-1])
		if a == 0 || a == 255 {
			continue
		}
		for c := 0; c < nch-1; c++ {
			v := 255 * uint32(p[c]) / a
			if v > 255 {
				v = 255
			}
			p[c] = uint8(v)
		}
	}
}
