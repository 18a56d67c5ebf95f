package cnclip

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/kernels"
	"github.com/goclip/goclip/internal/model"
)

// TestPrecision reports, for every fixture Chinese-CLIP model, the worst
// cosine of its features with bf16 and int8 linear weights to the
// reference features (goal ≥ 0.999), checks every Linear was converted,
// and that Params gives the float32 weights back.
func TestPrecision(t *testing.T) {
	dir, man := readManifest(t)
	exp := fixtures.Expected(t, dir)
	_, ref := referenceTokens(t, dir)
	n := man.Resolution
	var pixels []float32
	for _, im := range man.Images {
		p, _ := fixtures.Float32(t, exp, "pixels/"+im.Name)
		pixels = append(pixels, p...)
	}
	for _, mod := range man.Models {
		for _, prec := range []model.Precision{model.BF16, model.Int8} {
			t.Run(mod.Name+"/"+string(prec), func(t *testing.T) {
				m, err := Load(filepath.Join(dir, mod.Name, "hf"), Options{Precision: prec})
				if err != nil {
					t.Fatal(err)
				}
				for _, l := range m.VisionLinears() {
					if l.W != nil {
						t.Fatal("an image-tower Linear kept its float32 weight")
					}
				}
				for _, l := range m.Text.Linears() {
					if l.W != nil {
						t.Fatal("a text-tower Linear kept its float32 weight")
					}
				}
				E := m.EmbedDim()
				img := make([]float32, len(man.Images)*E)
				m.EncodeImage(img, pixels[:len(man.Images)*3*n*n], len(man.Images), nil)
				txt := make([]float32, len(ref)*E)
				if err := m.EncodeText(txt, ref, nil); err != nil {
					t.Fatal(err)
				}
				for _, side := range []struct {
					name string
					got  []float32
				}{{"image", img}, {"text", txt}} {
					want, _ := fixtures.Float32(t, exp, side.name+"_features/"+mod.Name)
					worst := 1.0
					for i := 0; i < len(side.got)/E; i++ {
						worst = math.Min(worst, kernels.Cosine(side.got[i*E:(i+1)*E], want[i*E:(i+1)*E]))
					}
					t.Logf("%s features: worst cosine to the fp32 reference %.6f", side.name, worst)
					if worst < 0.999 {
						t.Errorf("%s features with %s weights: worst cosine %.6f < 0.999", side.name, prec, worst)
					}
				}
				// Gradients (goclip grad, edit) get the weights' float32
				// form back.
				for _, p := range m.Params() {
					n := 1
					for _, d := range p.Shape {
						n *= d
					}
					if len(p.Value) != n || len(p.Grad) != n {
						t.Fatalf("parameter %s: %d values, %d gradients for shape %v", p.Name, len(p.Value), len(p.Grad), p.Shape)
					}
				}
			})
		}
	}
	if _, err := Load(filepath.Join(dir, man.Models[0].Name, "hf"), Options{Precision: "int4"}); err == nil {
		t.Error("precision int4 accepted")
	}
}
