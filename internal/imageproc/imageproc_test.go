package imageproc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pngHeader returns a PNG signature plus a valid IHDR chunk (and nothing
// else) declaring w×h 8-bit RGB.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	body := make([]byte, 17)
	copy(body, "IHDR")
	binary.BigEndian.PutUint32(body[4:], w)
	binary.BigEndian.PutUint32(body[8:], h)
	body[12], body[13] = 8, 2
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.Write(body)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(body))
	return b.Bytes()
}

func randRGBA(w, h int, seed int64, opaque bool) *image.NRGBA {
	r := rand.New(rand.NewSource(seed))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	r.Read(img.Pix)
	if opaque {
		for i := 3; i < len(img.Pix); i += 4 {
			img.Pix[i] = 255
		}
	}
	return img
}

func TestSniff(t *testing.T) {
	cases := []struct {
		data string
		want Format
	}{
		{"\x89PNG\r\n\x1a\nrest", FormatPNG},
		{"\xff\xd8\xff\xe0", FormatJPEG},
		{"GIF89a....", FormatGIF},
		{"GIF87a....", FormatGIF},
		{"BM......", FormatBMP},
		{"II*\x00....", FormatTIFF},
		{"MM\x00*....", FormatTIFF},
		{"RIFF\x00\x00\x00\x00WEBPVP8 ", FormatWebP},
		{"RIFF\x00\x00\x00\x00WAVEfmt ", ""},
		{"hello world", ""},
		{"", ""},
	}
	for _, c := range cases {
		if got := Sniff([]byte(c.data)); got != c.want {
			t.Errorf("Sniff(%q) = %q, want %q", c.data, got, c.want)
		}
	}
}

func TestBadInput(t *testing.T) {
	good := encodePNG(t, randRGBA(40, 30, 1, true))
	zeroGIF := []byte("GIF89a\x00\x00\x00\x00\x00\x00\x00;")
	cases := []struct {
		name string
		data []byte
		want error // nil: any error
	}{
		{"truncated.png", good[:len(good)/2], nil},
		{"header-only.png", good[:40], nil},
		{"notes.txt", []byte("this is not an image\n"), ErrUnknownFormat},
		{"empty.png", nil, ErrUnknownFormat},
		{"icon.ico", []byte{0, 0, 1, 0, 1, 0, 16, 16}, ErrUnknownFormat},
		{"zero.png", pngHeader(0, 10), nil},
		{"zero.gif", zeroGIF, ErrEmpty},
		{"bomb.png", pngHeader(100000, 100000), ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img, err := Decode(bytes.NewReader(c.data), c.name, DefaultOptions(8))
			if err == nil {
				t.Fatalf("decoded %dx%d %s, want an error", img.Width, img.Height, img.Mode)
			}
			if !strings.Contains(err.Error(), c.name) {
				t.Errorf("error %q does not name the file", err)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("error %q is not %v", err, c.want)
			}
		})
	}
}

// TestBombRefusedBeforeAllocation checks that a tiny file declaring
// 100000×100000 pixels is refused from its header, without allocating
// anything near the 30 GB the pixels would need.
func TestBombRefusedBeforeAllocation(t *testing.T) {
	data := pngHeader(100000, 100000)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 10; i++ {
		if _, err := Decode(bytes.NewReader(data), "bomb.png", Options{}); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Errorf("10 refused decodes allocated %d bytes", d)
	}
	// A custom limit applies too, and a negative limit disables it.
	small := encodePNG(t, randRGBA(40, 30, 2, true))
	if _, err := Decode(bytes.NewReader(small), "small.png", Options{MaxPixels: 1000}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("40x30 with MaxPixels 1000: got %v, want ErrTooLarge", err)
	}
	if _, err := Decode(bytes.NewReader(small), "small.png", Options{MaxPixels: -1}); err != nil {
		t.Errorf("no limit: %v", err)
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), "missing.png"), Options{})
	if err == nil || !strings.Contains(err.Error(), "missing.png") {
		t.Errorf("got %v, want an error naming the file", err)
	}
}

