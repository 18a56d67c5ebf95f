package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
)

// testModel loads the first fixture model that ships as an open_clip
// safetensors file (once per test binary).
var (
	modelOnce sync.Once
	modelVal  *clip.Model
	modelErr  error
)

func testModel(tb testing.TB) (*clip.Model, string) {
	tb.Helper()
	dir := fixtures.Dir(tb)
	man := fixtures.ReadManifest(tb, dir)
	modelOnce.Do(func() {
		for _, md := range man.Models {
			if slices.Contains(md.Files, "open_clip_model.safetensors") {
				modelVal, modelErr = clip.Load(filepath.Join(dir, md.Name, "open_clip_model.safetensors"),
					clip.WithTokenizer(filepath.Join(dir, "tokenizer")))
				return
			}
		}
		modelErr = fmt.Errorf("no model with open_clip_model.safetensors in %s/manifest.json", dir)
	})
	if modelErr != nil {
		tb.Fatal(modelErr)
	}
	return modelVal, dir
}

// fixtureImages returns the manifest's image paths, in manifest order.
func fixtureImages(tb testing.TB, dir string) []string {
	tb.Helper()
	man := fixtures.ReadManifest(tb, dir)
	var paths []string
	for _, im := range man.Images {
		paths = append(paths, filepath.Join(dir, im.File))
	}
	if len(paths) == 0 {
		tb.Skip("no fixture images")
	}
	return paths
}

// memSearcher is a brute-force in-memory index over image files.
type memSearcher struct {
	paths []string
	vecs  [][]float32 // normalised
}

var (
	indexOnce sync.Once
	indexVal  *memSearcher
)

// testIndex embeds every fixture image (once) into a memSearcher.
func testIndex(tb testing.TB) *memSearcher {
	tb.Helper()
	m, dir := testModel(tb)
	paths := fixtureImages(tb, dir)
	if raceEnabled {
		paths = paths[:min(len(paths), 4)] // the instrumented model is slow
	}
	indexOnce.Do(func() {
		emb, errs := m.EmbedImageFiles(context.Background(), paths)
		s := &memSearcher{}
		for i, p := range paths {
			if errs[i] != nil {
				continue
			}
			s.paths = append(s.paths, p)
			s.vecs = append(s.vecs, clip.Normalize(emb[i]))
		}
		indexVal = s
	})
	if len(indexVal.paths) == 0 {
		tb.Fatal("no fixture image could be embedded")
	}
	return indexVal
}

func (s *memSearcher) Search(ctx context.Context, q []float32, k int) ([]Hit, error) {
	hits := make([]Hit, len(s.paths))
	for i, v := range s.vecs {
		hits[i] = Hit{Path: s.paths[i], Score: dot(q, v)}
	}
	slices.SortStableFunc(hits, func(a, b Hit) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	return hits[:min(k, len(hits))], nil
}

func (s *memSearcher) OpenFile(ctx context.Context, path string) (io.ReadCloser, error) {
	if !slices.Contains(s.paths, path) {
		return nil, fmt.Errorf("not in the index")
	}
	return os.Open(path)
}

func dot(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// newTestServer starts a Server with the fixture model and index on an
// httptest server at 127.0.0.1; edit adjusts the config.
func newTestServer(tb testing.TB, edit func(*Config)) (*Server, *httptest.Server) {
	tb.Helper()
	m, _ := testModel(tb)
	cfg := Config{Model: m, Searcher: testIndex(tb)}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ts := httptest.NewServer(s)
	tb.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return s, ts
}

// postJSON posts v (or raw bytes) and decodes the JSON answer into out
// (when non-nil), returning the status and the body.
func postJSON(tb testing.TB, url string, v any, out any) (int, []byte) {
	tb.Helper()
	var body []byte
	switch b := v.(type) {
	case []byte:
		body = b
	case string:
		body = []byte(b)
	default:
		var err error
		if body, err = json.Marshal(v); err != nil {
			tb.Fatal(err)
		}
	}
	res, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	got, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(got, out); err != nil {
			tb.Fatalf("POST %s: decoding %s: %v", url, got, err)
		}
	}
	return res.StatusCode, got
}

func b64File(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// maxDiff returns the largest |a-b| over two equally shaped matrices.
func maxDiff(tb testing.TB, a, b [][]float32) float64 {
	tb.Helper()
	if len(a) != len(b) {
		tb.Fatalf("%d rows, want %d", len(a), len(b))
	}
	var d float64
	for i := range a {
		if len(a[i]) != len(b[i]) {
			tb.Fatalf("row %d has %d values, want %d", i, len(a[i]), len(b[i]))
		}
		for j := range a[i] {
			d = max(d, math.Abs(float64(a[i][j]-b[i][j])))
		}
	}
	return d
}

func normalizeAll(v [][]float32) [][]float32 {
	out := make([][]float32, len(v))
	for i := range v {
		out[i] = clip.Normalize(v[i])
	}
	return out
}

func checkUnit(tb testing.TB, what string, v [][]float32) {
	tb.Helper()
	for i, e := range v {
		var s float64
		for _, x := range e {
			s += float64(x) * float64(x)
		}
		if math.Abs(math.Sqrt(s)-1) > 1e-5 {
			tb.Errorf("%s[%d] has norm %v, want 1", what, i, math.Sqrt(s))
		}
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
