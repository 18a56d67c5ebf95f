// Package store is goclip's embedded photo index: one bbolt file holding,
// per model, each file's path, size, modification time, content hash and
// L2-normalised image embedding, with exact and approximate search over
// them.
//
// Models live in separate namespaces keyed by a model id (see
// indexer.ModelID), so embeddings of different models never mix: the same
// database can index a folder with several models, and a search names the
// model whose embeddings it compares against. Every write is one
// transaction, so a crash loses at most the batch being written.
//
// Layout (bbolt buckets):
//
//	meta              "version" → "1"
//	hashes            absolute path → size, mtime, SHA-256 (file-hash cache)
//	model/<id>        "info" → JSON ModelInfo, "gen" → uint64 write counter
//	model/<id>/files  absolute path → record (see record.go)
//	model/<id>/graph  "gen" → the files generation the HNSW graph was built
//	                  on, "0000", "0001", … → the serialised graph in chunks
package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/goclip/goclip/internal/index"
	"github.com/goclip/goclip/internal/kernels"
)

const schemaVersion = "1"

var (
	bucketMeta   = []byte("meta")
	bucketHashes = []byte("hashes")
	bucketFiles  = []byte("files")
	bucketGraph  = []byte("graph")
	keyInfo      = []byte("info")
	keyGen       = []byte("gen")
)

func modelBucket(id string) []byte { return []byte("model/" + id) }

// DefaultANNThreshold is the number of embeddings from which Search uses
// the HNSW graph instead of a brute-force scan.
const DefaultANNThreshold = 20000

// Options configures Open. The zero value is a writable store.
type Options struct {
	// ReadOnly opens the file with a shared lock (several readers may
	// run at once, none while an indexer writes).
	ReadOnly bool
	// Timeout bounds the wait for the file lock (default 2 s).
	Timeout time.Duration
	// ANNThreshold is the size from which Search uses HNSW (default
	// DefaultANNThreshold; negative disables HNSW).
	ANNThreshold int
	// HNSW holds the graph parameters used when building.
	HNSW index.Config
	// EfSearch is the HNSW query candidate count, raised to k (default
	// 200: recall@10 0.966 on 1M clustered 512-d vectors, BenchmarkANN).
	EfSearch int
	// BuildInBackground makes Search build a missing or stale graph in
	// a goroutine (answering exactly meanwhile) instead of scanning
	// exactly until BuildIndex is called. For long-running servers.
	BuildInBackground bool
}

// Store is an open index database. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	opts Options

	mu    sync.Mutex
	snaps map[string]*snapshot
	bgWG  sync.WaitGroup
	bgCtx context.Context
	bgEnd context.CancelFunc
}

// DefaultPath returns where the index lives when --db is not given:
// $GOCLIP_DB, else $XDG_DATA_HOME/goclip/index.db, else
// ~/.local/share/goclip/index.db (on Windows %LocalAppData%\goclip\index.db).
func DefaultPath() (string, error) {
	if p := os.Getenv("GOCLIP_DB"); p != "" {
		return p, nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "goclip", "index.db"), nil
	}
	if runtime.GOOS == "windows" {
		if d := os.Getenv("LocalAppData"); d != "" {
			return filepath.Join(d, "goclip", "index.db"), nil
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("store: no default database path (set $GOCLIP_DB or pass --db): %w", err)
	}
	return filepath.Join(home, ".local", "share", "goclip", "index.db"), nil
}

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("database is in use by another goclip process")

// Open opens (creating it and its directory when writable) the database
// at path.
func Open(path string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.ANNThreshold == 0 {
		o.ANNThreshold = DefaultANNThreshold
	}
	if o.EfSearch <= 0 {
		o.EfSearch = 200
	}
	if o.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("store: %w (index some photos first with goclip index)", err)
		}
	} else if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: o.Timeout, ReadOnly: o.ReadOnly})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("store: %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	s := &Store{db: db, path: path, opts: o, snaps: map[string]*snapshot{}}
	s.bgCtx, s.bgEnd = context.WithCancel(context.Background())
	if err := s.checkSchema(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) checkSchema() error {
	if s.opts.ReadOnly {
		return s.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketMeta)
			if b == nil {
				return fmt.Errorf("store: %s is not a goclip index (no meta bucket)", s.path)
			}
			if v := string(b.Get([]byte("version"))); v != schemaVersion {
				return fmt.Errorf("store: %s has schema version %q, this goclip reads %q", s.path, v, schemaVersion)
			}
			return nil
		})
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := b.Get([]byte("version")); {
		case v == nil:
			if err := b.Put([]byte("version"), []byte(schemaVersion)); err != nil {
				return err
			}
		case string(v) != schemaVersion:
			return fmt.Errorf("store: %s has schema version %q, this goclip reads %q", s.path, v, schemaVersion)
		}
		_, err = tx.CreateBucketIfNotExists(bucketHashes)
		return err
	})
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close waits for background work and closes the file.
func (s *Store) Close() error {
	s.bgEnd()
	s.bgWG.Wait()
	return s.db.Close()
}

