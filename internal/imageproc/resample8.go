package imageproc

import "sync"

// resizeRegion returns the part r of img resized to outW×outH as Pillow's
// Image.resize((outW, outH), filter) would compute it, in img's mode. Only
// the requested pixels are computed; each is bit-identical to the full
// resize. r must lie inside [0, outW) × [0, outH) and be non-empty. It is
// the allocating path, used for the modes that are not resampled in 8 bits
// (P, 1, I) and for nearest-neighbour resizing.
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
	v, _ := imageView(img, false)
	out.Pix = make([]uint8, r.w()*r.h()*v.nch)
	resample8(out.Pix, &v, cx, cy, r, parallel)
	if v.premul {
		unpremultiply(out.Pix, v.nch)
	}
	return out
}

// resample8Job is one 8-bit resampling of a region, shared by the workers
// of parallelRows. Jobs are recycled.
type resample8Job struct {
	view       view
	v          *view // &view
	cx, cy     *coeffs
	r          region
	rlo, rhi   int // source rows read by the vertical pass
	sx0, sx1   int // source columns read by the horizontal pass
	tmp        []uint8
	tmpStride  int
	colOff     int
	out        []uint8
	outRowLen  int
	horizontal bool
}

const (
	phaseHorizontal = iota
	phaseVertical
	phasePack
)

var resample8Jobs = sync.Pool{New: func() any { return new(resample8Job) }}

// resample8 is Pillow's 8-bit two-pass resampler (horizontal pass first,
// 8-bit intermediate, then vertical) restricted to region r of the view's
// resized image, written packed to out (r.w()*r.h()*v.nch bytes). cx or cy
// is nil when that axis keeps its size. Its scratch memory is recycled.
func resample8(out []uint8, v *view, cx, cy *coeffs, r region, parallel bool) {
	nch := v.nch
	j := resample8Jobs.Get().(*resample8Job)
	*j = resample8Job{view: *v, cx: cx, cy: cy, r: r, out: out, outRowLen: r.w() * nch}
	j.v = &j.view
	v = j.v
	j.rlo, j.rhi = rowsNeeded(cy, r.y0, r.y1)
	rows := j.rhi - j.rlo
	var tmpBuf *[]uint8
	switch {
	case cx != nil:
		j.sx0, j.sx1 = colsNeeded(cx, r.x0, r.x1)
		j.tmpStride = r.w() * nch
		if cy == nil {
			j.tmp = out
		} else {
			tmpBuf = getBytes(rows * j.tmpStride)
			j.tmp = *tmpBuf
		}
		parallelRows(parallel, rows, rows*r.w()*cx.ksize*nch, j, phaseHorizontal)
	case v.packedDirect():
		j.tmp = v.pix[j.rlo*v.stride:]
		j.tmpStride = v.stride
		j.colOff = r.x0 * nch
	default:
		j.tmpStride = r.w() * nch
		tmpBuf = getBytes(rows * j.tmpStride)
		j.tmp = *tmpBuf
		parallelRows(parallel, rows, rows*r.w()*nch*8, j, phasePack)
	}
	if cy != nil {
		parallelRows(parallel, r.h(), r.h()*j.outRowLen*cy.ksize, j, phaseVertical)
	} else if cx == nil {
		for y := 0; y < r.h(); y++ {
			copy(out[y*j.outRowLen:(y+1)*j.outRowLen], j.tmp[y*j.tmpStride+j.colOff:])
		}
	}
	if tmpBuf != nil {
		putBytes(tmpBuf)
	}
	*j = resample8Job{}
	resample8Jobs.Put(j)
}

func (j *resample8Job) run(phase, lo, hi int) {
	switch phase {
	case phaseHorizontal:
		j.horizontalRows(lo, hi)
	case phaseVertical:
		j.verticalRows(lo, hi)
	case phasePack:
		for y := lo; y < hi; y++ {
			d := j.tmp[y*j.tmpStride : (y+1)*j.tmpStride]
			if s := j.v.packedRow(y+j.rlo, j.r.x0, j.r.x1, d); &s[0] != &d[0] {
				copy(d, s)
			}
		}
	}
}

