package jpeg

import (
	"bytes"
	"image"
	stdjpeg "image/jpeg"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	benchOnce sync.Once
	benchJPEG []byte
)

// benchImage encodes a 4000x3000 photo-like image (gradients, edges and
// texture) with image/jpeg at quality 90 (4:2:0).
func benchImage(b *testing.B) []byte {
	benchOnce.Do(func() {
		const w, h = 4000, 3000
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		seed := uint32(1)
		for y := 0; y < h; y++ {
			row := img.Pix[y*img.Stride:]
			for x := 0; x < w; x++ {
				seed = seed*1664525 + 1013904223
				n := int(seed>>28) - 8
				r := (x*255/w + (y/40%2)*30 + n) & 255
				g := (y*255/h + ((x/25+y/25)%2)*40 + n) & 255
				bl := ((x+y)*255/(w+h) + n) & 255
				row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = byte(r), byte(g), byte(bl), 255
			}
		}
		var buf bytes.Buffer
		if err := stdjpeg.Encode(&buf, img, &stdjpeg.Options{Quality: 90}); err != nil {
			panic(err)
		}
		benchJPEG = buf.Bytes()
	})
	return benchJPEG
}

// cpuTime is the process's user+system CPU time, reported next to wall
// time because the machines these run on are often shared and loaded.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchDecode(b *testing.B, decode func(io.Reader) (image.Image, error)) {
	data := benchImage(b)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	c0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := decode(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
}

func BenchmarkDecode4000x3000(b *testing.B) { benchDecode(b, Decode) }

func BenchmarkStdlibDecode4000x3000(b *testing.B) { benchDecode(b, stdjpeg.Decode) }
