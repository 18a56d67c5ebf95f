// Package hub downloads CLIP checkpoints from the Hugging Face hub into a
// local cache, and finds models already in that cache.
//
// A pulled model lives in <CacheDir>/<org>/<name>/ with its files stored
// directly in that directory (config, tokenizer files and one weights file),
// so the directory can be handed to clip.Load. A manifest, .goclip-pull.json,
// records the repository, the commit and every file's size and hash; it lets
// a second Pull skip files it already has, and lets Resolve and List work
// without the network.
//
// Downloads follow the hub's redirects (LFS files are served from a CDN),
// resume from a partial <file>.part with an HTTP Range request, are verified
// against the SHA-256 the hub records for LFS files or the git blob SHA-1 for
// small files, and are renamed into place only once verified.
package hub

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

const (
	// DefaultEndpoint is the hub used when neither Client.Endpoint nor
	// $HF_ENDPOINT is set.
	DefaultEndpoint = "https://huggingface.co"
	// DefaultRevision is the branch pulled when no revision is given.
	DefaultRevision = "main"
	// ManifestName is the file, inside a model's cache directory, that
	// records what was pulled.
	ManifestName = ".goclip-pull.json"

	defaultMaxAttempts  = 5
	defaultRetryBackoff = time.Second
	maxBackoff          = 30 * time.Second
	maxRetryAfter       = 60 * time.Second
)

// Aliases maps the short model names accepted by Pull and Resolve to the hub
// repositories they stand for.
var Aliases = map[string]string{
	"ViT-B-32": "openai/clip-vit-base-patch32",
	"ViT-B-16": "openai/clip-vit-base-patch16",
	"ViT-L-14": "openai/clip-vit-large-patch14",
	// Chinese-CLIP (OFA-Sys), Hugging Face ChineseCLIPModel layout.
	"CN-ViT-B-16":     "OFA-Sys/chinese-clip-vit-base-patch16",
	"CN-ViT-L-14":     "OFA-Sys/chinese-clip-vit-large-patch14",
	"CN-ViT-L-14-336": "OFA-Sys/chinese-clip-vit-large-patch14-336px",
	"CN-ViT-H-14":     "OFA-Sys/chinese-clip-vit-huge-patch14",
}

// Client pulls models from a Hugging Face hub endpoint into a local cache.
// The zero value is usable; NewClient fills the fields from the environment.
type Client struct {
	// Endpoint is the hub's base URL; empty means $HF_ENDPOINT, else
	// DefaultEndpoint.
	Endpoint string
	// Token, when set, is sent as "Authorization: Bearer <Token>" to the
	// endpoint (NewClient reads $HF_TOKEN). Needed for gated or private
	// repositories.
	Token string
	// HTTP is the client used for every request; nil means a client with
	// a response-header timeout and no overall timeout.
	HTTP *http.Client
	// CacheDir is the root of the model cache; empty means $GOCLIP_CACHE,
	// else os.UserCacheDir()/goclip/models.
	CacheDir string
	// Progress, when set, is called as a file downloads with the bytes
	// written so far and the file's full size.
	Progress func(file string, done, total int64)
	// Warn, when set, receives notices that do not stop a Pull, such as
	// the use of a cached copy while the hub is unreachable. Nil logs them
	// with the standard log package.
	Warn func(msg string)
	// Offline makes Pull use only the cache, without any network request
	// (NewClient sets it from $HF_HUB_OFFLINE=1).
	Offline bool
	// Verify makes Pull re-hash cached files instead of trusting the
	// sizes and hashes recorded in the manifest.
	Verify bool
	// MaxAttempts bounds the tries of each request on transient errors
	// (connection errors, 5xx, 429); 0 means 5.
	MaxAttempts int
	// RetryBackoff is the wait before the first retry, doubled for each
	// later one up to 30s; 0 means 1s. A 429 or 503 response's Retry-After
	// takes precedence (capped at 60s).
	RetryBackoff time.Duration
}

// NewClient returns a Client configured from the environment: $HF_ENDPOINT,
// $HF_TOKEN, $GOCLIP_CACHE and $HF_HUB_OFFLINE.
func NewClient() *Client {
	c := &Client{
		Endpoint: strings.TrimRight(os.Getenv("HF_ENDPOINT"), "/"),
		Token:    strings.TrimSpace(os.Getenv("HF_TOKEN")),
	}
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	switch strings.ToLower(os.Getenv("HF_HUB_OFFLINE")) {
	case "1", "true", "yes", "on":
		c.Offline = true
	}
	c.CacheDir, _ = defaultCacheDir()
	return c
}

func defaultCacheDir() (string, error) {
	if d := os.Getenv("GOCLIP_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("hub: no cache directory (set GOCLIP_CACHE): %v", err)
	}
	return filepath.Join(d, "goclip", "models"), nil
}

func (c *Client) endpoint() string {
	e := c.Endpoint
	if e == "" {
		e = os.Getenv("HF_ENDPOINT")
	}
	if e == "" {
		e = DefaultEndpoint
	}
	return strings.TrimRight(e, "/")
}

func (c *Client) cacheRoot() (string, error) {
	if c.CacheDir != "" {
		return c.CacheDir, nil
	}
	return defaultCacheDir()
}

var defaultHTTP = &http.Client{Transport: func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 60 * time.Second
	return t
}()}

