package imageproc

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
)

// ResizedSize returns the size (width, height) that the resize step of o
// produces for a w×h image. With the default options this is torchvision's
// Resize(n) rule: the short side becomes n, the long side int(n*long/short).
func ResizedSize(w, h int, o Options) (int, int) {
	if o.NoResize {
		return w, h
	}
	if o.ResizeWidth > 0 && o.ResizeHeight > 0 {
		return o.ResizeWidth, o.ResizeHeight
	}
	n := o.ResizeShortest
	if n <= 0 {
		n = o.Size
	}
	short, long := w, h
	if w > h {
		short, long = h, w
	}
	if short <= 0 {
		return w, h
	}
	newLong := int(float64(n) * float64(long) / float64(short))
	if w <= h {
		return n, newLong
	}
	return newLong, n
}

// CropOffset returns the offset of a crop of length c from an axis of
// length s. The reference (torchvision CenterCrop) rounds (s-c)/2 half to
// even; the HF order floors it. When c > s the axis is padded with zeros
// and the offset is negative: torchvision pads floor((c-s)/2) before, HF
// pads ceil((c-s)/2).
func CropOffset(s, c int, hf bool) int {
	d := s - c
	if d < 0 {
		if hf {
			return -((-d + 1) / 2)
		}
		return -(-d / 2)
	}
	if hf {
		return d / 2
	}
	return int(math.RoundToEven(float64(d) / 2))
}

func checkImage(img *Image) error {
	if img == nil {
		return errors.New("imageproc: nil image")
	}
	if img.Width <= 0 || img.Height <= 0 {
		return fmt.Errorf("imageproc: image is %dx%d: %w", img.Width, img.Height, ErrEmpty)
	}
	n := img.Width * img.Height
	if img.Mode == ModeI {
		if len(img.Pix32) != n {
			return fmt.Errorf("imageproc: mode I image %dx%d has %d values, want %d", img.Width, img.Height, len(img.Pix32), n)
		}
		return nil
	}
	c := img.Mode.Channels()
	if c == 0 {
		return fmt.Errorf("imageproc: unsupported mode %q", img.Mode)
	}
	if len(img.Pix) != n*c {
		return fmt.Errorf("imageproc: mode %s image %dx%d has %d bytes, want %d", img.Mode, img.Width, img.Height, len(img.Pix), n*c)
	}
	return nil
}

// CropRGB resizes, centre-crops and converts img to RGB, returning
// Size×Size×3 bytes (HWC), the input of ToTensor in the reference.
func CropRGB(img *Image, o Options) ([]uint8, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	dst := make([]uint8, o.Size*o.Size*3)
	if err := cropRGB(dst, img, &o, true); err != nil {
		return nil, err
	}
	return dst, nil
}

func cropRGB(dst []uint8, img *Image, o *Options, parallel bool) error {
	if err := checkImage(img); err != nil {
		return err
	}
	if o.ApplyEXIF {
		img = img.Oriented()
	}
	return cropSource(dst, img, nil, o, parallel)
}

