package imageproc

import (
	"fmt"
	"image"
	"image/jpeg"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// benchJPEG returns the path of a synthetic w×h quality-90 JPEG (smooth
// gradients plus noise, like a photo), written once to the temp directory.
func benchJPEG(tb testing.TB, w, h int) string {
	tb.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("goclip-imageproc-bench-%dx%d.jpg", w, h))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewSource(int64(w*h + 7)))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			p := img.Pix[y*img.Stride+4*x:]
			n := uint8(r.Intn(24))
			p[0] = uint8(255*x/w) + n
			p[1] = uint8(255*y/h) + n
			p[2] = uint8((x^y)&0x7f) + n
			p[3] = 255
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "bench-*.jpg")
	if err != nil {
		tb.Fatal(err)
	}
	if err := jpeg.Encode(tmp, img, &jpeg.Options{Quality: 90}); err != nil {
		tb.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		tb.Fatal(err)
	}
	return path
}

// BenchmarkPreprocess measures the whole file pipeline (decode, resize,
// crop, normalise) for a photo-sized and a VGA-sized JPEG, with one and two
// worker goroutines each taking whole images (GOMAXPROCS set to the worker
// count), and reports images/s.
func BenchmarkPreprocess(b *testing.B) {
	for _, sz := range [][2]int{{4000, 3000}, {640, 480}} {
		path := benchJPEG(b, sz[0], sz[1])
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("jpeg%dx%d/threads=%d", sz[0], sz[1], threads), func(b *testing.B) {
				benchFiles(b, path, threads, func(dst []float32, path string, o Options) error {
					return PreprocessFileInto(dst, path, o)
				})
			})
			b.Run(fmt.Sprintf("jpeg%dx%d/LoadFile/threads=%d", sz[0], sz[1], threads), func(b *testing.B) {
				benchFiles(b, path, threads, func(dst []float32, path string, o Options) error {
					img, err := LoadFile(path, o)
					if err != nil {
						return err
					}
					return PreprocessInto(dst, img, o)
				})
			})
		}
	}
}

// benchFiles runs prep on path b.N times on threads goroutines (with
// GOMAXPROCS = threads) and reports images/s.
func benchFiles(b *testing.B, path string, threads int, prep func(dst []float32, path string, o Options) error) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
	o := DefaultOptions(224)
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]float32, 3*224*224)
			for next.Add(1) <= int64(b.N) {
				if err := prep(dst, path, o); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkResizeRGBA measures resize+crop+normalise alone (no decoding) of
// an opaque 640×480 and a 4000×3000 *image.RGBA read in place.
func BenchmarkResizeRGBA(b *testing.B) {
	for _, sz := range [][2]int{{640, 480}, {4000, 3000}} {
		b.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(b *testing.B) {
			img := image.NewRGBA(image.Rect(0, 0, sz[0], sz[1]))
			rand.New(rand.NewSource(1)).Read(img.Pix)
			for i := 3; i < len(img.Pix); i += 4 {
				img.Pix[i] = 255
			}
			o := DefaultOptions(224)
			dst := make([]float32, 3*224*224)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := PreprocessImageInto(dst, img, o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
