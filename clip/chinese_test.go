package clip_test

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
)

// TestChineseCLIPEndToEnd loads the Chinese-CLIP fixture model in both of
// its formats through clip.Load and checks features and logits.
func TestChineseCLIPEndToEnd(t *testing.T) {
	dir := fixtures.CNDir(t)
	exp := fixtures.Expected(t, dir)
	var man struct {
		Images []struct {
			Name, File string
		} `json:"images"`
		Models []struct {
			Name string `json:"name"`
		} `json:"models"`
	}
	fixtures.ReadJSON(t, filepath.Join(dir, "manifest.json"), &man)
	texts := fixtures.Texts(t, dir)
	var files []string
	for _, im := range man.Images {
		files = append(files, filepath.Join(dir, im.File))
	}
	for _, mm := range man.Models {
		for _, p := range []string{filepath.Join(mm.Name, "cn_clip.pt"), filepath.Join(mm.Name, "hf")} {
			t.Run(p, func(t *testing.T) {
				path := filepath.Join(dir, p)
				opts := []clip.Option{}
				if filepath.Ext(p) == ".pt" {
					opts = append(opts, clip.WithTokenizer(filepath.Join(dir, "tokenizer", "vocab.txt")))
				}
				m, err := clip.Load(path, opts...)
				if err != nil {
					t.Fatal(err)
				}
				if m.Kind() != "chinese-clip" {
					t.Fatalf("kind %q", m.Kind())
				}
				ed := m.EmbedDim()
				img, err := m.EncodeImageFiles(context.Background(), files)
				if err != nil {
					t.Fatal(err)
				}
				txt, err := m.EncodeTexts(context.Background(), texts)
				if err != nil {
					t.Fatal(err)
				}
				for name, got := range map[string][][]float32{"image_features/": img, "text_features/": txt} {
					ref, _ := fixtures.Float32(t, exp, name+mm.Name)
					for i, v := range got {
						r := ref[i*ed : (i+1)*ed]
						if c, e := cos(v, r), relErr(v, r); c < 0.99999 || e > 1e-4 {
							t.Errorf("%s row %d: cosine %.7f, rel %.3g", name, i, c, e)
						}
					}
				}
				refL, _ := fixtures.Float32(t, exp, "logits_per_image/"+mm.Name)
				var worst float64
				for i, row := range m.Logits(img, txt) {
					for j, v := range row {
						worst = math.Max(worst, math.Abs(float64(v-refL[i*len(row)+j])))
					}
				}
				if worst > 1e-3 {
					t.Errorf("logits max abs diff %.3g", worst)
				}
			})
		}
	}
}
