package jpeg

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/fixtures"
)

// pnm renders a decoded image like djpeg -pnm does (P5 for grey, P6 for
// colour).
func pnm(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	switch m := img.(type) {
	case *image.Gray:
		fmt.Fprintf(&b, "P5\n%d %d\n255\n", m.Rect.Dx(), m.Rect.Dy())
		for y := 0; y < m.Rect.Dy(); y++ {
			b.Write(m.Pix[y*m.Stride : y*m.Stride+m.Rect.Dx()])
		}
	case *image.RGBA:
		fmt.Fprintf(&b, "P6\n%d %d\n255\n", m.Rect.Dx(), m.Rect.Dy())
		for y := 0; y < m.Rect.Dy(); y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*m.Rect.Dx()]
			for i := 0; i < len(row); i += 4 {
				b.Write(row[i : i+3])
			}
		}
	default:
		t.Fatalf("unexpected image type %T", img)
	}
	return b.Bytes()
}

// diffBytes counts differing bytes and the largest difference.
func diffBytes(a, b []byte) (n, maxd int) {
	if len(a) != len(b) {
		return -1, -1
	}
	for i := range a {
		if a[i] != b[i] {
			n++
			d := int(a[i]) - int(b[i])
			if d < 0 {
				d = -d
			}
			maxd = max(maxd, d)
		}
	}
	return n, maxd
}

// TestFixtureJPEGs decodes every JPEG fixture and compares it with the
// lossless Pillow decode named by the manifest's decoded_reference.
func TestFixtureJPEGs(t *testing.T) {
	dir := fixtures.Dir(t)
	man := fixtures.ReadManifest(t, dir)
	n := 0
	for _, im := range man.Images {
		if im.DecodedRef == "" {
			continue
		}
		n++
		t.Run(im.Name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dir, im.File))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := Decode(f)
			if err != nil {
				t.Fatalf("%s: %v", im.File, err)
			}
			rf, err := os.Open(filepath.Join(dir, im.DecodedRef))
			if err != nil {
				t.Fatal(err)
			}
			defer rf.Close()
			ref, err := png.Decode(rf)
			if err != nil {
				t.Fatalf("%s: %v", im.DecodedRef, err)
			}
			if got.Bounds() != ref.Bounds() {
				t.Fatalf("bounds %v, want %v", got.Bounds(), ref.Bounds())
			}
			mismatch := 0
			b := ref.Bounds()
			for y := b.Min.Y; y < b.Max.Y; y++ {
				for x := b.Min.X; x < b.Max.X; x++ {
					var gv, rv [3]uint8
					switch g := got.(type) {
					case *image.RGBA:
						c := g.RGBAAt(x, y)
						gv = [3]uint8{c.R, c.G, c.B}
					case *image.Gray:
						c := g.GrayAt(x, y).Y
						gv = [3]uint8{c, c, c}
					default:
						t.Fatalf("unexpected type %T", got)
					}
					switch r := ref.(type) {
					case *image.Gray:
						c := r.GrayAt(x, y).Y
						rv = [3]uint8{c, c, c}
					default:
						c := color.NRGBAModel.Convert(ref.At(x, y)).(color.NRGBA)
						rv = [3]uint8{c.R, c.G, c.B}
					}
					for i := 0; i < 3; i++ {
						if gv[i] != rv[i] {
							mismatch++
						}
					}
				}
			}
			if mismatch != 0 {
				t.Errorf("%s: %d mismatching bytes against %s", im.File, mismatch, im.DecodedRef)
			}
		})
	}
	if n == 0 {
		t.Log("no JPEG fixtures with a decoded_reference in the manifest")
	}
}

// needTools skips unless cjpeg and djpeg (Debian libjpeg-turbo-progs) are
// installed.
func needTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"cjpeg", "djpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not on PATH: install Debian package libjpeg-turbo-progs", tool)
		}
	}
}

// source writes a PPM (or PGM) test image mixing smooth gradients, sharp
// edges and noise.
func source(w, h int, gray bool, seed int64) []byte {
	rng := rand.New(rand.NewSource(seed))
	var b bytes.Buffer
	ch := 3
	if gray {
		ch = 1
		fmt.Fprintf(&b, "P5\n%d %d\n255\n", w, h)
	} else {
		fmt.Fprintf(&b, "P6\n%d %d\n255\n", w, h)
	}
	pix := make([]byte, w*h*ch)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for c := 0; c < ch; c++ {
				v := (x*255/max(w, 1) + y*128/max(h, 1) + c*70) % 256
				if (x/13+y/7)%5 == 0 {
					v = 255 - v
				}
				if (x/29+y/31)%3 == 1 {
					v = rng.Intn(256)
				}
				pix[(y*w+x)*ch+c] = byte(v)
			}
		}
	}
	b.Write(pix)
	return b.Bytes()
}

