// Package builtin ships goclip's own small CLIP model, trained by goclip on
// emoji images (scripts/emoji, docs/training.md), so that goclip works
// offline with no download: it is the default model when no --model is
// given and none is cached.
//
// The model directory (open_clip_model.safetensors in float16,
// open_clip_config.json, and a vocab.json + merges.txt holding the subset
// of the CLIP BPE merges its training captions use) is embedded in the
// binary and written once to the cache, where clip.Load reads it.
package builtin

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

//go:embed model/open_clip_model.safetensors model/open_clip_config.json model/vocab.json model/merges.txt
var files embed.FS

// Name identifies the built-in model in messages.
const Name = "goclip-emoji-vit"

// Notice is the one line a command prints when it falls back to the
// built-in model.
const Notice = "goclip: no --model given and none cached; using the built-in " + Name +
	" model (small, trained on emoji; see docs/training.md)"

// Files returns the embedded files by base name.
func Files() map[string][]byte {
	out := map[string][]byte{}
	ents, _ := fs.ReadDir(files, "model")
	for _, e := range ents {
		b, err := files.ReadFile("model/" + e.Name())
		if err == nil {
			out[e.Name()] = b
		}
	}
	return out
}

// Version returns a short hash of the embedded files.
func Version() string {
	fm := Files()
	names := make([]string, 0, len(fm))
	for n := range fm {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s %d\n", n, len(fm[n]))
		h.Write(fm[n])
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// CacheRoot returns where the model is unpacked: $GOCLIP_CACHE/builtin,
// else the user cache directory's goclip/builtin.
func CacheRoot() (string, error) {
	if d := os.Getenv("GOCLIP_CACHE"); d != "" {
		return filepath.Join(d, "builtin"), nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("builtin: no cache directory (set $GOCLIP_CACHE): %w", err)
	}
	return filepath.Join(d, "goclip", "builtin"), nil
}

// Dir writes the embedded model under root (CacheRoot when empty), in a
// directory named by its version, unless it is already there, and returns
// the path of the weights file for clip.Load.
func Dir(root string) (string, error) {
	if root == "" {
		var err error
		if root, err = CacheRoot(); err != nil {
			return "", err
		}
	}
	dir := filepath.Join(root, Name+"-"+Version())
	weights := filepath.Join(dir, "open_clip_model.safetensors")
	fm := Files()
	complete := true
	for n, b := range fm {
		if st, err := os.Stat(filepath.Join(dir, n)); err != nil || st.Size() != int64(len(b)) {
			complete = false
		}
	}
	if complete {
		return weights, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("builtin: %w", err)
	}
	for n, b := range fm {
		tmp, err := os.CreateTemp(dir, "."+n+".tmp*")
		if err != nil {
			return "", fmt.Errorf("builtin: %w", err)
		}
		_, werr := tmp.Write(b)
		cerr := tmp.Close()
		if werr != nil || cerr != nil {
			os.Remove(tmp.Name())
			return "", fmt.Errorf("builtin: writing %s: %v", n, errorsJoin(werr, cerr))
		}
		os.Chmod(tmp.Name(), 0o644)
		if err := os.Rename(tmp.Name(), filepath.Join(dir, n)); err != nil {
			return "", fmt.Errorf("builtin: %w", err)
		}
	}
	return weights, nil
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
