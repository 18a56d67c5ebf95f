package zeroshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// DefaultCacheDir returns where class weights are cached:
// $GOCLIP_CACHE/classifiers, else os.UserCacheDir()/goclip/classifiers.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("GOCLIP_CACHE"); d != "" {
		return filepath.Join(d, "classifiers"), nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("zeroshot: no cache directory (set GOCLIP_CACHE): %v", err)
	}
	return filepath.Join(d, "goclip", "classifiers"), nil
}

// ModelKey identifies a model by its files: the absolute path, size and
// modification time of path (a file, with the .json, .txt and .gz files
// beside it: configuration and tokenizer) or of every regular file
// directly in it (a directory), plus extra strings (e.g. the tokenizer
// path). It changes when a file is replaced; it does not hash the weights.
func ModelKey(path string, extra ...string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	add := func(p string) error {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", p, st.Size(), st.ModTime().UnixNano())
		return nil
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("zeroshot: %w", err)
	}
	if st.IsDir() {
		fmt.Fprintf(h, "dir\x00%s\x00", abs)
		ents, err := os.ReadDir(abs)
		if err != nil {
			return "", fmt.Errorf("zeroshot: %w", err)
		}
		var names []string
		for _, e := range ents {
			if e.Type().IsRegular() {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			if err := add(filepath.Join(abs, n)); err != nil {
				return "", fmt.Errorf("zeroshot: %w", err)
			}
		}
	} else {
		if err := add(abs); err != nil {
			return "", fmt.Errorf("zeroshot: %w", err)
		}
		// The configuration and tokenizer files beside a weights file
		// change what it computes too.
		ents, _ := os.ReadDir(filepath.Dir(abs))
		for _, e := range ents {
			switch filepath.Ext(e.Name()) {
			case ".json", ".txt", ".gz":
				if e.Type().IsRegular() {
					add(filepath.Join(filepath.Dir(abs), e.Name()))
				}
			}
		}
	}
	for _, e := range extra {
		fmt.Fprintf(h, "extra\x00%s\x00", e)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CacheKey is the sha256 of the model key, the labels and the templates
// (each length-prefixed, in order).
func CacheKey(modelKey string, labels, templates []string) [32]byte {
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put("goclip zeroshot weights v1")
	put(modelKey)
	binary.LittleEndian.PutUint64(n[:], uint64(len(labels)))
	h.Write(n[:])
	for _, l := range labels {
		put(l)
	}
	binary.LittleEndian.PutUint64(n[:], uint64(len(templates)))
	h.Write(n[:])
	for _, t := range templates {
		put(t)
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// Cache file layout (little-endian): magic "GCZSW001", the 32-byte key,
// uint32 classes, uint32 dim, classes×dim float32, uint32 CRC-32 (IEEE) of
// everything before it.
const cacheMagic = "GCZSW001"

func cachePath(dir string, key [32]byte) string {
	return filepath.Join(dir, hex.EncodeToString(key[:])+".bin")
}

func encodeCache(key [32]byte, w [][]float32) []byte {
	dim := len(w[0])
	var b bytes.Buffer
	b.Grow(len(cacheMagic) + 32 + 8 + 4*len(w)*dim + 4)
	b.WriteString(cacheMagic)
	b.Write(key[:])
	b.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(w))))
	b.Write(binary.LittleEndian.AppendUint32(nil, uint32(dim)))
	buf := make([]byte, 4*dim)
	for _, row := range w {
		for i, v := range row {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		b.Write(buf)
	}
	sum := crc32.ChecksumIEEE(b.Bytes())
	b.Write(binary.LittleEndian.AppendUint32(nil, sum))
	return b.Bytes()
}

var errBadCache = errors.New("zeroshot: cache entry is corrupt or for other inputs")

// decodeCache parses a cache file, checking key, class count and checksum.
func decodeCache(data []byte, key [32]byte, classes int) ([][]float32, error) {
	hdr := len(cacheMagic) + 32 + 8
	if len(data) < hdr+4 || string(data[:len(cacheMagic)]) != cacheMagic {
		return nil, errBadCache
	}
	if !bytes.Equal(data[len(cacheMagic):len(cacheMagic)+32], key[:]) {
		return nil, errBadCache
	}
	n := int(binary.LittleEndian.Uint32(data[hdr-8:]))
	dim := int(binary.LittleEndian.Uint32(data[hdr-4:]))
	if n != classes || dim <= 0 || dim > 1<<20 || len(data) != hdr+4*n*dim+4 {
		return nil, errBadCache
	}
	body := len(data) - 4
	if crc32.ChecksumIEEE(data[:body]) != binary.LittleEndian.Uint32(data[body:]) {
		return nil, errBadCache
	}
	w := make([][]float32, n)
	flat := make([]float32, n*dim)
	for i := range flat {
		flat[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[hdr+4*i:]))
	}
	for c := range w {
		w[c] = flat[c*dim : (c+1)*dim : (c+1)*dim]
	}
	return w, nil
}

func readCache(dir string, key [32]byte, classes int) ([][]float32, error) {
	data, err := os.ReadFile(cachePath(dir, key))
	if err != nil {
		return nil, err
	}
	return decodeCache(data, key, classes)
}

// writeCache stores w atomically (temporary file, then rename).
func writeCache(dir string, key [32]byte, w [][]float32) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(encodeCache(key, w))
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), cachePath(dir, key))
	}
	if werr != nil {
		os.Remove(f.Name())
	}
	return werr
}

// CacheEntryExists reports whether a cache entry for key exists in dir.
func CacheEntryExists(dir string, key [32]byte) bool {
	_, err := os.Stat(cachePath(dir, key))
	return !errors.Is(err, fs.ErrNotExist)
}