func TestDecodeModes(t *testing.T) {
	gray := image.NewGray(image.Rect(0, 0, 5, 4))
	gray16 := image.NewGray16(image.Rect(0, 0, 5, 4))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i * 7)
	}
	for i := 0; i < len(gray16.Pix); i += 2 {
		gray16.Pix[i], gray16.Pix[i+1] = uint8(i), 0x34
	}
	pal := image.NewPaletted(image.Rect(0, 0, 5, 4), color.Palette{
		color.RGBA{10, 20, 30, 255}, color.NRGBA{200, 100, 50, 0}, color.RGBA{1, 2, 3, 255}})
	for i := range pal.Pix {
		pal.Pix[i] = uint8(i % 3)
	}
	opaque := randRGBA(5, 4, 3, true)
	rgba := image.NewRGBA(opaque.Bounds())
	copy(rgba.Pix, opaque.Pix)
	trans := randRGBA(5, 4, 4, false)
	cases := []struct {
		name string
		data []byte
		mode Mode
	}{
		{"gray.png", encodePNG(t, gray), ModeL},
		{"gray16.png", encodePNG(t, gray16), ModeI},
		{"palette.png", encodePNG(t, pal), ModeP},
		{"rgb.png", encodePNG(t, rgba), ModeRGB},
		{"rgba.png", encodePNG(t, trans), ModeRGBA},
	}
	for _, c := range cases {
		img, err := Decode(bytes.NewReader(c.data), c.name, Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if img.Mode != c.mode || img.Width != 5 || img.Height != 4 {
			t.Errorf("%s: got %s %dx%d, want %s 5x4", c.name, img.Mode, img.Width, img.Height, c.mode)
		}
	}
	// Pixel values.
	img, _ := Decode(bytes.NewReader(encodePNG(t, gray16)), "g16", Options{})
	if img.Pix32[1] != int32(2)<<8|0x34 {
		t.Errorf("gray16 pixel 1 = %#x, want 0x234", img.Pix32[1])
	}
	img, _ = Decode(bytes.NewReader(encodePNG(t, pal)), "p", Options{})
	if len(img.Palette) != 3 || img.Palette[1] != [3]uint8{200, 100, 50} {
		t.Errorf("palette %v: transparent entry must keep its RGB", img.Palette)
	}
	img, _ = Decode(bytes.NewReader(encodePNG(t, trans)), "rgba", Options{})
	if !bytes.Equal(img.Pix, trans.Pix) {
		t.Error("RGBA PNG pixels are not the stored non-premultiplied values")
	}
}

func TestFromImage(t *testing.T) {
	r := image.Rect(0, 0, 3, 2)
	n64 := image.NewNRGBA64(r)
	for i := range n64.Pix {
		n64.Pix[i] = uint8(i * 11)
	}
	ycc := image.NewYCbCr(r, image.YCbCrSubsampleRatio420)
	for i := range ycc.Y {
		ycc.Y[i] = uint8(40 * i)
	}
	cases := []struct {
		img  image.Image
		mode Mode
	}{
		{image.NewGray(r), ModeL},
		{image.NewGray16(r), ModeI},
		{image.NewPaletted(r, color.Palette{color.Black}), ModeP},
		{image.NewCMYK(r), ModeCMYK},
		{ycc, ModeRGB},
		{randRGBA(3, 2, 5, true), ModeRGB},
		{randRGBA(3, 2, 5, false), ModeRGBA},
		{n64, ModeRGBA},
		{image.NewUniform(color.White), ModeRGB},
	}
	for _, c := range cases {
		img := c.img
		if _, ok := img.(*image.Uniform); ok {
			img = image.NewRGBA64(r)
			draw := img.(*image.RGBA64)
			for i := range draw.Pix {
				draw.Pix[i] = 0xff
			}
		}
		got := FromImage(img)
		if got.Mode != c.mode || got.Width != 3 || got.Height != 2 || checkImage(got) != nil {
			t.Errorf("%T: got %s %dx%d (%v), want %s", c.img, got.Mode, got.Width, got.Height, checkImage(got), c.mode)
		}
	}
	got := FromImage(n64)
	if got.Pix[0] != n64.Pix[0] || got.Pix[1] != n64.Pix[2] || got.Pix[3] != n64.Pix[6] {
		t.Errorf("NRGBA64 must keep the high bytes: got %v from %v", got.Pix[:4], n64.Pix[:8])
	}
	got = FromImage(ycc)
	wr, wg, wb := color.YCbCrToRGB(ycc.Y[1], ycc.Cb[0], ycc.Cr[0])
	if got.Pix[3] != wr || got.Pix[4] != wg || got.Pix[5] != wb {
		t.Errorf("YCbCr pixel 1 = %v, want %v %v %v", got.Pix[3:6], wr, wg, wb)
	}
}

