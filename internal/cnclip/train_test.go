package cnclip

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/model"
)

// gradManifest is the gradient part of the fixtures' manifest.json.
type gradManifest struct {
	Images []struct {
		Name string `json:"name"`
		File string `json:"file"`
	} `json:"images"`
	Models []struct {
		Name      string   `json:"name"`
		Files     []string `json:"files"`
		GradBatch *struct {
			Images      []string `json:"images"`
			TextIndices []int    `json:"text_indices"`
			Loss        float64  `json:"loss"`
		} `json:"grad_batch"`
	} `json:"models"`
	Expected [][]any `json:"expected"`
}

// mathematicallyZero reports the gradients the fixtures' README calls
// mathematically zero (stored as float noise): BERT's key biases, which
// shift every score of a query equally. They are compared in absolute
// terms.
func mathematicallyZero(name string) bool {
	return strings.HasSuffix(name, ".attention.self.key.bias")
}

// TestGradientParity checks cn_clip's training loss on the fixtures'
// gradient batch, the logits inside it and d loss / d every parameter
// against the reference.
func TestGradientParity(t *testing.T) {
	dir := fixtures.CNDir(t)
	var man gradManifest
	fixtures.ReadJSON(t, filepath.Join(dir, "manifest.json"), &man)
	exp := fixtures.Expected(t, dir)
	var toks tokensJSON
	fixtures.ReadJSON(t, filepath.Join(dir, "tokens.json"), &toks)
	pixelName := map[string]string{} // image file (or name) -> pixels tensor name
	for _, im := range man.Images {
		pixelName[im.Name] = "pixels/" + im.Name
		pixelName[filepath.Base(im.File)] = "pixels/" + im.Name
	}
	ran := false
	for _, mod := range man.Models {
		gb := mod.GradBatch
		if gb == nil {
			continue
		}
		if ran {
			t.Fatalf("model %s: more than one model has a gradient batch, but grad/* names carry no model", mod.Name)
		}
		ran = true
		var pixels []float32
		for _, name := range gb.Images {
			tn, ok := pixelName[name]
			if !ok {
				t.Fatalf("gradient batch image %q is not in images[]", name)
			}
			p, _ := fixtures.Float32(t, exp, tn)
			pixels = append(pixels, p...)
		}
		var tokens [][]int32
		for _, i := range gb.TextIndices {
			tokens = append(tokens, toks.Texts[i].TokenizeIDs)
		}
		f := available(mod.Files)
		if len(f) == 0 {
			t.Fatalf("model %s: no loadable files", mod.Name)
		}
		m := f[0].load(t, dir, mod.Name)
		t.Logf("model %s (%s): batch of %d", mod.Name, f[0].name, len(tokens))

		// Two steps on the same batch: buffers are reused and gradients
		// re-zeroed, so the second must give the same numbers.
		var loss float32
		for range 2 {
			var err error
			loss, _, err = m.ContrastiveGrad(pixels, tokens)
			if err != nil {
				t.Fatal(err)
			}
		}
		want, _ := fixtures.Float32(t, exp, "loss/"+mod.Name)
		t.Logf("loss %.9g, want %.9g (|Δ| %.3g; manifest %.9g)", loss, want[0], math.Abs(float64(loss-want[0])), gb.Loss)
		if math.Abs(float64(loss)-float64(want[0])) > 1e-6 {
			t.Errorf("loss %.9g, want %.9g", loss, want[0])
		}

		// The logits inside the loss, from the training forward's features.
		n, E := len(tokens), m.EmbedDim()
		img, _, err := m.EncodeImageTrain(pixels, n)
		if err != nil {
			t.Fatal(err)
		}
		txt, _, err := m.EncodeTextTrain(tokens)
		if err != nil {
			t.Fatal(err)
		}
		lpi := Logits(img, txt, n, n, E, m.LogitScale)
		lpt := Logits(txt, img, n, n, E, m.LogitScale)
		for name, got := range map[string][]float32{"logits_per_image": lpi, "logits_per_text": lpt} {
			want, _ := fixtures.Float32(t, exp, "gradbatch/"+mod.Name+"/"+name)
			compare(t, "gradbatch "+name, got, want, n)
		}
		if _, _, err := m.ContrastiveGrad(pixels, tokens); err != nil {
			t.Fatal(err)
		}

		params := map[string]*model.Param{}
		for _, p := range m.Params() {
			if params[p.Name] != nil {
				t.Errorf("parameter %s listed twice", p.Name)
			}
			params[p.Name] = p
		}
		seen := map[string]bool{}
		for _, e := range man.Expected {
			full, _ := e[0].(string)
			var name string
			var ok bool
			if name, ok = strings.CutPrefix(full, "grad/"); !ok {
				if name, ok = strings.CutPrefix(full, "grad_sparse/"); !ok || !strings.HasSuffix(name, "/rows") {
					continue
				}
				name = strings.TrimSuffix(name, "/rows")
				checkSparse(t, exp, full, name, params[name])
				seen[name] = true
				continue
			}
			seen[name] = true
			p := params[name]
			if p == nil {
				if name != "pixels" {
					t.Errorf("%s: no such parameter", full)
				}
				continue
			}
			ref, shape := fixtures.Float32(t, exp, full)
			if !slices.Equal(shape, p.Shape) {
				t.Errorf("%s: shape %v, parameter %v", full, shape, p.Shape)
				continue
			}
			checkGrad(t, name, p.Grad, ref)
		}
		for name := range params {
			if !seen[name] {
				t.Errorf("parameter %s has no reference gradient", name)
			}
		}
	}
	if !ran {
		t.Skip("no model with a gradient batch in the manifest")
	}
}

