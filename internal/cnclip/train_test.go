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
		if len(available(mod.Files)) == 0 {
			t.Fatalf("model %s: no loadable files", mod.Name)
		}
		for _, f := range available(mod.Files) {
			t.Run(mod.Name+"/"+f.name, func(t *testing.T) {
				m := f.load(t, dir, mod.Name)
				checkGradBatch(t, exp, man.Expected, mod.Name, m, pixels, tokens)
			})
		}
	}
	if !ran {
		t.Skip("no model with a gradient batch in the manifest")
	}
}

// checkGradBatch runs ContrastiveGrad on the gradient batch and compares
// the loss, the logits and every gradient with the reference.
func checkGradBatch(t *testing.T, exp *checkpoint.File, expected [][]any, modelName string, m *Model, pixels []float32, tokens [][]int32) {
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
	want, _ := fixtures.Float32(t, exp, "loss/"+modelName)
	t.Logf("loss %.9g, want %.9g (|Δ| %.3g)", loss, want[0], math.Abs(float64(loss-want[0])))
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
		want, _ := fixtures.Float32(t, exp, "gradbatch/"+modelName+"/"+name)
		compare(t, "gradbatch "+name, got, want, n)
	}
	if _, _, err := m.ContrastiveGrad(pixels, tokens); err != nil {
		t.Fatal(err)
	}
	checkParamGrads(t, exp, expected, m.Params())
}

