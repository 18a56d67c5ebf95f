package train

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/model"
)

// gradBatch is a manifest model's grad_batch entry.
type gradBatch struct {
	Images      []string `json:"images"`
	TextIndices []int    `json:"text_indices"`
	Loss        float64  `json:"loss"`
}

// gradFixture is one model with a reference gradient batch.
type gradFixture struct {
	name   string
	model  *model.Model
	pixels []float32
	tokens [][]int32
	batch  gradBatch
}

// loadGradFixtures returns every fixture model that has a grad_batch.
func loadGradFixtures(t *testing.T) (string, *checkpoint.File, []gradFixture) {
	dir := fixtures.Dir(t)
	exp := fixtures.Expected(t, dir)
	man := fixtures.ReadManifest(t, dir)
	var tj struct {
		Texts []struct {
			TokenizeIDs []int32 `json:"tokenize_ids"`
		} `json:"texts"`
	}
	fixtures.ReadJSON(t, filepath.Join(dir, "tokens.json"), &tj)
	var out []gradFixture
	for _, mm := range man.Models {
		if len(mm.GradBatch) == 0 || string(mm.GradBatch) == "null" {
			continue
		}
		var gb gradBatch
		if err := json.Unmarshal(mm.GradBatch, &gb); err != nil {
			t.Fatalf("manifest %s grad_batch: %v", mm.Name, err)
		}
		f, err := checkpoint.OpenSafetensors(filepath.Join(dir, mm.Name, "open_clip_model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		cfg, _, err := model.ReadOpenCLIPConfig(filepath.Join(dir, mm.Name, "open_clip_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := model.New(cfg, f)
		if err != nil {
			t.Fatal(err)
		}
		gf := gradFixture{name: mm.Name, model: m, batch: gb}
		for _, im := range gb.Images {
			px, _ := fixtures.Float32(t, exp, "pixels/"+im)
			gf.pixels = append(gf.pixels, px...)
		}
		for _, i := range gb.TextIndices {
			gf.tokens = append(gf.tokens, tj.Texts[i].TokenizeIDs)
		}
		out = append(out, gf)
	}
	if len(out) == 0 {
		t.Skip("no fixture model has a grad_batch")
	}
	return dir, exp, out
}

// maxRel returns max|a-b| / max|b| (max|a-b| when b is all zero).
func maxRel(a, b []float32) float64 {
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

func TestContrastiveGradMatchesReference(t *testing.T) {
	_, exp, fxs := loadGradFixtures(t)
	for _, fx := range fxs {
		t.Run(fx.name, func(t *testing.T) {
			m := fx.model
			loss, dpix, err := ContrastiveGrad(m, fx.pixels, fx.tokens)
			if err != nil {
				t.Fatal(err)
			}
			wantLoss, _ := fixtures.Float32(t, exp, "loss/"+fx.name)
			if d := math.Abs(float64(loss) - float64(wantLoss[0])); d > 1e-6*math.Max(1, math.Abs(float64(wantLoss[0]))) {
				t.Errorf("loss %.9g, want %.9g (|Δ| %.3g)", loss, wantLoss[0], d)
			} else {
				t.Logf("loss %.9g, want %.9g (|Δ| %.3g)", loss, wantLoss[0], d)
			}
			if math.Abs(float64(wantLoss[0])-fx.batch.Loss) > 1e-6 {
				t.Errorf("manifest loss %v differs from loss/%s %v", fx.batch.Loss, fx.name, wantLoss[0])
			}
			checkGrads(t, exp, m, dpix)
			checkLogits(t, exp, fx)
		})
	}
}

// checkGrads compares every grad/* and grad_sparse/* tensor of the
// fixtures with the model's gradients.
func checkGrads(t *testing.T, exp *checkpoint.File, m *model.Model, dpix []float32) {
	t.Helper()
	const tol = 1e-4
	seen := map[string]bool{}
	worst, worstName := 0.0, ""
	for _, name := range exp.Names {
		pname, ok := strings.CutPrefix(name, "grad/")
		if !ok {
			continue
		}
		ref, shape := fixtures.Float32(t, exp, name)
		var got []float32
		if pname == "pixels" {
			got = dpix
		} else {
			p := m.Param(pname)
			if p == nil {
				t.Errorf("%s: the model has no parameter %q", name, pname)
				continue
			}
			seen[pname] = true
			if !sameShape(p.Shape, shape) && !(len(p.Shape) == 0 && len(ref) == 1) {
				t.Errorf("%s: parameter shape %v, reference %v", name, p.Shape, shape)
				continue
			}
			got = p.Grad
		}
		if len(got) != len(ref) {
			t.Errorf("%s: %d values, reference %d", name, len(got), len(ref))
			continue
		}
		// Per tensor: max|Δ| ≤ tol·max|ref|. The key slice of in_proj_bias
		// is float noise (~1e-9) in the reference; this bound, relative to
		// the whole tensor's max, is the absolute term it needs.
		rel := maxRel(got, ref)
		if rel > tol || math.IsNaN(rel) {
			t.Errorf("%s: max|Δ|/max|ref| = %.3g", name, rel)
		}
		if rel > worst {
			worst, worstName = rel, name
		}
	}
	t.Logf("worst dense gradient: %s at %.3g of max|ref|", worstName, worst)
	// Sparse gradients: listed rows must match, every other row must be 0.
	for _, name := range exp.Names {
		pname, ok := strings.CutPrefix(name, "grad_sparse/")
		if !ok || !strings.HasSuffix(pname, "/rows") {
			continue
		}
		pname = strings.TrimSuffix(pname, "/rows")
		p := m.Param(pname)
		if p == nil {
			t.Errorf("%s: the model has no parameter %q", name, pname)
			continue
		}
		seen[pname] = true
		rowsT := exp.Tensor(name)
		rows, err := rowsT.Int64()
		if err != nil {
			t.Fatal(err)
		}
		vals, vshape := fixtures.Float32(t, exp, "grad_sparse/"+pname+"/values")
		w := vshape[len(vshape)-1]
		listed := map[int]bool{}
		var got []float32
		for _, r := range rows {
			listed[int(r)] = true
			got = append(got, p.Grad[int(r)*w:(int(r)+1)*w]...)
		}
		if rel := maxRel(got, vals); rel > tol {
			t.Errorf("%s rows %v: max|Δ|/max|ref| = %.3g", pname, rows, rel)
		} else {
			t.Logf("%s (%d rows): max|Δ|/max|ref| = %.3g", pname, len(rows), rel)
		}
		for r := 0; r*w < len(p.Grad); r++ {
			if listed[r] {
				continue
			}
			for _, v := range p.Grad[r*w : (r+1)*w] {
				if v != 0 {
					t.Errorf("%s row %d: nonzero gradient %g, the reference row is 0", pname, r, v)
					break
				}
			}
		}
	}
	for _, p := range m.Params() {
		if !seen[p.Name] {
			t.Errorf("parameter %s has no reference gradient in the fixtures", p.Name)
		}
	}
}

// checkLogits compares logits_per_image/text of the gradient batch.
func checkLogits(t *testing.T, exp *checkpoint.File, fx gradFixture) {
	t.Helper()
	m := fx.model
	n, ed := len(fx.tokens), m.Config.EmbedDim
	img := make([]float32, n*ed)
	m.EncodeImage(img, fx.pixels, n, nil)
	txt := make([]float32, n*ed)
	if err := m.EncodeText(txt, fx.tokens, nil); err != nil {
		t.Fatal(err)
	}
	s := math.Exp(float64(m.LogitScale))
	a, _ := normalize(img, n, ed)
	b, _ := normalize(txt, n, ed)
	for _, tc := range []struct {
		name string
		x, y []float64
	}{{"logits_per_image", a, b}, {"logits_per_text", b, a}} {
		got64 := products(scaled(tc.x, s), tc.y, n, ed)
		got := make([]float32, len(got64))
		for i, v := range got64 {
			got[i] = float32(v)
		}
		ref, _ := fixtures.Float32(t, exp, "gradbatch/"+fx.name+"/"+tc.name)
		if rel := maxRel(got, ref); rel > 1e-5 {
			t.Errorf("%s: max|Δ|/max|ref| = %.3g", tc.name, rel)
		}
	}
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestClipLossFD(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct {
		n, dim int
		scale  float64
	}{{1, 3, 1}, {2, 5, 14.3}, {5, 8, 100}} {
		t.Run(fmt.Sprintf("n=%d,dim=%d,s=%g", tc.n, tc.dim, tc.scale), func(t *testing.T) {
			img := make([]float32, tc.n*tc.dim)
			txt := make([]float32, tc.n*tc.dim)
			for i := range img {
				img[i] = float32(r.NormFloat64())
				txt[i] = float32(r.NormFloat64())
			}
			loss, dImg, dTxt, ds := clipLoss(img, txt, tc.n, tc.dim, tc.scale)
			if l32, _, _, ds32 := ClipLoss(img, txt, tc.n, tc.dim, float32(tc.scale)); math.Abs(float64(l32)-loss) > 1e-6*loss || math.Abs(float64(ds32)-ds) > 1e-6*math.Abs(ds)+1e-9 {
				t.Errorf("ClipLoss %v %v, clipLoss %v %v", l32, ds32, loss, ds)
			}
			check := func(name string, x []float32, g []float32) {
				for i := range x {
					old := x[i]
					x[i] = old + 1e-3
					hi := float64(x[i])
					lp, _, _, _ := clipLoss(img, txt, tc.n, tc.dim, tc.scale)
					x[i] = old - 1e-3
					lo := float64(x[i])
					lm, _, _, _ := clipLoss(img, txt, tc.n, tc.dim, tc.scale)
					x[i] = old
					num := (lp - lm) / (hi - lo)
					if d := math.Abs(num - float64(g[i])); d > 1e-4*math.Max(1, math.Abs(num)) {
						t.Errorf("d loss/d %s[%d] = %.7g, numeric %.7g", name, i, g[i], num)
					}
				}
			}
			check("img", img, dImg)
			check("txt", txt, dTxt)
			const h = 1e-6
			lp, _, _, _ := clipLoss(img, txt, tc.n, tc.dim, tc.scale+h)
			lm, _, _, _ := clipLoss(img, txt, tc.n, tc.dim, tc.scale-h)
			if num := (lp - lm) / (2 * h); math.Abs(num-ds) > 1e-6*math.Max(1, math.Abs(num)) {
				t.Errorf("d loss/d scale = %.9g, numeric %.9g", ds, num)
			}
		})
	}
}

func TestClipLossPerfectMatch(t *testing.T) {
	// Orthogonal pairs with a huge scale: the loss tends to 0.
	img := []float32{1, 0, 0, 1}
	loss, _, _, _ := ClipLoss(img, img, 2, 2, 100)
	if loss > 1e-30 {
		t.Errorf("loss %g for perfectly separated pairs", loss)
	}
	// Identical rows: the loss is log(n) whatever the scale.
	same := []float32{1, 2, 1, 2, 1, 2}
	loss, _, _, ds := ClipLoss(same, same, 3, 2, 7)
	if math.Abs(float64(loss)-math.Log(3)) > 1e-6 || math.Abs(float64(ds)) > 1e-7 {
		t.Errorf("loss %g (want log 3), dScale %g (want 0)", loss, ds)
	}
}
