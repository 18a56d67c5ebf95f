package server

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/backend"
	"github.com/goclip/goclip/internal/indexer"
)

// TestSearchQueryAlgebra: a combined "text" query of /v1/search gives the
// brute-force hits of indexer.Combine over the terms' embeddings, the
// same vector goclip search builds; plain text and text that is no
// combined query are embedded as written.
func TestSearchQueryAlgebra(t *testing.T) {
	type term struct {
		text string
		w    float64
	}
	m, _ := testModel(t)
	idx := testIndex(t)
	_, ts := newTestServer(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		query string
		terms []term
	}{
		{`"a red square" + 2*"a blue circle" - "noise"`, []term{{"a red square", 1}, {"a blue circle", 2}, {"noise", -1}}},
		{`0.5 * "stripes" - 'a gradient'`, []term{{"stripes", 0.5}, {"a gradient", -1}}},
		{`-"a photo of a cat"`, []term{{"a photo of a cat", -1}}},
		{`a photo of a cat`, []term{{"a photo of a cat", 1}}},
		{`it's a cat`, []term{{"it's a cat", 1}}}, // no combined query: as written
	} {
		texts := make([]string, len(tc.terms))
		weights := make([]float64, len(tc.terms))
		for i, tm := range tc.terms {
			texts[i], weights[i] = tm.text, tm.w
		}
		te, err := m.EncodeTexts(ctx, texts)
		if err != nil {
			t.Fatal(err)
		}
		q, err := indexer.Combine(te, weights)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := idx.Search(ctx, q, 4)
		var got SearchResponse
		if code, body := postJSON(t, ts.URL+"/v1/search", map[string]any{"text": tc.query, "top": 4}, &got); code != 200 {
			t.Fatalf("%s: status %d: %s", tc.query, code, body)
		}
		checkHits(t, tc.query, got.Results, want)
	}
	code, body := postJSON(t, ts.URL+"/v1/search", map[string]any{"text": `"cat" - "cat"`}, nil)
	if code != http.StatusBadRequest || !strings.Contains(string(body), "cancel") {
		t.Errorf("terms that cancel out: %d %s", code, body)
	}
}

// TestBackendSearcher serves an in-memory backend: the hits are the
// backend's, OpenFile opens only files with an embedding, and a video
// search names why there are no videos.
func TestBackendSearcher(t *testing.T) {
	m, _ := testModel(t)
	idx := testIndex(t)
	ctx := context.Background()
	b := backend.NewMemory("memory://test")
	if err := b.EnsureModel(ctx, "id", m.EmbedDim(), ""); err != nil {
		t.Fatal(err)
	}
	var recs []backend.Record
	for i, p := range idx.paths {
		recs = append(recs, backend.Record{Path: p, Embedding: idx.vecs[i]})
	}
	failed := idx.paths[0] + ".failed.png"
	recs = append(recs, backend.Record{Path: failed, Err: "corrupt"})
	if err := b.Upsert(ctx, "id", recs); err != nil {
		t.Fatal(err)
	}
	_, ts := newTestServer(t, func(c *Config) {
		c.Searcher = &BackendSearcher{Backend: b, ModelID: "id"}
		c.NoVideos = "memory://test holds no videos"
	})
	q, _ := m.EncodeTexts(ctx, []string{"a red square"})
	want, _ := idx.Search(ctx, clip.Normalize(q[0]), 3)
	var got SearchResponse
	if code, body := postJSON(t, ts.URL+"/v1/search", map[string]any{"text": "a red square", "top": 3}, &got); code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	checkHits(t, "backend search", got.Results, want)
	var byPath SearchResponse
	if code, body := postJSON(t, ts.URL+"/v1/search", map[string]any{"path": idx.paths[0], "top": 1}, &byPath); code != 200 || len(byPath.Results) != 1 || byPath.Results[0].Score < 0.9999 {
		t.Errorf("path search: %d %s", code, body)
	}
	for _, p := range []string{failed, "/etc/passwd"} {
		if code, body := postJSON(t, ts.URL+"/v1/search", map[string]any{"path": p}, nil); code != http.StatusNotFound {
			t.Errorf("path %s: %d %s, want 404", p, code, body)
		}
	}
	code, body := postJSON(t, ts.URL+"/v1/search", map[string]any{"text": "cat", "videos": true}, nil)
	if code != http.StatusNotImplemented || !strings.Contains(string(body), "memory://test holds no videos") {
		t.Errorf("video search: %d %s", code, body)
	}
}
