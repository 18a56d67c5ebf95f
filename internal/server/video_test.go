package server

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeVideos is a VideoSearcher over fixed moments and files; thumb, when
// set, makes the frames (else a small solid JPEG).
type fakeVideos struct {
	moments  []Moment
	files    map[string]bool // indexed paths
	thumb    func(ctx context.Context, path string, t float64) ([]byte, error)
	lastK    atomic.Int64
	lastDim  atomic.Int64
	searches atomic.Int64
}

func (f *fakeVideos) SearchMoments(ctx context.Context, q []float32, k int) ([]Moment, error) {
	f.searches.Add(1)
	f.lastK.Store(int64(k))
	f.lastDim.Store(int64(len(q)))
	return f.moments[:min(k, len(f.moments))], nil
}

func (f *fakeVideos) VideoThumbnail(ctx context.Context, path string, t float64) ([]byte, error) {
	if !f.files[path] {
		return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	}
	if f.thumb != nil {
		return f.thumb(ctx, path, t)
	}
	img := image.NewRGBA(image.Rect(0, 0, 32, 18))
	for i := range img.Pix {
		img.Pix[i] = 200
	}
	img.Set(0, 0, color.Black)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (f *fakeVideos) OpenVideo(ctx context.Context, path string) (io.ReadSeekCloser, error) {
	if !f.files[path] {
		return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	}
	return os.Open(path)
}

// fakeVideoFile writes n bytes of a pretend video and returns its path.
func fakeVideoFile(t *testing.T, n int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "clip.mp4")
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVideoSearchJSON(t *testing.T) {
	vid := fakeVideoFile(t, 1000)
	fv := &fakeVideos{
		moments: []Moment{{Video: vid, Start: 12, End: 15.5, Score: 0.31, Peak: 13}, {Video: vid, Start: 0, End: 1, Score: 0.2}},
		files:   map[string]bool{vid: true},
	}
	_, ts := newTestServer(t, func(c *Config) { c.Videos = fv })
	m, _ := testModel(t)

	var raw map[string]any
	code, body := postJSON(t, ts.URL+"/v1/search", map[string]any{"text": "a dog", "videos": true, "top": 5}, &raw)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	if _, ok := raw["results"]; !ok {
		t.Errorf("no \"results\" next to the moments: %s", body)
	}
	ms, ok := raw["moments"].([]any)
	if !ok || len(ms) != 2 {
		t.Fatalf("moments = %v, want 2 (body %s)", raw["moments"], body)
	}
	first := ms[0].(map[string]any)
	want := map[string]any{"video": vid, "start": 12.0, "end": 15.5, "score": 0.31, "peak": 13.0}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("moments[0].%s = %v, want %v", k, first[k], v)
		}
	}
	if int(fv.lastK.Load()) != 5 || int(fv.lastDim.Load()) != m.EmbedDim() {
		t.Errorf("SearchMoments got k=%d and a %d-d query, want 5 and %d-d", fv.lastK.Load(), fv.lastDim.Load(), m.EmbedDim())
	}

	// Without "videos": no moments key, the searcher is not asked.
	n := fv.searches.Load()
	raw = nil
	code, body = postJSON(t, ts.URL+"/v1/search", map[string]any{"text": "a dog"}, &raw)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	if _, ok := raw["moments"]; ok || fv.searches.Load() != n {
		t.Errorf("a photo search answered moments: %s", body)
	}

	// healthz says videos are available.
	res, err := http.Get(ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(hb), `"videos":true`) {
		t.Errorf("/healthz = %s, want \"videos\":true", hb)
	}
}

func TestVideoSearchOnlyVideos(t *testing.T) {
	fv := &fakeVideos{files: map[string]bool{}}
	_, ts := newTestServer(t, func(c *Config) { c.Searcher = nil; c.Videos = fv })
	var raw map[string]any
	code, body := postJSON(t, ts.URL+"/v1/search", map[string]any{"text": "x", "videos": true}, &raw)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	if r, ok := raw["results"].([]any); !ok || len(r) != 0 {
		t.Errorf("results = %v, want []", raw["results"])
	}
	if m, ok := raw["moments"].([]any); !ok || len(m) != 0 {
		t.Errorf("moments = %v, want []", raw["moments"])
	}
	if code, body := postJSON(t, ts.URL+"/v1/search", map[string]any{"text": "x"}, nil); code != http.StatusNotImplemented {
		t.Errorf("photo search without a photo index: %d %s, want 501", code, body)
	}
}