func TestGIFAndBMPModes(t *testing.T) {
	ramp := make(color.Palette, 256)
	for i := range ramp {
		ramp[i] = color.RGBA{uint8(i), uint8(i), uint8(i), 255}
	}
	colours := color.Palette{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}, color.RGBA{9, 8, 7, 255}, color.RGBA{1, 1, 1, 255}}
	mk := func(p color.Palette) *image.Paletted {
		img := image.NewPaletted(image.Rect(0, 0, 6, 5), p)
		for i := range img.Pix {
			img.Pix[i] = uint8(i % len(p))
		}
		return img
	}
	enc := func(f func(*bytes.Buffer, image.Image) error, img image.Image) []byte {
		var b bytes.Buffer
		if err := f(&b, img); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	gifEnc := func(b *bytes.Buffer, img image.Image) error { return gif.Encode(b, img, nil) }
	bmpEnc := func(b *bytes.Buffer, img image.Image) error { return bmp.Encode(b, img) }
	tiffEnc := func(b *bytes.Buffer, img image.Image) error { return tiff.Encode(b, img, nil) }
	cases := []struct {
		name string
		data []byte
		mode Mode
	}{
		{"colours.gif", enc(gifEnc, mk(colours)), ModeP},
		{"ramp.gif", enc(gifEnc, mk(ramp)), ModeL},
		{"colours.bmp", enc(bmpEnc, mk(colours)), ModeP},
		{"ramp.bmp", enc(bmpEnc, mk(ramp)), ModeL},
		{"rgb.tiff", enc(tiffEnc, randRGBA(6, 5, 7, true)), ModeRGB},
		{"gray.jpg", enc(func(b *bytes.Buffer, img image.Image) error { return jpeg.Encode(b, img, nil) }, image.NewGray(image.Rect(0, 0, 6, 5))), ModeL},
	}
	for _, c := range cases {
		img, err := Decode(bytes.NewReader(c.data), c.name, Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if img.Mode != c.mode || img.Width != 6 || img.Height != 5 {
			t.Errorf("%s: got %s %dx%d, want %s 6x5", c.name, img.Mode, img.Width, img.Height, c.mode)
		}
		if _, err := CropRGB(img, DefaultOptions(4)); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestResizedSizeAndCropOffset(t *testing.T) {
	sizes := []struct{ w, h, n, ww, wh int }{
		{224, 224, 224, 224, 224},
		{640, 480, 224, 298, 224},
		{300, 1000, 224, 224, 746},
		{17, 33, 224, 224, 434},
		{155, 150, 224, 231, 224},
		{1, 1000, 10, 10, 10000},
	}
	for _, c := range sizes {
		w, h := ResizedSize(c.w, c.h, DefaultOptions(c.n))
		if w != c.ww || h != c.wh {
			t.Errorf("ResizedSize(%d, %d, %d) = %d, %d, want %d, %d", c.w, c.h, c.n, w, h, c.ww, c.wh)
		}
	}
	offs := []struct{ s, c, ref, hf int }{
		{225, 224, 0, 0}, // round(0.5) = 0
		{229, 224, 2, 2}, // round(2.5) = 2
		{231, 224, 4, 3}, // round(3.5) = 4, floor 3
		{373, 224, 74, 74},
		{298, 224, 37, 37},
		{224, 224, 0, 0},
		{221, 224, -1, -2}, // padding: torchvision floor, HF ceil
		{220, 224, -2, -2},
	}
	for _, c := range offs {
		if got := CropOffset(c.s, c.c, false); got != c.ref {
			t.Errorf("CropOffset(%d, %d, ref) = %d, want %d", c.s, c.c, got, c.ref)
		}
		if got := CropOffset(c.s, c.c, true); got != c.hf {
			t.Errorf("CropOffset(%d, %d, hf) = %d, want %d", c.s, c.c, got, c.hf)
		}
	}
}

func TestPaddedCrop(t *testing.T) {
	// A forced 2x2 resize then a 4x4 crop pads with zeros around the image.
	img := &Image{Mode: ModeL, Width: 2, Height: 2, Pix: []uint8{10, 20, 30, 40}}
	o := DefaultOptions(4)
	o.NoResize = true
	got, err := CropRGB(img, o)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]uint8, 48)
	for y := 0; y < 2; y++ {
		for x := 0; x < 2; x++ {
			for c := 0; c < 3; c++ {
				want[((y+1)*4+x+1)*3+c] = img.Pix[y*2+x]
			}
		}
	}
	if !bytes.Equal(got, want) {
		t.Errorf("padded crop\n got %v\nwant %v", got, want)
	}
}

func TestNearestTable(t *testing.T) {
	cases := []struct {
		in, out int
		want    []int
	}{
		{3, 6, []int{0, 0, 1, 1, 2, 2}},
		{6, 3, []int{1, 3, 5}},
		{4, 4, []int{0, 1, 2, 3}},
	}
	for _, c := range cases {
		got := nearestTable(c.in, c.out, 0, c.out)
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("nearestTable(%d, %d) = %v, want %v", c.in, c.out, got, c.want)
				break
			}
		}
	}
}

