package imageproc

import (
	"fmt"
	"math"
	"runtime"
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

// parallelRows runs fn over [0, n) in chunks on up to GOMAXPROCS goroutines
// when parallel is set and the work (an estimate of inner-loop steps) is
// large enough to be worth it; otherwise inline.
func parallelRows(parallel bool, n int, work int, fn func(lo, hi int)) {
	p := runtime.GOMAXPROCS(0)
	if !parallel || p < 2 || n < 2 || work < 1<<20 {
		fn(0, n)
		return
	}
	if p > n {
		p = n
	}
	var wg sync.WaitGroup
	for i := 0; i < p; i++ {
		lo, hi := n*i/p, n*(i+1)/p
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// region is a rectangle [x0, x1) × [y0, y1) of a resized image.
type region struct{ x0, y0, x1, y1 int }

func (r region) w() int { return r.x1 - r.x0 }
func (r region) h() int { return r.y1 - r.y0 }

// resizeRegion returns the part r of img resized to outW×outH as Pillow's
// Image.resize((outW, outH), filter) would compute it, in img's mode. Only
// the requested pixels are computed; each is bit-identical to the full
// resize. r must lie inside [0, outW) × [0, outH) and be non-empty.
func resizeRegion(img *Image, outW, outH int, f filterID, r region, parallel bool) *Image {
	if outW == img.Width && outH == img.Height {
		return subImage(img, r)
	}
	if img.Mode == ModeP || img.Mode == Mode1 {
		f = filterNearest
	}
	if f == filterNearest {
		return resizeNearest(img, outW, outH, r)
	}
	var cx, cy *coeffs
	if outW != img.Width {
		cx = getCoeffs(img.Width, outW, f, r.x0, r.x1)
	}
	if outH != img.Height {
		cy = getCoeffs(img.Height, outH, f, r.y0, r.y1)
	}
	out := &Image{Mode: img.Mode, Width: r.w(), Height: r.h(), Palette: img.Palette}
	if img.Mode == ModeI {
		out.Pix32 = resample32(img.Pix32, img.Width, cx, cy, r, parallel)
		return out
	}
	nch := img.Mode.Channels()
	src := img.Pix
	premul := img.Mode == ModeRGBA || img.Mode == ModeLA
	if premul {
		src = premultiply(src, nch, parallel)
	}
	out.Pix = resample8(src, img.Width, nch, cx, cy, r, parallel)
	if premul {
		unpremultiply(out.Pix, nch)
	}
	return out
}

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

// resample8 is Pillow's 8-bit two-pass resampler restricted to region r.
// src is srcW pixels wide with nch interleaved channels.
func resample8(src []uint8, srcW, nch int, cx, cy *coeffs, r region, parallel bool) []uint8 {
	rlo, rhi := rowsNeeded(cy, r.y0, r.y1)
	// Horizontal pass into tmp: rows [rlo, rhi), columns r.x0..r.x1.
	var tmp []uint8
	var tmpStride, colOff int
	if cx != nil {
		ow := r.w()
		tmpStride = ow * nch
		tmp = make([]uint8, (rhi-rlo)*tmpStride)
		work := (rhi - rlo) * ow * cx.ksize * nch
		parallelRows(parallel, rhi-rlo, work, func(lo, hi int) {
			for y := lo; y < hi; y++ {
				hpass8(tmp[y*tmpStride:(y+1)*tmpStride], src[(y+rlo)*srcW*nch:(y+rlo+1)*srcW*nch], nch, cx, r.x0, r.x1)
			}
		})
	} else {
		tmp = src[rlo*srcW*nch:]
		tmpStride = srcW * nch
		colOff = r.x0 * nch
	}
	if cy == nil {
		if cx != nil {
			return tmp
		}
		out := make([]uint8, r.w()*r.h()*nch)
		for y := 0; y < r.h(); y++ {
			copy(out[y*r.w()*nch:(y+1)*r.w()*nch], tmp[y*tmpStride+colOff:])
		}
		return out
	}
	rowLen := r.w() * nch
	out := make([]uint8, r.h()*rowLen)
	work := r.h() * rowLen * cy.ksize
	parallelRows(parallel, r.h(), work, func(lo, hi int) {
		acc := make([]int32, rowLen)
		for yy := lo; yy < hi; yy++ {
			j := yy + r.y0 - cy.lo
			for i := range acc {
				acc[i] = 1 << (precisionBits - 1)
			}
			k := cy.wi[j*cy.ksize : j*cy.ksize+cy.n[j]]
			for t, w := range k {
				row := tmp[(cy.min[j]+t-rlo)*tmpStride+colOff:]
				row = row[:rowLen]
				for i, p := range row {
					acc[i] += int32(p) * w
				}
			}
			o := out[yy*rowLen : (yy+1)*rowLen]
			for i, a := range acc {
				o[i] = clip8(a)
			}
		}
	})
	return out
}

// hpass8 resamples one row horizontally into dst for outputs [x0, x1).
func hpass8(dst, row []uint8, nch int, cx *coeffs, x0, x1 int) {
	const half = 1 << (precisionBits - 1)
	ks := cx.ksize
	switch nch {
	case 1:
		for xx := x0; xx < x1; xx++ {
			j := xx - cx.lo
			k := cx.wi[j*ks : j*ks+cx.n[j]]
			p := row[cx.min[j]:]
			p = p[:len(k)]
			s := int32(half)
			for t, w := range k {
				s += int32(p[t]) * w
			}
			dst[xx-x0] = clip8(s)
		}
	case 2:
		for xx := x0; xx < x1; xx++ {
			j := xx - cx.lo
			k := cx.wi[j*ks : j*ks+cx.n[j]]
			p := row[cx.min[j]*2:]
			p = p[:2*len(k)]
			s0, s1 := int32(half), int32(half)
			for t, w := range k {
				s0 += int32(p[2*t]) * w
				s1 += int32(p[2*t+1]) * w
			}
			o := dst[(xx-x0)*2:]
			o[0], o[1] = clip8(s0), clip8(s1)
		}
	case 3:
		for xx := x0; xx < x1; xx++ {
			j := xx - cx.lo
			k := cx.wi[j*ks : j*ks+cx.n[j]]
			p := row[cx.min[j]*3:]
			p = p[:3*len(k)]
			s0, s1, s2 := int32(half), int32(half), int32(half)
			for t, w := range k {
				q := p[3*t : 3*t+3]
				s0 += int32(q[0]) * w
				s1 += int32(q[1]) * w
				s2 += int32(q[2]) * w
			}
			o := dst[(xx-x0)*3:]
			o[0], o[1], o[2] = clip8(s0), clip8(s1), clip8(s2)
		}
	default:
		for xx := x0; xx < x1; xx++ {
			j := xx - cx.lo
			k := cx.wi[j*ks : j*ks+cx.n[j]]
			p := row[cx.min[j]*4:]
			p = p[:4*len(k)]
			s0, s1, s2, s3 := int32(half), int32(half), int32(half), int32(half)
			for t, w := range k {
				q := p[4*t : 4*t+4]
				s0 += int32(q[0]) * w
				s1 += int32(q[1]) * w
				s2 += int32(q[2]) * w
				s3 += int32(q[3]) * w
			}
			o := dst[(xx-x0)*4:]
			o[0], o[1], o[2], o[3] = clip8(s0), clip8(s1), clip8(s2), clip8(s3)
		}
	}
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
		parallelRows(parallel, rhi-rlo, (rhi-rlo)*ow*cx.ksize, func(lo, hi int) {
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
	parallelRows(parallel, r.h(), r.h()*ow*cy.ksize, func(lo, hi int) {
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

// premultiply converts RGBA → RGBa or LA → La (Pillow's rgbA2rgba/lA2la):
// the last channel is alpha.
func premultiply(src []uint8, nch int, parallel bool) []uint8 {
	dst := make([]uint8, len(src))
	n := len(src) / nch
	parallelRows(parallel, n, len(src), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			p := src[i*nch : i*nch+nch]
			d := dst[i*nch : i*nch+nch]
			a := uint32(p[nch-1])
			for c := 0; c < nch-1; c++ {
				d[c] = uint8(muldiv255(uint32(p[c]), a))
			}
			d[nch-1] = p[nch-1]
		}
	})
	return dst
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