// colsNeeded returns the source columns [lo, hi) that the horizontal pass
// reads for output columns [x0, x1).
func colsNeeded(cx *coeffs, x0, x1 int) (int, int) {
	lo, hi := cx.min[x0-cx.lo], 0
	for x := x0; x < x1; x++ {
		j := x - cx.lo
		lo = min(lo, cx.min[j])
		hi = max(hi, cx.min[j]+cx.n[j])
	}
	return lo, max(hi, lo+1)
}

func (j *resample8Job) horizontalRows(lo, hi int) {
	v := j.v
	var buf *[]uint8
	if !(v.pix != nil && !v.premul) {
		buf = getBytes((j.sx1 - j.sx0) * v.nch)
	}
	var b []uint8
	if buf != nil {
		b = *buf
	}
	for y := lo; y < hi; y++ {
		row, step := v.row(y+j.rlo, j.sx0, j.sx1, b)
		hpass8(j.tmp[y*j.tmpStride:(y+1)*j.tmpStride], row, j.sx0, step, v.nch, j.cx, j.r.x0, j.r.x1)
	}
	if buf != nil {
		putBytes(buf)
	}
}

func (j *resample8Job) verticalRows(lo, hi int) {
	cy := j.cy
	rowLen := j.outRowLen
	accBuf := getInt32s(rowLen)
	acc := (*accBuf)[:rowLen]
	for yy := lo; yy < hi; yy++ {
		k := yy + j.r.y0 - cy.lo
		w := cy.wi[k*cy.ksize : k*cy.ksize+cy.n[k]]
		first := (cy.min[k]-j.rlo)*j.tmpStride + j.colOff
		vpass8(j.out[yy*rowLen:(yy+1)*rowLen], acc, j.tmp[first:], j.tmpStride, w)
	}
	putInt32s(accBuf)
}

// vpass8 computes one output row: dst[i] = clip8(half + Σ_t w[t]·src[t·stride + i]).
// The int32 sums are exact, so taps may be grouped in any order.
func vpass8(dst []uint8, acc []int32, src []uint8, stride int, w []int32) {
	const half = 1 << (precisionBits - 1)
	n := len(dst)
	acc = acc[:n]
	t := 0
	if len(w) >= 2 {
		r0, r1 := src[:n], src[stride:stride+n]
		w0, w1 := w[0], w[1]
		for i := range acc {
			acc[i] = half + int32(r0[i])*w0 + int32(r1[i])*w1
		}
		t = 2
	} else {
		for i := range acc {
			acc[i] = half
		}
	}
	for ; t+4 <= len(w); t += 4 {
		r0 := src[t*stride : t*stride+n]
		r1 := src[(t+1)*stride : (t+1)*stride+n]
		r2 := src[(t+2)*stride : (t+2)*stride+n]
		r3 := src[(t+3)*stride : (t+3)*stride+n]
		w0, w1, w2, w3 := w[t], w[t+1], w[t+2], w[t+3]
		for i := range acc {
			acc[i] += int32(r0[i])*w0 + int32(r1[i])*w1 + int32(r2[i])*w2 + int32(r3[i])*w3
		}
	}
	for ; t+2 <= len(w); t += 2 {
		r0 := src[t*stride : t*stride+n]
		r1 := src[(t+1)*stride : (t+1)*stride+n]
		w0, w1 := w[t], w[t+1]
		for i := range acc {
			acc[i] += int32(r0[i])*w0 + int32(r1[i])*w1
		}
	}
	for ; t < len(w); t++ {
		r0 := src[t*stride : t*stride+n]
		w0 := w[t]
		for i := range acc {
			acc[i] += int32(r0[i]) * w0
		}
	}
	dst = dst[:n]
	for i, a := range acc {
		dst[i] = clip8(a)
	}
}

