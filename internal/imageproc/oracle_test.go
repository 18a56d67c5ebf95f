package imageproc

// The implementation before scratch reuse and in-place reading, kept as the
// oracle that the optimised paths must match byte for byte.

import "fmt"

func oldParallelRows(_ bool, n int, _ int, fn func(lo, hi int)) { fn(0, n) }

func oldCropRGB(dst []uint8, img *Image, o *Options, parallel bool) error {
	if err := checkImage(img); err != nil {
		return err
	}
	f, err := parseFilter(o.Interpolation)
	if err != nil {
		return err
	}
	if o.ApplyEXIF {
		img = img.Oriented()
	}
	if o.HFOrder && img.Mode != ModeRGB {
		full := region{0, 0, img.Width, img.Height}
		rgb := make([]uint8, img.Width*img.Height*3)
		oldToRGB(rgb, img.Width*3, img, full)
		img = &Image{Mode: ModeRGB, Width: img.Width, Height: img.Height, Pix: rgb}
	}
	n := o.Size
	outW, outH := ResizedSize(img.Width, img.Height, *o)
	if outW <= 0 || outH <= 0 {
		return fmt.Errorf("imageproc: %dx%d image resizes to %dx%d", img.Width, img.Height, outW, outH)
	}
	left := CropOffset(outW, n, o.HFOrder)
	top := CropOffset(outH, n, o.HFOrder)
	r := region{max(left, 0), max(top, 0), min(left+n, outW), min(top+n, outH)}
	if r.w() < n || r.h() < n {
		clear(dst)
	}
	if r.w() <= 0 || r.h() <= 0 {
		return nil
	}
	part := oldResizeRegion(img, outW, outH, f, r, parallel)
	off := ((r.y0-top)*n + (r.x0 - left)) * 3
	oldToRGB(dst[off:], n*3, part, region{0, 0, part.Width, part.Height})
	return nil
}

func oldResizeRegion(img *Image, outW, outH int, f filterID, r region, parallel bool) *Image {
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
		out.Pix32 = resample32(img.Pix32, img.Width, cx, cy, r, false)
		return out
	}
	nch := img.Mode.Channels()
	src := img.Pix
	premul := img.Mode == ModeRGBA || img.Mode == ModeLA
	if premul {
		src = oldPremultiply(src, nch, parallel)
	}
	out.Pix = oldResample8(src, img.Width, nch, cx, cy, r, parallel)
	if premul {
		unpremultiply(out.Pix, nch)
	}
	return out
}

func oldResample8(src []uint8, srcW, nch int, cx, cy *coeffs, r region, parallel bool) []uint8 {
	rlo, rhi := rowsNeeded(cy, r.y0, r.y1)
	// Horizontal pass into tmp: rows [rlo, rhi), columns r.x0..r.x1.
	var tmp []uint8
	var tmpStride, colOff int
	if cx != nil {
		ow := r.w()
		tmpStride = ow * nch
		tmp = make([]uint8, (rhi-rlo)*tmpStride)
		work := (rhi - rlo) * ow * cx.ksize * nch
		oldParallelRows(parallel, rhi-rlo, work, func(lo, hi int) {
			for y := lo; y < hi; y++ {
				oldHpass8(tmp[y*tmpStride:(y+1)*tmpStride], src[(y+rlo)*srcW*nch:(y+rlo+1)*srcW*nch], nch, cx, r.x0, r.x1)
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
	oldParallelRows(parallel, r.h(), work, func(lo, hi int) {
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
func oldHpass8(dst, row []uint8, nch int, cx *coeffs, x0, x1 int) {
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

func oldPremultiply(src []uint8, nch int, parallel bool) []uint8 {
	dst := make([]uint8, len(src))
	n := len(src) / nch
	oldParallelRows(parallel, n, len(src), func(lo, hi int) {
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

// toRGB writes the rectangle r of img as RGB bytes to dst, rows stride
// bytes apart, following Pillow's convert('RGB'): alpha dropped, palette
// looked up (transparency ignored), grey replicated, I clipped to 0..255,
// CMYK via Pillow's cmyk2rgb.
func oldToRGB(dst []uint8, stride int, img *Image, r region) {
	nch := img.Mode.Channels()
	for y := r.y0; y < r.y1; y++ {
		d := dst[(y-r.y0)*stride : (y-r.y0)*stride+r.w()*3]
		if img.Mode == ModeI {
			s := img.Pix32[y*img.Width+r.x0 : y*img.Width+r.x1]
			for x, v := range s {
				u := uint8(min(max(v, 0), 255))
				d[3*x], d[3*x+1], d[3*x+2] = u, u, u
			}
			continue
		}
		s := img.Pix[(y*img.Width+r.x0)*nch : (y*img.Width+r.x1)*nch]
		switch img.Mode {
		case ModeRGB:
			copy(d, s)
		case ModeRGBA:
			for x := 0; x < r.w(); x++ {
				d[3*x], d[3*x+1], d[3*x+2] = s[4*x], s[4*x+1], s[4*x+2]
			}
		case ModeL, Mode1:
			for x, v := range s {
				d[3*x], d[3*x+1], d[3*x+2] = v, v, v
			}
		case ModeLA:
			for x := 0; x < r.w(); x++ {
				v := s[2*x]
				d[3*x], d[3*x+1], d[3*x+2] = v, v, v
			}
		case ModeP:
			for x, v := range s {
				var c [3]uint8
				if int(v) < len(img.Palette) {
					c = img.Palette[v]
				} else {
					// Pillow's palettes start as a grey ramp.
					c = [3]uint8{v, v, v}
				}
				d[3*x], d[3*x+1], d[3*x+2] = c[0], c[1], c[2]
			}
		case ModeCMYK:
			for x := 0; x < r.w(); x++ {
				q := s[4*x : 4*x+4]
				nk := 255 - int32(q[3])
				for c := 0; c < 3; c++ {
					v := nk - int32(muldiv255(uint32(q[c]), uint32(nk)))
					d[3*x+c] = uint8(min(max(v, 0), 255))
				}
			}
		}
	}
}