// TestFiltersKeepConstant checks every filter and mode on a constant image:
// normalised weights must reproduce the constant.
func TestFiltersKeepConstant(t *testing.T) {
	for _, f := range []string{"bicubic", "bilinear", "nearest", "lanczos", "box", "hamming"} {
		for _, m := range []Mode{ModeRGB, ModeRGBA, ModeL, ModeLA, ModeP, Mode1, ModeI, ModeCMYK} {
			img := &Image{Mode: m, Width: 37, Height: 23}
			if m == ModeI {
				img.Pix32 = make([]int32, 37*23)
				for i := range img.Pix32 {
					img.Pix32[i] = 77
				}
			} else {
				img.Pix = bytes.Repeat([]byte{77}, 37*23*m.Channels())
				if m == ModeRGBA || m == ModeLA {
					for i := m.Channels() - 1; i < len(img.Pix); i += m.Channels() {
						img.Pix[i] = 255
					}
				}
			}
			img.Palette = [][3]uint8{}
			o := DefaultOptions(16)
			o.Interpolation = f
			for _, size := range []int{16, 64} { // down and up
				o.Size = size
				got, err := CropRGB(img, o)
				if err != nil {
					t.Fatal(err)
				}
				want := uint8(77)
				if m == ModeCMYK { // Pillow's cmyk2rgb with C = K = 77
					want = uint8(178 - muldiv255(77, 178))
				}
				for i, v := range got {
					if v != want {
						t.Errorf("%s %s size %d: byte %d = %d, want %d", f, m, size, i, v, want)
						break
					}
				}
			}
		}
	}
	o := DefaultOptions(4)
	o.Interpolation = "sinc"
	if _, err := CropRGB(&Image{Mode: ModeL, Width: 1, Height: 1, Pix: []uint8{0}}, o); err == nil {
		t.Error("unknown interpolation accepted")
	}
}

