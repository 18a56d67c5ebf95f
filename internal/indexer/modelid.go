// Package indexer walks photo folders and keeps a store of their CLIP
// image embeddings up to date: a walker feeds decoder goroutines that
// hash, decode and preprocess files while a batched encoder embeds the
// previous batch, and every batch is committed to the store in one
// transaction. A rerun skips files whose size and modification time are
// unchanged (and, with Rehash, whose content hash is unchanged),
// re-embeds changed ones and drops the records of deleted ones; killing
// it at any moment loses at most the batch in flight.
package indexer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/store"
)

// ModelID returns the id under which m's image embeddings are stored:
// "<name>-<16 hex digits>" (name: the checkpoint's folder and file stem), the digits being a SHA-256 over the content of
// the checkpoint (every weight and JSON file of a model directory), the
// architecture and the image preprocessing. Two loads of the same weights
// with the same options get the same id; anything that changes image
// embeddings changes it. File hashes are cached in st (by path, size and
// modification time) so a large checkpoint is read once.
func ModelID(st *store.Store, m *clip.Model) (string, error) {
	path := m.Path()
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("indexer: model %s: %w", path, err)
	}
	files := []string{path}
	if fi.IsDir() {
		files = nil
		ents, err := os.ReadDir(path)
		if err != nil {
			return "", fmt.Errorf("indexer: model %s: %w", path, err)
		}
		for _, e := range ents {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".safetensors", ".bin", ".pt", ".pth", ".json":
				if e.Type().IsRegular() {
					files = append(files, filepath.Join(path, e.Name()))
				}
			}
		}
		sort.Strings(files)
	}
	d := sha256.New()
	for _, f := range files {
		h, err := st.FileHash(f)
		if err != nil {
			return "", fmt.Errorf("indexer: hashing model file %s: %w", f, err)
		}
		fmt.Fprintf(d, "%s\x00", filepath.Base(f))
		d.Write(h[:])
	}
	pre := m.PreprocessOptions()
	pre.MaxPixels = 0 // refuses files, does not change embeddings
	cfg, _ := json.Marshal(m.Config())
	po, _ := json.Marshal(pre)
	d.Write(cfg)
	d.Write(po)
	// The name is for people: the folder and the file stem
	// ("vit-b-32_open_clip_model"); only the digits identify the model.
	name := filepath.Base(filepath.Clean(path))
	if !fi.IsDir() {
		name = filepath.Base(filepath.Dir(path)) + "_" + strings.TrimSuffix(name, filepath.Ext(name))
	}
	name = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < ' ' {
			return '_'
		}
		return r
	}, name)
	return name + "-" + hex.EncodeToString(d.Sum(nil))[:16], nil
}
