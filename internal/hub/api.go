package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// ModelInfo is the part of the hub's model API response
// (GET /api/models/{repo}/revision/{revision}?blobs=true) that Pull uses.
type ModelInfo struct {
	ID       string    `json:"id"`
	SHA      string    `json:"sha"` // the commit the revision resolved to
	Siblings []Sibling `json:"siblings"`
}

// Sibling is one file of a repository as the model API lists it.
type Sibling struct {
	RFilename string   `json:"rfilename"` // path inside the repository
	Size      *int64   `json:"size"`      // file size (the real size for LFS files); needs ?blobs=true
	BlobID    string   `json:"blobId"`    // git blob SHA-1 (of the LFS pointer for LFS files)
	LFS       *LFSInfo `json:"lfs"`       // present only for files stored with git LFS
}

// LFSInfo describes an LFS-stored file.
type LFSInfo struct {
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	PointerSize int64  `json:"pointerSize"`
}

// maxInfoBytes bounds the model API response read into memory.
const maxInfoBytes = 64 << 20

// ParseModelInfo decodes and checks a model API response. It requires the
// commit sha (40 or 64 hex digits) and well-formed siblings; the per-file
// hashes are checked by SelectFiles, for the files it picks.
func ParseModelInfo(data []byte) (*ModelInfo, error) {
	var info ModelInfo
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&info); err != nil {
		return nil, fmt.Errorf("hub: decoding model info: %w", err)
	}
	if !isHex(info.SHA) || (len(info.SHA) != 40 && len(info.SHA) != 64) {
		return nil, fmt.Errorf("hub: model info has no valid commit sha (got %q)", truncate(info.SHA))
	}
	info.SHA = strings.ToLower(info.SHA)
	for i, s := range info.Siblings {
		if s.RFilename == "" || strings.ContainsRune(s.RFilename, 0) {
			return nil, fmt.Errorf("hub: model info sibling %d has an invalid file name %q", i, truncate(s.RFilename))
		}
		if s.Size != nil && *s.Size < 0 {
			return nil, fmt.Errorf("hub: model info gives %s a negative size %d", s.RFilename, *s.Size)
		}
		if s.LFS != nil && s.LFS.Size < 0 {
			return nil, fmt.Errorf("hub: model info gives %s a negative LFS size %d", s.RFilename, s.LFS.Size)
		}
	}
	return &info, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F') {
			return false
		}
	}
	return true
}

// ConfigFiles are the non-weight files Pull fetches when a repository has
// them: model and preprocessing configs and every tokenizer format in use by
// CLIP checkpoints.
var ConfigFiles = []string{
	"config.json",
	"preprocessor_config.json",
	"open_clip_config.json",
	"vocab.json",
	"merges.txt",
	"tokenizer.json",
	"tokenizer_config.json",
	"special_tokens_map.json",
	"vocab.txt",
	"bpe_simple_vocab_16e6.txt.gz",
}

// WeightFiles lists the weight files Pull accepts, most preferred first; it
// fetches only the first one the repository has.
var WeightFiles = []string{
	"open_clip_model.safetensors",
	"model.safetensors",
	"open_clip_pytorch_model.bin",
	"pytorch_model.bin",
}

// File is a repository file chosen for download, with what verifies it.
type File struct {
	Name    string
	Size    int64
	SHA256  string // LFS files: SHA-256 of the content
	GitSHA1 string // other files: git blob SHA-1 of the content
}

// LFS reports whether the file is verified by SHA-256 (an LFS file).
func (f File) LFS() bool { return f.SHA256 != "" }

// Hash is the file's expected hash, prefixed by its kind.
func (f File) Hash() string {
	if f.LFS() {
		return "sha256:" + f.SHA256
	}
	return "gitsha1:" + f.GitSHA1
}

// ErrNoWeights reports a repository without any weights file goclip reads.
var ErrNoWeights = errors.New("no usable weights file")