// checkParamGrads compares the gradient of every parameter with the
// reference's grad/* and grad_sparse/* tensors (1e-4 of max|ref|), and
// checks that every parameter has one.
func checkParamGrads(t *testing.T, exp *checkpoint.File, expected [][]any, ps []*model.Param) {
	t.Helper()
	params := map[string]*model.Param{}
	for _, p := range ps {
		if params[p.Name] != nil {
			t.Errorf("parameter %s listed twice", p.Name)
		}
		params[p.Name] = p
	}
	seen := map[string]bool{}
	var worst float64
	var worstName string
	note := func(name string, rel float64) {
		if rel > worst {
			worst, worstName = rel, name
		}
	}
	for _, e := range expected {
		full, _ := e[0].(string)
		var name string
		var ok bool
		if name, ok = strings.CutPrefix(full, "grad/"); !ok {
			if name, ok = strings.CutPrefix(full, "grad_sparse/"); !ok || !strings.HasSuffix(name, "/rows") {
				continue
			}
			name = strings.TrimSuffix(name, "/rows")
			note(name, checkSparse(t, exp, full, name, params[name]))
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
		note(name, checkGrad(t, name, p.Grad, ref))
	}
	t.Logf("%d gradients checked; worst max|Δ|/max|ref| %.3g (%s)", len(seen), worst, worstName)
	for name := range params {
		if !seen[name] {
			t.Errorf("parameter %s has no reference gradient", name)
		}
	}
}

// checkGrad compares one dense gradient: max|Δ| ≤ 1e-4·max|ref|, or, for
// the mathematically zero ones, both sides below 1e-6 in absolute terms.
func checkGrad(t *testing.T, name string, got, ref []float32) (rel float64) {
	t.Helper()
	var maxRef, maxGot, maxDiff float64
	for i := range ref {
		maxRef = max(maxRef, math.Abs(float64(ref[i])))
		maxGot = max(maxGot, math.Abs(float64(got[i])))
		maxDiff = max(maxDiff, math.Abs(float64(got[i])-float64(ref[i])))
	}
	rel = maxDiff / max(maxRef, 1e-30)
	t.Logf("grad %-55s max|Δ| %.3g (%.3g of max|ref| %.3g)", name, maxDiff, rel, maxRef)
	if mathematicallyZero(name) {
		if maxGot > 1e-6 || maxRef > 1e-6 {
			t.Errorf("grad %s: max |go| %.3g, max |ref| %.3g: should be zero (float noise)", name, maxGot, maxRef)
		}
		return 0
	}
	if maxDiff > 1e-4*maxRef+1e-9 {
		t.Errorf("grad %s: max|Δ| %.3g (%.3g of max|ref|): outside 1e-4", name, maxDiff, rel)
	}
	return rel
}

// checkSparse compares a gradient stored as sorted row ids (rowsName,
// I64) and their values (…/values); every other row must be exactly zero.
func checkSparse(t *testing.T, exp *checkpoint.File, rowsName, name string, p *model.Param) (rel float64) {
	t.Helper()
	if p == nil {
		t.Errorf("%s: no such parameter", rowsName)
		return 0
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
	rel = checkGrad(t, name+" (listed rows)", got, vals)
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
	return rel
}

// TestTrainStep checks the training API around the gradients: Params
// covers every tensor of the configuration once with its shape, d loss /
// d pixels agrees with a finite difference along its own direction, and an
// SGD step followed by AfterUpdate lowers the loss by about lr·‖g‖² and is
// seen by the inference passes.
func TestTrainStep(t *testing.T) {
	dir := fixtures.CNDir(t)
	var man gradManifest
	fixtures.ReadJSON(t, filepath.Join(dir, "manifest.json"), &man)
	exp := fixtures.Expected(t, dir)
	var toks tokensJSON
	fixtures.ReadJSON(t, filepath.Join(dir, "tokens.json"), &toks)
	if len(man.Models) == 0 || len(available(man.Models[0].Files)) == 0 {
		t.Skip("no loadable model")
	}
	mod := man.Models[0]
	m := available(mod.Files)[0].load(t, dir, mod.Name)
	n := min(3, len(man.Images), len(toks.Texts))
	var pixels []float32
	var tokens [][]int32
	for i := range n {
		p, _ := fixtures.Float32(t, exp, "pixels/"+man.Images[i].Name)
		pixels = append(pixels, p...)
		tokens = append(tokens, toks.Texts[len(toks.Texts)-1-i].TokenizeIDs)
	}

	shapes := m.Config.Shapes()
	for _, p := range m.Params() {
		want, ok := shapes[p.Name]
		if !ok || !slices.Equal(want, p.Shape) {
			t.Errorf("parameter %s shape %v; configuration %v (present %v)", p.Name, p.Shape, want, ok)
		}
		delete(shapes, p.Name)
		if len(p.Value) != len(p.Grad) {
			t.Errorf("parameter %s: %d values, %d gradients", p.Name, len(p.Value), len(p.Grad))
		}
	}
	for name := range shapes {
		t.Errorf("tensor %s is not a parameter", name)
	}

	loss0, dp, err := m.ContrastiveGrad(pixels, tokens)
	if err != nil {
		t.Fatal(err)
	}
	dPix := slices.Clone(dp)
	var norm float64
	for _, v := range dPix {
		norm += float64(v) * float64(v)
	}
	norm = math.Sqrt(norm)
	const h = 0.25 // along the unit direction: about 3e-4 per pixel value
	at := func(s float64) float64 {
		p := slices.Clone(pixels)
		for i, v := range dPix {
			p[i] += float32(s * float64(v) / norm)
		}
		l, _, err := m.ContrastiveGrad(p, tokens)
		if err != nil {
			t.Fatal(err)
		}
		return float64(l)
	}
	fd := (at(h) - at(-h)) / (2 * h)
	t.Logf("d loss / d pixels along itself: analytic %.6g, finite difference %.6g", norm, fd)
	if math.Abs(fd-norm) > 2e-3*norm {
		t.Errorf("pixel gradient: analytic directional derivative %g, finite difference %g", norm, fd)
	}

	// SGD step.
	loss0, _, err = m.ContrastiveGrad(pixels, tokens)
	if err != nil {
		t.Fatal(err)
	}
	const lr = 1e-4
	var g2 float64
	for _, p := range m.Params() {
		for i, g := range p.Grad {
			g2 += float64(g) * float64(g)
			p.Value[i] -= lr * g
		}
	}
	m.AfterUpdate()
	loss1, _, err := m.ContrastiveGrad(pixels, tokens)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SGD step lr %g: loss %.7g -> %.7g (decrease %.4g, first order %.4g)", lr, loss0, loss1, loss0-loss1, lr*g2)
	if d := float64(loss0 - loss1); d <= 0 || math.Abs(d-lr*g2) > 0.05*lr*g2 {
		t.Errorf("SGD step: loss %g -> %g, first-order decrease %g", loss0, loss1, lr*g2)
	}
	// The inference passes see the new weights and agree with training's.
	E := m.EmbedDim()
	txt, _, err := m.EncodeTextTrain(tokens)
	if err != nil {
		t.Fatal(err)
	}
	inf := make([]float32, n*E)
	if err := m.EncodeText(inf, tokens, nil); err != nil {
		t.Fatal(err)
	}
	compare(t, "text features after a step (inference vs training)", inf, txt, E)
	img, _, err := m.EncodeImageTrain(pixels, n)
	if err != nil {
		t.Fatal(err)
	}
	m.EncodeImage(inf, pixels, n, nil)
	compare(t, "image features after a step (inference vs training)", inf, img, E)
}

// BenchmarkContrastiveGrad times one training step's forward and backward
// on the fixtures' gradient batch shape (the first model, first format).
func BenchmarkContrastiveGrad(b *testing.B) {
	dir := fixtures.CNDir(b)
	var man gradManifest
	fixtures.ReadJSON(b, filepath.Join(dir, "manifest.json"), &man)
	exp := fixtures.Expected(b, dir)
	var toks tokensJSON
	fixtures.ReadJSON(b, filepath.Join(dir, "tokens.json"), &toks)
	if len(man.Models) == 0 {
		b.Skip("no model")
	}
	mod := man.Models[0]
	fs := available(mod.Files)
	if len(fs) == 0 {
		b.Skip("no loadable model")
	}
	m, err := Load(filepath.Join(dir, mod.Name, "cn_clip.pt"), Options{Vocab: filepath.Join(dir, "tokenizer", "vocab.txt")})
	if err != nil {
		b.Skip(err)
	}
	n := min(4, len(man.Images), len(toks.Texts))
	var pixels []float32
	var tokens [][]int32
	for i := range n {
		p, _ := fixtures.Float32(b, exp, "pixels/"+man.Images[i].Name)
		pixels = append(pixels, p...)
		tokens = append(tokens, toks.Texts[i].TokenizeIDs)
	}
	for b.Loop() {
		if _, _, err := m.ContrastiveGrad(pixels, tokens); err != nil {
			b.Fatal(err)
		}
	}
}
