package imageproc

import (
	"flag"
	"image"
	"testing"
)

// TestSteadyStateAllocs checks that a warmed-up preprocessing call
// allocates at most a small constant number of objects, and (via
// testing.Benchmark) that its bytes per call do not grow with the image.
func TestSteadyStateAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts with -short")
	}
	// testing.Benchmark runs for -test.benchtime: a fixed count keeps
	// this test short.
	if f := flag.Lookup("test.benchtime"); f != nil {
		old := f.Value.String()
		f.Value.Set("5x")
		defer f.Value.Set(old)
	}
	const n = 224
	o := DefaultOptions(n)
	dst := make([]float32, 3*n*n)
	type call struct {
		name string
		fn   func() error
	}
	calls := func(w, h int) []call {
		rgb := randImage(ModeRGB, w, h, 1)
		rgba := randImage(ModeRGBA, w, h, 2)
		gimgs := goImages(w, h, 3)
		return []call{
			{"Image RGB", func() error { return PreprocessInto(dst, rgb, o) }},
			{"Image RGBA", func() error { return PreprocessInto(dst, rgba, o) }},
			{"RGBA opaque", func() error { return PreprocessImageInto(dst, gimgs["RGBA opaque"], o) }},
			{"NRGBA translucent", func() error { return PreprocessImageInto(dst, gimgs["NRGBA translucent"], o) }},
			{"YCbCr", func() error { return PreprocessImageInto(dst, gimgs["YCbCr 420"], o) }},
			{"Gray", func() error { return PreprocessImageInto(dst, gimgs["Gray"], o) }},
		}
	}
	bytesPer := map[string][]int64{}
	for _, sz := range [][2]int{{300, 200}, {900, 600}} {
		for _, c := range calls(sz[0], sz[1]) {
			if err := c.fn(); err != nil { // warm up
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(5, func() {
				if err := c.fn(); err != nil {
					t.Fatal(err)
				}
			})
			res := testing.Benchmark(func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					c.fn()
				}
			})
			t.Logf("%dx%d %-18s %5.1f allocs/call, %6d B/op, %d allocs/op (benchmark)", sz[0], sz[1], c.name, allocs, res.AllocedBytesPerOp(), res.AllocsPerOp())
			if allocs > 4 {
				t.Errorf("%dx%d %s: %.1f allocations per call, want ≤ 4", sz[0], sz[1], c.name, allocs)
			}
			bytesPer[c.name] = append(bytesPer[c.name], res.AllocedBytesPerOp())
		}
	}
	// The large image has 9× the pixels of the small one: the bytes per
	// call must not follow (a few KB of noise from pools and GC is fine).
	for name, b := range bytesPer {
		if b[1] > 64<<10 && b[1] > 2*b[0]+(16<<10) {
			t.Errorf("%s: %d B/op at 900×600 vs %d at 300×200: garbage grows with the image", name, b[1], b[0])
		}
	}
}

var _ image.Image // goImages returns image.Image values
