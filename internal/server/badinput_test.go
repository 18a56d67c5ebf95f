package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// pngBomb returns a valid 1×1 PNG whose header claims w×h pixels.
func pngBomb(w, h uint32) []byte {
	var buf bytes.Buffer
	png.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1)))
	b := buf.Bytes()
	// IHDR data starts at 8 (signature) + 8 (length, type).
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

// checkJSONError checks a 4xx answer with {"error": …} containing want.
func checkJSONError(t *testing.T, name string, res *http.Response, body []byte, want string) {
	t.Helper()
	if res.StatusCode < 400 || res.StatusCode > 499 {
		t.Errorf("%s: status %d (%s), want 4xx", name, res.StatusCode, body)
		return
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", name, ct)
	}
	var e struct{ Error string }
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Errorf("%s: body %q is not {\"error\": …}", name, body)
		return
	}
	if !strings.Contains(e.Error, want) {
		t.Errorf("%s: error %q does not mention %q", name, e.Error, want)
	}
}

func TestBadInput(t *testing.T) {
	s, ts := newTestServer(t, nil)
	_, dir := testModel(t)
	good, _ := os.ReadFile(fixtureImages(t, dir)[0])
	b64 := base64.StdEncoding.EncodeToString
	many := make([]string, 10_000)
	for i := range many {
		many[i] = "text"
	}
	manyJSON, _ := json.Marshal(EmbedRequest{Texts: many})
	longText, _ := json.Marshal(EmbedRequest{Texts: []string{strings.Repeat("a ", DefaultMaxTextBytes)}})
	imgJSON := func(data []byte) string { return fmt.Sprintf(`{"images":[%q]}`, b64(data)) }

	cases := []struct {
		name, path, ctype, body string
		status                  int
		want                    string
	}{
		{"malformed JSON", "/v1/embed", "", `{"texts": ["a",`, 400, "malformed JSON"},
		{"not JSON", "/v1/embed", "", `texts=a`, 400, "malformed JSON at byte"},
		{"empty body", "/v1/embed", "", ``, 400, "empty request body"},
		{"array instead of object", "/v1/embed", "", `["a"]`, 400, "must be a JSON object"},
		{"texts is a string", "/v1/embed", "", `{"texts":"a cat"}`, 400, `field "texts"`},
		{"texts holds a number", "/v1/embed", "", `{"texts":[1]}`, 400, `field "texts"`},
		{"images is an object", "/v1/embed", "", `{"images":{}}`, 400, `field "images"`},
		{"unknown field", "/v1/embed", "", `{"text":["a"]}`, 400, `unknown field "text"`},
		{"trailing data", "/v1/embed", "", `{"texts":["a"]} {"texts":["b"]}`, 400, "after the request object"},
		{"nothing to embed", "/v1/embed", "", `{}`, 400, "nothing to embed"},
		{"null", "/v1/embed", "", `null`, 400, "nothing to embed"},
		{"bad base64", "/v1/embed", "", `{"images":["not base64!"]}`, 400, "images[0]: not valid base64"},
		{"empty image", "/v1/embed", "", `{"images":[""]}`, 400, "images[0]: empty image"},
		{"base64 of text", "/v1/embed", "", imgJSON([]byte("hello, world")), 400, "images[0]: not an image"},
		{"truncated PNG", "/v1/embed", "", imgJSON(good[:len(good)/2]), 400, "images[0]: cannot decode"},
		{"image bomb", "/v1/embed", "", imgJSON(pngBomb(100_000, 100_000)), 413, "pixel limit"},
		{"10,000 texts", "/v1/embed", "", string(manyJSON), 413, "too many inputs: 10000 texts"},
		{"text too long", "/v1/embed", "", string(longText), 413, "texts[0]: text of"},
		{"multipart without boundary", "/v1/embed", "multipart/form-data", "x", 400, "no boundary"},
		{"multipart garbage", "/v1/embed", "multipart/form-data; boundary=zz", "garbage", 400, "malformed multipart"},
		{"classify without labels", "/v1/classify", "", fmt.Sprintf(`{"image":%q}`, b64(good)), 400, `"labels"`},
		{"classify without image", "/v1/classify", "", `{"labels":["a"]}`, 400, `"image"`},
		{"classify empty label", "/v1/classify", "", fmt.Sprintf(`{"image":%q,"labels":["a",""]}`, b64(good)), 400, "labels[1] is empty"},
		{"classify template", "/v1/classify", "", fmt.Sprintf(`{"image":%q,"labels":["a"],"template":"a photo"}`, b64(good)), 400, `no "{}"`},
		{"classify image bomb", "/v1/classify", "", fmt.Sprintf(`{"image":%q,"labels":["a"]}`, b64(pngBomb(1<<20, 1<<20))), 413, "pixel limit"},
		{"search two queries", "/v1/search", "", fmt.Sprintf(`{"text":"a","image":%q}`, b64(good)), 400, "exactly one"},
		{"search nothing", "/v1/search", "", `{"top":3}`, 400, "exactly one"},
		{"search top negative", "/v1/search", "", `{"text":"a","top":-1}`, 400, `"top"`},
		{"search top huge", "/v1/search", "", `{"text":"a","top":100000}`, 400, `"top"`},
		{"search top float", "/v1/search", "", `{"text":"a","top":1.5}`, 400, `field "top"`},
		{"search empty text", "/v1/search", "", `{"text":""}`, 400, `"text" is empty`},
		{"vectorize wrong type", "/vectorize", "", `{"texts":[{}]}`, 400, `field "texts"`},
		{"vectorize not an image", "/vectorize", "", `{"images":["aGVsbG8="]}`, 400, "not an image"},
		{"predict not multipart", "/predict", "", `{}`, 422, "multipart"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest("POST", ts.URL+tc.path, strings.NewReader(tc.body))
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, res.StatusCode, tc.status, body)
		}
		checkJSONError(t, tc.name, res, body, tc.want)
	}
	checkStillServing(t, s, ts.URL)
}

