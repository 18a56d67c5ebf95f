package zeroshot

import (
	"context"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
)

// fixtureModels loads every fixture model that has an open_clip safetensors
// file, with the shared tokenizer.
func fixtureModels(t *testing.T) []*clip.Model {
	t.Helper()
	dir := fixtures.Dir(t)
	man := fixtures.ReadManifest(t, dir)
	var out []*clip.Model
	for _, m := range man.Models {
		for _, f := range m.Files {
			if f != "open_clip_model.safetensors" {
				continue
			}
			cm, err := clip.Load(filepath.Join(dir, m.Name, f), clip.WithTokenizer(filepath.Join(dir, "tokenizer")))
			if err != nil {
				t.Fatalf("%s: %v", m.Name, err)
			}
			out = append(out, cm)
		}
	}
	if len(out) == 0 {
		t.Skip("no open_clip safetensors model in the fixtures")
	}
	return out
}

func fixtureImages(t *testing.T) []string {
	t.Helper()
	dir := fixtures.Dir(t)
	man := fixtures.ReadManifest(t, dir)
	var p []string
	for _, im := range man.Images {
		p = append(p, filepath.Join(dir, im.File))
	}
	return p
}

// notebookWeights is the CLIP notebook's zeroshot_classifier written out
// directly: per class, normalise each template embedding, average, normalise.
func notebookWeights(emb [][]float32, nl, nt int) [][]float32 {
	w := make([][]float32, nl)
	for l := range nl {
		dim := len(emb[l*nt])
		acc := make([]float64, dim)
		for t := range nt {
			e := emb[l*nt+t]
			var ss float64
			for _, v := range e {
				ss += float64(v) * float64(v)
			}
			inv := 1 / math.Sqrt(ss)
			for i, v := range e {
				acc[i] += float64(float32(float64(v) * inv))
			}
		}
		mean := make([]float32, dim)
		var ss float64
		for i := range acc {
			mean[i] = float32(acc[i] / float64(nt))
			ss += float64(mean[i]) * float64(mean[i])
		}
		inv := 1 / math.Sqrt(ss)
		row := make([]float32, dim)
		for i, v := range mean {
			row[i] = float32(float64(v) * inv)
		}
		w[l] = row
	}
	return w
}

func TestWeightsMatchDirectEncoding(t *testing.T) {
	labels := []string{"cat", "dog", "red car", "a tree"}
	imnet, _ := BuiltinTemplates("imagenet")
	templates := append([]string{"{}"}, imnet[:5]...)
	ctx := context.Background()
	for _, m := range fixtureModels(t) {
		t.Run(filepath.Base(filepath.Dir(m.Path())), func(t *testing.T) {
			prompts := Prompts(labels, templates)
			const chunk = 7
			// Same chunking as Build: bit-identical.
			var emb [][]float32
			for lo := 0; lo < len(prompts); lo += chunk {
				e, err := m.EncodeTexts(ctx, prompts[lo:min(lo+chunk, len(prompts))])
				if err != nil {
					t.Fatal(err)
				}
				emb = append(emb, e...)
			}
			want := notebookWeights(emb, len(labels), len(templates))
			c, err := Build(ctx, m, labels, templates, Options{Scale: m.LogitScale(), Chunk: chunk})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Weights, want) {
				t.Fatalf("weights differ from the direct computation")
			}
			if c.Scale != m.LogitScale() {
				t.Errorf("scale %v, want %v", c.Scale, m.LogitScale())
			}
			// One call for everything: equal to float tolerance.
			all, err := m.EncodeTexts(ctx, prompts)
			if err != nil {
				t.Fatal(err)
			}
			w2 := notebookWeights(all, len(labels), len(templates))
			for l := range w2 {
				for i := range w2[l] {
					if d := math.Abs(float64(w2[l][i] - c.Weights[l][i])); d > 1e-5 {
						t.Fatalf("label %d dim %d: %v vs %v", l, i, w2[l][i], c.Weights[l][i])
					}
				}
			}
		})
	}
}

