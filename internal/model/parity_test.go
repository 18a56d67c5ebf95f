package model

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/kernels"
)

// relErr returns max|a-b| / max|b|.
func relErr(a, b []float32) float64 {
	var md, mr float64
	for i := range b {
		md = math.Max(md, math.Abs(float64(a[i])-float64(b[i])))
		mr = math.Max(mr, math.Abs(float64(b[i])))
	}
	if mr == 0 {
		return md
	}
	return md / mr
}

// fixtureTokens reads tokens.json's 77-id rows.
func fixtureTokens(t *testing.T, dir string) [][]int32 {
	var tj struct {
		Texts []struct {
			TokenizeIDs []int32 `json:"tokenize_ids"`
		} `json:"texts"`
	}
	fixtures.ReadJSON(t, filepath.Join(dir, "tokens.json"), &tj)
	var rows [][]int32
	for _, x := range tj.Texts {
		rows = append(rows, x.TokenizeIDs)
	}
	return rows
}

func fixturePixels(t *testing.T, dir string, exp *checkpoint.File) ([]float32, int) {
	m := fixtures.ReadManifest(t, dir)
	var all []float32
	for _, im := range m.Images {
		px, _ := fixtures.Float32(t, exp, "pixels/"+im.Name)
		all = append(all, px...)
	}
	return all, len(m.Images)
}

// checkRows compares rows of got (row width w) with the reference tensor,
// per vector: cosine ≥ 0.99999 and max abs diff ≤ 1e-4·max|ref|.
func checkRows(t *testing.T, name string, got, ref []float32, w int) {
	t.Helper()
	if len(got) < len(ref) {
		t.Fatalf("%s: got %d values, reference has %d", name, len(got), len(ref))
	}
	worst := 0.0
	for r := 0; r*w < len(ref); r++ {
		g, e := got[r*w:(r+1)*w], ref[r*w:(r+1)*w]
		rel := relErr(g, e)
		worst = math.Max(worst, rel)
		if c := kernels.Cosine(g, e); c < 0.99999 || rel > 1e-4 {
			t.Errorf("%s row %d: cosine %.7f, max abs diff %.3g of max|ref|", name, r, c, rel)
		}
	}
	t.Logf("%s: worst row max|Δ|/max|ref| = %.2g", name, worst)
}

func TestParityOpenCLIPSafetensors(t *testing.T) {
	dir := fixtures.Dir(t)
	exp := fixtures.Expected(t, dir)
	man := fixtures.ReadManifest(t, dir)
	pixels, nimg := fixturePixels(t, dir, exp)
	tokens := fixtureTokens(t, dir)
	for _, mm := range man.Models {
		t.Run(mm.Name, func(t *testing.T) {
			f, err := checkpoint.OpenSafetensors(filepath.Join(dir, mm.Name, "open_clip_model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := InferConfig(f)
			if err != nil {
				t.Fatal(err)
			}
			fileCfg, _, err := ReadOpenCLIPConfig(filepath.Join(dir, mm.Name, "open_clip_config.json"))
			if err != nil {
				t.Fatal(err)
			}
			if fileCfg != cfg {
				t.Errorf("config inferred from tensors %+v differs from open_clip_config.json %+v", cfg, fileCfg)
			}
			m, err := New(cfg, f)
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := fixtures.Float32(t, exp, "logit_scale/"+mm.Name); m.LogitScale != want[0] {
				t.Errorf("logit_scale %v, want %v", m.LogitScale, want[0])
			}
			traced := map[string][]float32{}
			trace := func(name string, data []float32, shape []int) {
				traced[name] = append([]float32(nil), data...)
			}
			ed := cfg.EmbedDim
			img := make([]float32, nimg*ed)
			m.EncodeImage(img, pixels, nimg, trace)
			ref, _ := fixtures.Float32(t, exp, "image_features/"+mm.Name)
			checkRows(t, "image_features", img, ref, ed)
			txt := make([]float32, len(tokens)*ed)
			if err := m.EncodeText(txt, tokens, trace); err != nil {
				t.Fatal(err)
			}
			ref, _ = fixtures.Float32(t, exp, "text_features/"+mm.Name)
			checkRows(t, "text_features", txt, ref, ed)
			// Every intermediate the fixture lists for this model.
			prefix := "intermediates/" + mm.Name + "/"
			n := 0
			for _, name := range exp.Names {
				key, ok := strings.CutPrefix(name, prefix)
				if !ok {
					continue
				}
				n++
				got, found := traced[key]
				if !found {
					t.Errorf("intermediate %q not produced by the Go forward", key)
					continue
				}
				ref, shape := fixtures.Float32(t, exp, name)
				w := 1
				for _, d := range shape[1:] {
					w *= d
				}
				if rel := relErr(got[:len(ref)], ref); rel > 1e-4 {
					t.Errorf("intermediate %s: max|Δ|/max|ref| = %.3g", key, rel)
				} else {
					t.Logf("intermediate %s: max|Δ|/max|ref| = %.2g", key, rel)
				}
			}
			if n == 0 {
				t.Errorf("no intermediates for %s in the fixtures", mm.Name)
			}
		})
	}
}