// checkGrad compares one dense gradient: max|Δ| ≤ 1e-4·max|ref|, or, for
// the mathematically zero ones, both sides below 1e-6 in absolute terms.
func checkGrad(t *testing.T, name string, got, ref []float32) {
	t.Helper()
	var maxRef, maxGot, maxDiff float64
	for i := range ref {
		maxRef = max(maxRef, math.Abs(float64(ref[i])))
		maxGot = max(maxGot, math.Abs(float64(got[i])))
		maxDiff = max(maxDiff, math.Abs(float64(got[i])-float64(ref[i])))
	}
	rel := maxDiff / max(maxRef, 1e-30)
	t.Logf("grad %-55s max|Δ| %.3g (%.3g of max|ref| %.3g)", name, maxDiff, rel, maxRef)
	if mathematicallyZero(name) {
		if maxGot > 1e-6 || maxRef > 1e-6 {
			t.Errorf("grad %s: max |go| %.3g, max |ref| %.3g: should be zero (float noise)", name, maxGot, maxRef)
		}
		return
	}
	if maxDiff > 1e-4*maxRef+1e-9 {
		t.Errorf("grad %s: max|Δ| %.3g (%.3g of max|ref|): outside 1e-4", name, maxDiff, rel)
	}
}

// checkSparse compares a gradient stored as sorted row ids (rowsName,
// I64) and their values (…/values); every other row must be exactly zero.
func checkSparse(t *testing.T, exp *checkpoint.File, rowsName, name string, p *model.Param) {
	t.Helper()
	if p == nil {
		t.Errorf("%s: no such parameter", rowsName)
		return
	}
	rt := exp.Tensor(rowsName)
	if rt == nil {
		t.Fatalf("%s missing from expected.safetensors", rowsName)
	}
	rows, err := rt.Int64()
	if err != nil {
		t.Fatalf("%s: %v", rowsName, err)
	}
	vals, shape := fixtures.Float32(t, exp, strings.TrimSuffix(rowsName, "/rows")+"/values")
	if len(p.Shape) != 2 || len(shape) != 2 || shape[0] != len(rows) || shape[1] != p.Shape[1] {
		t.Fatalf("%s: values %v for %d rows of parameter %v", rowsName, shape, len(rows), p.Shape)
	}
	w := p.Shape[1]
	listed := map[int64]bool{}
	got := make([]float32, 0, len(vals))
	for _, r := range rows {
		if r < 0 || int(r) >= p.Shape[0] {
			t.Fatalf("%s: row %d outside %v", rowsName, r, p.Shape)
		}
		listed[r] = true
		got = append(got, p.Grad[int(r)*w:int(r+1)*w]...)
	}
	checkGrad(t, name+" (listed rows)", got, vals)
	var stray int
	for r := range p.Shape[0] {
		if listed[int64(r)] {
			continue
		}
		for _, v := range p.Grad[r*w : (r+1)*w] {
			if v != 0 {
				stray++
				break
			}
		}
	}
	if stray > 0 {
		t.Errorf("grad %s: %d rows outside the reference's %d have a gradient", name, stray, len(rows))
	}
}