func run(t testing.TB, name string, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// Scan scripts for cjpeg -scans: spectral selection with successive
// approximation (full coverage), and a partial one that never sends the
// higher AC coefficients (exercises libjpeg's block smoothing).
const (
	scansFull = `0,1,2: 0-0, 0, 1;
0: 1-5, 0, 2;
2: 1-63, 0, 1;
1: 1-63, 0, 1;
0: 6-63, 0, 2;
0: 1-63, 2, 1;
0,1,2: 0-0, 1, 0;
2: 1-63, 1, 0;
1: 1-63, 1, 0;
0: 1-63, 1, 0;
`
	scansPartial = `0,1,2: 0-0, 0, 1;
0: 1-2, 0, 1;
1: 1-5, 0, 0;
`
	scansDCOnly = `0: 0-0, 0, 0;
1: 0-0, 0, 0;
2: 0-0, 0, 0;
`
	scansGray = `0: 0-0, 0, 1;
0: 1-9, 0, 0;
0: 10-63, 0, 0;
0: 0-0, 1, 0;
`
)

type djpegCase struct {
	name  string
	w, h  int
	gray  bool
	args  []string
	scans string
}

func djpegCases() []djpegCase {
	var cs []djpegCase
	samplings := []string{"1x1", "2x1", "2x2", "1x2", "4x1", "2x1,1x2,1x1", "4x2", "1x4"}
	sizes := [][2]int{{1, 1}, {17, 33}, {64, 48}, {225, 131}}
	for _, s := range samplings {
		for _, sz := range sizes {
			cs = append(cs, djpegCase{name: fmt.Sprintf("sample%s_%dx%d", s, sz[0], sz[1]), w: sz[0], h: sz[1], args: []string{"-sample", s}})
		}
	}
	for _, q := range []string{"50", "90", "100"} {
		cs = append(cs,
			djpegCase{name: "q" + q, w: 161, h: 97, args: []string{"-quality", q}},
			djpegCase{name: "q" + q + "_progressive", w: 161, h: 97, args: []string{"-quality", q, "-progressive"}},
			djpegCase{name: "q" + q + "_gray", w: 161, h: 97, gray: true, args: []string{"-quality", q}},
		)
	}
	cs = append(cs,
		djpegCase{name: "grayscale_from_rgb", w: 70, h: 41, args: []string{"-grayscale"}},
		djpegCase{name: "gray_progressive", w: 70, h: 41, gray: true, args: []string{"-progressive"}},
		djpegCase{name: "progressive_420_odd", w: 99, h: 67, args: []string{"-progressive", "-sample", "2x2"}},
		djpegCase{name: "progressive_422", w: 99, h: 67, args: []string{"-progressive", "-sample", "2x1"}},
		djpegCase{name: "progressive_440", w: 99, h: 67, args: []string{"-progressive", "-sample", "1x2"}},
		djpegCase{name: "progressive_411", w: 99, h: 67, args: []string{"-progressive", "-sample", "4x1"}},
		djpegCase{name: "progressive_1x1", w: 1, h: 1, args: []string{"-progressive"}},
		djpegCase{name: "scans_full", w: 123, h: 77, scans: scansFull},
		djpegCase{name: "scans_full_420", w: 123, h: 77, scans: scansFull, args: []string{"-sample", "2x2"}},
		djpegCase{name: "scans_partial_smoothing", w: 123, h: 77, scans: scansPartial, args: []string{"-sample", "2x2"}},
		djpegCase{name: "scans_partial_narrow", w: 9, h: 41, scans: scansPartial},
		djpegCase{name: "scans_dc_only", w: 123, h: 77, scans: scansDCOnly},
		djpegCase{name: "scans_gray", w: 50, h: 70, gray: true, scans: scansGray},
		djpegCase{name: "restart1", w: 100, h: 60, args: []string{"-restart", "1"}},
		djpegCase{name: "restart3B", w: 100, h: 60, args: []string{"-restart", "3B", "-sample", "2x2"}},
		djpegCase{name: "restart3B_progressive", w: 100, h: 60, args: []string{"-restart", "3B", "-progressive"}},
		djpegCase{name: "restart1_progressive_420", w: 77, h: 45, args: []string{"-restart", "1", "-progressive", "-sample", "2x2"}},
		djpegCase{name: "optimize", w: 100, h: 60, args: []string{"-optimize"}},
		djpegCase{name: "rgb_colorspace", w: 40, h: 30, args: []string{"-rgb"}},
		djpegCase{name: "arith_unsupported", w: 8, h: 8, args: []string{"-arithmetic"}},
	)
	return cs
}

// encode runs cjpeg on a generated source image.
func encode(t testing.TB, c djpegCase) []byte {
	t.Helper()
	args := append([]string{}, c.args...)
	if c.scans != "" {
		p := filepath.Join(t.TempDir(), "scans.txt")
		if err := os.WriteFile(p, []byte(c.scans), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-scans", p)
	}
	jpg, err := run(t, "cjpeg", source(c.w, c.h, c.gray, int64(c.w*1000+c.h)), args...)
	if err != nil {
		t.Fatal(err)
	}
	return jpg
}

// TestAgainstDjpeg encodes generated images with cjpeg in many modes and
// requires byte-exact agreement with djpeg's decode.
func TestAgainstDjpeg(t *testing.T) {
	needTools(t)
	for _, c := range djpegCases() {
		t.Run(c.name, func(t *testing.T) {
			jpg := encode(t, c)
			ref, derr := run(t, "djpeg", jpg, "-pnm")
			img, err := DecodeBytes(jpg, Options{})
			if derr != nil {
				if err == nil {
					t.Fatalf("djpeg failed (%v) but Decode succeeded", derr)
				}
				return
			}
			if err != nil {
				if strings.HasPrefix(c.name, "arith") {
					var ue UnsupportedError
					if !errors.As(err, &ue) {
						t.Fatalf("want UnsupportedError, got %v", err)
					}
					return
				}
				t.Fatal(err)
			}
			got := pnm(t, img)
			if n, m := diffBytes(got, ref); n != 0 {
				t.Fatalf("%d bytes differ from djpeg (max diff %d; lengths %d/%d)", n, m, len(got), len(ref))
			}
		})
	}
}

// TestLargeAgainstDjpeg checks one 4000x3000 image (skipped with -short).
func TestLargeAgainstDjpeg(t *testing.T) {
	if testing.Short() {
		t.Skip("large image skipped in -short mode")
	}
	needTools(t)
	c := djpegCase{name: "large", w: 4000, h: 3000, args: []string{"-quality", "85", "-sample", "2x2"}}
	jpg := encode(t, c)
	ref, err := run(t, "djpeg", jpg, "-pnm")
	if err != nil {
		t.Fatal(err)
	}
	img, err := DecodeBytes(jpg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, m := diffBytes(pnm(t, img), ref); n != 0 {
		t.Fatalf("%d bytes differ from djpeg (max diff %d)", n, m)
	}
}

// TestTruncated cuts files at several offsets and compares with djpeg,
// which warns about the premature end but still writes an image.
func TestTruncated(t *testing.T) {
	needTools(t)
	cases := []djpegCase{
		{name: "baseline_420", w: 150, h: 90, args: []string{"-sample", "2x2"}},
		{name: "baseline_restart", w: 150, h: 90, args: []string{"-restart", "2"}},
		{name: "progressive", w: 150, h: 90, args: []string{"-progressive"}},
		{name: "progressive_420", w: 150, h: 90, args: []string{"-progressive", "-sample", "2x2"}},
		{name: "scans_full", w: 150, h: 90, scans: scansFull},
		{name: "gray", w: 150, h: 90, gray: true},
	}
	for _, c := range cases {
		jpg := encode(t, c)
		for _, frac := range []float64{0.2, 0.35, 0.5, 0.66, 0.8, 0.95, 0.999} {
			cut := int(float64(len(jpg)) * frac)
			t.Run(fmt.Sprintf("%s_cut%d", c.name, cut), func(t *testing.T) {
				data := jpg[:cut]
				ref, derr := run(t, "djpeg", data, "-pnm")
				img, err := DecodeBytes(data, Options{})
				if len(ref) == 0 {
					if err == nil {
						t.Fatalf("djpeg wrote nothing (%v) but Decode succeeded", derr)
					}
					return
				}
				if err != nil {
					t.Fatalf("djpeg recovered but Decode failed: %v", err)
				}
				if n, m := diffBytes(pnm(t, img), ref); n != 0 {
					t.Fatalf("%d bytes differ from djpeg (max diff %d)", n, m)
				}
			})
		}
	}
}

// TestCorrupt flips bytes inside the entropy-coded data and compares with
// djpeg wherever djpeg produces an image.
func TestCorrupt(t *testing.T) {
	needTools(t)
	cases := []djpegCase{
		{name: "baseline", w: 120, h: 80, args: []string{"-sample", "2x2"}},
		{name: "restart", w: 120, h: 80, args: []string{"-restart", "1"}},
		{name: "progressive", w: 120, h: 80, args: []string{"-progressive"}},
	}
	rng := rand.New(rand.NewSource(7))
	for _, c := range cases {
		jpg := encode(t, c)
		for i := 0; i < 8; i++ {
			data := append([]byte(nil), jpg...)
			// Corrupt a few bytes in the second half (entropy-coded data).
			for j := 0; j < 3; j++ {
				p := len(data)/2 + rng.Intn(len(data)/2-2)
				data[p] = byte(rng.Intn(256))
			}
			t.Run(fmt.Sprintf("%s_%d", c.name, i), func(t *testing.T) {
				ref, _ := run(t, "djpeg", data, "-pnm")
				img, err := DecodeBytes(data, Options{})
				if len(ref) == 0 {
					return
				}
				if err != nil {
					t.Fatalf("djpeg recovered but Decode failed: %v", err)
				}
				if n, m := diffBytes(pnm(t, img), ref); n != 0 {
					t.Fatalf("%d bytes differ from djpeg (max diff %d)", n, m)
				}
			})
		}
	}
}

func TestDecodeConfig(t *testing.T) {
	needTools(t)
	for _, c := range []djpegCase{
		{name: "rgb", w: 33, h: 21},
		{name: "gray", w: 12, h: 7, gray: true},
		{name: "progressive", w: 40, h: 3, args: []string{"-progressive"}},
	} {
		jpg := encode(t, c)
		cfg, err := DecodeConfig(bytes.NewReader(jpg))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := color.Model(color.RGBAModel)
		if c.gray {
			want = color.GrayModel
		}
		if cfg.Width != c.w || cfg.Height != c.h || cfg.ColorModel != want {
			t.Errorf("%s: config %dx%d %v, want %dx%d", c.name, cfg.Width, cfg.Height, cfg.ColorModel, c.w, c.h)
		}
	}
}

func TestErrors(t *testing.T) {
	sof := func(w, h int) []byte {
		return []byte{0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 1, 1, 0x11, 0,
			0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0}
	}
	for _, tc := range []struct {
		name string
		data []byte
		opts Options
		want string
	}{
		{"empty", nil, Options{}, "not a JPEG"},
		{"png", []byte("\x89PNG\r\n\x1a\n"), Options{}, "not a JPEG"},
		{"soi only", []byte{0xFF, 0xD8}, Options{}, "no image"},
		{"too big", sof(60000, 60000), Options{}, "too large"},
		{"max pixels", sof(100, 100), Options{MaxPixels: 9999}, "too large"},
		{"zero size", sof(0, 10), Options{}, "empty image"},
		{"no quant table", sof(8, 8), Options{}, "quantization table"},
		{"sof3", []byte{0xFF, 0xD8, 0xFF, 0xC3, 0, 11, 8, 0, 1, 0, 1, 1, 1, 0x11, 0}, Options{}, "unsupported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeBytes(tc.data, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestCMYKToRGB(t *testing.T) {
	// Expected values computed with Pillow 9.4 Image.convert("RGB").
	src := image.NewCMYK(image.Rect(0, 0, 3, 1))
	copy(src.Pix, []byte{0, 0, 0, 0, 255, 128, 10, 0, 100, 50, 200, 40})
	got := CMYKToRGB(src).Pix
	want := []byte{255, 255, 255, 255, 0, 127, 245, 255, 131, 173, 46, 255}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func FuzzDecode(f *testing.F) {
	if _, err := exec.LookPath("cjpeg"); err == nil {
		for _, c := range []djpegCase{
			{name: "a", w: 17, h: 9, args: []string{"-sample", "2x2", "-restart", "1"}},
			{name: "b", w: 9, h: 17, args: []string{"-progressive"}},
			{name: "c", w: 16, h: 8, gray: true},
			{name: "d", w: 12, h: 12, scans: scansPartial},
		} {
			f.Add(encode(f, c))
		}
	}
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xD9})
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xC2, 0, 11, 8, 0, 8, 0, 8, 1, 1, 0x11, 0, 0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := DecodeBytes(data, Options{MaxPixels: 1 << 16, MaxScans: 64})
		if err == nil && img == nil {
			t.Fatal("nil image without error")
		}
		_, _ = DecodeConfig(bytes.NewReader(data))
	})
}
