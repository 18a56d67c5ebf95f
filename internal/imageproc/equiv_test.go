package imageproc

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/goclip/goclip/internal/fixtures"
)

// randImage returns a w×h Image in mode with random pixels (alpha mixing 0,
// 255 and random values; I values beyond 0..255).
func randImage(mode Mode, w, h int, seed int64) *Image {
	r := rand.New(rand.NewSource(seed))
	img := &Image{Mode: mode, Width: w, Height: h}
	if mode == ModeI {
		img.Pix32 = make([]int32, w*h)
		for i := range img.Pix32 {
			img.Pix32[i] = int32(r.Intn(70000)) - 1000
		}
		return img
	}
	nch := mode.Channels()
	img.Pix = make([]uint8, w*h*nch)
	r.Read(img.Pix)
	switch mode {
	case ModeRGBA, ModeLA:
		for i := nch - 1; i < len(img.Pix); i += nch {
			switch r.Intn(4) {
			case 0:
				img.Pix[i] = 0
			case 1:
				img.Pix[i] = 255
			}
		}
	case Mode1:
		for i := range img.Pix {
			img.Pix[i] &= 255 * (img.Pix[i] & 1)
		}
	case ModeP:
		img.Palette = make([][3]uint8, 200)
		for i := range img.Palette {
			img.Palette[i] = [3]uint8{uint8(r.Intn(256)), uint8(r.Intn(256)), uint8(r.Intn(256))}
		}
	}
	return img
}

// equivOptions is a spread of preprocessing options for an output side n.
func equivOptions(n int) []Options {
	var out []Options
	for _, f := range []string{"bicubic", "bilinear", "nearest", "lanczos", "box", "hamming"} {
		o := DefaultOptions(n)
		o.Interpolation = f
		out = append(out, o)
		hf := o
		hf.HFOrder = true
		out = append(out, hf)
	}
	o := DefaultOptions(n)
	o.ResizeWidth, o.ResizeHeight = n/2+1, 2*n+3 // padded horizontally
	out = append(out, o)
	o = DefaultOptions(n)
	o.ResizeWidth, o.ResizeHeight = 3*n, n // horizontal pass only
	out = append(out, o)
	o = DefaultOptions(n)
	o.NoResize = true
	out = append(out, o)
	return out
}

func optName(o Options) string {
	return fmt.Sprintf("n=%d/%s/hf=%v/rs=%dx%d/nores=%v", o.Size, o.Interpolation, o.HFOrder, o.ResizeWidth, o.ResizeHeight, o.NoResize)
}

// TestCropMatchesOracle checks the scratch-reusing, in-place resampler
// against the previous implementation (oracle_test.go) byte for byte for
// every mode, filter and option, serial and parallel.
func TestCropMatchesOracle(t *testing.T) {
	sizes := [][2]int{{1, 1}, {17, 33}, {40, 40}, {41, 40}, {300, 200}, {97, 403}, {3, 120}}
	modes := []Mode{ModeRGB, ModeRGBA, ModeL, ModeLA, ModeP, Mode1, ModeI, ModeCMYK}
	seed := int64(1)
	for _, mode := range modes {
		for _, sz := range sizes {
			seed++
			img := randImage(mode, sz[0], sz[1], seed)
			for _, n := range []int{40, 23} {
				for _, o := range equivOptions(n) {
					want := make([]uint8, n*n*3)
					if err := oldCropRGB(want, img, &o, false); err != nil {
						t.Fatal(err)
					}
					for _, par := range []bool{false, true} {
						got := make([]uint8, n*n*3)
						for i := range got {
							got[i] = 0x5a // cropRGB must write every byte
						}
						if err := cropRGB(got, img, &o, par); err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(got, want) {
							t.Fatalf("%s %dx%d %s parallel=%v: crop differs from the oracle", mode, sz[0], sz[1], optName(o), par)
						}
					}
				}
			}
		}
	}
}

// TestCropMatchesOracleLarge covers images big enough for the row-parallel
// passes.
func TestCropMatchesOracleLarge(t *testing.T) {
	for i, mode := range []Mode{ModeRGB, ModeRGBA, ModeL} {
		img := randImage(mode, 900, 700, int64(100+i))
		for _, o := range []Options{DefaultOptions(224), func() Options { o := DefaultOptions(224); o.HFOrder = true; return o }()} {
			want := make([]uint8, 224*224*3)
			if err := oldCropRGB(want, img, &o, false); err != nil {
				t.Fatal(err)
			}
			got := make([]uint8, 224*224*3)
			if err := cropRGB(got, img, &o, true); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s 900x700 %s: crop differs from the oracle", mode, optName(o))
			}
		}
	}
}

