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
// call allocates a few objects whatever the number and size of the images
// (the returned slices; images are read in place and preprocessed by the
// shared worker pool, not a goroutine each), and logs the bytes per call
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
		// The result (its rows and their backing array) and the
		// preprocessing closure: measured 3 for 4 images; a little room
		// for a sync.Pool emptied by a collection.
		const perCall, perImage = 6, 0
		if raceEnabled {
			t.Logf("not checked against the bound under the race detector (it makes sync.Pool drop items at random)")
			continue
		}
		if allocs > perCall+perImage*n {
			t.Errorf("EncodeImages of %d images: %.1f allocations per call, want ≤ %d", n, allocs, perCall+perImage*n)
		}
	}
}
