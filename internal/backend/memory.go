package backend

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/goclip/goclip/internal/index"
	"github.com/goclip/goclip/internal/store"
)

// Memory is an in-memory Backend with exhaustive search: a second,
// independent implementation of the interface for tests (and small
// throw-away indexes). Its scores are computed like the embedded store's
// exact search (L2-normalised float32 vectors, the same dot-product
// kernel), so both rank the same data identically.
type Memory struct {
	// Name is shown by String (default "memory").
	Name string

	mu     sync.RWMutex
	models map[string]*memModel
}

type memModel struct {
	dim  int
	recs map[string]Record
}

// NewMemory returns an empty Memory backend.
func NewMemory(name string) *Memory {
	return &Memory{Name: name, models: map[string]*memModel{}}
}

// String names the backend in messages.
func (b *Memory) String() string {
	if b.Name == "" {
		return "memory"
	}
	return b.Name
}

func (b *Memory) model(modelID string) (*memModel, error) {
	m := b.models[modelID]
	if m == nil {
		return nil, fmt.Errorf("%s: model %s: %w", b, modelID, ErrNoModel)
	}
	return m, nil
}

// EnsureModel implements Backend.
func (b *Memory) EnsureModel(_ context.Context, modelID string, dim int, _ string) error {
	if modelID == "" || dim <= 0 {
		return fmt.Errorf("%s: bad model id %q or dimension %d", b, modelID, dim)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.models == nil {
		b.models = map[string]*memModel{}
	}
	if m := b.models[modelID]; m != nil {
		if m.dim != dim {
			return fmt.Errorf("%s: model %s holds %d-d embeddings, not %d-d: %w", b, modelID, m.dim, dim, ErrDimension)
		}
		return nil
	}
	b.models[modelID] = &memModel{dim: dim, recs: map[string]Record{}}
	return nil
}

// CheckModel implements ModelChecker.
func (b *Memory) CheckModel(_ context.Context, modelID string, dim int) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	m, err := b.model(modelID)
	if err != nil {
		return err
	}
	if m.dim != dim {
		return fmt.Errorf("%s: model %s holds %d-d embeddings, not %d-d: %w", b, modelID, m.dim, dim, ErrDimension)
	}
	return nil
}

// Upsert implements Backend; embeddings are L2-normalised.
func (b *Memory) Upsert(ctx context.Context, modelID string, recs []Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.model(modelID)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.Path == "" {
			return fmt.Errorf("%s: empty path", b)
		}
		if r.Embedding != nil {
			if len(r.Embedding) != m.dim {
				return fmt.Errorf("%s: %s: %d-d embedding for model %s of %d-d", b, r.Path, len(r.Embedding), modelID, m.dim)
			}
			r.Embedding = store.Normalize(r.Embedding)
		} else if r.Err == "" {
			r.Err = "failed"
		}
		m.recs[r.Path] = r
	}
	return nil
}

// Delete implements Backend.
func (b *Memory) Delete(ctx context.Context, modelID string, paths []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.model(modelID)
	if err != nil {
		return err
	}
	for _, p := range paths {
		delete(m.recs, p)
	}
	return nil
}

// Lookup implements Backend.
func (b *Memory) Lookup(ctx context.Context, modelID string, paths []string) (map[string]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := map[string]Record{}
	m := b.models[modelID]
	if m == nil {
		return out, nil
	}
	for _, p := range paths {
		if r, ok := m.recs[p]; ok {
			r.Embedding = nil
			out[p] = r
		}
	}
	return out, nil
}

// Search implements Backend by comparing query with every embedding.
func (b *Memory) Search(ctx context.Context, modelID string, query []float32, k int) ([]Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	m, err := b.model(modelID)
	if err != nil {
		return nil, err
	}
	if len(query) != m.dim {
		return nil, fmt.Errorf("%s: %d-d query for model %s of %d-d embeddings", b, len(query), modelID, m.dim)
	}
	if k <= 0 {
		return nil, nil
	}
	q := store.Normalize(query)
	var all []Result
	for p, r := range m.recs {
		if r.Embedding != nil {
			all = append(all, Result{Path: p, Score: index.Dot(q, r.Embedding)})
		}
	}
	slices.SortFunc(all, func(a, b Result) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.Path, b.Path)
	})
	return all[:min(k, len(all))], nil
}

// Exact implements Exacter (Search is already exhaustive).
func (b *Memory) Exact(ctx context.Context, modelID string, query []float32, k int) ([]Result, error) {
	return b.Search(ctx, modelID, query, k)
}

// Count implements Backend.
func (b *Memory) Count(_ context.Context, modelID string) (int, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	m, err := b.model(modelID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range m.recs {
		if r.Embedding != nil {
			n++
		}
	}
	return n, nil
}

// Close implements Backend.
func (b *Memory) Close() error { return nil }
