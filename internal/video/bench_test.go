package video

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/imageproc"
)

var (
	benchOnce sync.Once
	benchDir  string
	benchClip string
	benchErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// benchVideo generates (once per run) a 60 s 1280×720 25 fps clip of
// ffmpeg's moving testsrc2 pattern, H.264 when the encoder exists.
func benchVideo(b *testing.B) string {
	needFFmpeg(b)
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "goclip-video-bench")
		if benchErr != nil {
			return
		}
		p := filepath.Join(benchDir, "720p60s.mp4")
		start := time.Now()
		func() {
			defer func() {
				if r := recover(); r != nil {
					benchErr = os.ErrInvalid
				}
			}()
			ffmpeg(b, "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25", "-t", "60",
				"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", p)
		}()
		b.Logf("generated a 60 s 720p clip in %v", time.Since(start).Round(time.Millisecond))
		benchClip = p
	})
	if benchErr != nil || benchClip == "" {
		b.Fatalf("generating the benchmark clip: %v", benchErr)
	}
	return benchClip
}

// BenchmarkVideo720p measures frames/s on a 60 s 720p clip sampled at 1
// fps with the fixture model, end to end (decode + preprocess + embed,
// overlapped) and stage by stage: ffmpeg decoding (of every source
// frame, 25 per sampled frame) and the pipe, the CLIP preprocessing of
// a 1280×720 frame, and the image tower.
func BenchmarkVideo720p(b *testing.B) {
	dir := fixtures.Dir(b)
	m := loadModel(b, dir)
	clip := benchVideo(b)
	ctx := context.Background()
	o := Options{FPS: 1}
	frames, _, err := ReadFrames(ctx, clip, o)
	if err != nil {
		b.Fatal(err)
	}
	n := len(frames)
	if n != 60 {
		b.Fatalf("%d frames sampled, want 60", n)
	}
	per := 3 * m.ImageSize() * m.ImageSize()
	pix := make([]float32, n*per)
	pre := m.PreprocessOptions()
	report := func(b *testing.B) {
		s := b.Elapsed().Seconds()
		b.ReportMetric(float64(n*b.N)/s, "frames/s")
		b.ReportMetric(s*1000/float64(n*b.N), "ms/frame")
		b.ReportMetric(0, "ns/op")
	}
	b.Run("end-to-end", func(b *testing.B) {
		var st Stats
		for b.Loop() {
			e, err := Embed(ctx, m, clip, o, 0)
			if err != nil {
				b.Fatal(err)
			}
			st = e.Stats
		}
		report(b)
		b.ReportMetric(float64(60*b.N)/b.Elapsed().Seconds(), "video-s/s")
		b.Logf("last run: %s", statsString(st))
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			k := 0
			if _, err := Extract(ctx, clip, o, func(*Frame) error { k++; return nil }); err != nil || k != n {
				b.Fatal(k, err)
			}
		}
		report(b)
	})
	b.Run("preprocess", func(b *testing.B) {
		for b.Loop() {
			for i, f := range frames {
				if err := imageproc.PreprocessInto(pix[i*per:(i+1)*per], f.Image, pre); err != nil {
					b.Fatal(err)
				}
			}
		}
		report(b)
	})
	b.Run("embed", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.EncodePixels(ctx, pix, n); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
}

func statsString(s Stats) string {
	per := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(max(s.Frames, 1)) }
	return sprintf("%d frames in %v; per frame: waiting for ffmpeg %.1f ms, preprocess %.1f ms CPU, embed %.1f ms",
		s.Frames, s.Wall.Round(time.Millisecond), per(s.Decode), per(s.Preprocess), per(s.Embed))
}
