package imageproc

import (
	"errors"
	"fmt"
	"image"
	"io"
	"os"
)

// PreprocessImageInto writes the model input for a decoded Go image into
// dst (3×Size×Size values). The result is exactly that of
// PreprocessInto(dst, FromImage(img), o), but the common image types
// (*image.RGBA, *image.NRGBA, *image.Gray, *image.CMYK; *image.YCbCr and
// the rest row by row) are read in place rather than copied, and the
// scratch memory is recycled: a warmed-up call allocates nothing
// proportional to the image.
func PreprocessImageInto(dst []float32, img image.Image, o Options) error {
	if err := o.validate(); err != nil {
		return err
	}
	if err := checkOutput(dst, o.Size); err != nil {
		return err
	}
	if img == nil {
		return errors.New("imageproc: nil image")
	}
	b := img.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return fmt.Errorf("imageproc: image is %dx%d: %w", b.Dx(), b.Dy(), ErrEmpty)
	}
	mode := fromImageMode(img)
	if o.HFOrder && mode != ModeRGB {
		return preprocessInto(dst, FromImage(img), &o, true)
	}
	v, ok := goView(img, mode)
	if !ok {
		return preprocessInto(dst, FromImage(img), &o, true)
	}
	return preprocessView(dst, &v, &o, true)
}

// PreprocessFileInto loads the image file at path and writes its model input
// into dst (3×Size×Size values), exactly as LoadFile followed by
// PreprocessInto would, but without converting the decoded image to an
// Image where it can be read in place (colour and grey JPEGs, 8-bit RGB,
// RGBA, grey and grey+alpha PNGs, ...) and with the file buffer recycled.
// Errors name the file.
func PreprocessFileInto(dst []float32, path string, o Options) error {
	if err := o.validate(); err != nil {
		return err
	}
	if err := checkOutput(dst, o.Size); err != nil {
		return err
	}
	return preprocessFile(dst, path, &o, true)
}

func preprocessFile(dst []float32, path string, o *Options, parallel bool) error {
	buf, data, err := readFile(path)
	if err != nil {
		return fmt.Errorf("imageproc: %w", err)
	}
	d, err := decodeRaw(data, o.maxPixels(), o.GoJPEG)
	if err != nil {
		putBytes(buf)
		return fmt.Errorf("imageproc: %s: %w", path, err)
	}
	mode, ok := d.mode()
	if ok && o.HFOrder && mode != ModeRGB {
		ok = false
	}
	if ok && o.ApplyEXIF {
		if or := d.orientation(); or >= 2 && or <= 8 {
			ok = false
		}
	}
	// The buffer goes back only at the end, in case a decoder's image
	// refers to its input.
	defer putBytes(buf)
	if !ok {
		if err := preprocessInto(dst, d.image(), o, parallel); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	}
	v, _ := goView(d.gimg, mode)
	if err := preprocessView(dst, &v, o, parallel); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// readFile reads the file at path into a recycled buffer (nil when the file
// was too large to recycle), returning the buffer and the data.
func readFile(path string) (*[]uint8, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() <= 0 || fi.Size() >= maxPooled {
		data, err := io.ReadAll(f)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: reading: %w", path, err)
		}
		return nil, data, nil
	}
	buf := getBytes(int(fi.Size()) + 1)
	b := (*buf)[:cap(*buf)]
	n, err := io.ReadFull(f, b)
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		return buf, b[:n], nil
	case err != nil:
		putBytes(buf)
		return nil, nil, fmt.Errorf("%s: reading: %w", path, err)
	}
	// The file grew while being read: read the rest the slow way.
	rest, err := io.ReadAll(f)
	if err != nil {
		putBytes(buf)
		return nil, nil, fmt.Errorf("%s: reading: %w", path, err)
	}
	data := append(b[:n:n], rest...)
	putBytes(buf)
	return nil, data, nil
}

func checkOutput(dst []float32, n int) error {
	if len(dst) != 3*n*n {
		return fmt.Errorf("imageproc: output has %d values, want 3×%d×%d = %d", len(dst), n, n, 3*n*n)
	}
	return nil
}

// preprocessView is preprocessInto for a view of a decoded Go image.
func preprocessView(dst []float32, v *view, o *Options, parallel bool) error {
	n := o.Size
	crop := getBytes(n * n * 3)
	defer putBytes(crop)
	if err := cropSource(*crop, nil, v, o, parallel); err != nil {
		return err
	}
	Normalize(dst, *crop, *o)
	return nil
}
