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
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
				o := DefaultOptions(224)
				dsts := make([][]float32, threads)
				for i := range dsts {
					dsts[i] = make([]float32, 3*224*224)
				}
				b.ReportAllocs()
				b.ResetTimer()
				var next int64
				var mu sync.Mutex
				var wg sync.WaitGroup
				for t := 0; t < threads; t++ {
					wg.Add(1)
					go func(dst []float32) {
						defer wg.Done()
						for {
							mu.Lock()
							i := next
							next++
							mu.Unlock()
							if i >= int64(b.N) {
								return
							}
							img, err := LoadFile(path, o)
							if err == nil {
								err = PreprocessInto(dst, img, o)
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
					}(dsts[t])
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
			})
		}
	}
}