func TestBadImages(t *testing.T) {
	o := DefaultOptions(4)
	for _, img := range []*Image{
		nil,
		{Mode: ModeRGB, Width: 0, Height: 3},
		{Mode: ModeRGB, Width: 2, Height: 2, Pix: make([]uint8, 11)},
		{Mode: ModeI, Width: 2, Height: 2},
		{Mode: "YCbCr", Width: 1, Height: 1, Pix: make([]uint8, 3)},
	} {
		if _, err := Preprocess(img, o); err == nil {
			t.Errorf("Preprocess(%+v) accepted a bad image", img)
		}
	}
	if err := PreprocessInto(make([]float32, 5), &Image{Mode: ModeL, Width: 1, Height: 1, Pix: []uint8{1}}, o); err == nil {
		t.Error("PreprocessInto accepted a short destination")
	}
	if _, err := Preprocess(&Image{Mode: ModeL, Width: 1, Height: 1, Pix: []uint8{1}}, Options{Size: 4}); err == nil {
		t.Error("zero std accepted")
	}
}

// exifJPEG builds a minimal JPEG prefix carrying an EXIF orientation.
func exifSegment(orientation uint16, big bool) []byte {
	var bo binary.ByteOrder = binary.LittleEndian
	tiffHdr := []byte("II*\x00\x08\x00\x00\x00")
	if big {
		bo = binary.BigEndian
		tiffHdr = []byte("MM\x00*\x00\x00\x00\x08")
	}
	ifd := make([]byte, 2+12+4)
	bo.PutUint16(ifd, 1)
	bo.PutUint16(ifd[2:], 0x0112)
	bo.PutUint16(ifd[4:], 3)
	bo.PutUint32(ifd[6:], 1)
	bo.PutUint16(ifd[10:], orientation)
	return append(tiffHdr, ifd...)
}

func exifJPEG(t testing.TB, orientation uint16, big bool) []byte {
	var j bytes.Buffer
	if err := jpeg.Encode(&j, randRGBA(3, 2, 9, true), nil); err != nil {
		t.Fatal(err)
	}
	seg := append([]byte("Exif\x00\x00"), exifSegment(orientation, big)...)
	var b bytes.Buffer
	b.Write([]byte{0xff, 0xd8, 0xff, 0xe1})
	binary.Write(&b, binary.BigEndian, uint16(len(seg)+2))
	b.Write(seg)
	b.Write(j.Bytes()[2:])
	return b.Bytes()
}

func TestEXIFOrientation(t *testing.T) {
	for o := uint16(1); o <= 8; o++ {
		for _, big := range []bool{false, true} {
			img, err := Decode(bytes.NewReader(exifJPEG(t, o, big)), "exif.jpg", Options{})
			if err != nil {
				t.Fatal(err)
			}
			if img.Orientation != int(o) {
				t.Errorf("orientation %d (big endian %v): read %d", o, big, img.Orientation)
			}
		}
	}
	if got := jpegOrientation(exifJPEG(t, 9, false)); got != 0 {
		t.Errorf("invalid orientation 9 read as %d", got)
	}

	// A 3x2 image with distinct pixels; check the corners after transposing.
	src := &Image{Mode: ModeL, Width: 3, Height: 2, Pix: []uint8{1, 2, 3, 4, 5, 6}}
	// want[o] is the output as rows (width x height).
	want := map[int]struct {
		w, h int
		pix  []uint8
	}{
		1: {3, 2, []uint8{1, 2, 3, 4, 5, 6}},
		2: {3, 2, []uint8{3, 2, 1, 6, 5, 4}},
		3: {3, 2, []uint8{6, 5, 4, 3, 2, 1}},
		4: {3, 2, []uint8{4, 5, 6, 1, 2, 3}},
		5: {2, 3, []uint8{1, 4, 2, 5, 3, 6}},
		6: {2, 3, []uint8{4, 1, 5, 2, 6, 3}},
		7: {2, 3, []uint8{6, 3, 5, 2, 4, 1}},
		8: {2, 3, []uint8{3, 6, 2, 5, 1, 4}},
	}
	for o, w := range want {
		s := *src
		s.Orientation = o
		got := s.Oriented()
		if got.Width != w.w || got.Height != w.h || !bytes.Equal(got.Pix, w.pix) {
			t.Errorf("orientation %d: got %dx%d %v, want %dx%d %v", o, got.Width, got.Height, got.Pix, w.w, w.h, w.pix)
		}
	}
	// ApplyEXIF changes the preprocessing only when asked.
	s := *src
	s.Orientation = 6
	o := DefaultOptions(2)
	o.NoResize = true
	a, _ := CropRGB(&s, o)
	o.ApplyEXIF = true
	b, _ := CropRGB(&s, o)
	if bytes.Equal(a, b) {
		t.Error("ApplyEXIF had no effect on a rotated image")
	}
}