func TestPredictionsMatchBruteForce(t *testing.T) {
	ctx := context.Background()
	labels := []string{"cat", "dog", "gradient", "noise", "stripes", "a drawing"}
	templates, _ := BuiltinTemplates("cifar10")
	templates = templates[:3]
	paths := fixtureImages(t)
	for _, m := range fixtureModels(t) {
		t.Run(filepath.Base(filepath.Dir(m.Path())), func(t *testing.T) {
			c, err := Build(ctx, m, labels, templates, Options{Scale: m.LogitScale()})
			if err != nil {
				t.Fatal(err)
			}
			imgs, err := m.EncodeImageFiles(ctx, paths)
			if err != nil {
				t.Fatal(err)
			}
			ref := m.Logits(imgs, c.Weights) // clip's own exp(scale)·cos
			for i, img := range imgs {
				// Brute force: cosine through clip.Similarity, softmax in float64.
				lg := make([]float64, len(labels))
				mx := math.Inf(-1)
				for k, w := range c.Weights {
					lg[k] = float64(m.LogitScale()) * float64(clip.Similarity(img, w))
					mx = math.Max(mx, lg[k])
				}
				var z float64
				for _, v := range lg {
					z += math.Exp(v - mx)
				}
				got := c.Logits(img)
				for k := range lg {
					if d := math.Abs(float64(got[k]) - lg[k]); d > 1e-4*math.Max(1, math.Abs(lg[k])) {
						t.Errorf("image %d label %d: logit %v, brute force %v", i, k, got[k], lg[k])
					}
					if d := math.Abs(float64(got[k] - ref[i][k])); d > 1e-4*math.Max(1, math.Abs(lg[k])) {
						t.Errorf("image %d label %d: logit %v, clip.Logits %v", i, k, got[k], ref[i][k])
					}
				}
				top := c.TopK(img, 3)
				if len(top) != 3 {
					t.Fatalf("TopK(3) gave %d", len(top))
				}
				for r, p := range top {
					want := math.Exp(lg[p.Index]-mx) / z
					if math.Abs(float64(p.Prob)-want) > 1e-5 {
						t.Errorf("image %d rank %d: prob %v, brute force %v", i, r, p.Prob, want)
					}
					for k := range lg { // nothing outside the top beats it
						if lg[k] > lg[p.Index]+1e-4 && !inTop(top[:r], k) {
							t.Errorf("image %d: label %d (%v) beats rank %d (%v)", i, k, lg[k], r, lg[p.Index])
						}
					}
					if p.Label != labels[p.Index] {
						t.Errorf("label %q at index %d", p.Label, p.Index)
					}
				}
				var sum float64
				for _, p := range c.Probs(img) {
					sum += float64(p)
				}
				if math.Abs(sum-1) > 1e-5 {
					t.Errorf("probabilities sum to %v", sum)
				}
			}
		})
	}
}

func inTop(p []Prediction, k int) bool {
	for _, x := range p {
		if x.Index == k {
			return true
		}
	}
	return false
}

// fakeEncoder returns deterministic pseudo-random dim-vectors per text and
// counts calls.
type fakeEncoder struct {
	dim         int
	calls, seen atomic.Int64
	maxBatch    atomic.Int64
}

func (f *fakeEncoder) EncodeTexts(ctx context.Context, texts []string) ([][]float32, error) {
	f.calls.Add(1)
	f.seen.Add(int64(len(texts)))
	if int64(len(texts)) > f.maxBatch.Load() {
		f.maxBatch.Store(int64(len(texts)))
	}
	out := make([][]float32, len(texts))
	for i, s := range texts {
		out[i] = fakeVec(s, f.dim)
	}
	return out, nil
}

func fakeVec(s string, dim int) []float32 {
	h := fnv.New64a()
	h.Write([]byte(s))
	x := h.Sum64()
	v := make([]float32, dim)
	for i := range v {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		v[i] = float32(int64(x%2001)-1000) / 1000
	}
	return v
}

func TestBatchedEncoding(t *testing.T) {
	labels := make([]string, 1000)
	for i := range labels {
		labels[i] = "class " + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('0'+i%10)) + string(rune('A'+i/26%26))
	}
	templates, _ := BuiltinTemplates("imagenet")
	f := &fakeEncoder{dim: 8}
	var lastDone, lastTotal int
	c, err := Build(context.Background(), f, labels, templates, Options{Chunk: 1000, Progress: func(d, n int) { lastDone, lastTotal = d, n }})
	if err != nil {
		t.Fatal(err)
	}
	n := len(labels) * len(templates)
	if got := f.calls.Load(); got != int64((n+999)/1000) {
		t.Errorf("%d encoder calls for %d prompts in chunks of 1000", got, n)
	}
	if f.seen.Load() != int64(n) || f.maxBatch.Load() != 1000 {
		t.Errorf("encoded %d prompts, biggest call %d", f.seen.Load(), f.maxBatch.Load())
	}
	if lastDone != n || lastTotal != n {
		t.Errorf("progress ended at %d/%d", lastDone, lastTotal)
	}
	if len(c.Weights) != len(labels) || c.Scale != 100 {
		t.Errorf("%d weight rows, scale %v", len(c.Weights), c.Scale)
	}
}

