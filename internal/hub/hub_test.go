package hub

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

const testRepo = "openai/clip-vit-base-patch32"

// wantFiles is what Pull must keep of clipRepo: configs, tokenizer and the
// preferred weights.
var wantFiles = []string{"config.json", "merges.txt", "model.safetensors", "preprocessor_config.json", "special_tokens_map.json", "tokenizer.json", "vocab.json"}

// checkDir asserts dir holds exactly the wanted files of files, with the
// right content, a complete manifest for commit, and no leftovers.
func checkDir(t *testing.T, dir, commit string, files []fakeFile, want []string) {
	t.Helper()
	byName := map[string][]byte{}
	for _, f := range files {
		byName[f.name] = f.data
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		if e.Name() == ManifestName || e.Name() == lockName {
			continue
		}
		got = append(got, e.Name())
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("cache dir holds %v, want %v", got, want)
	}
	for _, name := range want {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, byName[name]) {
			t.Errorf("%s: content differs from the hub's", name)
		}
	}
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Complete || m.Commit != commit || len(m.Files) != len(want) {
		t.Errorf("manifest: complete=%v commit=%s files=%d; want complete, %s, %d", m.Complete, m.Commit, len(m.Files), commit, len(want))
	}
}

func TestPull(t *testing.T) {
	h := newFakeHub(t)
	h.token = "hf_secret"
	files := clipRepo(1)
	commit := h.add(testRepo, files...)
	c := newTestClient(t, h)
	c.Token = h.token
	var mu sync.Mutex
	last := map[string][2]int64{}
	c.Progress = func(file string, done, total int64) {
		mu.Lock()
		last[file] = [2]int64{done, total}
		mu.Unlock()
	}
	dir, err := c.Pull(context.Background(), testRepo, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(c.CacheDir, "openai", "clip-vit-base-patch32"); dir != want {
		t.Errorf("dir = %s, want %s", dir, want)
	}
	checkDir(t, dir, commit, files, wantFiles)
	if p := last["model.safetensors"]; p[0] != 300_000 || p[1] != 300_000 {
		t.Errorf("last progress of model.safetensors = %v, want done = total = 300000", p)
	}
	if n := h.count("/cdn/" + sha256Hex(files[8].data)); n != 1 {
		t.Errorf("the LFS weights were fetched %d times from the CDN, want 1 (through the redirect)", n)
	}
	for _, a := range h.auth {
		if a != "Bearer hf_secret" {
			t.Errorf("hub request sent Authorization %q", a)
		}
	}
	if len(h.cdnAuth) == 0 {
		t.Error("no request reached the CDN")
	}
	for _, a := range h.cdnAuth {
		if a != "" {
			t.Errorf("the token leaked to the CDN: Authorization %q", a)
		}
	}
	if AliasOf(testRepo) != "ViT-B-32" || AliasOf("acme/x") != "" {
		t.Error("AliasOf is wrong")
	}

	// Resolve and List see the pull.
	for _, name := range []string{testRepo, "ViT-B-32", dir} {
		got, err := c.Resolve(name)
		if err != nil || got != dir {
			t.Errorf("Resolve(%q) = %q, %v; want %q", name, got, err, dir)
		}
	}
	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	for _, f := range files {
		for _, w := range wantFiles {
			if f.name == w {
				size += int64(len(f.data))
			}
		}
	}
	if len(list) != 1 || list[0].Repo != testRepo || list[0].Commit != commit || list[0].Path != dir ||
		!list[0].Complete || list[0].Size != size || list[0].Files != len(wantFiles) || list[0].Revision != "main" {
		t.Errorf("List() = %+v; want one complete %s at %s, %d bytes", list, testRepo, commit, size)
	}
}

func TestCanonicalRepo(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"ViT-B-32", "openai/clip-vit-base-patch32"},
		{"ViT-B-16", "openai/clip-vit-base-patch16"},
		{"ViT-L-14", "openai/clip-vit-large-patch14"},
		{"vit-l-14", "openai/clip-vit-large-patch14"},
		{" ViT-B-32 ", "openai/clip-vit-base-patch32"},
		{"laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"},
		{"hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"},
		{"OFA-Sys/chinese-clip-vit-base-patch16", "OFA-Sys/chinese-clip-vit-base-patch16"},
		{"", ""},
		{"ViT-B-99", ""},
		{"a/b/c", ""},
		{"../etc", ""},
		{"org/..", ""},
		{"org/.hidden", ""},
		{"org/a--b", ""},
		{"org/a..b", ""},
		{"org/-a", ""},
		{"org/a b", ""},
		{"/abs", ""},
		{`org\name`, ""},
		{"org/" + strings.Repeat("x", 97), ""},
	}
	for _, tt := range tests {
		got, err := CanonicalRepo(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("CanonicalRepo(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CanonicalRepo(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestPullAlias(t *testing.T) {
	h := newFakeHub(t)
	files := clipRepo(2)
	commit := h.add("openai/clip-vit-base-patch16", files...)
	c := newTestClient(t, h)
	dir, err := c.Pull(context.Background(), "ViT-B-16", "main")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(dir, filepath.Join("openai", "clip-vit-base-patch16")) {
		t.Errorf("dir = %s", dir)
	}
	checkDir(t, dir, commit, files, wantFiles)
	if n := h.count("/api/models/openai/clip-vit-base-patch16/revision/main"); n != 1 {
		t.Errorf("model API called %d times, want 1", n)
	}
}

func TestRepullDownloadsNothing(t *testing.T) {
	for _, verify := range []bool{false, true} {
		h := newFakeHub(t)
		files := clipRepo(3)
		commit := h.add(testRepo, files...)
		c := newTestClient(t, h)
		c.Verify = verify
		dir, err := c.Pull(context.Background(), testRepo, "")
		if err != nil {
			t.Fatal(err)
		}
		before := h.downloads()
		dir2, err := c.Pull(context.Background(), "ViT-B-32", "")
		if err != nil {
			t.Fatal(err)
		}
		if dir2 != dir {
			t.Errorf("second pull gave %s, first %s", dir2, dir)
		}
		if d := h.downloads() - before; d != 0 {
			t.Errorf("Verify=%v: second pull made %d download requests, want 0", verify, d)
		}
		checkDir(t, dir, commit, files, wantFiles)
	}
}

func TestRepullAfterUpstreamChange(t *testing.T) {
	h := newFakeHub(t)
	files := clipRepo(4)
	h.add(testRepo, files...)
	c := newTestClient(t, h)
	dir, err := c.Pull(context.Background(), testRepo, "")
	if err != nil {
		t.Fatal(err)
	}
	// A new commit that changes one config and drops model.safetensors,
	// so pytorch_model.bin becomes the weights.
	var next []fakeFile
	for _, f := range files {
		switch f.name {
		case "config.json":
			f.data = []byte(`{"model_type": "clip", "changed": true}`)
		case "model.safetensors":
			continue
		}
		next = append(next, f)
	}
	commit := h.add(testRepo, next...)
	h.mu.Lock()
	h.counts = map[string]int{}
	h.mu.Unlock()
	if _, err := c.Pull(context.Background(), testRepo, ""); err != nil {
		t.Fatal(err)
	}
	var fetched []string
	for p, n := range h.counts {
		if strings.Contains(p, "/resolve/") && n > 0 {
			fetched = append(fetched, p[strings.LastIndex(p, "/")+1:])
		}
	}
	sort.Strings(fetched)
	if got := strings.Join(fetched, ","); got != "config.json,pytorch_model.bin" {
		t.Errorf("second pull fetched %s, want config.json,pytorch_model.bin", got)
	}
	want := []string{"config.json", "merges.txt", "preprocessor_config.json", "pytorch_model.bin", "special_tokens_map.json", "tokenizer.json", "vocab.json"}
	checkDir(t, dir, commit, next, want)
}

func TestResume(t *testing.T) {
	weights := clipRepo(5)[8]
	cdn := "/cdn/" + sha256Hex(weights.data)
	tests := []struct {
		name string
		// hook answers the CDN's first request(s) badly.
		hook      func(w http.ResponseWriter, r *http.Request, n int) bool
		partial   int    // bytes of a .part left by an earlier run
		wantRange string // the Range of the last CDN request; "" for none
	}{
		{
			name: "connection cut mid-file",
			hook: func(w http.ResponseWriter, r *http.Request, n int) bool {
				if r.URL.Path == cdn && n == 1 {
					cutAfter(w, weights.data, 123_456)
					return true
				}
				return false
			},
			wantRange: "bytes=123456-",
		},
		{
			name:      "part file from an interrupted run",
			partial:   100_000,
			wantRange: "bytes=100000-",
		},
		{
			name: "server ignores Range",
			hook: func(w http.ResponseWriter, r *http.Request, n int) bool {
				if r.URL.Path == cdn && n == 1 {
					cutAfter(w, weights.data, 5000)
					return true
				}
				if r.URL.Path == cdn {
					w.Header().Set("Content-Length", "300000")
					w.Write(weights.data)
					return true
				}
				return false
			},
			wantRange: "bytes=5000-",
		},
		{
			name: "server answers 416",
			hook: func(w http.ResponseWriter, r *http.Request, n int) bool {
				if r.URL.Path == cdn && r.Header.Get("Range") != "" {
					w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
					return true
				}
				return false
			},
			partial:   7,
			wantRange: "bytes=7-",
		},
		{
			name:    "complete part file",
			partial: 300_000,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHub(t)
			files := clipRepo(5)
			commit := h.add(testRepo, files...)
			h.hook = tt.hook
			c := newTestClient(t, h)
			if tt.partial > 0 {
				dir, _ := c.Dir(testRepo)
				os.MkdirAll(dir, 0o755)
				if err := os.WriteFile(filepath.Join(dir, "model.safetensors.part"), weights.data[:tt.partial], 0o644); err != nil {
					t.Fatal(err)
				}
			}
			dir, err := c.Pull(context.Background(), testRepo, "")
			if err != nil {
				t.Fatal(err)
			}
			checkDir(t, dir, commit, files, wantFiles)
			h.mu.Lock()
			rs := h.ranges[cdn]
			h.mu.Unlock()
			switch {
			case tt.wantRange == "" && len(rs) > 0:
				t.Errorf("CDN saw Range %v, want none", rs)
			case tt.wantRange != "" && (len(rs) == 0 || rs[len(rs)-1] != tt.wantRange):
				t.Errorf("CDN saw Range %v, want last %q", rs, tt.wantRange)
			}
		})
	}
}

func TestHashMismatch(t *testing.T) {
	for _, name := range []string{"model.safetensors", "config.json"} {
		t.Run(name, func(t *testing.T) {
			h := newFakeHub(t)
			files := clipRepo(6)
			var data []byte
			for i := range files {
				if files[i].name == name {
					files[i].wrongHash = true
					data = files[i].data
				}
			}
			h.add(testRepo, files...)
			c := newTestClient(t, h)
			dir, err := c.Pull(context.Background(), testRepo, "")
			var he *HashError
			if !errors.As(err, &he) {
				t.Fatalf("Pull = %q, %v; want a HashError", dir, err)
			}
			want, algo := sha256Hex(data), "sha256"
			if name == "config.json" {
				want, algo = gitSHA1Hex(data), "git-sha1"
			}
			msg := err.Error()
			if he.File != name || he.Got != want || he.Algo != algo || he.Expected != flip(want) ||
				!strings.Contains(msg, name) || !strings.Contains(msg, want) || !strings.Contains(msg, flip(want)) {
				t.Errorf("error %q (%+v) should name %s, expected %s and got %s (%s)", msg, he, name, flip(want), want, algo)
			}
			d, _ := c.Dir(testRepo)
			for _, p := range []string{name, name + ".part"} {
				if _, err := os.Stat(filepath.Join(d, p)); err == nil {
					t.Errorf("%s was left in the cache", p)
				}
			}
			if _, err := c.Resolve(testRepo); err == nil {
				t.Error("Resolve accepted an incomplete pull")
			}
		})
	}
}

func TestStatusErrors(t *testing.T) {
	h := newFakeHub(t)
	h.token = "hf_good"
	h.add(testRepo, clipRepo(7)...)
	h.add("acme/private-clip", clipRepo(8)...)
	h.repo("acme/private-clip").private = true
	h.add("acme/gated-clip", clipRepo(9)...)
	h.repo("acme/gated-clip").gated = true

	tests := []struct {
		repo, rev, token string
		is               error
		want             []string
	}{
		{repo: "acme/missing", is: ErrNotFound, want: []string{"404", "acme/missing"}},
		{repo: testRepo, rev: "v9", is: ErrNotFound, want: []string{"404", `revision "v9"`}},
		{repo: "acme/private-clip", is: ErrAuth, want: []string{"401", "HF_TOKEN", "private"}},
		{repo: "acme/private-clip", token: "hf_bad", is: ErrAuth, want: []string{"401", "HF_TOKEN", "not accepted"}},
		{repo: "acme/gated-clip", is: ErrAuth, want: []string{"403", "HF_TOKEN", "gated"}},
		{repo: "acme/private-clip", token: "hf_good"},
		{repo: "acme/gated-clip", token: "hf_good"},
	}
	for _, tt := range tests {
		c := newTestClient(t, h)
		c.Token = tt.token
		_, err := c.Pull(context.Background(), tt.repo, tt.rev)
		if tt.is == nil {
			if err != nil {
				t.Errorf("Pull(%s) with token %q: %v", tt.repo, tt.token, err)
			}
			continue
		}
		if !errors.Is(err, tt.is) {
			t.Errorf("Pull(%s, %q) = %v; want an error matching %v", tt.repo, tt.rev, err, tt.is)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Pull(%s, %q) error %q does not mention %q", tt.repo, tt.rev, err, w)
			}
		}
	}
	// A 404 is final: no retries.
	if n := h.count("/api/models/acme/missing/revision/main"); n != 1 {
		t.Errorf("404 was asked %d times, want 1", n)
	}
}