// ModelInfo describes one model namespace.
type ModelInfo struct {
	ID     string `json:"id"`
	Dim    int    `json:"dim"`
	Source string `json:"source,omitempty"` // the model path it was first indexed with
	Count  int    `json:"count"`            // files with an embedding
	Failed int    `json:"failed"`           // files recorded as failures
}

// ErrNoModel is wrapped by errors about a model id the database does not
// hold.
var ErrNoModel = errors.New("no embeddings for this model")

// Models lists the model namespaces in the database.
func (s *Store) Models() ([]ModelInfo, error) {
	var out []ModelInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			id, ok := bytes.CutPrefix(name, []byte("model/"))
			if !ok {
				return nil
			}
			mi, err := readInfo(b, string(id))
			if err != nil {
				return err
			}
			mi.Count, mi.Failed = countFiles(b)
			out = append(out, mi)
			return nil
		})
	})
	return out, err
}

func readInfo(b *bolt.Bucket, id string) (ModelInfo, error) {
	var mi ModelInfo
	if err := json.Unmarshal(b.Get(keyInfo), &mi); err != nil {
		return mi, fmt.Errorf("store: model %s: bad info: %w", id, err)
	}
	mi.ID = id
	return mi, nil
}

func countFiles(b *bolt.Bucket) (ok, failed int) {
	fb := b.Bucket(bucketFiles)
	if fb == nil {
		return 0, 0
	}
	fb.ForEach(func(k, v []byte) error {
		if recordDim(v) > 0 {
			ok++
		} else {
			failed++
		}
		return nil
	})
	return ok, failed
}

// missingModel builds the error for a model id the database lacks, naming
// the ids it does hold.
func (s *Store) missingModel(tx *bolt.Tx, id string) error {
	var have []string
	tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		if m, ok := bytes.CutPrefix(name, []byte("model/")); ok {
			have = append(have, string(m))
		}
		return nil
	})
	if len(have) == 0 {
		return fmt.Errorf("store: %s: model %s: %w (the database is empty; run goclip index)", s.path, id, ErrNoModel)
	}
	return fmt.Errorf("store: %s: model %s: %w (the database holds embeddings of model %s; index with this model or pass the model those were made with)",
		s.path, id, ErrNoModel, joinIDs(have))
}

func joinIDs(ids []string) string {
	sort.Strings(ids)
	out := ""
	for i, id := range ids {
		if i > 0 {
			out += ", "
		}
		out += id
	}
	return out
}

// EnsureModel creates the namespace of model id with embeddings of dim
// values, recording source (the model path) for display. An existing
// namespace with another dimension is an error.
func (s *Store) EnsureModel(id string, dim int, source string) error {
	return s.ensureNamespace(modelBucket(id), bucketFiles, id, dim, source, "embeddings")
}

// ensureNamespace creates bucket (a model's photo or video namespace, with
// its records sub-bucket) holding dim-value embeddings, or checks the
// dimension of an existing one; what names the embeddings in errors.
func (s *Store) ensureNamespace(bucket, records []byte, id string, dim int, source, what string) error {
	if id == "" || dim <= 0 || dim > maxDim {
		return fmt.Errorf("store: bad model id %q or dimension %d", id, dim)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		if v := b.Get(keyInfo); v != nil {
			mi, err := readInfo(b, id)
			if err != nil {
				return err
			}
			if mi.Dim != dim {
				return fmt.Errorf("store: model %s holds %d-d %s, not %d-d", id, mi.Dim, what, dim)
			}
			return nil
		}
		info, _ := json.Marshal(ModelInfo{Dim: dim, Source: source})
		if err := b.Put(keyInfo, info); err != nil {
			return err
		}
		if _, err := b.CreateBucketIfNotExists(records); err != nil {
			return err
		}
		return b.Put(keyGen, u64(0))
	})
}

func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func getU64(v []byte) uint64 {
	if len(v) != 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(v)
}

// model returns the bucket of model id or the missing-model error.
func (s *Store) model(tx *bolt.Tx, id string) (*bolt.Bucket, error) {
	b := tx.Bucket(modelBucket(id))
	if b == nil || b.Bucket(bucketFiles) == nil {
		return nil, s.missingModel(tx, id)
	}
	return b, nil
}

// Count returns the number of files with an embedding under model id.
func (s *Store) Count(modelID string) (int, error) {
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := s.model(tx, modelID)
		if err != nil {
			return err
		}
		n, _ = countFiles(b)
		return nil
	})
	return n, err
}

// Get returns the record of path under model id.
func (s *Store) Get(modelID, path string) (Record, bool, error) {
	return getRecord(s, func(tx *bolt.Tx) (*bolt.Bucket, error) { return s.model(tx, modelID) },
		bucketFiles, "file", path, decodeRecord)
}

