package imageproc

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/fixtures"
)

// cropRef returns the expected crop_u8 tensor of an image and its side.
func cropRef(t *testing.T, exp *checkpoint.File, name string) ([]uint8, int) {
	t.Helper()
	tn := exp.Tensor("crop_u8/" + name)
	if tn == nil {
		t.Fatalf("expected tensor crop_u8/%s missing", name)
	}
	if tn.DType != checkpoint.U8 || len(tn.Shape) != 3 || tn.Shape[0] != tn.Shape[1] || tn.Shape[2] != 3 {
		t.Fatalf("crop_u8/%s: dtype %s shape %v, want U8 [n n 3]", name, tn.DType, tn.Shape)
	}
	return tn.Data, tn.Shape[0]
}

func diffStats(got, want []uint8) (maxd int, mean float64, exact float64) {
	same := 0
	sum := 0
	for i := range got {
		d := int(got[i]) - int(want[i])
		if d < 0 {
			d = -d
		}
		if d > maxd {
			maxd = d
		}
		if d == 0 {
			same++
		}
		sum += d
	}
	return maxd, float64(sum) / float64(len(got)), float64(same) / float64(len(got))
}

func firstMismatch(got, want []uint8, n int) string {
	for i := range got {
		if got[i] != want[i] {
			p := i / 3
			return fmt.Sprintf("first at (x=%d, y=%d, c=%d): got %d want %d", p%n, p/n, i%3, got[i], want[i])
		}
	}
	return ""
}

// TestCropU8 checks resize + centre crop + convert('RGB') against the
// reference for every PNG fixture (bit-exact) and for the Pillow decodes of
// the JPEG fixtures (bit-exact); JPEGs decoded with the current decoder are
// only measured.
func TestCropU8(t *testing.T) {
	dir := fixtures.Dir(t)
	exp := fixtures.Expected(t, dir)
	man := fixtures.ReadManifest(t, dir)
	for _, im := range man.Images {
		t.Run(im.Name, func(t *testing.T) {
			want, n := cropRef(t, exp, im.Name)
			o := DefaultOptions(n)
			file := im.File
			exact := im.Format == "PNG"
			if im.Format == "JPEG" && im.DecodedRef != "" {
				file = im.DecodedRef
				exact = true
			}
			img, err := LoadFile(filepath.Join(dir, file), o)
			if err != nil {
				t.Fatal(err)
			}
			if im.Format == "PNG" && string(img.Mode) != im.Mode {
				t.Errorf("mode %s, want %s", img.Mode, im.Mode)
			}
			if len(im.Size) == 2 && (img.Width != im.Size[0] || img.Height != im.Size[1]) {
				t.Errorf("size %dx%d, want %v", img.Width, img.Height, im.Size)
			}
			if len(im.ResizedSize) == 2 {
				w, h := ResizedSize(img.Width, img.Height, o)
				if w != im.ResizedSize[0] || h != im.ResizedSize[1] {
					t.Errorf("resized to %dx%d, want %v", w, h, im.ResizedSize)
				}
				if len(im.CropLeftTop) == 2 {
					l, tp := CropOffset(w, n, false), CropOffset(h, n, false)
					if l != im.CropLeftTop[0] || tp != im.CropLeftTop[1] {
						t.Errorf("crop offset (%d, %d), want %v", l, tp, im.CropLeftTop)
					}
				}
			}
			got, err := CropRGB(img, o)
			if err != nil {
				t.Fatal(err)
			}
			maxd, mean, same := diffStats(got, want)
			if exact && maxd != 0 {
				t.Errorf("%s: crop differs: max |d| %d, mean %.4f, exact %.2f%%; %s",
					file, maxd, mean, 100*same, firstMismatch(got, want, n))
			}
			if file == im.File {
				return
			}
			// The JPEG itself through the default (libjpeg-turbo-exact)
			// decoder must be bit-exact too; Go's image/jpeg is reported.
			for _, goJPEG := range []bool{false, true} {
				jo := o
				jo.GoJPEG = goJPEG
				jimg, err := LoadFile(filepath.Join(dir, im.File), jo)
				if err != nil {
					t.Fatal(err)
				}
				jgot, err := CropRGB(jimg, jo)
				if err != nil {
					t.Fatal(err)
				}
				maxd, mean, same = diffStats(jgot, want)
				if goJPEG {
					t.Logf("%s through Go's image/jpeg: max |d| %d, mean |d| %.3f, exact %.1f%%", im.File, maxd, mean, 100*same)
				} else if maxd != 0 {
					t.Errorf("%s through the exact JPEG decoder: max |d| %d, mean |d| %.3f, exact %.1f%%", im.File, maxd, mean, 100*same)
				}
			}
		})
	}
}