// hpass8 resamples one row horizontally into dst for outputs [x0, x1).
// row holds source pixels from column sx0 on, step bytes apart, with nch
// channels each.
func hpass8(dst, row []uint8, sx0, step, nch int, cx *coeffs, x0, x1 int) {
	const half = 1 << (precisionBits - 1)
	ks := cx.ksize
	switch {
	case nch == 3 && step == 3:
		dst = dst[:3*(x1-x0)]
		for xx := x0; xx < x1; xx++ {
			j := xx - cx.lo
			k := cx.wi[j*ks : j*ks+cx.n[j]]
			off := (cx.min[j] - sx0) * 3
			p := row[off:]
			s0, s1, s2 := int32(half), int32(half), int32(half)
			for _, w := range k {
				if len(p) < 3 {
					break
				}
				s0 += int32(p[0]) * w
				s1 += int32(p[1]) * w
				s2 += int32(p[2]) * w
				p = p[3:]
			}
			o := dst[(xx-x0)*3 : (xx-x0)*3+3]
			o[0], o[1], o[2] = clip8(s0), clip8(s1), clip8(s2)
		}
	case nch == 3 && step == 4:
		dst = dst[:3*(x1-x0)]
		for xx := x0; xx < x1; xx++ {
			j := xx - cx.lo
			k := cx.wi[j*ks : j*ks+cx.n[j]]
			off := (cx.min[j] - sx0) * 4
			p := row[off:]
			s0, s1, s2 := int32(half), int32(half), int32(half)
			for _, w := range k {
				if len(p) < 3 {
					break
				}
				s0 += int32(p[0]) * w
				s1 += int32(p[1]) * w
				s2 += int32(p[2]) * w
				if len(p) < 4 {
					break
				}
				p = p[4:]
			}
			o := dst[(xx-x0)*3 : (xx-x0)*3+3]
			o[0], o[1], o[2] = clip8(s0), clip8(s1), clip8(s2)
		}
	case nch == 4 && step == 4:
		dst = dst[:4*(x1-x0)]
		for xx := x0; xx < x1; xx++ {
			j := xx - cx.lo
			k := cx.wi[j*ks : j*ks+cx.n[j]]
			off := (cx.min[j] - sx0) * 4
			p := row[off:]
			s0, s1, s2, s3 := int32(half), int32(half), int32(half), int32(half)
			for _, w := range k {
				if len(p) < 4 {
					break
				}
				s0 += int32(p[0]) * w
				s1 += int32(p[1]) * w
				s2 += int32(p[2]) * w
				s3 += int32(p[3]) * w
				p = p[4:]
			}
			o := dst[(xx-x0)*4 : (xx-x0)*4+4]
			o[0], o[1], o[2], o[3] = clip8(s0), clip8(s1), clip8(s2), clip8(s3)
		}
	case nch == 1:
		dst = dst[:x1-x0]
		for xx := x0; xx < x1; xx++ {
			j := xx - cx.lo
			k := cx.wi[j*ks : j*ks+cx.n[j]]
			off := (cx.min[j] - sx0) * step
			s := int32(half)
			if step == 1 {
				p := row[off : off+len(k)]
				for t, w := range k {
					s += int32(p[t]) * w
				}
			} else {
				for t, w := range k {
					s += int32(row[off+t*step]) * w
				}
			}
			dst[xx-x0] = clip8(s)
		}
	default:
		var s [4]int32
		for xx := x0; xx < x1; xx++ {
			j := xx - cx.lo
			k := cx.wi[j*ks : j*ks+cx.n[j]]
			off := (cx.min[j] - sx0) * step
			for c := 0; c < nch; c++ {
				s[c] = half
			}
			for t, w := range k {
				q := row[off+t*step : off+t*step+nch]
				for c, v := range q {
					s[c] += int32(v) * w
				}
			}
			o := dst[(xx-x0)*nch : (xx-x0+1)*nch]
			for c := range o {
				o[c] = clip8(s[c])
			}
		}
	}
}
