package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/backend"
	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/indexer"
	"github.com/goclip/goclip/internal/store"
)

// memStores are the in-memory backends the tests open as
// memtest://NAME, a store scheme registered like weaviate://, so the
// CLI and the server reach them only through backend.Open.
var (
	memMu     sync.Mutex
	memStores = map[string]*backend.Memory{}
)

func init() {
	backend.Register("memtest", func(_ context.Context, u *url.URL) (backend.Backend, error) {
		memMu.Lock()
		defer memMu.Unlock()
		b := memStores[u.Host]
		if b == nil {
			b = backend.NewMemory("memtest://" + u.Host)
			memStores[u.Host] = b
		}
		return b, nil
	})
}

// plainTexts returns up to n fixture texts that are plain text to the
// combined-query parser (one term, the text itself).
func plainTexts(t *testing.T, dir string, n int) []string {
	var out []string
	for _, s := range fixtures.Texts(t, dir) {
		s = strings.TrimSpace(s)
		if s == "" || strings.ContainsAny(s, `"'*+-`) || len(s) > 100 {
			continue
		}
		terms, err := indexer.ParseQuery(s)
		if err != nil || len(terms) != 1 || terms[0].Text != s {
			continue
		}
		out = append(out, s)
		if len(out) == n {
			break
		}
	}
	if len(out) < n {
		t.Skipf("fewer than %d plain texts in the fixtures", n)
	}
	return out
}

type hit struct {
	Path  string  `json:"path"`
	Score float32 `json:"score"`
}

// sameHits fails unless got and want rank the same files with scores
// within tol (a path may differ only between two scores within tol).
func sameHits(t *testing.T, what string, got, want []hit, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d hits %v, want %d %v", what, len(got), got, len(want), want)
	}
	for i := range got {
		d := math.Abs(float64(got[i].Score - want[i].Score))
		if d > tol || got[i].Path != want[i].Path && d > 1e-5 {
			t.Errorf("%s: hit %d = %v, want %v", what, i, got[i], want[i])
		}
	}
}

// searchQuery is one query of the cross-backend set.
type searchQuery struct {
	text   string
	images []string
	top    int
}

// startServe runs goclip serve with args on 127.0.0.1:0 until the test
// ends and returns its base URL.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- Main(ctx, append([]string{"serve", "--addr", "127.0.0.1:0", "--max-wait", "1ms"}, args...), &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exit:
		case <-time.After(15 * time.Second):
			t.Error("goclip serve did not stop")
		}
	})
	addrRE := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-exit:
			t.Fatalf("goclip serve %v exited with %d: %s", args, code, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("goclip serve %v did not start: %s", args, stderr.String())
		}
	}
}

