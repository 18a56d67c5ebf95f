package server

import (
	"bytes"
	"context"
	"image/jpeg"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
)

func TestEmbedMatchesModel(t *testing.T) {
	m, dir := testModel(t)
	_, ts := newTestServer(t, nil)
	texts := fixtures.Texts(t, dir)
	paths := fixtureImages(t, dir)
	n := DefaultMaxInputs / 2
	if raceEnabled {
		n = 4 // the instrumented model is slow
	}
	texts = texts[:min(len(texts), n)]
	paths = paths[:min(len(paths), n)]
	ctx := context.Background()
	wantT, err := m.EncodeTexts(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	wantI, errs := m.EmbedImageFiles(ctx, paths)
	var good []string
	var goodI [][]float32
	for i, p := range paths {
		if errs[i] == nil {
			good = append(good, p)
			goodI = append(goodI, wantI[i])
		}
	}
	req := EmbedRequest{Texts: texts}
	for _, p := range good {
		req.Images = append(req.Images, b64File(t, p))
	}
	var got EmbedResponse
	if code, body := postJSON(t, ts.URL+"/v1/embed", req, &got); code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	checkUnit(t, "text_embeddings", got.TextEmbeddings)
	checkUnit(t, "image_embeddings", got.ImageEmbeddings)
	if d := maxDiff(t, got.TextEmbeddings, normalizeAll(wantT)); d > 1e-5 {
		t.Errorf("text embeddings differ from Model.EncodeTexts by %g", d)
	}
	if d := maxDiff(t, got.ImageEmbeddings, normalizeAll(goodI)); d > 1e-5 {
		t.Errorf("image embeddings differ from Model.EmbedImageFiles by %g", d)
	}

	// Texts only / images only give an empty array for the other kind.
	var onlyT EmbedResponse
	postJSON(t, ts.URL+"/v1/embed", EmbedRequest{Texts: texts[:1]}, &onlyT)
	if len(onlyT.TextEmbeddings) != 1 || onlyT.ImageEmbeddings == nil || len(onlyT.ImageEmbeddings) != 0 {
		t.Errorf("texts-only answer: %d text, %v image embeddings", len(onlyT.TextEmbeddings), onlyT.ImageEmbeddings)
	}
}

func TestEmbedMultipart(t *testing.T) {
	m, dir := testModel(t)
	_, ts := newTestServer(t, nil)
	path := fixtureImages(t, dir)[0]
	img, _ := os.ReadFile(path)
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("text", "a photo of a cat")
	fw, _ := mw.CreateFormFile("image", "cat.png")
	fw.Write(img)
	mw.WriteField("image", b64File(t, path)) // base64 in a plain field
	mw.Close()
	res, err := http.Post(ts.URL+"/v1/embed", mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	var got EmbedResponse
	if err := jsonUnmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	wt, _ := m.EncodeTexts(context.Background(), []string{"a photo of a cat"})
	wi, err := m.EncodeImageFiles(context.Background(), []string{path, path})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(t, got.TextEmbeddings, normalizeAll(wt)); d > 1e-5 {
		t.Errorf("multipart text embedding differs by %g", d)
	}
	if d := maxDiff(t, got.ImageEmbeddings, normalizeAll(wi)); d > 1e-5 {
		t.Errorf("multipart image embeddings differ by %g", d)
	}
}

func TestClassify(t *testing.T) {
	m, dir := testModel(t)
	_, ts := newTestServer(t, nil)
	path := fixtureImages(t, dir)[0]
	labels := []string{"cat", "dog", "gradient", "noise", "car"}
	ctx := context.Background()
	for _, tmpl := range []*string{nil, ptr("a blurry photo of {}, a kind of thing")} {
		want := DefaultTemplate
		if tmpl != nil {
			want = *tmpl
		}
		var prompts []string
		for _, l := range labels {
			prompts = append(prompts, strings.ReplaceAll(want, "{}", l))
		}
		te, _ := m.EncodeTexts(ctx, prompts)
		ie, err := m.EncodeImageFiles(ctx, []string{path})
		if err != nil {
			t.Fatal(err)
		}
		ref := clip.Softmax(m.Logits(ie, te)[0])
		var got ClassifyResponse
		req := ClassifyRequest{Image: b64File(t, path), Labels: labels, Template: tmpl}
		if code, body := postJSON(t, ts.URL+"/v1/classify", req, &got); code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		if len(got.Labels) != len(labels) {
			t.Fatalf("%d labels back, want %d", len(got.Labels), len(labels))
		}
		var sum float64
		for i, lp := range got.Labels {
			j := indexOf(labels, lp.Label)
			if j < 0 {
				t.Fatalf("unknown label %q back", lp.Label)
			}
			if d := math.Abs(float64(lp.Prob - ref[j])); d > 1e-5 {
				t.Errorf("template %q: P(%s) = %v, brute force %v", want, lp.Label, lp.Prob, ref[j])
			}
			if i > 0 && lp.Prob > got.Labels[i-1].Prob {
				t.Errorf("labels not sorted by probability: %v", got.Labels)
			}
			sum += float64(lp.Prob)
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Errorf("probabilities sum to %v", sum)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func TestSearch(t *testing.T) {
	m, dir := testModel(t)
	idx := testIndex(t)
	_, ts := newTestServer(t, nil)
	ctx := context.Background()

	// Text: the same hits as a brute-force search with the model's query.
	q, _ := m.EncodeTexts(ctx, []string{"a red square"})
	want, _ := idx.Search(ctx, clip.Normalize(q[0]), 5)
	var got SearchResponse
	if code, body := postJSON(t, ts.URL+"/v1/search", map[string]any{"text": "a red square", "top": 5}, &got); code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	checkHits(t, "text search", got.Results, want)

	// Image: an indexed image finds itself first with cosine ≈ 1.
	p := idx.paths[len(idx.paths)-1]
	got = SearchResponse{}
	if code, body := postJSON(t, ts.URL+"/v1/search", map[string]any{"image": b64File(t, p)}, &got); code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	if len(got.Results) != min(DefaultTop, len(idx.paths)) {
		t.Errorf("%d results, want the default %d", len(got.Results), min(DefaultTop, len(idx.paths)))
	}
	if len(got.Results) == 0 || got.Results[0].Score < 0.9999 {
		t.Fatalf("image search for %s: %v", p, got.Results)
	}
	// Path: the same query through the index's files.
	var byPath SearchResponse
	if code, body := postJSON(t, ts.URL+"/v1/search", map[string]any{"path": p, "top": 3}, &byPath); code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	checkHits(t, "path search", byPath.Results, got.Results[:3])
	// A path that is not indexed is refused.
	if code, body := postJSON(t, ts.URL+"/v1/search", map[string]any{"path": "/etc/passwd"}, nil); code != 404 {
		t.Errorf("path outside the index: status %d %s, want 404", code, body)
	}
	_ = dir
}

func checkHits(t *testing.T, what string, got, want []Hit) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d hits, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].Path != want[i].Path && math.Abs(float64(got[i].Score-want[i].Score)) > 1e-5 {
			t.Errorf("%s: hit %d = %v, want %v", what, i, got[i], want[i])
		}
		if math.Abs(float64(got[i].Score-want[i].Score)) > 1e-5 {
			t.Errorf("%s: hit %d score %v, want %v", what, i, got[i].Score, want[i].Score)
		}
	}
}

func TestSearchWithoutIndex(t *testing.T) {
	_, ts := newTestServer(t, func(c *Config) { c.Searcher = nil })
	code, body := postJSON(t, ts.URL+"/v1/search", `{"text":"cat"}`, nil)
	if code != http.StatusNotImplemented || !strings.Contains(string(body), "--db") {
		t.Errorf("status %d %s, want 501 naming --db", code, body)
	}
}

func TestInfoEndpoints(t *testing.T) {
	m, _ := testModel(t)
	_, ts := newTestServer(t, nil)
	var models struct{ Models []ModelInfo }
	getJSON(t, ts.URL+"/v1/models", &models)
	if len(models.Models) != 1 || models.Models[0].EmbedDim != m.EmbedDim() || models.Models[0].Name == "" || models.Models[0].Precision != "fp32" {
		t.Errorf("/v1/models = %+v", models)
	}
	var health map[string]any
	getJSON(t, ts.URL+"/healthz", &health)
	if health["status"] != "ok" || health["search"] != true {
		t.Errorf("/healthz = %v", health)
	}
	postJSON(t, ts.URL+"/v1/embed", `{"texts":["x"]}`, nil)
	postJSON(t, ts.URL+"/v1/embed", `{"texts":[1]}`, nil)
	res, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("metrics Content-Type %q", ct)
	}
	line := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? -?[0-9.e+-]+$`)
	for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if strings.HasPrefix(l, "# HELP ") || strings.HasPrefix(l, "# TYPE ") {
			continue
		}
		if !line.MatchString(l) {
			t.Errorf("not a Prometheus sample line: %q", l)
		}
	}
	for _, want := range []string{
		`goclip_http_requests_total{handler="embed",code="200"} 1`,
		`goclip_http_requests_total{handler="embed",code="400"} 1`,
		`goclip_batch_size_count{tower="text"} 1`,
		`goclip_http_request_duration_seconds_count{handler="embed"} 2`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, body)
	}
	if err := jsonUnmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func TestWebPageAndThumbnails(t *testing.T) {
	idx := testIndex(t)
	_, ts := newTestServer(t, nil)
	for path, want := range map[string]string{
		"/":                 `id="search-form"`,
		"/static/app.js":    "/v1/search",
		"/static/style.css": ".result",
	} {
		res, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, res.StatusCode, want)
		}
		if regexp.MustCompile(`(?i)(src|href)="https?://`).Match(body) {
			t.Errorf("GET %s refers to an external resource", path)
		}
	}
	for _, p := range idx.paths {
		if raceEnabled && p != idx.paths[0] {
			break
		}
		res, err := http.Get(ts.URL + "/v1/thumb?path=" + urlQueryEscape(p))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("thumb %s: %d %s", p, res.StatusCode, body)
		}
		img, err := jpeg.Decode(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("thumb %s: %v", p, err)
		}
		if b := img.Bounds(); b.Dx() != ThumbSize || b.Dy() != ThumbSize {
			t.Errorf("thumb %s is %v", p, b)
		}
	}
	for _, bad := range []string{"/v1/thumb?path=/etc/passwd", "/v1/thumb", "/static/nope.js", "/nope"} {
		res, err := http.Get(ts.URL + bad)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode < 400 || res.StatusCode >= 500 || !strings.Contains(string(body), `"error"`) {
			t.Errorf("GET %s: %d %s, want a 4xx JSON error", bad, res.StatusCode, body)
		}
	}
}