func TestVideoEndpointsWithoutVideos(t *testing.T) {
	_, ts := newTestServer(t, nil)
	if code, body := postJSON(t, ts.URL+"/v1/search", map[string]any{"text": "x", "videos": true}, nil); code != http.StatusNotImplemented {
		t.Errorf("videos search without a video index: %d %s, want 501", code, body)
	}
	for _, u := range []string{"/v1/video/thumb?path=a.mp4&t=1", "/v1/video/file?path=a.mp4"} {
		res, err := http.Get(ts.URL + u)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotImplemented {
			t.Errorf("GET %s: %d, want 501", u, res.StatusCode)
		}
	}
}

func TestVideoThumbAndFile(t *testing.T) {
	const size = 5000
	vid := fakeVideoFile(t, size)
	other := fakeVideoFile(t, 10) // exists but is not indexed
	fv := &fakeVideos{files: map[string]bool{vid: true}}
	_, ts := newTestServer(t, func(c *Config) { c.Videos = fv })
	whole, _ := os.ReadFile(vid)

	get := func(u string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", ts.URL+u, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}
	q := urlQueryEscape

	res, b := get("/v1/video/thumb?path="+q(vid)+"&t=12.5", nil)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("thumb: %d %s %s", res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	if _, err := jpeg.Decode(bytes.NewReader(b)); err != nil {
		t.Errorf("thumb is not a JPEG: %v", err)
	}

	res, b = get("/v1/video/file?path="+q(vid), nil)
	if res.StatusCode != 200 || !bytes.Equal(b, whole) || res.Header.Get("Content-Type") != "video/mp4" || res.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("file: %d, %d bytes, type %q, Accept-Ranges %q", res.StatusCode, len(b), res.Header.Get("Content-Type"), res.Header.Get("Accept-Ranges"))
	}
	res, b = get("/v1/video/file?path="+q(vid), map[string]string{"Range": "bytes=100-199"})
	if res.StatusCode != http.StatusPartialContent || !bytes.Equal(b, whole[100:200]) {
		t.Errorf("Range bytes=100-199: %d, %d bytes", res.StatusCode, len(b))
	}
	if cr := res.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 100-199/%d", size) {
		t.Errorf("Content-Range = %q", cr)
	}
	res, b = get("/v1/video/file?path="+q(vid), map[string]string{"Range": "bytes=4990-"})
	if res.StatusCode != http.StatusPartialContent || !bytes.Equal(b, whole[4990:]) {
		t.Errorf("Range bytes=4990-: %d, %d bytes", res.StatusCode, len(b))
	}
	res, _ = get("/v1/video/file?path="+q(vid), map[string]string{"Range": "bytes=9000-"})
	if res.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("Range past the end: %d, want 416", res.StatusCode)
	}

	for _, tc := range []struct {
		url  string
		want int
	}{
		{"/v1/video/thumb?path=" + q(other) + "&t=1", 404},
		{"/v1/video/file?path=" + q(other), 404},
		{"/v1/video/file?path=" + q("/etc/passwd"), 404},
		{"/v1/video/file?path=" + q(vid+"/../"+filepath.Base(vid)), 404},
		{"/v1/video/thumb?path=" + q("/etc/passwd"), 404},
		{"/v1/video/file", 400},
		{"/v1/video/thumb?t=1", 400},
		{"/v1/video/thumb?path=" + q(vid) + "&t=-1", 400},
		{"/v1/video/thumb?path=" + q(vid) + "&t=abc", 400},
		{"/v1/video/thumb?path=" + q(vid) + "&t=NaN", 400},
	} {
		res, b := get(tc.url, nil)
		if res.StatusCode != tc.want {
			t.Errorf("GET %s: %d %s, want %d", tc.url, res.StatusCode, b, tc.want)
		}
		if res.StatusCode >= 400 && !strings.Contains(string(b), `"error"`) {
			t.Errorf("GET %s: body %s has no JSON error", tc.url, b)
		}
	}
}
