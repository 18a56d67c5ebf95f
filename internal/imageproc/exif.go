package imageproc

import "encoding/binary"

// jpegOrientation returns the EXIF orientation (1..8) from a JPEG's APP1
// segment, or 0 when there is none or it is malformed.
func jpegOrientation(data []byte) int {
	p := 2 // after SOI
	for p+4 <= len(data) {
		if data[p] != 0xff {
			return 0
		}
		marker := data[p+1]
		if marker == 0xff { // fill byte
			p++
			continue
		}
		if marker == 0xda || marker == 0xd9 { // SOS, EOI: no more headers
			return 0
		}
		if marker >= 0xd0 && marker <= 0xd7 || marker == 0x01 {
			p += 2
			continue
		}
		n := int(binary.BigEndian.Uint16(data[p+2:]))
		if n < 2 || p+2+n > len(data) {
			return 0
		}
		seg := data[p+4 : p+2+n]
		if marker == 0xe1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			if o := tiffOrientation(seg[6:]); o != 0 {
				return o
			}
		}
		p += 2 + n
	}
	return 0
}

// tiffOrientation reads tag 0x0112 (Orientation) from IFD0 of a TIFF-format
// EXIF block, returning 0 when absent or invalid.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	if bo.Uint16(t[2:]) != 42 {
		return 0
	}
	off := int64(bo.Uint32(t[4:]))
	if off < 8 || off+2 > int64(len(t)) {
		return 0
	}
	n := int64(bo.Uint16(t[off:]))
	for i := int64(0); i < n; i++ {
		e := off + 2 + 12*i
		if e+12 > int64(len(t)) {
			return 0
		}
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		var v int
		switch bo.Uint16(t[e+2:]) {
		case 3: // SHORT
			v = int(bo.Uint16(t[e+8:]))
		case 4: // LONG
			v = int(bo.Uint32(t[e+8:]))
		default:
			return 0
		}
		if v >= 1 && v <= 8 {
			return v
		}
		return 0
	}
	return 0
}

// Oriented returns img rotated/flipped so that its EXIF orientation becomes
// 1, as PIL.ImageOps.exif_transpose would; img itself if no change is needed.
func (img *Image) Oriented() *Image {
	o := img.Orientation
	if o < 2 || o > 8 {
		return img
	}
	w, h := img.Width, img.Height
	ow, oh := w, h
	if o >= 5 {
		ow, oh = h, w
	}
	// src returns the source coordinates of output pixel (x, y).
	var src func(x, y int) (int, int)
	switch o {
	case 2: // FLIP_LEFT_RIGHT
		src = func(x, y int) (int, int) { return w - 1 - x, y }
	case 3: // ROTATE_180
		src = func(x, y int) (int, int) { return w - 1 - x, h - 1 - y }
	case 4: // FLIP_TOP_BOTTOM
		src = func(x, y int) (int, int) { return x, h - 1 - y }
	case 5: // TRANSPOSE
		src = func(x, y int) (int, int) { return y, x }
	case 6: // ROTATE_270 (clockwise quarter turn)
		src = func(x, y int) (int, int) { return y, h - 1 - x }
	case 7: // TRANSVERSE
		src = func(x, y int) (int, int) { return w - 1 - y, h - 1 - x }
	case 8: // ROTATE_90 (counter-clockwise quarter turn)
		src = func(x, y int) (int, int) { return w - 1 - y, x }
	}
	out := &Image{Mode: img.Mode, Width: ow, Height: oh, Palette: img.Palette, Orientation: 1}
	if img.Mode == ModeI {
		out.Pix32 = make([]int32, ow*oh)
		for y := 0; y < oh; y++ {
			for x := 0; x < ow; x++ {
				sx, sy := src(x, y)
				out.Pix32[y*ow+x] = img.Pix32[sy*w+sx]
			}
		}
		return out
	}
	nch := img.Mode.Channels()
	out.Pix = make([]uint8, ow*oh*nch)
	for y := 0; y < oh; y++ {
		for x := 0; x < ow; x++ {
			sx, sy := src(x, y)
			copy(out.Pix[(y*ow+x)*nch:(y*ow+x+1)*nch], img.Pix[(sy*w+sx)*nch:])
		}
	}
	return out
}