func TestParseHFConfig(t *testing.T) {
	cases := []struct {
		name, json string
		ok         bool
		check      func(Options) bool
	}{
		{"shortest", `{"size":{"shortest_edge":224},"crop_size":{"height":224,"width":224},"resample":3,"image_mean":[0.5,0.5,0.5],"image_std":[0.5,0.5,0.5],"rescale_factor":0.00392156862745098}`, true,
			func(o Options) bool {
				return o.HFOrder && o.Size == 224 && o.ResizeShortest == 224 && o.Mean[0] == 0.5 && o.Interpolation == "bicubic"
			}},
		{"int sizes", `{"size":256,"crop_size":224,"resample":2}`, true,
			func(o Options) bool { return o.Size == 224 && o.ResizeShortest == 256 && o.Interpolation == "bilinear" }},
		{"height width", `{"size":{"height":224,"width":224},"do_center_crop":false}`, true,
			func(o Options) bool { return o.Size == 224 && o.ResizeWidth == 224 && o.ResizeHeight == 224 }},
		{"no normalize no rescale", `{"size":{"shortest_edge":32},"crop_size":{"height":32,"width":32},"do_normalize":false,"do_rescale":false}`, true,
			func(o Options) bool {
				return o.Std == [3]float32{1, 1, 1} && o.Mean == [3]float32{} && o.RescaleFactor == 1
			}},
		{"non-square crop", `{"size":{"shortest_edge":224},"crop_size":{"height":224,"width":200}}`, false, nil},
		{"no crop", `{"size":{"shortest_edge":224},"do_center_crop":false}`, false, nil},
		{"bad mean", `{"size":224,"crop_size":224,"image_mean":[0.5]}`, false, nil},
		{"zero std", `{"size":224,"crop_size":224,"image_std":[0,1,1]}`, false, nil},
		{"bad resample", `{"size":224,"crop_size":224,"resample":9}`, false, nil},
		{"bad size", `{"size":{"foo":1},"crop_size":224}`, false, nil},
		{"not json", `{"size":`, false, nil},
	}
	for _, c := range cases {
		o, err := ParseHFConfig([]byte(c.json))
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.name, err, c.ok)
			continue
		}
		if c.ok && !c.check(o) {
			t.Errorf("%s: unexpected options %+v", c.name, o)
		}
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "preprocessor_config.json")
	os.WriteFile(p, []byte(`{"size":`), 0o644)
	if _, err := LoadHFConfig(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("LoadHFConfig error %v does not name the file", err)
	}
}

// TestHFRescale checks the HF scaling: float32(float64(u8) * factor).
func TestHFRescale(t *testing.T) {
	crop := []uint8{0, 1, 2, 128, 254, 255}
	o := Options{HFOrder: true, RescaleFactor: 0.00392156862745098, Mean: [3]float32{0.1, 0.2, 0.3}, Std: [3]float32{0.5, 0.6, 0.7}}
	dst := make([]float32, len(crop))
	Normalize(dst, crop, o)
	for i, v := range crop {
		c := i % 3
		x := float32(float64(v) * o.RescaleFactor)
		want := float32(x-o.Mean[c]) / o.Std[c]
		if got := dst[c*2+i/3]; got != want {
			t.Errorf("value %d: got %g want %g", v, got, want)
		}
	}
}