func httpDo(t *testing.T, method, url string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, url, r)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// TestSearchServeBackendsAgree runs the same queries — plain text, the
// combined-query algebra, images, text plus image, several --top — with
// goclip search and through goclip serve's HTTP API against the
// embedded store (--db) and against an in-memory backend holding the
// same embeddings (--store memtest://…): both backends must give the
// same results, and the CLI the same as the HTTP API. Since the
// in-memory backend is reached only through the backend interface,
// this shows that search and serve do not reach around it.
func TestSearchServeBackendsAgree(t *testing.T) {
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
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	if len(paths) < 2 {
		t.Skip("fewer than 2 fixture images")
	}
	broken := filepath.Join(photos, "broken.png")
	os.WriteFile(broken, []byte("\x89PNG\r\n\x1a\nbroken"), 0o644)
	db := filepath.Join(t.TempDir(), "index.db")
	mflags := []string{"--model", models[0], "--tokenizer", tok}
	if _, stderr, rc := goclip(t, append(append([]string{"index"}, mflags...), "--db", db, "--quiet", photos)...); rc != 0 {
		t.Fatalf("index: rc %d: %s", rc, stderr)
	}

	// The in-memory backend gets exactly the embedded store's records.
	m, err := clip.Load(models[0], clip.WithTokenizer(tok))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	memName := fmt.Sprintf("agree%d", time.Now().UnixNano())
	memURL := "memtest://" + memName
	mem, err := backend.Open(ctx, memURL)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(db, &store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	id, err := indexer.ModelID(st, m)
	if err != nil {
		t.Fatal(err)
	}
	if bid, err := backend.ModelID(m); err != nil || bid != id {
		t.Fatalf("backend.ModelID %q (%v), store's %q", bid, err, id)
	}
	if err := mem.EnsureModel(ctx, id, m.EmbedDim(), m.Path()); err != nil {
		t.Fatal(err)
	}
	var recs []backend.Record
	err = st.Scan(id, false, func(p string, r store.Record) error {
		recs = append(recs, backend.Record{Path: p, Size: r.Size, ModTime: r.ModTime, Hash: r.Hash, Embedding: r.Embedding, Err: r.Err})
		return nil
	})
	st.Close()
	if err != nil || len(recs) != len(paths)+1 {
		t.Fatalf("scan: %d records (%v), want %d", len(recs), err, len(paths)+1)
	}
	if err := mem.Upsert(ctx, id, recs); err != nil {
		t.Fatal(err)
	}

	texts := plainTexts(t, fix, 3)
	q := func(s string) string { return `"` + s + `"` }
	queries := []searchQuery{
		{text: texts[0], top: 3},
		{text: texts[1], top: len(paths) + 5}, // more than the store holds
		{text: q(texts[0]) + " + 2*" + q(texts[1]) + " - " + q(texts[2]), top: 4},
		{text: "0.5 * " + q(texts[2]) + " - " + q(texts[0]), top: 1},
		{text: q(texts[1]), top: 2},
		{images: []string{paths[0]}, top: 3},
		{text: texts[2], images: []string{paths[len(paths)-1]}, top: 5},
	}
	stores := [][]string{{"--db", db}, {"--store", memURL}}
	cliArgs := func(sq searchQuery, storeArgs []string, extra ...string) []string {
		a := append([]string{"search"}, mflags...)
		a = append(append(a, storeArgs...), "--top", strconv.Itoa(sq.top))
		for _, im := range sq.images {
			a = append(a, "--image", im)
		}
		a = append(a, extra...)
		if sq.text != "" {
			a = append(a, sq.text)
		}
		return a
	}
	cli := make([][]hit, len(queries))
	for i, sq := range queries {
		var outs [2][]hit
		var tables [2]string
		for j, sa := range stores {
			modes := []bool{false}
			if i%3 == 0 {
				modes = append(modes, true) // --exact too (each run loads the model)
			}
			for _, exact := range modes {
				extra := []string{"--json"}
				if exact {
					extra = append(extra, "--exact")
				}
				stdout, stderr, rc := goclip(t, cliArgs(sq, sa, extra...)...)
				if rc != 0 {
					t.Fatalf("search %v: rc %d: %s", cliArgs(sq, sa, extra...), rc, stderr)
				}
				var hs []hit
				if err := json.Unmarshal([]byte(stdout), &hs); err != nil {
					t.Fatalf("search %v: %v: %q", sa, err, stdout)
				}
				if want := min(sq.top, len(paths)); len(hs) != want {
					t.Fatalf("search %q %v: %d results, want %d", sq.text, sa, len(hs), want)
				}
				if exact {
					sameHits(t, fmt.Sprintf("query %d %v --exact", i, sa), hs, outs[j], 1e-6)
				} else {
					outs[j] = hs
				}
			}
			if i == 2 {
				stdout, _, rc := goclip(t, cliArgs(sq, sa)...)
				if rc != 0 || !strings.HasPrefix(stdout, "score") {
					t.Fatalf("search %v (table): rc %d %q", sa, rc, stdout)
				}
				tables[j] = stdout
			}
		}
		sameHits(t, fmt.Sprintf("query %d %+v: memtest vs embedded", i, sq), outs[1], outs[0], 1e-6)
		// The tables list the same paths in the same order.
		pathsOf := func(s string) []string {
			var ps []string
			for _, l := range strings.Split(strings.TrimSpace(s), "\n")[1:] {
				ps = append(ps, strings.TrimSpace(l[strings.Index(l, " "):]))
			}
			return ps
		}
		if a, b := pathsOf(tables[0]), pathsOf(tables[1]); i == 2 && (len(a) == 0 || strings.Join(a, "\n") != strings.Join(b, "\n")) {
			t.Errorf("query %d: table paths differ:\n%s\n%s", i, tables[0], tables[1])
		}
		for _, h := range outs[0] {
			if h.Path == broken {
				t.Errorf("query %d: the broken file is a result", i)
			}
		}
		cli[i] = outs[0]
	}

	// The same queries through the HTTP API of both backends.
	bases := []string{startServe(t, append(mflags, "--db", db)...), startServe(t, append(mflags, "--store", memURL)...)}
	b64 := func(p string) string {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(data)
	}
	search := func(base string, req map[string]any) []hit {
		t.Helper()
		code, body := httpDo(t, "POST", base+"/v1/search", req)
		var resp struct{ Results []hit }
		if code != 200 || json.Unmarshal(body, &resp) != nil {
			t.Fatalf("POST %s/v1/search %v: %d %s", base, req, code, body)
		}
		return resp.Results
	}
	for i, sq := range queries {
		var req map[string]any
		switch {
		case sq.text != "" && len(sq.images) == 0:
			req = map[string]any{"text": sq.text, "top": sq.top}
		case sq.text == "" && len(sq.images) == 1:
			req = map[string]any{"image": b64(sq.images[0]), "top": sq.top}
		default:
			continue // text plus image: the CLI only
		}
		e, mm := search(bases[0], req), search(bases[1], req)
		sameHits(t, fmt.Sprintf("HTTP query %d: memtest vs embedded", i), mm, e, 1e-6)
		sameHits(t, fmt.Sprintf("HTTP query %d vs CLI", i), e, cli[i], 1e-5)
		if sq.text == "" {
			// {"path": …}: the same as the image itself.
			p := search(bases[0], map[string]any{"path": sq.images[0], "top": sq.top})
			pm := search(bases[1], map[string]any{"path": sq.images[0], "top": sq.top})
			sameHits(t, "HTTP path search: memtest vs embedded", pm, p, 1e-6)
			sameHits(t, "HTTP path search vs image search", p, e, 1e-5)
		}
	}
	// Everything else the API answers the same on both backends.
	top := search(bases[0], map[string]any{"text": texts[0]})
	if len(top) != min(10, len(paths)) {
		t.Errorf("default top: %d results", len(top))
	}
	checks := []struct {
		method, path string
		body         any
	}{
		{"GET", "/", nil},
		{"GET", "/static/app.js", nil},
		{"GET", "/v1/thumb?path=" + url.QueryEscape(top[0].Path), nil},
		{"GET", "/v1/thumb?path=" + url.QueryEscape(broken), nil},
		{"GET", "/v1/thumb?path=%2Fetc%2Fpasswd", nil},
		{"POST", "/v1/search", map[string]any{"path": broken}},
		{"POST", "/v1/search", map[string]any{"path": "/etc/passwd"}},
		{"POST", "/v1/search", map[string]any{"text": q(texts[0]) + " - " + q(texts[0])}},
		{"POST", "/v1/search", map[string]any{"text": texts[0], "top": 5000}},
		{"POST", "/v1/search", map[string]any{"text": texts[0], "top": -1}},
		{"POST", "/v1/search", map[string]any{"text": "it's a cat", "top": 2}},
	}
	for _, c := range checks {
		ce, be := httpDo(t, c.method, bases[0]+c.path, c.body)
		cm, bm := httpDo(t, c.method, bases[1]+c.path, c.body)
		if ce != cm || string(be) != string(bm) && ce != 200 {
			t.Errorf("%s %s %v: embedded %d %.200s, memtest %d %.200s", c.method, c.path, c.body, ce, be, cm, bm)
		}
		if ce == 200 && c.method == "GET" && string(be) != string(bm) {
			t.Errorf("%s %s: different bodies", c.method, c.path)
		}
	}
	// Health reports a searchable index on both.
	for _, base := range bases {
		var h struct{ Search bool }
		if code, body := httpDo(t, "GET", base+"/healthz", nil); code != 200 || json.Unmarshal(body, &h) != nil || !h.Search {
			t.Errorf("%s/healthz: %d %s", base, code, body)
		}
	}
	// A backend without videos names that, rather than answering none.
	code, body := httpDo(t, "POST", bases[1]+"/v1/search", map[string]any{"text": texts[0], "videos": true})
	if code != http.StatusNotImplemented || !strings.Contains(string(body), memURL) || !strings.Contains(string(body), "no videos") {
		t.Errorf("video search on memtest: %d %s", code, body)
	}

	// goclip index --store reaches the same backend interface.
	idxURL := memURL + "idx"
	if stdout, stderr, rc := goclip(t, append(append([]string{"index"}, mflags...), "--store", idxURL, photos)...); rc != 0 {
		t.Fatalf("index --store %s: rc %d: %s %s", idxURL, rc, stdout, stderr)
	}
	stdout, stderr, rc := goclip(t, cliArgs(queries[0], []string{"--store", idxURL}, "--json")...)
	var hs []hit
	if rc != 0 || json.Unmarshal([]byte(stdout), &hs) != nil {
		t.Fatalf("search --store %s: rc %d %s %s", idxURL, rc, stdout, stderr)
	}
	sameHits(t, "index --store, then search", hs, cli[0], 1e-4)
}

// TestSearchStoreErrors: --db and --store together, a store without the
// model, and an unreachable Weaviate, which must fail within a bounded
// time with an error naming its URL (no Weaviate needed).
func TestSearchStoreErrors(t *testing.T) {
	fix, models := fixtureModels(t)
	mflags := []string{"--model", models[0], "--tokenizer", filepath.Join(fix, "tokenizer")}
	if _, stderr, rc := goclip(t, append(append([]string{"search"}, mflags...), "--db", "a.db", "--store", "weaviate://h:1/C?grpc=2", "cat")...); rc != 2 || !strings.Contains(stderr, "not both") {
		t.Errorf("--db and --store: rc %d %s", rc, stderr)
	}
	if _, stderr, rc := goclip(t, append(append([]string{"search"}, mflags...), "--store", "nosuch://h/x", "cat")...); rc != 1 || !strings.Contains(stderr, `unknown scheme "nosuch"`) {
		t.Errorf("unknown scheme: rc %d %s", rc, stderr)
	}
	empty := fmt.Sprintf("memtest://empty%d", time.Now().UnixNano())
	for _, cmd := range []string{"search", "serve"} {
		args := append(append([]string{cmd}, mflags...), "--store", empty)
		if cmd == "search" {
			args = append(args, "cat")
		} else {
			args = append(args, "--addr", "127.0.0.1:0")
		}
		if _, stderr, rc := goclip(t, args...); rc != 1 || !strings.Contains(stderr, empty) || !strings.Contains(stderr, store.ErrNoModel.Error()) {
			t.Errorf("%s on a store without the model: rc %d %s", cmd, rc, stderr)
		}
	}

	// An address nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	spec := fmt.Sprintf("weaviate://127.0.0.1:%d/GoclipTest?grpc=%d&retries=1&backoff=10ms", port, port)
	for _, cmd := range []string{"search", "serve"} {
		args := append(append([]string{cmd}, mflags...), "--store", spec)
		if cmd == "search" {
			args = append(args, "cat")
		} else {
			args = append(args, "--addr", "127.0.0.1:0")
		}
		type result struct {
			stderr string
			rc     int
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			_, stderr, rc := goclip(t, args...)
			done <- result{stderr, rc}
		}()
		select {
		case r := <-done:
			if r.rc != 1 || !strings.Contains(r.stderr, fmt.Sprintf("weaviate://127.0.0.1:%d/GoclipTest", port)) {
				t.Errorf("%s --store %s: rc %d %s", cmd, spec, r.rc, r.stderr)
			}
			t.Logf("%s: unreachable Weaviate refused in %v: %s", cmd, time.Since(start).Round(time.Millisecond), strings.TrimSpace(r.stderr))
		case <-time.After(30 * time.Second):
			t.Fatalf("%s --store %s: no answer within 30 s", cmd, spec)
		}
	}
}
