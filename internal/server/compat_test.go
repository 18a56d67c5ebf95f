package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"testing"

	"github.com/goclip/goclip/internal/fixtures"
)

// weaviateVecRequest and weaviateVecResponse mirror the structs of
// Weaviate's modules/multi2vec-clip/clients/vectorizer.go: no omitempty
// (absent lists are sent as null), no Content-Type header, the error in
// "error" of a status > 399 answer.
type weaviateVecRequest struct {
	Texts  []string `json:"texts"`
	Images []string `json:"images"`
}

type weaviateVecResponse struct {
	TextVectors  [][]float32 `json:"textVectors"`
	ImageVectors [][]float32 `json:"imageVectors"`
	Error        string      `json:"error"`
}

// weaviateVectorize sends a request the way Weaviate's client does.
func weaviateVectorize(t *testing.T, origin string, texts, images []string) (int, weaviateVecResponse) {
	t.Helper()
	body, err := json.Marshal(weaviateVecRequest{Texts: texts, Images: images})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(context.Background(), "POST", origin+"/vectorize", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out weaviateVecResponse
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("/vectorize answer %d is not JSON: %q", res.StatusCode, b)
	}
	return res.StatusCode, out
}

func TestWeaviateMulti2VecClip(t *testing.T) {
	m, dir := testModel(t)
	_, ts := newTestServer(t, nil)
	for _, p := range []string{"/.well-known/live", "/.well-known/ready"} {
		res, err := http.Get(ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent || len(b) != 0 {
			t.Errorf("GET %s: %d %q, want 204 and no body", p, res.StatusCode, b)
		}
	}
	var meta map[string]any
	getJSON(t, ts.URL+"/meta", &meta)
	if len(meta) == 0 {
		t.Error("/meta is an empty object")
	}

	texts := fixtures.Texts(t, dir)[:3]
	paths := fixtureImages(t, dir)[:2]
	var images []string
	for _, p := range paths {
		images = append(images, b64File(t, p))
	}
	ctx := context.Background()
	wantT, _ := m.EncodeTexts(ctx, texts)
	wantI, err := m.EncodeImageFiles(ctx, paths)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		texts, images []string
	}{
		{"both", texts, images},
		{"texts only (images null)", texts, nil},
		{"images only (texts null)", nil, images},
	} {
		code, got := weaviateVectorize(t, ts.URL, tc.texts, tc.images)
		if code != 200 || got.Error != "" {
			t.Fatalf("%s: status %d error %q", tc.name, code, got.Error)
		}
		if len(got.TextVectors) != len(tc.texts) || len(got.ImageVectors) != len(tc.images) {
			t.Fatalf("%s: %d text and %d image vectors", tc.name, len(got.TextVectors), len(got.ImageVectors))
		}
		if len(tc.texts) > 0 {
			if d := maxDiff(t, got.TextVectors, normalizeAll(wantT)); d > 1e-5 {
				t.Errorf("%s: text vectors differ by %g", tc.name, d)
			}
		}
		if len(tc.images) > 0 {
			if d := maxDiff(t, got.ImageVectors, normalizeAll(wantI)); d > 1e-5 {
				t.Errorf("%s: image vectors differ by %g", tc.name, d)
			}
		}
		checkUnit(t, "textVectors", got.TextVectors)
		checkUnit(t, "imageVectors", got.ImageVectors)
	}
	// An error is a status ≥ 400 whose JSON "error" the client reports.
	code, got := weaviateVectorize(t, ts.URL, nil, []string{"bm90IGFuIGltYWdl"})
	if code < 400 || got.Error == "" {
		t.Errorf("bad image: status %d error %q, want ≥ 400 with an error", code, got.Error)
	}
}

