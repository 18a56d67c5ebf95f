package imageproc

import (
	"image"
)

// view is a read-only window on 8-bit source pixels for the resampler,
// in one of the byte modes (RGB, RGBA, L, LA, CMYK). It lets the resampler
// read a decoded Go image (or an Image) in place instead of copying it:
//
//   - direct: row y starts at pix[y*stride], pixel x at x*step, with the
//     nch channels first (step may exceed nch, e.g. RGB read from RGBA);
//   - premul: the last channel is alpha and rows are premultiplied while
//     they are read (Pillow resizes RGBA and LA premultiplied);
//   - otherwise rows are converted one at a time, from an Image in another
//     mode to RGB (the HF order) or from a Go image without a direct layout.
type view struct {
	w, h   int
	mode   Mode // mode of the pixels the view yields
	nch    int
	pix    []uint8
	stride int
	step   int
	premul bool
	// Conversion sources, used when pix == nil.
	img  *Image      // converted to RGB by rowToRGB
	gimg image.Image // converted to mode by convertRow/genericRow; also set for direct views of it
}

// direct reports whether rows can be used in place, packed.
func (v *view) packedDirect() bool {
	return v.pix != nil && !v.premul && v.step == v.nch
}

// row returns the pixels [x0, x1) of row y and their step in bytes, either
// in place or converted into buf (which must hold (x1-x0)*nch bytes).
func (v *view) row(y, x0, x1 int, buf []uint8) ([]uint8, int) {
	nch := v.nch
	w := x1 - x0
	if v.pix != nil {
		s := v.pix[y*v.stride+x0*v.step : y*v.stride+(x1-1)*v.step+nch]
		if !v.premul {
			return s, v.step
		}
		premultiplyRow(buf[:w*nch], s, nch, v.step)
		return buf[:w*nch], nch
	}
	d := buf[:w*nch]
	switch {
	case v.img != nil:
		img := v.img
		if img.Mode == ModeI {
			rowToRGB(d, nil, img.Pix32[y*img.Width+x0:y*img.Width+x1], img.Mode, img.Palette)
		} else {
			c := img.Mode.Channels()
			rowToRGB(d, img.Pix[(y*img.Width+x0)*c:(y*img.Width+x1)*c], nil, img.Mode, img.Palette)
		}
	default:
		b := v.gimg.Bounds()
		if !convertRow(d, v.gimg, v.mode, b.Min.X+x0, b.Min.Y+y, w) {
			genericRow(d, v.gimg, v.mode, b.Min.X+x0, b.Min.Y+y)
		}
		if v.premul {
			premultiplyRow(d, d, nch, nch)
		}
	}
	return d, nch
}

// packedRow is row with the pixels packed (step nch).
func (v *view) packedRow(y, x0, x1 int, buf []uint8) []uint8 {
	s, step := v.row(y, x0, x1, buf)
	if step == v.nch {
		return s
	}
	d := buf[:(x1-x0)*v.nch]
	switch {
	case v.nch == 3 && step == 4:
		for x := range x1 - x0 {
			q := s[4*x : 4*x+3]
			o := d[3*x : 3*x+3]
			o[0], o[1], o[2] = q[0], q[1], q[2]
		}
	default:
		for x := range x1 - x0 {
			copy(d[x*v.nch:(x+1)*v.nch], s[x*step:])
		}
	}
	return d
}

// premultiplyRow writes the premultiplied pixels of src (step bytes apart,
// alpha the last of nch channels) packed into dst; dst may equal src when
// step == nch.
func premultiplyRow(dst, src []uint8, nch, step int) {
	switch {
	case nch == 4 && step == 4:
		for i := 0; i+3 < len(dst) && i+3 < len(src); i += 4 {
			p := src[i : i+4 : i+4]
			a := uint32(p[3])
			r, g, b := p[0], p[1], p[2]
			d := dst[i : i+4 : i+4]
			if a == 255 {
				d[0], d[1], d[2], d[3] = r, g, b, 255
				continue
			}
			d[0] = uint8(muldiv255(uint32(r), a))
			d[1] = uint8(muldiv255(uint32(g), a))
			d[2] = uint8(muldiv255(uint32(b), a))
			d[3] = uint8(a)
		}
	default:
		n := len(dst) / nch
		for x := 0; x < n; x++ {
			p := src[x*step : x*step+nch]
			d := dst[x*nch : x*nch+nch]
			a := uint32(p[nch-1])
			for c := 0; c < nch-1; c++ {
				d[c] = uint8(muldiv255(uint32(p[c]), a))
			}
			d[nch-1] = uint8(a)
		}
	}
}

