package hub

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeFile is a file of a fake repository.
type fakeFile struct {
	name string
	data []byte
	lfs  bool
	// wrongHash makes the API list a hash that does not match data.
	wrongHash bool
}

// fakeRepo is a repository of the fake hub.
type fakeRepo struct {
	commits map[string]string // revision -> commit
	files   map[string][]fakeFile
	private bool // 401 without the token
	gated   bool // 403 without the token
}

// fakeHub mimics the hub's model API, its /resolve/ file URLs (LFS files
// are redirected to /cdn/), Range requests and the hub's error headers, and
// lets a test inject faults.
type fakeHub struct {
	srv   *httptest.Server
	cdn   *httptest.Server // another host, as the hub's LFS CDN is
	token string

	mu      sync.Mutex
	repos   map[string]*fakeRepo
	counts  map[string]int      // request path -> requests
	ranges  map[string][]string // request path -> Range headers seen
	auth    []string            // Authorization headers seen on /api and /resolve
	cdnAuth []string            // Authorization headers seen on /cdn
	// hook, when set, sees every request first, with the number of
	// requests so far to its path (1 for the first); it returns true when
	// it has answered.
	hook func(w http.ResponseWriter, r *http.Request, n int) bool
}

func newFakeHub(t *testing.T) *fakeHub {
	t.Helper()
	h := &fakeHub{repos: map[string]*fakeRepo{}, counts: map[string]int{}, ranges: map[string][]string{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	h.cdn = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.cdn.Close)
	return h
}

// add publishes files as the single commit of repo, reachable from "main".
func (h *fakeHub) add(repo string, files ...fakeFile) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.repos[repo]
	if r == nil {
		r = &fakeRepo{commits: map[string]string{}, files: map[string][]fakeFile{}}
		h.repos[repo] = r
	}
	sum := sha1.Sum([]byte(fmt.Sprint(repo, len(r.files), time.Now().UnixNano())))
	commit := hex.EncodeToString(sum[:])
	r.commits["main"] = commit
	r.files[commit] = files
	return commit
}

func (h *fakeHub) repo(name string) *fakeRepo {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.repos[name]
}

func (h *fakeHub) count(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[path]
}

// downloads counts the requests to /resolve/ and /cdn/ paths.
func (h *fakeHub) downloads() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for p, c := range h.counts {
		if strings.Contains(p, "/resolve/") || strings.HasPrefix(p, "/cdn/") {
			n += c
		}
	}
	return n
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func gitSHA1Hex(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func flip(hexs string) string {
	b := []byte(hexs)
	if b[0] == '0' {
		b[0] = '1'
	} else {
		b[0] = '0'
	}
	return string(b)
}

// siblingJSON is the hub's sibling shape with ?blobs=true.
type siblingJSON struct {
	RFilename string         `json:"rfilename"`
	BlobID    string         `json:"blobId"`
	Size      int64          `json:"size"`
	LFS       map[string]any `json:"lfs,omitempty"`
}

func (h *fakeHub) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.counts[r.URL.Path]++
	n := h.counts[r.URL.Path]
	if rg := r.Header.Get("Range"); rg != "" {
		h.ranges[r.URL.Path] = append(h.ranges[r.URL.Path], rg)
	}
	if strings.HasPrefix(r.URL.Path, "/cdn/") {
		h.cdnAuth = append(h.cdnAuth, r.Header.Get("Authorization"))
	} else {
		h.auth = append(h.auth, r.Header.Get("Authorization"))
	}
	hook := h.hook
	h.mu.Unlock()
	if hook != nil && hook(w, r, n) {
		return
	}
	authed := h.token != "" && r.Header.Get("Authorization") == "Bearer "+h.token

	switch {
	case strings.HasPrefix(r.URL.Path, "/api/models/"):
		// /api/models/{org}/{name}/revision/{rev}
		rest := strings.TrimPrefix(r.URL.Path, "/api/models/")
		parts := strings.SplitN(rest, "/", 4)
		if len(parts) != 4 || parts[2] != "revision" {
			http.NotFound(w, r)
			return
		}
		repoID := parts[0] + "/" + parts[1]
		repo := h.repo(repoID)
		if !h.access(w, repo, authed) {
			return
		}
		commit, ok := repo.commits[parts[3]]
		if !ok {
			if _, isCommit := repo.files[parts[3]]; isCommit {
				commit = parts[3]
			} else {
				hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+parts[3])
				return
			}
		}
		info := map[string]any{"_id": "0123", "id": repoID, "modelId": repoID, "sha": commit, "private": repo.private}
		var sibs []siblingJSON
		for _, f := range repo.files[commit] {
			s := siblingJSON{RFilename: f.name, Size: int64(len(f.data))}
			if f.lfs {
				sum := sha256Hex(f.data)
				if f.wrongHash {
					sum = flip(sum)
				}
				pointer := fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", sum, len(f.data))
				s.BlobID = gitSHA1Hex([]byte(pointer))
				s.LFS = map[string]any{"sha256": sum, "size": len(f.data), "pointerSize": len(pointer)}
			} else {
				s.BlobID = gitSHA1Hex(f.data)
				if f.wrongHash {
					s.BlobID = flip(s.BlobID)
				}
			}
			sibs = append(sibs, s)
		}
		if r.URL.Query().Get("blobs") == "true" {
			info["siblings"] = sibs
		} else {
			plain := make([]map[string]string, len(sibs))
			for i, s := range sibs {
				plain[i] = map[string]string{"rfilename": s.RFilename}
			}
			info["siblings"] = plain
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(info)

	case strings.Contains(r.URL.Path, "/resolve/"):
		// /{org}/{name}/resolve/{commit}/{file}
		parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 5)
		if len(parts) != 5 || parts[2] != "resolve" {
			http.NotFound(w, r)
			return
		}
		repo := h.repo(parts[0] + "/" + parts[1])
		if !h.access(w, repo, authed) {
			return
		}
		files, ok := repo.files[parts[3]]
		if !ok {
			hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+parts[3])
			return
		}
		for _, f := range files {
			if f.name != parts[4] {
				continue
			}
			w.Header().Set("X-Repo-Commit", parts[3])
			if f.lfs {
				// As the hub does: a signed CDN URL.
				http.Redirect(w, r, h.cdn.URL+"/cdn/"+sha256Hex(f.data)+"?X-Amz-Signature=secret", http.StatusFound)
				return
			}
			w.Header().Set("ETag", `"`+gitSHA1Hex(f.data)+`"`)
			http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.data))
			return
		}
		hubError(w, http.StatusNotFound, "EntryNotFound", parts[4]+" does not exist on \""+parts[3]+"\"")

	case strings.HasPrefix(r.URL.Path, "/cdn/"):
		data := h.blob(strings.TrimPrefix(r.URL.Path, "/cdn/"))
		if data == nil {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(data))

	default:
		http.NotFound(w, r)
	}
}

