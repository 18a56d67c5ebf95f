package heatmap

import (
	"math"
	"testing"
)

func TestPatchSimilarity(t *testing.T) {
	// grid 2, embed 2: class token then 4 patches.
	proj := []float32{9, 9, 1, 0, 0, 1, -1, 0, 1, 1}
	sim, err := PatchSimilarity(proj, 2, 2, []float32{2, 0})
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1, 0, -1, 1 / math.Sqrt2}
	for i, w := range want {
		if math.Abs(float64(sim[i])-w) > 1e-6 {
			t.Errorf("patch %d: %v, want %v", i, sim[i], w)
		}
	}
	for _, bad := range []struct {
		proj []float32
		grid int
		text []float32
	}{{proj, 3, []float32{1, 0}}, {proj, 2, []float32{1}}, {proj[:4], 2, []float32{1, 0}}, {proj, 0, []float32{1, 0}}} {
		if _, err := PatchSimilarity(bad.proj, bad.grid, 2, bad.text); err == nil {
			t.Errorf("grid %d, %d values, text %d: no error", bad.grid, len(bad.proj), len(bad.text))
		}
	}
}

func TestOverlay(t *testing.T) {
	rgb := make([]uint8, 4*4*3)
	img, err := Overlay(rgb, 4, []float32{0, 1, 2, 3}, 2, 8, 1)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 8 || b.Dy() != 8 {
		t.Fatalf("size %v", b)
	}
	// Alpha 1 shows the colour map alone: the low corner dark, the high one bright.
	lo, hi := img.Pix[0:3], img.Pix[(7*8+7)*4:(7*8+7)*4+3]
	if int(lo[0])+int(lo[1])+int(lo[2]) >= int(hi[0])+int(hi[1])+int(hi[2]) {
		t.Errorf("low corner %v not darker than high corner %v", lo, hi)
	}
	if _, err := Overlay(rgb[:5], 4, []float32{0, 1, 2, 3}, 2, 8, 1); err == nil {
		t.Error("short image: no error")
	}
	if _, err := Overlay(rgb, 4, []float32{0, 1, 2}, 2, 8, 1); err == nil {
		t.Error("short map: no error")
	}
	// A constant map does not divide by zero.
	if _, err := Overlay(rgb, 4, []float32{1, 1, 1, 1}, 2, 0, 0.5); err != nil {
		t.Error(err)
	}
}
