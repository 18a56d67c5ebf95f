package clip_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
)

// modelPaths lists every loadable form of a fixture model: the manifest's
// files that are checkpoints, and directories holding a config.
func modelPaths(dir string, files []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range files {
		p := filepath.Join(dir, f)
		switch {
		case strings.HasSuffix(f, ".safetensors") && filepath.Base(f) == "model.safetensors":
			p = filepath.Dir(p) // a Hugging Face directory
		case strings.HasSuffix(f, ".safetensors"), strings.HasSuffix(f, ".bin"), strings.HasSuffix(f, ".pt"):
		default:
			continue
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

func relErr(a, b []float32) float64 {
	var md, mr float64
	for i := range b {
		md = math.Max(md, math.Abs(float64(a[i])-float64(b[i])))
		mr = math.Max(mr, math.Abs(float64(b[i])))
	}
	return md / mr
}

func cos(a, b []float32) float64 { return float64(clip.Similarity(a, b)) }

// TestParityEndToEnd loads every fixture model in every format and checks
// image features (from the image files), text features (from the texts)
// and logits against the reference.
func TestParityEndToEnd(t *testing.T) {
	dir := fixtures.Dir(t)
	exp := fixtures.Expected(t, dir)
	man := fixtures.ReadManifest(t, dir)
	texts := fixtures.Texts(t, dir)
	tok := filepath.Join(dir, "tokenizer")
	ctx := context.Background()
	for _, mm := range man.Models {
		for _, path := range modelPaths(filepath.Join(dir, mm.Name), mm.Files) {
			rel, _ := filepath.Rel(dir, path)
			t.Run(rel, func(t *testing.T) {
				m, err := clip.Load(path, clip.WithTokenizer(tok))
				if err != nil {
					t.Fatal(err)
				}
				ed := m.EmbedDim()
				// Every image file as given, JPEGs included (the default
				// JPEG decoder is libjpeg-turbo-exact).
				var files []string
				for _, im := range man.Images {
					files = append(files, filepath.Join(dir, im.File))
				}
				img, err := m.EncodeImageFiles(ctx, files)
				if err != nil {
					t.Fatal(err)
				}
				ref, _ := fixtures.Float32(t, exp, "image_features/"+mm.Name)
				for i := range img {
					r := ref[i*ed : (i+1)*ed]
					if c, e := cos(img[i], r), relErr(img[i], r); c < 0.99999 || e > 1e-4 {
						t.Errorf("image %s: cosine %.7f, max|Δ|/max|ref| %.3g", files[i], c, e)
					}
				}
				txt, err := m.EncodeTexts(ctx, texts)
				if err != nil {
					t.Fatal(err)
				}
				ref, _ = fixtures.Float32(t, exp, "text_features/"+mm.Name)
				for i := range txt {
					r := ref[i*ed : (i+1)*ed]
					if c, e := cos(txt[i], r), relErr(txt[i], r); c < 0.99999 || e > 1e-4 {
						t.Errorf("text %d %q: cosine %.7f, max|Δ|/max|ref| %.3g", i, texts[i], c, e)
					}
				}
				logits := m.Logits(img, txt)
				refL, _ := fixtures.Float32(t, exp, "logits_per_image/"+mm.Name)
				var worst float64
				for i, row := range logits {
					for j, v := range row {
						worst = math.Max(worst, math.Abs(float64(v-refL[i*len(row)+j])))
					}
				}
				if worst > 1e-3 {
					t.Errorf("logits max abs diff %.3g > 1e-3", worst)
				}
				t.Logf("logits max abs diff %.2g", worst)
			})
		}
	}
}

// TestJPEGRows reports how far the JPEG files' features land from the
// reference with Go's image/jpeg instead of the exact decoder.
func TestJPEGRows(t *testing.T) {
	dir := fixtures.Dir(t)
	exp := fixtures.Expected(t, dir)
	man := fixtures.ReadManifest(t, dir)
	mm := man.Models[0]
	path := modelPaths(filepath.Join(dir, mm.Name), mm.Files)[0]
	m, err := clip.Load(path, clip.WithTokenizer(filepath.Join(dir, "tokenizer")), clip.WithGoJPEG(true))
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := fixtures.Float32(t, exp, "image_features/"+mm.Name)
	ed := m.EmbedDim()
	for i, im := range man.Images {
		if im.Format != "JPEG" {
			continue
		}
		v, err := m.EncodeImageFiles(context.Background(), []string{filepath.Join(dir, im.File)})
		if err != nil {
			t.Fatal(err)
		}
		r := ref[i*ed : (i+1)*ed]
		t.Logf("%s (%s): cosine %.7f, max|Δ|/max|ref| %.3g", im.Name, mm.Name, cos(v[0], r), relErr(v[0], r))
	}
}

func TestLoadErrors(t *testing.T) {
	dir := fixtures.Dir(t)
	tmp := t.TempDir()
	good := fixtures.ModelFile(t, dir, "open_clip_model.safetensors")
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	trunc := filepath.Join(tmp, "truncated.safetensors")
	os.WriteFile(trunc, data[:len(data)/2], 0o644)
	notModel := filepath.Join(tmp, "notes.txt")
	os.WriteFile(notModel, []byte("hello"), 0o644)
	for _, tc := range []struct{ name, path, want string }{
		{"missing", filepath.Join(tmp, "nope.safetensors"), "no such file"},
		{"truncated", trunc, "truncated.safetensors"},
		{"not a checkpoint", notModel, "notes.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := clip.Load(tc.path, clip.WithTokenizer(filepath.Join(dir, "tokenizer")))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load(%s) error %v, want one mentioning %q", tc.path, err, tc.want)
			}
		})
	}
}