// Scan calls fn for every record of model id in path order. With meta
// the embeddings are not decoded (Record.Embedding is nil and Failed
// must not be used; Err is set for failures). fn runs inside a read
// transaction: it must not write to the store.
func (s *Store) Scan(modelID string, meta bool, fn func(path string, r Record) error) error {
	return scanRecords(s, func(tx *bolt.Tx) (*bolt.Bucket, error) { return s.model(tx, modelID) },
		bucketFiles, "file", meta, decodeRecord, fn)
}

// getRecord reads the record of path from the sub-bucket named bucket of
// the model bucket that open returns; kind names the records in errors.
func getRecord[R any](s *Store, open func(*bolt.Tx) (*bolt.Bucket, error), bucket []byte, kind, path string,
	decode func([]byte, bool) (R, error)) (R, bool, error) {
	var r R
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := open(tx)
		if err != nil {
			return err
		}
		v := b.Bucket(bucket).Get([]byte(path))
		if v == nil {
			return nil
		}
		ok = true
		r, err = decode(v, false)
		if err != nil {
			return fmt.Errorf("%w (%s %s)", err, kind, path)
		}
		return nil
	})
	return r, ok, err
}

// scanRecords calls fn for every record of the sub-bucket named bucket of
// the model bucket that open returns, in path order, inside one read
// transaction.
func scanRecords[R any](s *Store, open func(*bolt.Tx) (*bolt.Bucket, error), bucket []byte, kind string, meta bool,
	decode func([]byte, bool) (R, error), fn func(path string, r R) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b, err := open(tx)
		if err != nil {
			return err
		}
		return b.Bucket(bucket).ForEach(func(k, v []byte) error {
			r, err := decode(v, meta)
			if err != nil {
				return fmt.Errorf("%w (%s %s)", err, kind, k)
			}
			return fn(string(k), r)
		})
	})
}

// Entry is one file to write.
type Entry struct {
	Path string
	Record
}

// Apply writes put and removes del under model id in one transaction.
// Embeddings are L2-normalised on the way in and must have the model's
// dimension.
func (s *Store) Apply(modelID string, put []Entry, del []string) error {
	if len(put) == 0 && len(del) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := s.model(tx, modelID)
		if err != nil {
			return err
		}
		mi, err := readInfo(b, modelID)
		if err != nil {
			return err
		}
		fb := b.Bucket(bucketFiles)
		for i := range put {
			e := &put[i]
			if e.Path == "" {
				return errors.New("store: empty path")
			}
			r := e.Record
			if r.Embedding != nil {
				if len(r.Embedding) != mi.Dim {
					return fmt.Errorf("store: %s: %d-d embedding for model %s of %d-d", e.Path, len(r.Embedding), modelID, mi.Dim)
				}
				r.Embedding = Normalize(r.Embedding)
			} else if r.Err == "" {
				r.Err = "failed"
			}
			if err := fb.Put([]byte(e.Path), encodeRecord(&r)); err != nil {
				return fmt.Errorf("store: %s: %w", e.Path, err)
			}
		}
		for _, p := range del {
			if err := fb.Delete([]byte(p)); err != nil {
				return fmt.Errorf("store: %s: %w", p, err)
			}
		}
		return b.Put(keyGen, u64(getU64(b.Get(keyGen))+1))
	})
}

// Normalize returns v scaled to unit L2 norm (computed in float64); a zero
// vector is returned as zeros.
func Normalize(v []float32) []float32 { return kernels.Normalized(v) }

// FileHash returns the SHA-256 of the file at path, cached in the
// database by absolute path, size and modification time so that a large
// checkpoint is hashed once. A read-only store hashes without caching.
func (s *Store) FileHash(path string) ([32]byte, error) {
	var h [32]byte
	abs, err := filepath.Abs(path)
	if err != nil {
		return h, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return h, err
	}
	want := make([]byte, 16)
	binary.LittleEndian.PutUint64(want, uint64(st.Size()))
	binary.LittleEndian.PutUint64(want[8:], uint64(st.ModTime().UnixNano()))
	hit := false
	s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketHashes); b != nil {
			if v := b.Get([]byte(abs)); len(v) == 48 && bytes.Equal(v[:16], want) {
				copy(h[:], v[16:])
				hit = true
			}
		}
		return nil
	})
	if hit {
		return h, nil
	}
	h, err = HashFile(abs)
	if err != nil || s.opts.ReadOnly {
		return h, err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketHashes)
		if err != nil {
			return err
		}
		return b.Put([]byte(abs), append(want, h[:]...))
	})
	return h, err
}

// readAllChunks concatenates the numbered chunk values of b.
func readAllChunks(b *bolt.Bucket) io.Reader {
	var rs []io.Reader
	b.ForEach(func(k, v []byte) error {
		if len(k) == 4 && k[0] >= '0' && k[0] <= '9' {
			rs = append(rs, bytes.NewReader(v))
		}
		return nil
	})
	return io.MultiReader(rs...)
}