// TestConcurrentMixed sends different texts and images at once so that
// they share batches, and checks every caller gets its own embedding.
func TestConcurrentMixed(t *testing.T) {
	m, dir := testModel(t)
	_, ts := newTestServer(t, func(c *Config) {
		c.TextBatch = BatcherConfig{MaxBatch: 8, MaxWait: 20 * time.Millisecond}
		c.ImageBatch = c.TextBatch
	})
	texts := fixtures.Texts(t, dir)
	paths := testIndex(t).paths
	n := 16
	if raceEnabled {
		n = 6
	}
	texts = texts[:min(n, len(texts))]
	ctx := context.Background()
	wantT, _ := m.EncodeTexts(ctx, texts)
	wantI, err := m.EncodeImageFiles(ctx, paths)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range max(len(texts), len(paths)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ti, pi := i%len(texts), i%len(paths)
			var got EmbedResponse
			req := EmbedRequest{Texts: []string{texts[ti]}, Images: []string{b64File(t, paths[pi])}}
			if code, body := postJSON(t, ts.URL+"/v1/embed", req, &got); code != 200 {
				t.Errorf("request %d: %d %s", i, code, body)
				return
			}
			if d := maxDiff(t, got.TextEmbeddings, normalizeAll(wantT[ti:ti+1])); d > 1e-5 {
				t.Errorf("request %d: text embedding differs by %g", i, d)
			}
			if d := maxDiff(t, got.ImageEmbeddings, normalizeAll(wantI[pi:pi+1])); d > 1e-5 {
				t.Errorf("request %d: image embedding differs by %g", i, d)
			}
		}()
	}
	wg.Wait()
}

// TestEmbedDuplicates: identical texts in one batch are encoded once and
// each copy gets the embedding; texts that differ only after a "!" (token
// id 0, also the padding id) stay apart.
func TestEmbedDuplicates(t *testing.T) {
	m, _ := testModel(t)
	_, ts := newTestServer(t, nil)
	texts := []string{"wow! a cat", "a dog", "wow! a cat", "wow! a dog", "a dog"}
	want, _ := m.EncodeTexts(context.Background(), texts)
	var got EmbedResponse
	if code, body := postJSON(t, ts.URL+"/v1/embed", EmbedRequest{Texts: texts}, &got); code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	if d := maxDiff(t, got.TextEmbeddings, normalizeAll(want)); d > 1e-5 {
		t.Errorf("embeddings with duplicates differ by %g", d)
	}
}