// httpClient returns c.HTTP (or the default) with a redirect policy that
// drops the Authorization header when a redirect leaves the endpoint's host:
// the hub sends LFS files to a CDN with signed URLs, which must not receive
// the token (and some signed-URL stores reject a second credential).
func (c *Client) httpClient() *http.Client {
	base := c.HTTP
	if base == nil {
		base = defaultHTTP
	}
	hc := *base
	orig := base.CheckRedirect
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if orig != nil {
			if err := orig(req, via); err != nil {
				return err
			}
		} else if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if req.URL.Host != via[0].URL.Host {
			req.Header.Del("Authorization")
		}
		return nil
	}
	return &hc
}

// AliasOf returns the alias of a repository id, or "" when it has none.
func AliasOf(repo string) string {
	for a, r := range Aliases {
		if r == repo {
			return a
		}
	}
	return ""
}

func (c *Client) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if c.Warn != nil {
		c.Warn(msg)
		return
	}
	log.Print(msg)
}

// CanonicalRepo turns a model name into a hub repository id: an alias from
// Aliases (matched exactly, then ignoring case), an "org/name" id, or either
// of those after an "hf-hub:" prefix as open_clip writes them. It rejects
// ids that are not valid hub ids, which also keeps them safe to use as
// cache paths.
func CanonicalRepo(name string) (string, error) {
	s := strings.TrimSpace(name)
	s = strings.TrimPrefix(s, "hf-hub:")
	if r, ok := Aliases[s]; ok {
		return r, nil
	}
	for a, r := range Aliases {
		if strings.EqualFold(a, s) {
			return r, nil
		}
	}
	if err := validRepoID(s); err != nil {
		return "", fmt.Errorf("hub: %q is not a model alias (%s) or a hub repository id: %v", name, aliasList(), err)
	}
	return s, nil
}

func aliasList() string {
	names := make([]string, 0, len(Aliases))
	for a := range Aliases {
		names = append(names, a)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// validRepoID checks the hub's rules for "org/name": two parts of 1 to 96
// ASCII letters, digits, '-', '_' or '.', each starting and ending with a
// letter, digit or '_', without "--" or "..".
func validRepoID(s string) error {
	parts := strings.Split(s, "/")
	if len(parts) != 2 {
		return errors.New(`want the form "org/name"`)
	}
	for _, p := range parts {
		if len(p) == 0 || len(p) > 96 {
			return fmt.Errorf("part %q must be 1 to 96 characters", p)
		}
		for i := 0; i < len(p); i++ {
			ch := p[i]
			if !(isWord(ch) || ch == '-' || ch == '.') {
				return fmt.Errorf("part %q has the character %q", p, ch)
			}
		}
		if !isWord(p[0]) || !isWord(p[len(p)-1]) {
			return fmt.Errorf("part %q must start and end with a letter, digit or '_'", p)
		}
		if strings.Contains(p, "--") || strings.Contains(p, "..") {
			return fmt.Errorf(`part %q must not contain "--" or ".."`, p)
		}
	}
	return nil
}

func isWord(ch byte) bool {
	return ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_'
}

// repoDir is the cache directory of a valid repository id.
func repoDir(root, repo string) string {
	org, name, _ := strings.Cut(repo, "/")
	return filepath.Join(root, org, name)
}

// Dir returns the cache directory that Pull uses for a model name, whether or
// not the model has been pulled.
func (c *Client) Dir(name string) (string, error) {
	repo, err := CanonicalRepo(name)
	if err != nil {
		return "", err
	}
	root, err := c.cacheRoot()
	if err != nil {
		return "", err
	}
	return repoDir(root, repo), nil
}

// Pull makes sure the cache holds the CLIP files of the hub repository name
// (a repo id or an alias) at revision (empty means "main"), downloading only
// what is missing or changed, and returns the model's cache directory.
//
// When the hub cannot be reached (a network error, or a 5xx/429 that
// outlasts the retries) and the cache holds a complete copy pulled at the
// same revision, Pull returns that copy and reports a notice through Warn.
func (c *Client) Pull(ctx context.Context, name, revision string) (string, error) {
	repo, err := CanonicalRepo(name)
	if err != nil {
		return "", err
	}
	if revision == "" {
		revision = DefaultRevision
	}
	root, err := c.cacheRoot()
	if err != nil {
		return "", err
	}
	dir := repoDir(root, repo)

	if c.Offline {
		if m := completeCache(dir, repo, revision); m != nil {
			return dir, nil
		}
		return "", fmt.Errorf("hub: offline mode (HF_HUB_OFFLINE) and %s at revision %q is not fully cached in %s", repo, revision, dir)
	}

	info, err := c.modelInfo(ctx, repo, revision)
	if err != nil {
		if ctx.Err() == nil && hubUnreachable(err) {
			if m := completeCache(dir, repo, revision); m != nil {
				c.warn("hub: cannot reach %s (%v); using the cached %s at commit %s from %s",
					c.endpoint(), err, repo, m.Commit, dir)
				return dir, nil
			}
		}
		return "", err
	}
	files, err := SelectFiles(info.Siblings)
	if err != nil {
		return "", fmt.Errorf("hub: %s at commit %s: %w", repo, info.SHA, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("hub: creating cache directory: %w", err)
	}
	unlock, err := lockDir(ctx, dir, func(msg string) { c.warn("%s", msg) })
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := c.sync(ctx, dir, repo, revision, info.SHA, files); err != nil {
		return "", err
	}
	return dir, nil
}
