package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Manifest is the content of a model directory's .goclip-pull.json.
type Manifest struct {
	Repo     string         `json:"repo"`
	Revision string         `json:"revision"`
	Commit   string         `json:"commit"`
	Endpoint string         `json:"endpoint,omitempty"`
	Complete bool           `json:"complete"` // false while a pull is in progress or was interrupted
	PulledAt time.Time      `json:"pulled_at"`
	Files    []ManifestFile `json:"files"`
}

// ManifestFile records one pulled file.
type ManifestFile struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256,omitempty"`   // LFS files
	GitSHA1 string `json:"git_sha1,omitempty"` // other files
}

const maxManifestBytes = 1 << 20

// ParseManifest decodes and checks a manifest: a valid repository id, and
// file entries whose names are files goclip pulls (so they are safe to
// join to the directory) with a size and one hash each.
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if len(data) > maxManifestBytes {
		return nil, fmt.Errorf("hub: manifest is larger than %d bytes", maxManifestBytes)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("hub: decoding manifest: %w", err)
	}
	if err := validRepoID(m.Repo); err != nil {
		return nil, fmt.Errorf("hub: manifest names an invalid repository %q: %v", truncate(m.Repo), err)
	}
	seen := map[string]bool{}
	for _, f := range m.Files {
		switch {
		case !isWanted(f.Name):
			return nil, fmt.Errorf("hub: manifest lists an unexpected file %q", truncate(f.Name))
		case seen[f.Name]:
			return nil, fmt.Errorf("hub: manifest lists %s twice", f.Name)
		case f.Size < 0:
			return nil, fmt.Errorf("hub: manifest gives %s a negative size", f.Name)
		case (f.SHA256 == "") == (f.GitSHA1 == ""):
			return nil, fmt.Errorf("hub: manifest entry %s needs exactly one of sha256 and git_sha1", f.Name)
		}
		seen[f.Name] = true
	}
	return &m, nil
}

// ReadManifest reads the manifest of the model directory dir.
func ReadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, filepath.Join(dir, ManifestName))
	}
	return m, nil
}

func writeManifest(dir string, m *Manifest) error {
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Name < m.Files[j].Name })
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ManifestName+".tmp*")
	if err != nil {
		return fmt.Errorf("hub: writing manifest: %w", err)
	}
	_, err = tmp.Write(append(data, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, ManifestName))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("hub: writing manifest: %w", err)
	}
	return nil
}

func entryFor(f File) ManifestFile {
	return ManifestFile{Name: f.Name, Size: f.Size, SHA256: f.SHA256, GitSHA1: f.GitSHA1}
}

func (e ManifestFile) hash() string {
	if e.SHA256 != "" {
		return "sha256:" + e.SHA256
	}
	return "gitsha1:" + e.GitSHA1
}

// intact reports whether every file m lists is in dir with its recorded
// size.
func intact(dir string, m *Manifest) bool {
	for _, f := range m.Files {
		st, err := os.Stat(filepath.Join(dir, f.Name))
		if err != nil || !st.Mode().IsRegular() || st.Size() != f.Size {
			return false
		}
	}
	return true
}

// completeCache returns the manifest of dir when it holds a complete pull
// of repo at revision (a branch or tag name as pulled, or the commit).
func completeCache(dir, repo, revision string) *Manifest {
	m, err := ReadManifest(dir)
	if err != nil || !m.Complete || m.Repo != repo || len(m.Files) == 0 {
		return nil
	}
	if revision != m.Revision && revision != m.Commit {
		return nil
	}
	if !intact(dir, m) {
		return nil
	}
	return m
}