// goImages returns Go images of every common type (and sub-images with a
// stride and origin of their own) with random pixels.
func goImages(w, h int, seed int64) map[string]image.Image {
	r := rand.New(rand.NewSource(seed))
	rect := image.Rect(0, 0, w, h)
	out := map[string]image.Image{}
	rgba := image.NewRGBA(rect)
	r.Read(rgba.Pix)
	for i := 3; i < len(rgba.Pix); i += 4 {
		rgba.Pix[i] = 255
	}
	out["RGBA opaque"] = rgba
	prem := image.NewRGBA(rect)
	for i := 0; i < len(prem.Pix); i += 4 {
		a := uint8(r.Intn(256))
		if r.Intn(3) == 0 {
			a = 0
		}
		prem.Pix[i+3] = a
		for c := 0; c < 3; c++ {
			prem.Pix[i+c] = uint8(r.Intn(int(a) + 1))
		}
	}
	out["RGBA translucent"] = prem
	out["NRGBA opaque"] = randRGBA(w, h, seed, true)
	nrgba := randRGBA(w, h, seed+1, false)
	out["NRGBA translucent"] = nrgba
	big := randRGBA(w+7, h+5, seed+2, false)
	out["NRGBA sub-image"] = big.SubImage(image.Rect(3, 2, 3+w, 2+h))
	bigo := image.NewRGBA(image.Rect(-4, -3, w+9, h+2))
	r.Read(bigo.Pix)
	for i := 3; i < len(bigo.Pix); i += 4 {
		bigo.Pix[i] = 255
	}
	out["RGBA sub-image"] = bigo.SubImage(image.Rect(-2, -1, w-2, h-1))
	g := image.NewGray(rect)
	r.Read(g.Pix)
	out["Gray"] = g
	g16 := image.NewGray16(rect)
	r.Read(g16.Pix)
	out["Gray16"] = g16
	ck := image.NewCMYK(rect)
	r.Read(ck.Pix)
	out["CMYK"] = ck
	for name, ratio := range map[string]image.YCbCrSubsampleRatio{"YCbCr 420": image.YCbCrSubsampleRatio420, "YCbCr 444": image.YCbCrSubsampleRatio444} {
		y := image.NewYCbCr(rect, ratio)
		r.Read(y.Y)
		r.Read(y.Cb)
		r.Read(y.Cr)
		out[name] = y
	}
	p := image.NewPaletted(rect, color.Palette{color.Black, color.White, color.RGBA{200, 10, 30, 255}, color.NRGBA{1, 2, 3, 4}})
	for i := range p.Pix {
		p.Pix[i] = uint8(r.Intn(4))
	}
	out["Paletted"] = p
	n64 := image.NewNRGBA64(rect)
	r.Read(n64.Pix)
	out["NRGBA64"] = n64
	return out
}

// TestPreprocessImageMatchesFromImage checks PreprocessImageInto (in-place
// reading) against PreprocessInto(FromImage(img)) through the oracle.
func TestPreprocessImageMatchesFromImage(t *testing.T) {
	for _, sz := range [][2]int{{37, 29}, {300, 200}, {12, 90}} {
		for name, img := range goImages(sz[0], sz[1], int64(sz[0])) {
			for _, o := range equivOptions(24) {
				want := make([]uint8, 24*24*3)
				if err := oldCropRGB(want, FromImage(img), &o, false); err != nil {
					t.Fatal(err)
				}
				wantPix := make([]float32, 3*24*24)
				Normalize(wantPix, want, o)
				got := make([]float32, 3*24*24)
				if err := PreprocessImageInto(got, img, o); err != nil {
					t.Fatal(err)
				}
				for i := range got {
					if got[i] != wantPix[i] {
						t.Fatalf("%s %dx%d %s: value %d is %g, want %g", name, sz[0], sz[1], optName(o), i, got[i], wantPix[i])
					}
				}
			}
		}
	}
}

// TestPreprocessFileMatchesLoadFile checks PreprocessFileInto and
// PreprocessFiles against LoadFile + the oracle for the fixture images (when
// present) and generated PNG and JPEG files of every colour type.
func TestPreprocessFileMatchesLoadFile(t *testing.T) {
	tmp := t.TempDir()
	var paths []string
	for name, img := range goImages(53, 41, 9) {
		if name == "CMYK" || name == "NRGBA64" {
			continue // no PNG encoding of its own
		}
		var buf bytes.Buffer
		ext := ".png"
		if name == "YCbCr 420" || name == "Gray" || name == "RGBA opaque" {
			ext = ".jpg"
			if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
				t.Fatal(err)
			}
		} else {
			buf.Write(encodePNG(t, img))
		}
		p := filepath.Join(tmp, fmt.Sprintf("%d%s", len(paths), ext))
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	exif := filepath.Join(tmp, "exif6.jpg")
	if err := os.WriteFile(exif, exifJPEG(t, 6, false), 0o644); err != nil {
		t.Fatal(err)
	}
	paths = append(paths, exif)
	if dir, ok := fixtures.Lookup(); ok {
		man := fixtures.ReadManifest(t, dir)
		for _, im := range man.Images {
			paths = append(paths, filepath.Join(dir, im.File))
		}
	}
	opts := []Options{DefaultOptions(32), DefaultOptions(224)}
	hf := DefaultOptions(32)
	hf.HFOrder, hf.ApplyEXIF = true, true
	opts = append(opts, hf)
	gj := DefaultOptions(32)
	gj.GoJPEG = true
	opts = append(opts, gj)
	for _, o := range opts {
		per := 3 * o.Size * o.Size
		batch, err := PreprocessFiles(paths, o)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range paths {
			img, err := LoadFile(p, o)
			if err != nil {
				t.Fatal(err)
			}
			crop := make([]uint8, o.Size*o.Size*3)
			if err := oldCropRGB(crop, img, &o, false); err != nil {
				t.Fatal(err)
			}
			want := make([]float32, per)
			Normalize(want, crop, o)
			got := make([]float32, per)
			if err := PreprocessFileInto(got, p, o); err != nil {
				t.Fatal(err)
			}
			for j := range got {
				if got[j] != want[j] || batch[i*per+j] != want[j] {
					t.Fatalf("%s %s: value %d: single %g batch %g want %g", p, optName(o), j, got[j], batch[i*per+j], want[j])
				}
			}
		}
	}
	if err := PreprocessFileInto(make([]float32, 3*32*32), filepath.Join(tmp, "missing.png"), DefaultOptions(32)); err == nil || !bytes.Contains([]byte(err.Error()), []byte("missing.png")) {
		t.Errorf("missing file: error %v does not name it", err)
	}
}
