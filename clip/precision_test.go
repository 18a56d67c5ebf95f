package clip_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/kernels"
)

// TestPrecision reports, for every fixture CLIP model, the cosine of its
// bf16-weight and int8-weight features to the reference features (goal
// ≥ 0.999).
func TestPrecision(t *testing.T) {
	dir := fixtures.Dir(t)
	exp := fixtures.Expected(t, dir)
	man := fixtures.ReadManifest(t, dir)
	texts := fixtures.Texts(t, dir)
	tok := filepath.Join(dir, "tokenizer")
	ctx := context.Background()
	var files []string
	for _, im := range man.Images {
		files = append(files, filepath.Join(dir, im.File))
	}
	for _, mm := range man.Models {
		// bf16 runs with both layouts of its weights on any machine: the
		// native products (VDPBF16PS, or their portable form where the
		// CPU has no AVX512_BF16) and the widening one.
		for _, prec := range []string{"bf16/native", "bf16/widen", "int8"} {
			path := modelPaths(filepath.Join(dir, mm.Name), mm.Files)[0]
			rel, _ := filepath.Rel(dir, path)
			t.Run(rel+"/"+prec, func(t *testing.T) {
				prec, layout, _ := strings.Cut(prec, "/")
				old, err := kernels.SetBF16Layout(layout)
				if err != nil {
					t.Fatal(err)
				}
				defer kernels.SetBF16Layout(old)
				m, err := clip.Load(path, clip.WithTokenizer(tok), clip.WithPrecision(prec))
				if err != nil {
					t.Fatal(err)
				}
				ed := m.EmbedDim()
				img, err := m.EncodeImageFiles(ctx, files)
				if err != nil {
					t.Fatal(err)
				}
				txt, err := m.EncodeTexts(ctx, texts)
				if err != nil {
					t.Fatal(err)
				}
				for _, side := range []struct {
					name string
					got  [][]float32
				}{{"image", img}, {"text", txt}} {
					ref, _ := fixtures.Float32(t, exp, side.name+"_features/"+mm.Name)
					worst := 1.0
					for i, g := range side.got {
						worst = min(worst, cos(g, ref[i*ed:(i+1)*ed]))
					}
					t.Logf("%s features: worst cosine to the fp32 reference %.6f over %d", side.name, worst, len(side.got))
					if worst < 0.999 {
						t.Errorf("%s features with %s weights: worst cosine %.6f < 0.999", side.name, prec, worst)
					}
				}
			})
		}
	}
	if _, err := clip.Load(modelPaths(filepath.Join(dir, man.Models[0].Name), man.Models[0].Files)[0], clip.WithTokenizer(tok), clip.WithPrecision("int4")); err == nil || !strings.Contains(err.Error(), "int4") {
		t.Errorf("precision int4: got %v, want an error naming it", err)
	}
}