// endlessBody produces `{"texts":["aaaa…` up to n bytes, counting what was
// read from it, without holding it in memory.
type endlessBody struct {
	n, read int64
	sent    atomic.Int64
}

func (b *endlessBody) Read(p []byte) (int, error) {
	if b.read >= b.n {
		return 0, io.EOF
	}
	k := int64(len(p))
	k = min(k, b.n-b.read)
	for i := range p[:k] {
		p[i] = 'a'
	}
	if b.read == 0 {
		copy(p, `{"texts":["`)
	}
	b.read += k
	b.sent.Store(b.read)
	return int(k), nil
}

// TestHugeBody streams a 1 GB body (never held in memory) and checks the
// server cuts it at its limit with 413, both when the length is declared
// and when the body is chunked.
func TestHugeBody(t *testing.T) {
	const limit = 4 << 20
	s, ts := newTestServer(t, func(c *Config) { c.MaxBodyBytes = limit })
	const gig = 1 << 30
	for _, declared := range []bool{true, false} {
		body := &endlessBody{n: gig}
		req, _ := http.NewRequest("POST", ts.URL+"/v1/embed", body)
		req.Header.Set("Content-Type", "application/json")
		if declared {
			req.ContentLength = gig
		} else {
			req.ContentLength = -1 // chunked
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("declared=%v: %v", declared, err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("declared=%v: status %d %s, want 413", declared, res.StatusCode, got)
		}
		checkJSONError(t, "1 GB body", res, got, "exceeds the limit")
		if sent := body.sent.Load(); sent > limit+64<<20 {
			t.Errorf("declared=%v: the client sent %d bytes before the answer: the body was not cut at the limit", declared, sent)
		} else {
			t.Logf("declared=%v: 413 after the client sent %d MiB of 1024", declared, body.sent.Load()>>20)
		}
	}
	checkStillServing(t, s, ts.URL)
}

// checkStillServing checks the server answers normal requests.
func checkStillServing(t *testing.T, s *Server, url string) {
	t.Helper()
	var e EmbedResponse
	if code, body := postJSON(t, url+"/v1/embed", `{"texts":["still here"]}`, &e); code != 200 || len(e.TextEmbeddings) != 1 {
		t.Errorf("server stopped serving: %d %s", code, body)
	}
	res, err := http.Get(url + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Errorf("healthz after bad input: %v %v", res, err)
	}
	if res != nil {
		res.Body.Close()
	}
}

// stallText replaces the server's text batcher with one whose run blocks
// until release is closed.
func stallText(s *Server, cfg BatcherConfig) (release chan struct{}) {
	release = make(chan struct{})
	s.text.Close()
	s.text = NewBatcher(cfg, func(ctx context.Context, rows [][]int32) ([][]float32, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return s.runText(ctx, rows)
	})
	return release
}

func TestQueueFull503(t *testing.T) {
	s, ts := newTestServer(t, nil)
	release := stallText(s, BatcherConfig{MaxBatch: 1, MaxWait: -1, MaxQueue: 2})
	results := make(chan int, 10)
	for range 3 { // one running, two queued
		go func() {
			code, _ := postJSON(t, ts.URL+"/v1/embed", `{"texts":["a"]}`, nil)
			results <- code
		}()
	}
	waitFor(t, func() bool { return s.text.Queued() == 2 })
	res, err := http.Post(ts.URL+"/v1/embed", "application/json", strings.NewReader(`{"texts":["b"]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("full queue: status %d Retry-After %q %s, want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"), body)
	}
	if !strings.Contains(string(body), "queue is full") {
		t.Errorf("503 body %s", body)
	}
	close(release)
	for range 3 {
		if code := <-results; code != 200 {
			t.Errorf("queued request: status %d", code)
		}
	}
}

func TestRequestTimeout(t *testing.T) {
	s, ts := newTestServer(t, func(c *Config) { c.RequestTimeout = 50 * time.Millisecond })
	release := stallText(s, BatcherConfig{MaxBatch: 1, MaxWait: -1, MaxQueue: 8})
	defer close(release)
	start := time.Now()
	code, body := postJSON(t, ts.URL+"/v1/embed", `{"texts":["a"]}`, nil)
	if code != http.StatusGatewayTimeout || !strings.Contains(string(body), "timed out") {
		t.Errorf("status %d %s, want 504", code, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout took %v", d)
	}
}
