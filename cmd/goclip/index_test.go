package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
)

// fixtureModels returns the open_clip safetensors models of the fixtures.
func fixtureModels(t *testing.T) (dir string, models []string) {
	dir = fixtures.Dir(t)
	for _, m := range fixtures.ReadManifest(t, dir).Models {
		if slices.Contains(m.Files, "open_clip_model.safetensors") {
			models = append(models, filepath.Join(dir, m.Name, "open_clip_model.safetensors"))
		}
	}
	if len(models) == 0 {
		t.Skip("no open_clip safetensors model in the fixtures")
	}
	return dir, models
}

func goclip(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	rc := Main(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), rc
}

func TestIndexSearchDupesCLI(t *testing.T) {
	fix, models := fixtureModels(t)
	tok := filepath.Join(fix, "tokenizer")
	photos := t.TempDir()
	var paths []string
	for _, im := range fixtures.ReadManifest(t, fix).Images {
		data, err := os.ReadFile(filepath.Join(fix, im.File))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(photos, filepath.Base(im.File))
		os.WriteFile(p, data, 0o644)
		paths = append(paths, p)
	}
	os.WriteFile(filepath.Join(photos, "broken.png"), []byte("\x89PNG\r\n\x1a\nbroken"), 0o644)
	db := filepath.Join(t.TempDir(), "index.db")
	mflags := []string{"--model", models[0], "--tokenizer", tok, "--db", db}

	_, stderr, rc := goclip(t, append(append([]string{"index"}, mflags...), "--quiet", photos)...)
	if rc != 0 || !strings.Contains(stderr, "1 failed") || !strings.Contains(stderr, "broken.png") {
		t.Fatalf("index rc=%d: %s", rc, stderr)
	}

	m, err := clip.Load(models[0], clip.WithTokenizer(tok))
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := m.EncodeImageFiles(context.Background(), paths)
	if err != nil {
		t.Fatal(err)
	}
	text := fixtures.Texts(t, fix)[0]
	q, _ := m.EncodeTexts(context.Background(), []string{text})
	stdout, stderr, rc := goclip(t, append(append([]string{"search"}, mflags...), "--json", "--top", "5", `"`+text+`"`)...)
	if rc != 0 {
		t.Fatalf("search rc=%d: %s", rc, stderr)
	}
	var res []struct {
		Path  string  `json:"path"`
		Score float32 `json:"score"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("search --json output %q: %v", stdout, err)
	}
	scores := make([]float64, len(paths))
	for i := range paths {
		scores[i] = float64(clip.Similarity(q[0], imgs[i]))
	}
	sorted := slices.Clone(scores)
	sort.Sort(sort.Reverse(sort.Float64Slice(sorted)))
	if len(res) != min(5, len(paths)) {
		t.Fatalf("%d results", len(res))
	}
	for i, r := range res {
		if math.Abs(float64(r.Score)-sorted[i]) > 1e-5 {
			t.Errorf("rank %d: %s %.6f, brute force %.6f", i, r.Path, r.Score, sorted[i])
		}
	}

	// Combined query and table output.
	stdout, stderr, rc = goclip(t, append(append([]string{"search"}, mflags...), "--image", paths[0], `2*"a photo" - "a dog"`)...)
	if rc != 0 || !strings.HasPrefix(stdout, "score") || strings.Count(stdout, "\n") != min(10, len(paths))+1 {
		t.Errorf("combined search rc=%d:\n%s%s", rc, stdout, stderr)
	}

	// Duplicates: the fixture's PNG/JPEG pairs of one picture.
	stdout, stderr, rc = goclip(t, append(append([]string{"dupes"}, mflags...), "--json", "--threshold", "0.99")...)
	var d struct {
		Groups [][]string `json:"groups"`
		Pairs  []struct {
			A, B  string
			Score float32
		} `json:"pairs"`
	}
	if rc != 0 || json.Unmarshal([]byte(stdout), &d) != nil {
		t.Fatalf("dupes rc=%d: %s %s", rc, stdout, stderr)
	}
	want := 0
	for i := range paths {
		for j := i + 1; j < len(paths); j++ {
			if clip.Similarity(imgs[i], imgs[j]) >= 0.99 {
				want++
			}
		}
	}
	if len(d.Pairs) != want {
		t.Errorf("dupes: %d pairs, brute force %d", len(d.Pairs), want)
	}

	// Another model: a clear error naming both model ids.
	if len(models) > 1 {
		_, stderr, rc = goclip(t, "search", "--model", models[1], "--tokenizer", tok, "--db", db, "cat")
		if rc != 1 || strings.Count(stderr, "open_clip_model-") < 2 {
			t.Errorf("other model rc=%d: %s", rc, stderr)
		}
	}

	// Usage errors.
	for _, args := range [][]string{{"index", "--db", db}, {"search", "--db", db}, {"search", "--db", db, "cat +"}, {"dupes", "--threshold", "2"}} {
		if _, _, rc := goclip(t, args...); rc != 2 {
			t.Errorf("%q: rc=%d, want 2", args, rc)
		}
	}
	if _, stderr, rc := goclip(t, append(append([]string{"search"}, "--model", models[0], "--tokenizer", tok, "--db", filepath.Join(t.TempDir(), "none.db")), "cat")...); rc != 1 || !strings.Contains(stderr, "goclip index") {
		t.Errorf("missing db rc=%d: %s", rc, stderr)
	}
}