func TestPreprocessBatchErrors(t *testing.T) {
	good := &Image{Mode: ModeL, Width: 5, Height: 7, Pix: make([]uint8, 35)}
	out, err := PreprocessBatch([]*Image{good, nil, good}, DefaultOptions(4))
	if err == nil || !strings.Contains(err.Error(), "image 1") {
		t.Errorf("batch error %v does not name image 1", err)
	}
	if len(out) != 3*3*16 {
		t.Errorf("batch output has %d values", len(out))
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.png")
	os.WriteFile(bad, []byte("nope"), 0o644)
	if _, err := PreprocessFiles([]string{bad}, DefaultOptions(4)); err == nil || !strings.Contains(err.Error(), "bad.png") {
		t.Errorf("PreprocessFiles error %v does not name the file", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encodePNG(f, randRGBA(9, 7, 1, false)))
	f.Add(encodePNG(f, image.NewGray16(image.Rect(0, 0, 3, 5))))
	f.Add(pngHeader(100000, 100000))
	f.Add(exifJPEG(f, 6, true))
	f.Add([]byte("GIF89a\x02\x00\x02\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x02\x00\x02\x00\x00\x02\x02D\x01\x00;"))
	f.Add([]byte("BM"))
	f.Add([]byte("II*\x00\x08\x00\x00\x00"))
	f.Add([]byte("RIFF\x10\x00\x00\x00WEBPVP8L"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Decode(bytes.NewReader(data), "fuzz", Options{MaxPixels: 1 << 16})
		if err != nil {
			return
		}
		if err := checkImage(img); err != nil {
			t.Fatalf("decoded an inconsistent image: %v", err)
		}
		o := DefaultOptions(8)
		o.ApplyEXIF = true
		if _, err := Preprocess(img, o); err != nil {
			t.Fatalf("preprocessing a decoded image: %v", err)
		}
	})
}

func FuzzEXIF(f *testing.F) {
	f.Add(exifSegment(6, false))
	f.Add(exifSegment(3, true))
	f.Add(exifJPEG(f, 8, false))
	f.Add([]byte{0xff, 0xd8, 0xff, 0xe1, 0x00, 0x02})
	f.Fuzz(func(t *testing.T, data []byte) {
		if o := tiffOrientation(data); o < 0 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
		if o := jpegOrientation(data); o < 0 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
		parsePNG(data)
		parseGIF(data)
	})
}

func FuzzParseHFConfig(f *testing.F) {
	f.Add([]byte(`{"size":{"shortest_edge":224},"crop_size":{"height":224,"width":224},"resample":3}`))
	f.Add([]byte(`{"size":224,"crop_size":224,"do_normalize":false}`))
	f.Add([]byte(`{"size":{"height":-1,"width":3}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := ParseHFConfig(data)
		if err != nil {
			return
		}
		if o.Size <= 0 {
			t.Fatalf("accepted size %d", o.Size)
		}
	})
}

func benchImage(w, h int) *Image {
	img := &Image{Mode: ModeRGB, Width: w, Height: h, Pix: make([]uint8, w*h*3)}
	rand.New(rand.NewSource(1)).Read(img.Pix)
	return img
}

// BenchmarkPreprocess4000x3000 preprocesses one large RGB photo-sized image.
func BenchmarkPreprocess4000x3000(b *testing.B) {
	img := benchImage(4000, 3000)
	o := DefaultOptions(224)
	dst := make([]float32, 3*224*224)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := PreprocessInto(dst, img, o); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPreprocessBatch preprocesses 32 640×480 images concurrently.
func BenchmarkPreprocessBatch(b *testing.B) {
	imgs := make([]*Image, 32)
	for i := range imgs {
		imgs[i] = benchImage(640, 480)
	}
	o := DefaultOptions(224)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := PreprocessBatch(imgs, o); err != nil {
			b.Fatal(err)
		}
	}
}