// cropSource is cropRGB for either an Image (img) or a view of a decoded Go
// image (gv, whose mode is an 8-bit resampling mode; nil to use img). 8-bit
// resampling reads the source in place and uses recycled scratch memory;
// the other modes (P, 1 and I, unless the HF order converts them to RGB
// first) and nearest-neighbour resizing go through resizeRegion.
func cropSource(dst []uint8, img *Image, gv *view, o *Options, parallel bool) error {
	f, err := parseFilter(o.Interpolation)
	if err != nil {
		return err
	}
	var v view
	ok := false
	if gv != nil {
		v, ok = *gv, true
	} else {
		v, ok = imageView(img, o.HFOrder)
	}
	if ok && f == filterNearest {
		// Rare: materialise the image and take the nearest-neighbour path.
		ok = false
		if gv != nil {
			img = convertTo(gv.gimg, gv.mode)
		}
	}
	w, h := v.w, v.h
	if !ok {
		w, h = img.Width, img.Height
		if o.HFOrder && img.Mode != ModeRGB {
			rgb := make([]uint8, w*h*3)
			toRGB(rgb, w*3, img, region{0, 0, w, h})
			img = &Image{Mode: ModeRGB, Width: w, Height: h, Pix: rgb}
		}
	}
	n := o.Size
	outW, outH := ResizedSize(w, h, *o)
	if outW <= 0 || outH <= 0 {
		return fmt.Errorf("imageproc: %dx%d image resizes to %dx%d", w, h, outW, outH)
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
	off := ((r.y0-top)*n + (r.x0 - left)) * 3
	if !ok {
		part := resizeRegion(img, outW, outH, f, r, parallel)
		toRGB(dst[off:], n*3, part, region{0, 0, part.Width, part.Height})
		return nil
	}
	nch := v.nch
	if outW == w && outH == h {
		// No resize: convert the crop's rows straight into dst.
		// Without a resize nothing is premultiplied: the stored values
		// are kept.
		v.premul = false
		buf := getBytes(r.w() * nch)
		for y := r.y0; y < r.y1; y++ {
			s := v.packedRow(y, r.x0, r.x1, *buf)
			rowToRGB(dst[off+(y-r.y0)*n*3:], s, nil, v.mode, nil)
		}
		putBytes(buf)
		return nil
	}
	var cx, cy *coeffs
	if outW != w {
		cx = getCoeffs(w, outW, f, r.x0, r.x1)
	}
	if outH != h {
		cy = getCoeffs(h, outH, f, r.y0, r.y1)
	}
	rowLen := r.w() * nch
	partBuf := getBytes(r.h() * rowLen)
	part := *partBuf
	resample8(part, &v, cx, cy, r, parallel)
	if v.premul {
		unpremultiply(part, nch)
	}
	for y := 0; y < r.h(); y++ {
		rowToRGB(dst[off+y*n*3:], part[y*rowLen:(y+1)*rowLen], nil, v.mode, nil)
	}
	putBytes(partBuf)
	return nil
}

// toRGB writes the rectangle r of img as RGB bytes to dst, rows stride
// bytes apart (see rowToRGB).
func toRGB(dst []uint8, stride int, img *Image, r region) {
	nch := img.Mode.Channels()
	for y := r.y0; y < r.y1; y++ {
		d := dst[(y-r.y0)*stride : (y-r.y0)*stride+r.w()*3]
		if img.Mode == ModeI {
			rowToRGB(d, nil, img.Pix32[y*img.Width+r.x0:y*img.Width+r.x1], img.Mode, nil)
			continue
		}
		rowToRGB(d, img.Pix[(y*img.Width+r.x0)*nch:(y*img.Width+r.x1)*nch], nil, img.Mode, img.Palette)
	}
}

// Preprocess returns the model input for img: CHW float32, 3×Size×Size.
func Preprocess(img *Image, o Options) ([]float32, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	dst := make([]float32, 3*o.Size*o.Size)
	if err := preprocessInto(dst, img, &o, true); err != nil {
		return nil, err
	}
	return dst, nil
}

// PreprocessInto writes the model input for img into dst, which must hold
// exactly 3×Size×Size values.
func PreprocessInto(dst []float32, img *Image, o Options) error {
	if err := o.validate(); err != nil {
		return err
	}
	return preprocessInto(dst, img, &o, true)
}

func preprocessInto(dst []float32, img *Image, o *Options, parallel bool) error {
	n := o.Size
	if err := checkOutput(dst, n); err != nil {
		return err
	}
	crop := getBytes(n * n * 3)
	defer putBytes(crop)
	if err := cropRGB(*crop, img, o, parallel); err != nil {
		return err
	}
	Normalize(dst, *crop, *o)
	return nil
}

// Normalize turns an HWC RGB crop into normalised CHW float32 values. In the
// reference order each value is ((float32(u8) / 255) - mean) / std in
// float32 (a true division, as ToTensor does); with HFOrder the scaling is
// float32(float64(u8) * RescaleFactor) instead. len(dst) should equal
// len(crop); only min(len(dst), len(crop))/3 pixels are written otherwise.
func Normalize(dst []float32, crop []uint8, o Options) {
	hw := min(len(crop), len(dst)) / 3
	var lut [3][256]float32
	for c := 0; c < 3; c++ {
		mean, std := o.Mean[c], o.Std[c]
		for v := 0; v < 256; v++ {
			var x float32
			if o.HFOrder {
				f := o.RescaleFactor
				if f == 0 {
					f = 1.0 / 255
				}
				x = float32(float64(v) * f)
			} else {
				x = float32(float32(v) / 255)
			}
			lut[c][v] = float32(x-mean) / std
		}
	}
	r, g, b := dst[:hw], dst[hw:2*hw], dst[2*hw:3*hw]
	for i := 0; i < hw; i++ {
		p := crop[3*i : 3*i+3]
		r[i] = lut[0][p[0]]
		g[i] = lut[1][p[1]]
		b[i] = lut[2][p[2]]
	}
}

// PreprocessBatch preprocesses imgs concurrently on GOMAXPROCS goroutines
// into one N×3×Size×Size buffer. Failing images leave zeros in their slot
// and are reported together in the returned error.
func PreprocessBatch(imgs []*Image, o Options) ([]float32, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	per := 3 * o.Size * o.Size
	out := make([]float32, len(imgs)*per)
	errs := make([]error, len(imgs))
	forEach(len(imgs), func(i int) {
		if err := preprocessInto(out[i*per:(i+1)*per], imgs[i], &o, false); err != nil {
			errs[i] = fmt.Errorf("image %d: %w", i, err)
		}
	})
	return out, errors.Join(errs...)
}

// PreprocessFiles loads and preprocesses the files concurrently on
// GOMAXPROCS goroutines into one N×3×Size×Size buffer. Files that fail leave
// zeros in their slot and are all reported (by name) in the returned error.
func PreprocessFiles(paths []string, o Options) ([]float32, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	per := 3 * o.Size * o.Size
	out := make([]float32, len(paths)*per)
	errs := make([]error, len(paths))
	forEach(len(paths), func(i int) {
		errs[i] = preprocessFile(out[i*per:(i+1)*per], paths[i], &o, false)
	})
	return out, errors.Join(errs...)
}

// forEach calls fn(i) for i in [0, n) on up to GOMAXPROCS goroutines.
func forEach(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}