// TestPixels checks ToTensor + Normalize: pixels/<f> must equal the
// normalisation of crop_u8/<f> exactly.
func TestPixels(t *testing.T) {
	dir := fixtures.Dir(t)
	exp := fixtures.Expected(t, dir)
	man := fixtures.ReadManifest(t, dir)
	for _, im := range man.Images {
		crop, n := cropRef(t, exp, im.Name)
		want, shape := fixtures.Float32(t, exp, "pixels/"+im.Name)
		if len(shape) != 3 || shape[0] != 3 || shape[1] != n || shape[2] != n {
			t.Fatalf("pixels/%s has shape %v, want [3 %d %d]", im.Name, shape, n, n)
		}
		got := make([]float32, len(want))
		Normalize(got, crop, DefaultOptions(n))
		worst := 0.0
		for i := range got {
			worst = math.Max(worst, math.Abs(float64(got[i])-float64(want[i])))
		}
		if worst != 0 {
			t.Errorf("%s: max |pixels - ref| = %g, want 0", im.Name, worst)
		}
	}
}

// TestPreprocessEndToEnd runs the whole pipeline from the file for the
// losslessly stored images and compares with the reference tensor.
func TestPreprocessEndToEnd(t *testing.T) {
	dir := fixtures.Dir(t)
	exp := fixtures.Expected(t, dir)
	man := fixtures.ReadManifest(t, dir)
	var paths []string
	var wants [][]float32
	n := 0
	for _, im := range man.Images {
		file := im.File
		if im.Format == "JPEG" {
			if im.DecodedRef == "" {
				continue
			}
			file = im.DecodedRef
		}
		want, shape := fixtures.Float32(t, exp, "pixels/"+im.Name)
		n = shape[1]
		paths = append(paths, filepath.Join(dir, file))
		wants = append(wants, want)
	}
	if len(paths) == 0 {
		t.Skip("no lossless images in the fixture set")
	}
	o := DefaultOptions(n)
	batch, err := PreprocessFiles(paths, o)
	if err != nil {
		t.Fatal(err)
	}
	per := 3 * n * n
	for i, p := range paths {
		img, err := LoadFile(p, o)
		if err != nil {
			t.Fatal(err)
		}
		single := make([]float32, per)
		if err := PreprocessInto(single, img, o); err != nil {
			t.Fatal(err)
		}
		for j := range single {
			if single[j] != wants[i][j] || batch[i*per+j] != wants[i][j] {
				t.Errorf("%s: value %d: single %g batch %g want %g", p, j, single[j], batch[i*per+j], wants[i][j])
				break
			}
		}
	}
}

// TestHFConfigFixture parses the fixture's preprocessor_config.json and
// checks that, for RGB images, the HF order gives the same crop as the
// reference (their only difference there is floor vs half-even offsets).
func TestHFConfigFixture(t *testing.T) {
	dir := fixtures.Dir(t)
	path := fixtures.ModelFile(t, dir, "hf/preprocessor_config.json")
	o, err := LoadHFConfig(path)
	if err != nil {
		t.Skipf("no usable HF config: %v", err)
	}
	if !o.HFOrder || o.Size <= 0 || o.Interpolation != "bicubic" {
		t.Fatalf("unexpected options %+v", o)
	}
	exp := fixtures.Expected(t, dir)
	man := fixtures.ReadManifest(t, dir)
	for _, im := range man.Images {
		if im.Format != "PNG" || im.Mode != "RGB" {
			continue
		}
		want, n := cropRef(t, exp, im.Name)
		if n != o.Size {
			continue
		}
		img, err := LoadFile(filepath.Join(dir, im.File), o)
		if err != nil {
			t.Fatal(err)
		}
		w, h := ResizedSize(img.Width, img.Height, o)
		if CropOffset(w, n, true) != CropOffset(w, n, false) || CropOffset(h, n, true) != CropOffset(h, n, false) {
			continue // floor and half-even offsets differ: not comparable
		}
		got, err := CropRGB(img, o)
		if err != nil {
			t.Fatal(err)
		}
		if maxd, _, _ := diffStats(got, want); maxd != 0 {
			t.Errorf("%s: HF-order crop differs from reference (max %d)", im.Name, maxd)
		}
	}
}
