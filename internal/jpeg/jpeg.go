// Package jpeg decodes baseline and progressive Huffman-coded JPEG images
// bit-exactly like libjpeg-turbo 2.1 with its default decompression
// settings, which is what Pillow (and therefore the reference CLIP
// preprocessing) uses:
//
//   - the accurate integer inverse DCT ("islow", jidctint.c), including its
//     10-bit wrap-around range limiting;
//   - "fancy" (triangular) upsampling of subsampled components (h2v1, h2v2
//     and h1v2 as in jdsample.c; other integral ratios by replication), with
//     libjpeg's edge replication at the right and bottom edges;
//   - the fixed-point YCbCr to RGB tables of jdcolor.c;
//   - interblock smoothing of progressive images whose low-frequency AC
//     coefficients are not fully known (jdcoefct.c), e.g. truncated files;
//   - libjpeg's recovery from corrupt or truncated data: a premature end of
//     the entropy-coded data is padded with zero bits, the rest of the
//     segment is left at zero coefficients (flat grey), restart markers
//     resynchronise as in jpeg_resync_to_restart, and the end of the file
//     reads as an EOI marker.
//
// Merged upsampling (jdmerge.c) is never used by libjpeg-turbo when fancy
// upsampling is on, which is the default, so it is not implemented.
// Arithmetic-coded, lossless, hierarchical and 12-bit JPEGs are rejected with
// an error.
package jpeg

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
)

// DefaultMaxPixels is the default limit on width*height, Pillow's
// MAX_IMAGE_PIXELS * 2 (the size at which Pillow refuses to open an image).
const DefaultMaxPixels = 178956970

// DefaultMaxScans is the default limit on the number of scans in a
// progressive or multi-scan file. Real encoders write at most a few dozen.
const DefaultMaxScans = 1000

// Options tune decoding. The zero value means the defaults.
type Options struct {
	// MaxPixels refuses images with more than this many pixels before any
	// large allocation. Zero means DefaultMaxPixels.
	MaxPixels int
	// MaxScans refuses files with more scans than this. Zero means
	// DefaultMaxScans.
	MaxScans int
}

// FormatError reports that the input is not a valid JPEG in a way that
// libjpeg also refuses.
type FormatError string

func (e FormatError) Error() string { return "jpeg: invalid format: " + string(e) }

// UnsupportedError reports a valid JPEG feature that this package does not
// implement.
type UnsupportedError string

func (e UnsupportedError) Error() string { return "jpeg: unsupported: " + string(e) }

// ErrTooLarge is returned (wrapped) when the image exceeds Options.MaxPixels.
var ErrTooLarge = errors.New("jpeg: image too large")

// Decode reads a JPEG image from r with the default Options.
//
// The result is an *image.Gray for one-component images, an *image.RGBA
// (opaque, alpha 255) for three-component images, and an *image.CMYK for
// four-component images. CMYK values follow Pillow's convention for CMYK
// JPEGs: Pillow assumes Adobe's inverted polarity and stores 255 minus the
// decoded value, so the *image.CMYK holds exactly what Pillow's image.tobytes()
// would; use CMYKToRGB for Pillow's convert("RGB") of it (image.CMYK's own
// At/RGBA conversion is Go's, which differs from Pillow's).
func Decode(r io.Reader) (image.Image, error) {
	return DecodeOptions(r, Options{})
}

// DecodeOptions is Decode with explicit options.
func DecodeOptions(r io.Reader, opts Options) (image.Image, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("jpeg: reading input: %w", err)
	}
	return DecodeBytes(data, opts)
}

// DecodeBytes decodes a JPEG held in memory.
func DecodeBytes(data []byte, opts Options) (image.Image, error) {
	d := newDecoder(data, opts)
	return d.decode()
}

// DecodeConfig returns the colour model and dimensions of a JPEG image
// without decoding the image data. The colour model is color.GrayModel,
// color.RGBAModel or color.CMYKModel, matching what Decode returns.
func DecodeConfig(r io.Reader) (image.Config, error) {
	data, err := readHeaderBytes(r)
	if err != nil {
		return image.Config{}, err
	}
	// Like jpeg_read_header: parse up to the first SOS, but do not apply
	// the pixel limit (no pixel memory is allocated here).
	d := newDecoder(data, Options{MaxPixels: math.MaxInt})
	if err := d.readHeader(); err != nil {
		return image.Config{}, err
	}
	cfg := image.Config{Width: d.width, Height: d.height}
	switch d.ncomp {
	case 1:
		cfg.ColorModel = color.GrayModel
	case 3:
		cfg.ColorModel = color.RGBAModel
	case 4:
		cfg.ColorModel = color.CMYKModel
	default:
		return image.Config{}, UnsupportedError(fmt.Sprintf("%d colour components", d.ncomp))
	}
	return cfg, nil
}

// readHeaderBytes reads r up to and including the first SOS segment
// (or all of it, whichever is shorter), walking marker segments so that
// entropy-coded data need not be read.
func readHeaderBytes(r io.Reader) ([]byte, error) {
	var buf []byte
	var one [1]byte
	next := func() (byte, bool) {
		if _, err := io.ReadFull(r, one[:]); err != nil {
			return 0, false
		}
		buf = append(buf, one[0])
		return one[0], true
	}
	for len(buf) < 1<<26 {
		b, ok := next()
		if !ok {
			return buf, nil
		}
		if b != 0xFF {
			continue
		}
		m := byte(0xFF)
		for m == 0xFF {
			if m, ok = next(); !ok {
				return buf, nil
			}
		}
		switch {
		case m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7):
			continue
		case m == 0xD9:
			return buf, nil
		}
		hi, ok1 := next()
		lo, ok2 := next()
		if !ok1 || !ok2 {
			return buf, nil
		}
		l := int(hi)<<8 | int(lo)
		if l > 2 {
			start := len(buf)
			buf = append(buf, make([]byte, l-2)...)
			n, _ := io.ReadFull(r, buf[start:])
			buf = buf[:start+n]
			if n < l-2 {
				return buf, nil
			}
		}
		if m == 0xDA {
			return buf, nil
		}
	}
	return buf, nil
}

// CMYKToRGB converts a CMYK image as returned by Decode to RGB exactly like
// Pillow's Image.convert("RGB") (Convert.c cmyk2rgb):
// R = clip(255-K' - (C*(255-K') rounded /255)) and likewise for G and B.
func CMYKToRGB(src *image.CMYK) *image.RGBA {
	b := src.Bounds()
	dst := image.NewRGBA(b)
	w := b.Dx()
	for y := 0; y < b.Dy(); y++ {
		s := src.Pix[y*src.Stride : y*src.Stride+4*w]
		o := dst.Pix[y*dst.Stride : y*dst.Stride+4*w]
		for x := 0; x < w; x++ {
			nk := 255 - int(s[4*x+3])
			for i := 0; i < 3; i++ {
				t := int(s[4*x+i])*nk + 128
				v := nk - ((t>>8)+t)>>8
				if v < 0 {
					v = 0
				} else if v > 255 {
					v = 255
				}
				o[4*x+i] = uint8(v)
			}
			o[4*x+3] = 255
		}
	}
	return dst
}