func TestBuildErrors(t *testing.T) {
	f := &fakeEncoder{dim: 4}
	ctx := context.Background()
	if _, err := Build(ctx, f, nil, []string{"{}"}, Options{}); err == nil {
		t.Error("no labels: no error")
	}
	if _, err := Build(ctx, f, []string{"a"}, nil, Options{}); err == nil {
		t.Error("no templates: no error")
	}
	if _, err := Build(ctx, f, []string{"a"}, []string{"no placeholder"}, Options{}); err == nil || !strings.Contains(err.Error(), "placeholder") {
		t.Errorf("template without {}: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Build(cctx, f, []string{"a"}, []string{"{}"}, Options{}); err != context.Canceled {
		t.Errorf("cancelled: %v", err)
	}
	short := EncodeFunc(func(ctx context.Context, texts []string) ([][]float32, error) { return nil, nil })
	if _, err := Build(ctx, short, []string{"a"}, []string{"{}"}, Options{}); err == nil {
		t.Error("encoder returning nothing: no error")
	}
}

func TestCache(t *testing.T) {
	dir := t.TempDir()
	labels := []string{"cat", "dog", "bird"}
	templates := []string{"a photo of a {}.", "a {}."}
	ctx := context.Background()
	f := &fakeEncoder{dim: 16}
	o := Options{CacheDir: dir, ModelKey: "model-a"}
	c1, err := Build(ctx, f, labels, templates, o)
	if err != nil || c1.FromCache {
		t.Fatalf("first build: %v, from cache %v", err, c1 != nil && c1.FromCache)
	}
	calls := f.calls.Load()
	c2, err := Build(ctx, f, labels, templates, o)
	if err != nil {
		t.Fatal(err)
	}
	if !c2.FromCache || f.calls.Load() != calls {
		t.Fatalf("second build did not use the cache (from cache %v, calls %d→%d)", c2.FromCache, calls, f.calls.Load())
	}
	if !reflect.DeepEqual(c1.Weights, c2.Weights) {
		t.Fatal("cached weights differ")
	}
	for name, o2 := range map[string]struct {
		labels, templates []string
		key               string
	}{
		"other labels":    {[]string{"cat", "dog"}, templates, "model-a"},
		"label order":     {[]string{"dog", "cat", "bird"}, templates, "model-a"},
		"other templates": {labels, templates[:1], "model-a"},
		"other model":     {labels, templates, "model-b"},
	} {
		c, err := Build(ctx, f, o2.labels, o2.templates, Options{CacheDir: dir, ModelKey: o2.key})
		if err != nil || c.FromCache {
			t.Errorf("%s: hit the cache (%v)", name, err)
		}
	}
	// A corrupt entry is rebuilt and rewritten.
	key := CacheKey("model-a", labels, templates)
	p := cachePath(dir, key)
	data, _ := os.ReadFile(p)
	data[len(data)/2] ^= 0xff
	os.WriteFile(p, data, 0o644)
	c3, err := Build(ctx, f, labels, templates, o)
	if err != nil || c3.FromCache || !reflect.DeepEqual(c3.Weights, c1.Weights) {
		t.Fatalf("corrupt cache: err %v from cache %v", err, c3.FromCache)
	}
	if c4, _ := Build(ctx, f, labels, templates, o); !c4.FromCache {
		t.Error("entry not rewritten after corruption")
	}
}

func TestModelKey(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.safetensors")
	os.WriteFile(p, []byte("abc"), 0o644)
	k1, err := ModelKey(p)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := ModelKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	ke, _ := ModelKey(p, "tokenizer-x")
	os.WriteFile(p, []byte("abcd"), 0o644)
	k2, _ := ModelKey(p)
	os.WriteFile(filepath.Join(dir, "open_clip_config.json"), []byte("{}"), 0o644)
	k3, _ := ModelKey(p)
	if k1 == k2 || k1 == kd || k1 == ke || k2 == k3 {
		t.Errorf("keys collide: %s %s %s %s %s", k1, k2, kd, ke, k3)
	}
	if again, _ := ModelKey(p); again != k3 {
		t.Errorf("key not stable: %s then %s", k3, again)
	}
	if _, err := ModelKey(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing model: no error")
	}
}

func TestMultiLabel(t *testing.T) {
	c := &Classifier{Labels: []string{"a", "b", "c"}, Scale: 10,
		Weights: [][]float32{{1, 0}, {0, 1}, {-1, 0}}}
	img := []float32{2, 0} // cos 1, 0, -1 → logits 10, 0, -10
	got := c.MultiLabel(img, 0, 0.5)
	if len(got) != 2 || got[0].Label != "a" || got[1].Label != "b" || got[1].Prob != 0.5 {
		t.Errorf("MultiLabel(bias 0) = %+v", got)
	}
	if b := c.MeanBias(img); b != 0 {
		t.Errorf("MeanBias = %v", b)
	}
	if got := c.MultiLabel(img, -5, 0.5); len(got) != 1 || math.Abs(float64(got[0].Prob)-1/(1+math.Exp(-5))) > 1e-6 {
		t.Errorf("MultiLabel(bias -5) = %+v", got)
	}
	// Ties: equal logits keep class order.
	c.Weights = [][]float32{{0, 1}, {1, 0}, {1, 0}}
	top := c.TopK(img, 5)
	if len(top) != 3 || top[0].Index != 1 || top[1].Index != 2 || top[2].Index != 0 {
		t.Errorf("TopK with ties = %+v", top)
	}
}
