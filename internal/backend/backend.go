// Package backend is goclip's store interface: what indexing, searching
// and serving need from the place embeddings live, with two
// implementations, the embedded bbolt store (the default, this package's
// Embedded) and Weaviate (package weaviate, registered under the
// "weaviate" scheme).
//
// A backend holds, per model, one record per file keyed by the file's
// absolute path: size, modification time, SHA-256 of the content and the
// L2-normalised embedding (or the reason the file failed). Upsert is
// idempotent: writing the same path twice leaves one record, so a queue
// that redelivers a job never duplicates a file.
package backend

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// Record is what a backend keeps for one file under one model.
type Record struct {
	Path    string
	Size    int64
	ModTime int64 // Unix nanoseconds
	Hash    [32]byte
	// Embedding is the image embedding (normalised by the backend); nil
	// for a failure, whose reason is Err.
	Embedding []float32
	Err       string
}

// Failed reports whether r records a failure.
func (r *Record) Failed() bool { return r.Embedding == nil }

// Result is one search hit: the file and the cosine similarity of its
// embedding with the query.
type Result struct {
	Path  string  `json:"path"`
	Score float32 `json:"score"`
}

// Backend is a store of per-file embeddings. Implementations are safe for
// concurrent use.
type Backend interface {
	// EnsureModel creates the namespace of model id for dim-dimensional
	// embeddings; an existing namespace of another dimension is an error
	// naming both dimensions.
	EnsureModel(ctx context.Context, modelID string, dim int, source string) error
	// Upsert writes recs, replacing any record of the same path.
	Upsert(ctx context.Context, modelID string, recs []Record) error
	// Delete removes the records of paths (absent ones are ignored).
	Delete(ctx context.Context, modelID string, paths []string) error
	// Lookup returns the records of those paths that exist, without the
	// embeddings.
	Lookup(ctx context.Context, modelID string, paths []string) (map[string]Record, error)
	// Search returns the k files whose embeddings are most similar to
	// query (normalised by the backend), best first.
	Search(ctx context.Context, modelID string, query []float32, k int) ([]Result, error)
	// Count returns the number of files with an embedding.
	Count(ctx context.Context, modelID string) (int, error)
	// Close releases the backend's resources.
	Close() error
}

// Opener opens a backend from a parsed --store URL.
type Opener func(ctx context.Context, u *url.URL) (Backend, error)

var (
	mu      sync.Mutex
	openers = map[string]Opener{}
)

// Register makes scheme available to Open; backends call it from init.
func Register(scheme string, open Opener) {
	mu.Lock()
	defer mu.Unlock()
	openers[scheme] = open
}

// Schemes lists the registered URL schemes, sorted.
func Schemes() []string {
	mu.Lock()
	defer mu.Unlock()
	var s []string
	for k := range openers {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// IsURL reports whether spec names a non-embedded backend (it has a
// "scheme://" prefix); anything else is a path to the embedded store.
func IsURL(spec string) bool {
	i := strings.Index(spec, "://")
	return i > 0 && !strings.ContainsAny(spec[:i], `/\.`)
}

// Open opens the backend named by spec: "scheme://…" for a registered
// scheme (e.g. weaviate://127.0.0.1:8080/GoclipImages?grpc=50051), else
// the path of an embedded store (empty: the default location).
func Open(ctx context.Context, spec string) (Backend, error) {
	if !IsURL(spec) {
		return OpenEmbedded(spec)
	}
	u, err := url.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("backend: --store %q: %w", spec, err)
	}
	mu.Lock()
	open := openers[u.Scheme]
	mu.Unlock()
	if open == nil {
		return nil, fmt.Errorf("backend: --store %q: unknown scheme %q (known: %s)", spec, u.Scheme, strings.Join(Schemes(), ", "))
	}
	return open(ctx, u)
}

// ErrDimension is wrapped by EnsureModel errors for a dimension mismatch.
var ErrDimension = errors.New("embedding dimension mismatch")
