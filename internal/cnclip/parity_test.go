package cnclip

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/imageproc"
)

// manifest is the part of the Chinese-CLIP fixtures' manifest.json used here.
type manifest struct {
	Resolution    int `json:"resolution"`
	ContextLength int `json:"context_length"`
	Images        []struct {
		Name   string `json:"name"`
		File   string `json:"file"`
		Format string `json:"format"`
		Mode   string `json:"mode"`
	} `json:"images"`
	Intermediates struct {
		Images int `json:"images"`
		Texts  int `json:"texts"`
	} `json:"intermediates"`
	Models []struct {
		Name          string   `json:"name"`
		Files         []string `json:"files"`
		ContextLength int      `json:"context_length"`
		LogitScale    float64  `json:"logit_scale"`
	} `json:"models"`
	Expected [][]any `json:"expected"`
}

type tokensJSON struct {
	Texts []struct {
		TokenizeIDs []int32  `json:"tokenize_ids"`
		Truncated   bool     `json:"truncated"`
		HFNotes     []string `json:"hf_bert_tokenizer_notes"`
	} `json:"texts"`
}

// referenceTokens reads the fixtures' tokens.json: its entries and their
// token ids.
func referenceTokens(t *testing.T, dir string) (tokensJSON, [][]int32) {
	t.Helper()
	var toks tokensJSON
	fixtures.ReadJSON(t, filepath.Join(dir, "tokens.json"), &toks)
	ref := make([][]int32, len(toks.Texts))
	for i, r := range toks.Texts {
		ref[i] = r.TokenizeIDs
	}
	return toks, ref
}

func readManifest(t *testing.T) (string, *manifest) {
	t.Helper()
	dir := fixtures.CNDir(t)
	var m manifest
	fixtures.ReadJSON(t, filepath.Join(dir, "manifest.json"), &m)
	return dir, &m
}

// format is one way of loading a fixture model.
type format struct {
	name string
	load func(t *testing.T, dir, model string) *Model
}

var formats = []format{
	{"cn_clip", func(t *testing.T, dir, name string) *Model {
		m, err := Load(filepath.Join(dir, name, "cn_clip.pt"), Options{Vocab: filepath.Join(dir, "tokenizer", "vocab.txt")})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}},
	{"hf", func(t *testing.T, dir, name string) *Model {
		m, err := Load(filepath.Join(dir, name, "hf"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}},
}

// available lists the formats whose files the manifest names for a model.
func available(files []string) []format {
	var out []format
	for _, f := range formats {
		want := "cn_clip.pt"
		if f.name == "hf" {
			want = "hf/config.json"
		}
		if slices.Contains(files, want) {
			out = append(out, f)
		}
	}
	return out
}

// compare checks got against the reference: per tensor max|Δ| ≤ 1e-5·max|ref|
// + 1e-7 and per row cosine ≥ 0.99999 (rows of rowLen values).
func compare(t *testing.T, what string, got, want []float32, rowLen int) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return
	}
	var maxRef, maxDiff float64
	for i := range want {
		maxRef = max(maxRef, math.Abs(float64(want[i])))
		maxDiff = max(maxDiff, math.Abs(float64(got[i])-float64(want[i])))
	}
	minCos := 1.0
	for r := 0; r+rowLen <= len(want); r += rowLen {
		var d, na, nb float64
		for i := r; i < r+rowLen; i++ {
			d += float64(got[i]) * float64(want[i])
			na += float64(got[i]) * float64(got[i])
			nb += float64(want[i]) * float64(want[i])
		}
		if na > 0 && nb > 0 {
			minCos = min(minCos, d/math.Sqrt(na*nb))
		}
	}
	rel := maxDiff / max(maxRef, 1e-30)
	t.Logf("%-45s max|Δ| %.3g (%.3g of max|ref|), 1-min cos %.3g", what, maxDiff, rel, 1-minCos)
	if maxDiff > 1e-5*maxRef+1e-7 || minCos < 0.99999 {
		t.Errorf("%s: max|Δ| %.3g (%.3g relative), min cos %.8f: outside tolerance", what, maxDiff, rel, minCos)
	}
}