func TestOffline(t *testing.T) {
	h := newFakeHub(t)
	files := clipRepo(10)
	commit := h.add(testRepo, files...)
	c := newTestClient(t, h)
	var warnings []string
	c.Warn = func(m string) { warnings = append(warnings, m) }
	dir, err := c.Pull(context.Background(), testRepo, "")
	if err != nil {
		t.Fatal(err)
	}

	// The hub failing with 5xx beyond the retries.
	h.hook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.WriteHeader(http.StatusBadGateway)
		return true
	}
	got, err := c.Pull(context.Background(), "ViT-B-32", "")
	if err != nil || got != dir {
		t.Fatalf("Pull with the hub failing = %q, %v; want the cached %s", got, err, dir)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], commit) {
		t.Errorf("warnings = %q; want one naming the cached commit", warnings)
	}
	if n := h.count("/api/models/" + testRepo + "/revision/main"); n != 1+c.MaxAttempts {
		t.Errorf("model API asked %d times, want 1 + %d attempts", n, c.MaxAttempts)
	}

	// The hub gone altogether.
	h.srv.Close()
	warnings = nil
	got, err = c.Pull(context.Background(), testRepo, "")
	if err != nil || got != dir || len(warnings) != 1 {
		t.Fatalf("Pull with the hub down = %q, %v (warnings %q); want the cached %s and a warning", got, err, warnings, dir)
	}
	checkDir(t, dir, commit, files, wantFiles)
	// Another revision, or a model never pulled, is not served offline.
	if _, err := c.Pull(context.Background(), testRepo, "v2"); err == nil {
		t.Error("Pull of an uncached revision with the hub down succeeded")
	}
	if _, err := c.Pull(context.Background(), "ViT-L-14", ""); err == nil {
		t.Error("Pull of an uncached model with the hub down succeeded")
	}
	// Offline mode makes no request at all.
	c.Offline = true
	c.Endpoint = "http://offline.invalid"
	if got, err := c.Pull(context.Background(), testRepo, commit); err != nil || got != dir {
		t.Errorf("offline Pull by commit = %q, %v", got, err)
	}
	if _, err := c.Pull(context.Background(), "ViT-L-14", ""); err == nil || !strings.Contains(err.Error(), "offline") {
		t.Errorf("offline Pull of an uncached model: %v", err)
	}
	// A damaged cache is not used.
	os.Remove(filepath.Join(dir, "vocab.json"))
	if _, err := c.Pull(context.Background(), testRepo, ""); err == nil {
		t.Error("offline Pull used a cache missing a file")
	}
	if _, err := c.Resolve(testRepo); err == nil || !strings.Contains(err.Error(), "goclip pull "+testRepo) {
		t.Errorf("Resolve of a damaged cache: %v", err)
	}
}