// access answers the hub's errors for missing, private and gated repos.
func (h *fakeHub) access(w http.ResponseWriter, repo *fakeRepo, authed bool) bool {
	switch {
	case repo == nil:
		hubError(w, http.StatusNotFound, "RepoNotFound", "Repository not found")
		return false
	case repo.private && !authed:
		hubError(w, http.StatusUnauthorized, "RepoNotFound", "Invalid username or password.")
		return false
	case repo.gated && !authed:
		hubError(w, http.StatusForbidden, "GatedRepo", "Access to model is restricted.")
		return false
	}
	return true
}

func (h *fakeHub) blob(sum string) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.repos {
		for _, files := range r.files {
			for _, f := range files {
				if f.lfs && sha256Hex(f.data) == sum {
					return f.data
				}
			}
		}
	}
	return nil
}

func hubError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("X-Error-Code", code)
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// cutAfter answers with the full Content-Length but sends only n bytes of
// data before dropping the connection.
func cutAfter(w http.ResponseWriter, data []byte, n int) {
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.WriteHeader(http.StatusOK)
	w.Write(data[:n])
	w.(http.Flusher).Flush()
	panic(http.ErrAbortHandler)
}

// content returns n pseudo-random bytes, the same for the same seed.
func content(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// clipRepo is a typical HF-format CLIP repository: configs, tokenizer
// files, two weight formats and files Pull must skip.
func clipRepo(seed uint64) []fakeFile {
	return []fakeFile{
		{name: ".gitattributes", data: []byte("*.bin filter=lfs diff=lfs merge=lfs -text\n")},
		{name: "README.md", data: []byte("# test model\n")},
		{name: "config.json", data: []byte(`{"model_type": "clip", "seed": ` + fmt.Sprint(seed) + `}`)},
		{name: "preprocessor_config.json", data: []byte(`{"crop_size": 224}`)},
		{name: "tokenizer.json", data: content(seed+1, 3000)},
		{name: "vocab.json", data: content(seed+2, 2000)},
		{name: "merges.txt", data: content(seed+3, 1500)},
		{name: "special_tokens_map.json", data: []byte(`{}`)},
		{name: "model.safetensors", data: content(seed+4, 300_000), lfs: true},
		{name: "pytorch_model.bin", data: content(seed+5, 200_000), lfs: true},
		{name: "tf_model.h5", data: content(seed+6, 1000), lfs: true},
		{name: "flax_model.msgpack", data: content(seed+7, 1000), lfs: true},
	}
}

func newTestClient(t *testing.T, h *fakeHub) *Client {
	t.Helper()
	return &Client{
		Endpoint:     h.srv.URL,
		HTTP:         h.srv.Client(),
		CacheDir:     t.TempDir(),
		MaxAttempts:  4,
		RetryBackoff: time.Millisecond,
		Warn:         func(msg string) { t.Log("warning:", msg) },
	}
}