// imageView returns a view of img for the resampler and true, or false when
// img's mode is not resampled in 8 bits (P and 1 use nearest neighbour, I
// 32-bit arithmetic) and the HF order does not convert it first. With
// toRGB (the HF order) every mode is read converted to RGB.
func imageView(img *Image, toRGB bool) (view, bool) {
	v := view{w: img.Width, h: img.Height, mode: img.Mode}
	if toRGB && img.Mode != ModeRGB {
		v.mode, v.nch, v.img = ModeRGB, 3, img
		return v, true
	}
	switch img.Mode {
	case ModeRGB, ModeL, ModeCMYK, ModeRGBA, ModeLA:
	default:
		return v, false
	}
	v.nch = img.Mode.Channels()
	v.pix, v.step, v.stride = img.Pix, v.nch, v.nch*img.Width
	v.premul = img.Mode == ModeRGBA || img.Mode == ModeLA
	return v, true
}

// goView returns a view of a decoded Go image in the given mode (the mode
// FromImage or the decoder would give it) and true, or false when the mode
// is not an 8-bit resampling mode. The pixels read are exactly those
// convertTo would copy.
func goView(img image.Image, mode Mode) (view, bool) {
	b := img.Bounds()
	v := view{w: b.Dx(), h: b.Dy(), mode: mode, nch: mode.Channels()}
	switch mode {
	case ModeRGB, ModeL, ModeCMYK, ModeRGBA, ModeLA:
	default:
		return v, false
	}
	v.premul = mode == ModeRGBA || mode == ModeLA
	v.gimg = img
	switch m := img.(type) {
	case *image.RGBA:
		// Premultiplied: only opaque pixels read the same as straight ones.
		if mode == ModeRGB || (mode == ModeRGBA && m.Opaque()) {
			v.pix, v.stride, v.step = m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, 4
			return v, true
		}
	case *image.NRGBA:
		if mode == ModeRGB || mode == ModeRGBA {
			v.pix, v.stride, v.step = m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, 4
			return v, true
		}
	case *image.Gray:
		if mode == ModeL {
			v.pix, v.stride, v.step = m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, 1
			return v, true
		}
	case *image.CMYK:
		if mode == ModeCMYK {
			v.pix, v.stride, v.step = m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, 4
			return v, true
		}
	}
	return v, true
}

// rowToRGB converts one row of packed pixels in mode to RGB in dst,
// following Pillow's convert('RGB'): alpha dropped, palette looked up
// (transparency ignored), grey replicated, I clipped to 0..255, CMYK via
// Pillow's cmyk2rgb. Mode I reads s32, every other mode s.
func rowToRGB(d, s []uint8, s32 []int32, mode Mode, palette [][3]uint8) {
	switch mode {
	case ModeI:
		d = d[:3*len(s32)]
		for x, v := range s32 {
			u := uint8(min(max(v, 0), 255))
			d[3*x], d[3*x+1], d[3*x+2] = u, u, u
		}
	case ModeRGB:
		copy(d, s)
	case ModeRGBA:
		n := len(s) / 4
		d = d[:3*n]
		for x := 0; x < n; x++ {
			q := s[4*x : 4*x+3]
			o := d[3*x : 3*x+3]
			o[0], o[1], o[2] = q[0], q[1], q[2]
		}
	case ModeL, Mode1:
		d = d[:3*len(s)]
		for x, v := range s {
			o := d[3*x : 3*x+3]
			o[0], o[1], o[2] = v, v, v
		}
	case ModeLA:
		n := len(s) / 2
		d = d[:3*n]
		for x := 0; x < n; x++ {
			v := s[2*x]
			o := d[3*x : 3*x+3]
			o[0], o[1], o[2] = v, v, v
		}
	case ModeP:
		d = d[:3*len(s)]
		for x, v := range s {
			var c [3]uint8
			if int(v) < len(palette) {
				c = palette[v]
			} else {
				// Pillow's palettes start as a grey ramp.
				c = [3]uint8{v, v, v}
			}
			d[3*x], d[3*x+1], d[3*x+2] = c[0], c[1], c[2]
		}
	case ModeCMYK:
		n := len(s) / 4
		d = d[:3*n]
		for x := 0; x < n; x++ {
			q := s[4*x : 4*x+4]
			nk := 255 - int32(q[3])
			for c := 0; c < 3; c++ {
				v := nk - int32(muldiv255(uint32(q[c]), uint32(nk)))
				d[3*x+c] = uint8(min(max(v, 0), 255))
			}
		}
	}
}
