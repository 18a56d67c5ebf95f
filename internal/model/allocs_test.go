package model

import "testing"

// TestSteadyStateAllocs checks that a warmed-up forward allocates
// nothing: activations live in a reused arena and the parallel loops are
// pooled task structs, not closures. limit is the allowed count per pass.
func TestSteadyStateAllocs(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg   Config
		prec  Precision
		limit float64
	}{
		"vit":      {vit(64, 64, 16, 128, 2, 2, 128, 2, 2), FP32, 0},
		"vit/int8": {vit(64, 64, 16, 128, 2, 2, 128, 2, 2), Int8, 0},
		"rn":       {resnet(32, 64, [4]int{1, 1, 1, 1}, 8, 64, 1, 1), FP32, 0},
		"rn/int8":  {resnet(32, 64, [4]int{1, 1, 1, 1}, 8, 64, 1, 1), Int8, 0},
	} {
		cfg := tc.cfg
		m, err := Random(cfg, 3)
		if err != nil {
			t.Fatal(err)
		}
		m.UsePrecision(tc.prec)
		s := cfg.Vision.ImageSize
		const batch = 2
		px := make([]float32, batch*3*s*s)
		out := make([]float32, batch*cfg.EmbedDim)
		toks := [][]int32{make([]int32, 77), make([]int32, 77)}
		toks[0][0], toks[0][1], toks[0][2] = 49406, 320, 49407
		toks[1][0], toks[1][1] = 49406, 49407
		img := testing.AllocsPerRun(5, func() { m.EncodeImage(out, px, batch, nil) })
		txt := testing.AllocsPerRun(5, func() {
			if err := m.EncodeText(out, toks, nil); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s: %.0f allocations per EncodeImage, %.0f per EncodeText", name, img, txt)
		if limit := tc.limit; img > limit || txt > limit {
			t.Errorf("%s: %.0f / %.0f allocations per forward, want ≤ %.0f", name, img, txt, limit)
		}
	}
}