func TestRetries(t *testing.T) {
	h := newFakeHub(t)
	files := clipRepo(11)
	commit := h.add(testRepo, files...)
	h.hook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		switch {
		case strings.HasPrefix(r.URL.Path, "/api/") && n <= 2:
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		case strings.HasSuffix(r.URL.Path, "/vocab.json") && n == 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		case strings.HasSuffix(r.URL.Path, "/merges.txt") && n == 1:
			// A connection reset before any answer.
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return true
		}
		return false
	}
	c := newTestClient(t, h)
	dir, err := c.Pull(context.Background(), testRepo, "")
	if err != nil {
		t.Fatal(err)
	}
	checkDir(t, dir, commit, files, wantFiles)

	// A failure that outlasts the attempts is reported, and bounded.
	h.hook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.WriteHeader(http.StatusInternalServerError)
		return true
	}
	c = newTestClient(t, h)
	_, err = c.Pull(context.Background(), testRepo, "")
	if err == nil || !strings.Contains(err.Error(), "gave up after 4 attempts") || !strings.Contains(err.Error(), "500") {
		t.Errorf("Pull against a failing hub: %v", err)
	}
}

func TestSelectFiles(t *testing.T) {
	sib := func(names ...string) []Sibling {
		var out []Sibling
		for _, n := range names {
			size := int64(10)
			s := Sibling{RFilename: n, Size: &size, BlobID: strings.Repeat("a", 40)}
			if looksLikeWeights(n) {
				s.LFS = &LFSInfo{SHA256: strings.Repeat("b", 64), Size: 10}
			}
			out = append(out, s)
		}
		return out
	}
	tests := []struct {
		files []string
		want  string // chosen weights; "" for ErrNoWeights
	}{
		{[]string{"open_clip_model.safetensors", "model.safetensors", "open_clip_pytorch_model.bin", "pytorch_model.bin"}, "open_clip_model.safetensors"},
		{[]string{"pytorch_model.bin", "open_clip_pytorch_model.bin", "model.safetensors"}, "model.safetensors"},
		{[]string{"pytorch_model.bin", "open_clip_pytorch_model.bin", "tf_model.h5"}, "open_clip_pytorch_model.bin"},
		{[]string{"tf_model.h5", "pytorch_model.bin", "flax_model.msgpack", "rust_model.ot"}, "pytorch_model.bin"},
		{[]string{"onnx/model.safetensors", "pytorch_model.bin"}, "pytorch_model.bin"},
		{[]string{"tf_model.h5", "flax_model.msgpack", "onnx/model.onnx", "rust_model.ot"}, ""},
		{[]string{"tokenizer.json"}, ""},
	}
	for _, tt := range tests {
		files := append([]string{"config.json", "merges.txt", "vocab.json", "README.md"}, tt.files...)
		got, err := SelectFiles(sib(files...))
		if tt.want == "" {
			if !errors.Is(err, ErrNoWeights) {
				t.Errorf("SelectFiles(%v) = %v, %v; want ErrNoWeights", tt.files, got, err)
			} else if strings.Contains(strings.Join(tt.files, ","), "tf_model.h5") && !strings.Contains(err.Error(), "tf_model.h5") {
				t.Errorf("no-weights error %q does not list the weights the repo has", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("SelectFiles(%v): %v", tt.files, err)
			continue
		}
		var weights []string
		for _, f := range got {
			if looksLikeWeights(f.Name) {
				weights = append(weights, f.Name)
			}
		}
		if len(weights) != 1 || weights[0] != tt.want {
			t.Errorf("SelectFiles(%v) chose weights %v, want [%s]", tt.files, weights, tt.want)
		}
		if len(got) != 4 {
			t.Errorf("SelectFiles(%v) chose %d files, want config, merges, vocab and weights", tt.files, len(got))
		}
	}
}

func TestPullNoWeights(t *testing.T) {
	h := newFakeHub(t)
	var files []fakeFile
	for _, f := range clipRepo(12) {
		if f.name != "model.safetensors" && f.name != "pytorch_model.bin" {
			files = append(files, f)
		}
	}
	h.add("acme/tf-only", files...)
	c := newTestClient(t, h)
	_, err := c.Pull(context.Background(), "acme/tf-only", "")
	if !errors.Is(err, ErrNoWeights) || !strings.Contains(err.Error(), "acme/tf-only") || !strings.Contains(err.Error(), "tf_model.h5") {
		t.Errorf("Pull of a TF-only repo: %v", err)
	}
	if h.downloads() != 0 {
		t.Errorf("%d downloads for a repo without usable weights", h.downloads())
	}
}

func TestConcurrentPulls(t *testing.T) {
	h := newFakeHub(t)
	files := clipRepo(13)
	commit := h.add(testRepo, files...)
	c := newTestClient(t, h)
	const n = 4
	dirs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Separate clients, as separate processes would have.
			ci := *c
			dirs[i], errs[i] = ci.Pull(context.Background(), testRepo, "")
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || dirs[i] != dirs[0] {
			t.Fatalf("pull %d = %q, %v", i, dirs[i], errs[i])
		}
	}
	checkDir(t, dirs[0], commit, files, wantFiles)
	// The LFS weights take two requests (redirect, CDN); every other file one.
	if d, want := h.downloads(), len(wantFiles)+1; d != want {
		t.Errorf("%d concurrent pulls made %d download requests, want %d (each file once)", n, d, want)
	}
}

func TestResolveMissing(t *testing.T) {
	c := &Client{CacheDir: t.TempDir()}
	_, err := c.Resolve("ViT-L-14")
	if err == nil || !strings.Contains(err.Error(), "goclip pull ViT-L-14") {
		t.Errorf("Resolve of an uncached alias: %v", err)
	}
	if _, err := c.Resolve("no such thing"); err == nil {
		t.Error("Resolve of a bad name succeeded")
	}
	list, err := c.List()
	if err != nil || len(list) != 0 {
		t.Errorf("List of an empty cache = %v, %v", list, err)
	}
	c.CacheDir = filepath.Join(c.CacheDir, "absent")
	if list, err := c.List(); err != nil || len(list) != 0 {
		t.Errorf("List of a missing cache = %v, %v", list, err)
	}
}

func TestContentRangeAndRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"bytes 100-199/200", 100, true},
		{"bytes 0-0/1", 0, true},
		{"bytes */200", 0, false},
		{"items 1-2/3", 0, false},
		{"bytes -5-9/10", 0, false},
		{"", 0, false},
	} {
		got, ok := contentRangeStart(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("contentRangeStart(%q) = %d, %v", tt.in, got, ok)
		}
	}
	now := mustTime(t, "Mon, 02 Jan 2006 15:04:05 GMT")
	for _, tt := range []struct {
		in   string
		want string
	}{
		{"3", "3s"}, {"0", "0s"}, {"-1", "0s"}, {"100000", "1m0s"}, {"soon", "0s"},
		{"Mon, 02 Jan 2006 15:04:15 GMT", "10s"}, {"Mon, 02 Jan 2006 15:00:00 GMT", "0s"},
	} {
		if got := parseRetryAfter(tt.in, now).String(); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