// SelectFiles picks the files a CLIP model needs from a repository's
// listing: the ConfigFiles present at its root and the most preferred of
// WeightFiles. It fails with ErrNoWeights when no weights file is present,
// and when a chosen file lacks the size or hash that verifies it.
func SelectFiles(siblings []Sibling) ([]File, error) {
	byName := make(map[string]Sibling, len(siblings))
	for _, s := range siblings {
		if _, dup := byName[s.RFilename]; dup {
			if isWanted(s.RFilename) {
				return nil, fmt.Errorf("file %s is listed twice", s.RFilename)
			}
			continue
		}
		byName[s.RFilename] = s
	}
	var out []File
	for _, name := range ConfigFiles {
		if s, ok := byName[name]; ok {
			f, err := toFile(s)
			if err != nil {
				return nil, err
			}
			out = append(out, f)
		}
	}
	for _, name := range WeightFiles {
		if s, ok := byName[name]; ok {
			f, err := toFile(s)
			if err != nil {
				return nil, err
			}
			return append(out, f), nil
		}
	}
	var others []string
	for _, s := range siblings {
		if looksLikeWeights(s.RFilename) {
			others = append(others, s.RFilename)
		}
	}
	msg := fmt.Sprintf("%v: want one of %s", ErrNoWeights, strings.Join(WeightFiles, ", "))
	if len(others) > 0 {
		msg += "; the repository has only " + strings.Join(others, ", ")
	}
	return nil, fmt.Errorf("%w", &noWeightsError{msg})
}

type noWeightsError struct{ msg string }

func (e *noWeightsError) Error() string        { return e.msg }
func (e *noWeightsError) Is(target error) bool { return target == ErrNoWeights }

func isWanted(name string) bool {
	for _, n := range ConfigFiles {
		if n == name {
			return true
		}
	}
	for _, n := range WeightFiles {
		if n == name {
			return true
		}
	}
	return false
}

func looksLikeWeights(name string) bool {
	for _, ext := range []string{".safetensors", ".bin", ".h5", ".msgpack", ".onnx", ".ot", ".pt", ".pth", ".ckpt", ".gguf"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

func toFile(s Sibling) (File, error) {
	f := File{Name: s.RFilename}
	if s.LFS != nil {
		f.SHA256 = strings.ToLower(s.LFS.SHA256)
		if !isHex(f.SHA256) || len(f.SHA256) != 64 {
			return File{}, fmt.Errorf("file %s: the hub lists no valid LFS sha256 (got %q)", s.RFilename, truncate(s.LFS.SHA256))
		}
		f.Size = s.LFS.Size
		if s.Size != nil && *s.Size != s.LFS.Size {
			return File{}, fmt.Errorf("file %s: the hub lists size %d but LFS size %d", s.RFilename, *s.Size, s.LFS.Size)
		}
		return f, nil
	}
	f.GitSHA1 = strings.ToLower(s.BlobID)
	if !isHex(f.GitSHA1) || len(f.GitSHA1) != 40 {
		return File{}, fmt.Errorf("file %s: the hub lists no valid blobId (got %q)", s.RFilename, truncate(s.BlobID))
	}
	if s.Size == nil {
		return File{}, fmt.Errorf("file %s: the hub lists no size", s.RFilename)
	}
	f.Size = *s.Size
	return f, nil
}

// modelInfo fetches and parses the model API response for repo at revision.
func (c *Client) modelInfo(ctx context.Context, repo, revision string) (*ModelInfo, error) {
	u := c.endpoint() + "/api/models/" + repo + "/revision/" + url.PathEscape(revision) + "?blobs=true"
	var info *ModelInfo
	err := c.retry(ctx, func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		c.setHeaders(req)
		resp, err := c.httpClient().Do(req)
		if err != nil {
			return netErr(ctx, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return newStatusError(resp, repo, revision, "", c.Token != "")
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxInfoBytes+1))
		if err != nil {
			return netErr(ctx, err)
		}
		if len(data) > maxInfoBytes {
			return fmt.Errorf("hub: model info for %s is larger than %d bytes", repo, maxInfoBytes)
		}
		info, err = ParseModelInfo(data)
		if err != nil {
			return fmt.Errorf("%w (from %s)", err, redact(u))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return info, nil
}

func (c *Client) setHeaders(req *http.Request) {
	req.Header.Set("User-Agent", "goclip-hub/1")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
}