// sync brings dir to hold files of repo at commit; the caller holds the
// directory's lock.
func (c *Client) sync(ctx context.Context, dir, repo, revision, commit string, files []File) error {
	old, _ := ReadManifest(dir)
	recorded := map[string]ManifestFile{}
	if old != nil && old.Repo == repo {
		for _, e := range old.Files {
			recorded[e.Name] = e
		}
	}
	m := &Manifest{Repo: repo, Revision: revision, Commit: commit, Endpoint: c.endpoint()}
	var todo []File
	for _, f := range files {
		ok, err := c.haveFile(dir, f, recorded)
		if err != nil {
			return err
		}
		if ok {
			m.Files = append(m.Files, entryFor(f))
		} else {
			todo = append(todo, f)
		}
	}
	if len(todo) > 0 {
		// Mark the directory incomplete before replacing any file.
		if err := writeManifest(dir, m); err != nil {
			return err
		}
	}
	for _, f := range todo {
		if err := c.download(ctx, dir, repo, revision, commit, f); err != nil {
			return err
		}
		m.Files = append(m.Files, entryFor(f))
		if err := writeManifest(dir, m); err != nil {
			return err
		}
	}
	// Remove files an earlier pull fetched that this one no longer wants
	// (say, a weights file replaced by a preferred format).
	keep := map[string]bool{}
	for _, f := range files {
		keep[f.Name] = true
	}
	for name := range recorded {
		if !keep[name] {
			os.Remove(filepath.Join(dir, name))
		}
	}
	m.Complete = true
	m.PulledAt = time.Now().UTC()
	return writeManifest(dir, m)
}

// haveFile reports whether dir already holds f: its size matches and
// either the manifest records f's hash for it, or hashing it does.
func (c *Client) haveFile(dir string, f File, recorded map[string]ManifestFile) (bool, error) {
	path := filepath.Join(dir, f.Name)
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("hub: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() != f.Size {
		return false, nil
	}
	if e, ok := recorded[f.Name]; ok {
		if e.Size != f.Size || e.hash() != f.Hash() {
			return false, nil // an older version of the file
		}
		if !c.Verify {
			return true, nil
		}
	}
	ok, _, err := hashFile(path, f)
	if err != nil {
		return false, fmt.Errorf("hub: checking cached %s: %w", path, err)
	}
	return ok, nil
}

// Resolve turns a model argument into a directory to load: an existing path
// is returned as is; otherwise nameOrPath must be a repository id or alias
// whose complete copy is in the cache.
func (c *Client) Resolve(nameOrPath string) (string, error) {
	if _, err := os.Stat(nameOrPath); err == nil {
		return nameOrPath, nil
	}
	repo, err := CanonicalRepo(nameOrPath)
	if err != nil {
		return "", fmt.Errorf("hub: %q is not an existing path, and %v", nameOrPath, err)
	}
	root, err := c.cacheRoot()
	if err != nil {
		return "", err
	}
	dir := repoDir(root, repo)
	m, err := ReadManifest(dir)
	if err != nil || !m.Complete || m.Repo != repo || !intact(dir, m) {
		return "", fmt.Errorf("hub: model %s is not in the cache (%s); `goclip pull %s` fetches it", repo, dir, nameOrPath)
	}
	return dir, nil
}

// Cached describes a model in the cache.
type Cached struct {
	Repo     string
	Revision string // as pulled, e.g. "main"
	Commit   string
	Path     string // the model directory, loadable by clip.Load
	Size     int64  // bytes on disk of the recorded files
	Files    int
	Complete bool // false for an interrupted or damaged pull
	PulledAt time.Time
}

// List returns the models in the cache, sorted by repository id. A
// missing cache directory gives an empty list.
func (c *Client) List() ([]Cached, error) {
	root, err := c.cacheRoot()
	if err != nil {
		return nil, err
	}
	orgs, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hub: listing cache: %w", err)
	}
	var out []Cached
	for _, org := range orgs {
		if !org.IsDir() {
			continue
		}
		names, err := os.ReadDir(filepath.Join(root, org.Name()))
		if err != nil {
			continue
		}
		for _, name := range names {
			if !name.IsDir() {
				continue
			}
			dir := filepath.Join(root, org.Name(), name.Name())
			m, err := ReadManifest(dir)
			if err != nil {
				continue
			}
			e := Cached{Repo: m.Repo, Revision: m.Revision, Commit: m.Commit, Path: dir,
				Files: len(m.Files), PulledAt: m.PulledAt}
			whole := m.Complete && len(m.Files) > 0
			for _, f := range m.Files {
				st, err := os.Stat(filepath.Join(dir, f.Name))
				if err != nil {
					whole = false
					continue
				}
				e.Size += st.Size()
				if st.Size() != f.Size {
					whole = false
				}
			}
			e.Complete = whole
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Repo < out[j].Repo })
	return out, nil
}
