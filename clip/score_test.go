package clip_test

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
)

// refCos is the cosine of two reference feature rows in float64.
func refCos(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

// fixtureModels loads every fixture model from its open_clip safetensors
// file, with the reference feature rows.
type fixtureModel struct {
	name          string
	m             *clip.Model
	images, texts [][]float32 // reference features
}

func loadFixtureModels(t *testing.T) (dir string, files, texts []string, models []fixtureModel) {
	t.Helper()
	dir = fixtures.Dir(t)
	exp := fixtures.Expected(t, dir)
	man := fixtures.ReadManifest(t, dir)
	texts = fixtures.Texts(t, dir)
	for _, im := range man.Images {
		files = append(files, filepath.Join(dir, im.File))
	}
	for _, mm := range man.Models {
		m, err := clip.Load(filepath.Join(dir, mm.Name, "open_clip_model.safetensors"), clip.WithTokenizer(filepath.Join(dir, "tokenizer")))
		if err != nil {
			t.Fatal(err)
		}
		ed := m.EmbedDim()
		rows := func(name string) [][]float32 {
			v, _ := fixtures.Float32(t, exp, name+mm.Name)
			var out [][]float32
			for i := 0; i < len(v); i += ed {
				out = append(out, v[i:i+ed])
			}
			return out
		}
		models = append(models, fixtureModel{mm.Name, m, rows("image_features/"), rows("text_features/")})
	}
	return dir, files, texts, models
}

const scoreTol = 2e-5 // cosines are in [-1, 1]; features agree to ~1e-6

func TestScoreMatchesReferenceFeatures(t *testing.T) {
	_, files, texts, models := loadFixtureModels(t)
	ctx := context.Background()
	for _, fm := range models {
		t.Run(fm.name, func(t *testing.T) {
			n := len(files)
			pairTexts := make([]string, n)
			refs := make([][]string, n)
			refIdx := make([][]int, n)
			for i := range n {
				pairTexts[i] = texts[i%len(texts)]
				for k := 1; k <= i%3; k++ { // 0, 1 or 2 references
					j := (i + 7*k) % len(texts)
					refs[i] = append(refs[i], texts[j])
					refIdx[i] = append(refIdx[i], j)
				}
			}
			got, err := fm.m.ScorePairs(ctx, files, pairTexts, refs)
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for i, g := range got {
				ti := i % len(texts)
				c := refCos(fm.images[i], fm.texts[ti])
				cs := 2.5 * math.Max(c, 0)
				want := cs
				if len(refIdx[i]) > 0 {
					r := 0.0
					for _, j := range refIdx[i] {
						r = math.Max(r, refCos(fm.texts[ti], fm.texts[j]))
					}
					if cs+r > 0 {
						want = 2 * cs * r / (cs + r)
					} else {
						want = 0
					}
					if !g.HasRefs {
						t.Errorf("pair %d: HasRefs false with %d references", i, len(refIdx[i]))
					}
					if d := math.Abs(float64(g.RefCLIPScore) - want); d > scoreTol {
						t.Errorf("pair %d: RefCLIPScore %.7f, from reference features %.7f", i, g.RefCLIPScore, want)
					}
				}
				for _, d := range []float64{math.Abs(float64(g.Cosine) - c), math.Abs(float64(g.CLIPScore) - cs)} {
					worst = math.Max(worst, d)
					if d > scoreTol {
						t.Errorf("pair %d (%s, %q): cosine %.7f clipscore %.7f; reference %.7f %.7f", i, filepath.Base(files[i]), pairTexts[i], g.Cosine, g.CLIPScore, c, cs)
					}
				}
			}
			t.Logf("%d pairs: worst |Δ| of cosine / CLIPScore vs reference features %.2g", len(got), worst)
		})
	}
}

// checkRanking checks that got orders candidates by the reference cosines
// (cands), allowing swaps only between near-equal candidates.
func checkRanking(t *testing.T, what string, got []clip.Ranked, query []float32, cands [][]float32) {
	t.Helper()
	for k, r := range got {
		want := refCos(query, cands[r.Index])
		if d := math.Abs(float64(r.Cosine) - want); d > scoreTol {
			t.Errorf("%s: candidate %d cosine %.7f, reference %.7f", what, r.Index, r.Cosine, want)
		}
		if k > 0 {
			prev := refCos(query, cands[got[k-1].Index])
			if prev < want-scoreTol {
				t.Errorf("%s: rank %d (candidate %d, ref cos %.7f) above rank %d (candidate %d, ref cos %.7f)", what, k-1, got[k-1].Index, prev, k, r.Index, want)
			}
		}
	}
}

func TestRerankAndCaptionMatchReference(t *testing.T) {
	_, files, texts, models := loadFixtureModels(t)
	ctx := context.Background()
	for _, fm := range models {
		t.Run(fm.name, func(t *testing.T) {
			for _, ti := range []int{0, len(texts) / 2, len(texts) - 1} {
				got, err := fm.m.RerankImageFiles(ctx, texts[ti], files)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(files) {
					t.Fatalf("rerank returned %d of %d images", len(got), len(files))
				}
				checkRanking(t, "rerank "+texts[ti], got, fm.texts[ti], fm.images)
			}
			const k = 5
			caps, err := fm.m.CaptionImageFiles(ctx, files, texts, k)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range caps {
				if len(c) != min(k, len(texts)) {
					t.Fatalf("image %d: %d captions, want %d", i, len(c), k)
				}
				checkRanking(t, "caption "+filepath.Base(files[i]), c, fm.images[i], fm.texts)
				// Nothing outside the top k is clearly better than the k-th.
				kth := refCos(fm.images[i], fm.texts[c[len(c)-1].Index])
				in := map[int]bool{}
				for _, r := range c {
					in[r.Index] = true
				}
				for j := range texts {
					if !in[j] && refCos(fm.images[i], fm.texts[j]) > kth+scoreTol {
						t.Errorf("image %d: text %d (ref cos %.6f) missing from the top %d (k-th %.6f)", i, j, refCos(fm.images[i], fm.texts[j]), k, kth)
					}
				}
			}
		})
	}
}

func TestScoreFunctions(t *testing.T) {
	a := []float32{1, 0}
	for _, tc := range []struct {
		name           string
		img, txt       []float32
		refs           [][]float32
		cs, ref, wantR float64
	}{
		{"aligned", a, []float32{2, 0}, nil, 2.5, 0, 2.5},
		{"opposite clips to 0", a, []float32{-1, 0}, [][]float32{{-1, 0}}, 0, 1, 0},
		{"orthogonal refs", a, []float32{1, 1}, [][]float32{{1, -1}}, 2.5 / math.Sqrt2, 0, 0},
		{"best reference", a, []float32{1, 1}, [][]float32{{1, -1}, {1, 1}}, 2.5 / math.Sqrt2, 1, 2 * (2.5 / math.Sqrt2) / (2.5/math.Sqrt2 + 1)},
		{"zero vector", a, []float32{0, 0}, [][]float32{{1, 0}}, 0, 0, 0},
	} {
		if got := clip.CLIPScore(tc.img, tc.txt); math.Abs(float64(got)-tc.cs) > 1e-6 {
			t.Errorf("%s: CLIPScore %v, want %v", tc.name, got, tc.cs)
		}
		if tc.refs != nil {
			if got := clip.RefSimilarity(tc.txt, tc.refs); math.Abs(float64(got)-tc.ref) > 1e-6 {
				t.Errorf("%s: RefSimilarity %v, want %v", tc.name, got, tc.ref)
			}
			if got := clip.RefCLIPScore(tc.img, tc.txt, tc.refs); math.Abs(float64(got)-tc.wantR) > 1e-6 {
				t.Errorf("%s: RefCLIPScore %v, want %v", tc.name, got, tc.wantR)
			}
		}
	}
	r := clip.Rank(a, [][]float32{{0, 1}, {1, 0}, {0, 1}, {-1, 0}})
	order := []int{1, 0, 2, 3}
	for k, x := range r {
		if x.Index != order[k] {
			t.Errorf("Rank: position %d holds %d, want %d (stable, by decreasing cosine)", k, x.Index, order[k])
		}
	}
}

func TestScoreBadInput(t *testing.T) {
	m := loadTiny(t)
	dir := fixtures.Dir(t)
	img := fixtures.ImageFile(t, dir, 0)
	ctx := context.Background()
	for _, tc := range []struct {
		name          string
		images, texts []string
		refs          [][]string
		want          string
	}{
		{"no pairs", nil, nil, nil, "no (image, text) pairs"},
		{"more texts", []string{img}, []string{"a", "b"}, nil, "1 images but 2 texts"},
		{"more images", []string{img, img}, []string{"a"}, nil, "2 images but 1 texts"},
		{"refs count", []string{img}, []string{"a"}, [][]string{{"x"}, {"y"}}, "2 reference lists for 1 pairs"},
		{"missing file", []string{filepath.Join(dir, "nope.png")}, []string{"a"}, nil, "nope.png"},
	} {
		_, err := m.ScorePairs(ctx, tc.images, tc.texts, tc.refs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := m.RerankImageFiles(ctx, "x", nil); err == nil {
		t.Error("rerank of no images: no error")
	}
	if _, err := m.CaptionImageFiles(ctx, []string{img}, nil, 1); err == nil {
		t.Error("caption with no candidates: no error")
	}
}