// immichPredict posts to /predict the multipart body immich's server
// builds (machine-learning.repository.ts getFormData): an "entries" field
// with the JSON request, then either the file as a Blob (Node's FormData
// names it "blob", type application/octet-stream) or a "text" field.
func immichPredict(t *testing.T, origin, entries string, image []byte, text *string) (int, map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("entries", entries)
	if image != nil {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="image"; filename="blob"`)
		h.Set("Content-Type", "application/octet-stream")
		w, _ := mw.CreatePart(h)
		w.Write(image)
	}
	if text != nil {
		mw.WriteField("text", *text)
	}
	mw.Close()
	res, err := http.Post(origin+"/predict", mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("/predict answer %d is not JSON: %q", res.StatusCode, b)
	}
	return res.StatusCode, out
}

// immichVector parses the "clip" string (a JSON array in a string).
func immichVector(t *testing.T, resp map[string]any) []float32 {
	t.Helper()
	s, ok := resp["clip"].(string)
	if !ok {
		t.Fatalf(`"clip" is %T, want a string holding a JSON array`, resp["clip"])
	}
	var v []float32
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf(`"clip" = %.60q…: %v`, s, err)
	}
	return v
}

func TestImmichML(t *testing.T) {
	m, dir := testModel(t)
	_, ts := newTestServer(t, nil)
	res, err := http.Get(ts.URL + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != "pong" {
		t.Errorf("GET /ping: %d %q", res.StatusCode, b)
	}

	man := fixtures.ReadManifest(t, dir)
	ctx := context.Background()
	for _, im := range man.Images[:min(3, len(man.Images))] {
		path := dir + "/" + im.File
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want, err := m.EncodeImageFiles(ctx, []string{path})
		if err != nil {
			t.Fatal(err)
		}
		code, resp := immichPredict(t, ts.URL, `{"clip":{"visual":{"modelName":"ViT-B-32__openai"}}}`, data, nil)
		if code != 200 {
			t.Fatalf("%s: status %d %v", im.File, code, resp)
		}
		got := immichVector(t, resp)
		if d := maxDiff(t, [][]float32{got}, normalizeAll(want)); d > 1e-5 {
			t.Errorf("%s: visual embedding differs by %g", im.File, d)
		}
		if resp["imageWidth"] != float64(im.Size[0]) || resp["imageHeight"] != float64(im.Size[1]) {
			t.Errorf("%s: imageWidth/Height = %v/%v, want %v", im.File, resp["imageWidth"], resp["imageHeight"], im.Size)
		}
	}

	text := "a photo of a dog"
	want, _ := m.EncodeTexts(ctx, []string{text})
	code, resp := immichPredict(t, ts.URL, `{"clip":{"textual":{"modelName":"ViT-B-32__openai","options":{"language":"en-US"}}}}`, nil, &text)
	if code != 200 {
		t.Fatalf("textual: status %d %v", code, resp)
	}
	if d := maxDiff(t, [][]float32{immichVector(t, resp)}, normalizeAll(want)); d > 1e-5 {
		t.Errorf("textual embedding differs by %g", d)
	}
	if _, ok := resp["imageWidth"]; ok {
		t.Error("a text answer carries imageWidth")
	}

	for _, tc := range []struct {
		entries string
		image   bool
		status  int
	}{
		{`{"facial-recognition":{"detection":{"modelName":"buffalo_l","options":{"minScore":0.7}},"recognition":{"modelName":"buffalo_l"}}}`, true, 422},
		{`{"clip":{"visual":{"modelName":"x"}}`, true, 422},
		{`[]`, true, 422},
		{`{"clip":{"visual":{"modelName":"x"}}}`, false, 400},
		{`{"clip":{"textual":{"modelName":"x"}}}`, true, 400},
	} {
		var img []byte
		if tc.image {
			img, _ = os.ReadFile(fixtureImages(t, dir)[0])
		}
		code, resp := immichPredict(t, ts.URL, tc.entries, img, nil)
		if code != tc.status || resp["error"] == nil {
			t.Errorf("entries %s: status %d %v, want %d with an error", tc.entries, code, resp, tc.status)
		}
	}
}
