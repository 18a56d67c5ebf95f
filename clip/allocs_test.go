package clip_test

import (
	"context"
	"flag"
	"image"
	"path/filepath"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
)

// TestEncodeImagesSteadyStateAllocs checks that a warmed-up EncodeImages
// call allocates a bounded number of objects: a constant plus a few per
// image (the returned slices, the per-image goroutine; images are read in
// place, so nothing grows with the image size), and logs the bytes per call
// measured with testing.Benchmark.
func TestEncodeImagesSteadyStateAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts with -short")
	}
	dir := fixtures.Dir(t)
	m, err := clip.Load(fixtures.ModelFile(t, dir, "open_clip_model.safetensors"), clip.WithTokenizer(filepath.Join(dir, "tokenizer")))
	if err != nil {
		t.Fatal(err)
	}
	if f := flag.Lookup("test.benchtime"); f != nil {
		old := f.Value.String()
		f.Value.Set("5x")
		defer f.Value.Set(old)
	}
	ctx := context.Background()
	for _, sz := range [][2]int{{300, 200}, {900, 600}} {
		const n = 4
		imgs := make([]image.Image, n)
		for i := range imgs {
			img := image.NewRGBA(image.Rect(0, 0, sz[0], sz[1]))
			for j := range img.Pix {
				img.Pix[j] = uint8(j*7 + i*31)
				if j%4 == 3 {
					img.Pix[j] = 255
				}
			}
			imgs[i] = img
		}
		run := func() {
			if _, err := m.EncodeImages(ctx, imgs); err != nil {
				t.Fatal(err)
			}
		}
		run()
		run()
		allocs := testing.AllocsPerRun(5, run)
		res := testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				run()
			}
		})
		t.Logf("%d images %dx%d: %.1f allocs/call, %d B/op (%d B per image pixel buffer)", n, sz[0], sz[1], allocs, res.AllocedBytesPerOp(), sz[0]*sz[1]*3)
		// Constant part (output slices, batching) + per image (goroutine
		// closure, the row of the result); measured 18 for 4 images.
		const perCall, perImage = 16, 8
		if raceEnabled {
			t.Logf("not checked against the bound under the race detector (it makes sync.Pool drop items at random)")
			continue
		}
		if allocs > perCall+perImage*n {
			t.Errorf("EncodeImages of %d images: %.1f allocations per call, want ≤ %d", n, allocs, perCall+perImage*n)
		}
	}
}