func TestParity(t *testing.T) {
	dir, man := readManifest(t)
	exp := fixtures.Expected(t, dir)
	texts := fixtures.Texts(t, dir)
	toks, ref := referenceTokens(t, dir)
	n := man.Resolution
	per := 3 * n * n
	pixels := make([]float32, 0, len(man.Images)*per)
	for _, im := range man.Images {
		p, _ := fixtures.Float32(t, exp, "pixels/"+im.Name)
		pixels = append(pixels, p...)
	}
	for _, mod := range man.Models {
		for _, f := range available(mod.Files) {
			t.Run(mod.Name+"/"+f.name, func(t *testing.T) {
				m := f.load(t, dir, mod.Name)
				if m.ImageSize() != n || m.ContextLength() != mod.ContextLength {
					t.Fatalf("image size %d, context %d; want %d, %d", m.ImageSize(), m.ContextLength(), n, mod.ContextLength)
				}
				// Tokens.
				rows, trunc, err := m.Tokenize(texts)
				if err != nil {
					t.Fatal(err)
				}
				for i := range rows {
					if f.name == "hf" && len(toks.Texts[i].HFNotes) > 0 {
						continue // documented BertTokenizer differences
					}
					if !slices.Equal(rows[i], ref[i]) || trunc[i] != toks.Texts[i].Truncated {
						t.Errorf("text %d %q: ids %v truncated %v, want %v %v", i, texts[i], rows[i], trunc[i], ref[i], toks.Texts[i].Truncated)
					}
				}
				// Logit scale.
				ls, _ := fixtures.Float32(t, exp, "logit_scale/"+mod.Name)
				if m.LogitScale != ls[0] {
					t.Errorf("logit_scale %v, want %v", m.LogitScale, ls[0])
				}
				E := m.EmbedDim()
				traced := map[string][]float32{}
				tracer := func(name string, data []float32, shape []int) {
					traced[name] = slices.Clone(data)
				}
				img := make([]float32, len(man.Images)*E)
				m.EncodeImage(img, pixels, len(man.Images), tracer)
				want, _ := fixtures.Float32(t, exp, "image_features/"+mod.Name)
				compare(t, "image_features", img, want, E)
				txt := make([]float32, len(ref)*E)
				if err := m.EncodeText(txt, ref, tracer); err != nil {
					t.Fatal(err)
				}
				want, _ = fixtures.Float32(t, exp, "text_features/"+mod.Name)
				compare(t, "text_features", txt, want, E)
				checkIntermediates(t, exp, man.Expected, mod.Name, traced)
				// Logits: exp(scale)·cos.
				logits := Logits(img, txt, len(man.Images), len(ref), E, m.LogitScale)
				want, _ = fixtures.Float32(t, exp, "logits_per_image/"+mod.Name)
				compare(t, "logits_per_image", logits, want, len(ref))
				// Batch of one equals the batch.
				one := make([]float32, E)
				if err := m.EncodeText(one, ref[len(ref)-1:], nil); err != nil {
					t.Fatal(err)
				}
				compare(t, "text_features (last text alone)", one, txt[(len(ref)-1)*E:], E)
			})
		}
	}
}

// checkIntermediates compares every traced tensor the fixtures hold for the
// model, on the rows the fixtures keep.
func checkIntermediates(t *testing.T, exp *checkpoint.File, names [][]any, model string, traced map[string][]float32) {
	t.Helper()
	prefix := "intermediates/" + model + "/"
	seen := 0
	for _, e := range names {
		name, _ := e[0].(string)
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		got, ok := traced[rest]
		if !ok {
			t.Errorf("intermediate %s was not traced", rest)
			continue
		}
		want, shape := fixtures.Float32(t, exp, name)
		if len(got) < len(want) {
			t.Errorf("intermediate %s: traced %d values, want at least %d", rest, len(got), len(want))
			continue
		}
		compare(t, "intermediates/"+rest, got[:len(want)], want, shape[len(shape)-1])
		seen++
	}
	if seen == 0 {
		t.Errorf("no intermediates for %s in expected.safetensors", model)
	}
}

func TestPreprocessing(t *testing.T) {
	dir, man := readManifest(t)
	exp := fixtures.Expected(t, dir)
	o := ReferencePreprocess(man.Resolution)
	hf, err := imageproc.LoadHFConfig(filepath.Join(dir, man.Models[0].Name, "hf", "preprocessor_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range man.Images {
		t.Run(im.Name, func(t *testing.T) {
			crop := exp.Tensor("crop_u8/" + im.Name)
			if crop == nil {
				t.Fatalf("no crop_u8/%s", im.Name)
			}
			want, _ := fixtures.Float32(t, exp, "pixels/"+im.Name)
			// pixels from the reference crop: exact.
			px := make([]float32, len(want))
			imageproc.Normalize(px, crop.Data, o)
			if !slices.Equal(px, want) {
				t.Errorf("Normalize(crop_u8) differs from pixels")
			}
			img, err := imageproc.LoadFile(filepath.Join(dir, im.File), o)
			if err != nil {
				t.Fatal(err)
			}
			got, err := imageproc.CropRGB(img, o)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(got, crop.Data); d != 0 {
				t.Errorf("crop_u8 differs from the reference by up to %d", d)
			}
			full, err := imageproc.Preprocess(img, o)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(full, want) && maxDiff(got, crop.Data) == 0 {
				t.Errorf("pixels differ from the reference although the crop matches")
			}
			// ChineseCLIPImageProcessor converts to RGB before resizing: the
			// same crop wherever that order cannot matter (RGB and L).
			if im.Mode == "RGB" || im.Mode == "L" {
				hc, err := imageproc.CropRGB(img, hf)
				if err != nil {
					t.Fatal(err)
				}
				if d := maxDiff(hc, crop.Data); d != 0 {
					t.Errorf("HF processor crop differs by up to %d", d)
				}
				hp, _ := imageproc.Preprocess(img, hf)
				if d := maxAbs(hp, want); d != 0 {
					t.Errorf("HF processor pixels differ by up to %g", d)
				}
			}
		})
	}
}

func maxDiff(a, b []uint8) int {
	if len(a) != len(b) {
		return 256
	}
	d := 0
	for i := range a {
		d = max(d, int(a[i])-int(b[i]), int(b[i])-int(a[i]))
	}
	return d
}

func maxAbs(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}
