package backend

import (
	"context"
	"fmt"

	"github.com/goclip/goclip/internal/store"
)

// Embedded is the Backend over goclip's embedded bbolt store.
type Embedded struct {
	St *store.Store
}

// OpenEmbedded opens (creating) the embedded store at path; an empty path
// is store.DefaultPath.
func OpenEmbedded(path string) (*Embedded, error) {
	if path == "" {
		p, err := store.DefaultPath()
		if err != nil {
			return nil, err
		}
		path = p
	}
	st, err := store.Open(path, nil)
	if err != nil {
		return nil, err
	}
	return &Embedded{St: st}, nil
}

// EnsureModel implements Backend.
func (e *Embedded) EnsureModel(_ context.Context, modelID string, dim int, source string) error {
	if err := e.St.EnsureModel(modelID, dim, source); err != nil {
		return fmt.Errorf("%w: %w", ErrDimension, err)
	}
	return nil
}

// Upsert implements Backend.
func (e *Embedded) Upsert(ctx context.Context, modelID string, recs []Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	put := make([]store.Entry, len(recs))
	for i, r := range recs {
		put[i] = store.Entry{Path: r.Path, Record: store.Record{Size: r.Size, ModTime: r.ModTime, Hash: r.Hash, Embedding: r.Embedding, Err: r.Err}}
	}
	return e.St.Apply(modelID, put, nil)
}

// Delete implements Backend.
func (e *Embedded) Delete(ctx context.Context, modelID string, paths []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return e.St.Apply(modelID, nil, paths)
}

// Lookup implements Backend.
func (e *Embedded) Lookup(ctx context.Context, modelID string, paths []string) (map[string]Record, error) {
	out := map[string]Record{}
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r, ok, err := e.St.Get(modelID, p)
		if err != nil {
			return nil, err
		}
		if ok {
			out[p] = Record{Path: p, Size: r.Size, ModTime: r.ModTime, Hash: r.Hash, Err: r.Err}
		}
	}
	return out, nil
}

// Search implements Backend.
func (e *Embedded) Search(ctx context.Context, modelID string, query []float32, k int) ([]Result, error) {
	return results(e.St.Search(ctx, modelID, query, k))
}

// Count implements Backend.
func (e *Embedded) Count(_ context.Context, modelID string) (int, error) {
	return e.St.Count(modelID)
}

// Close implements Backend.
func (e *Embedded) Close() error { return e.St.Close() }

// Exact implements Exacter: a brute-force search even above the store's
// approximate-search threshold.
func (e *Embedded) Exact(ctx context.Context, modelID string, query []float32, k int) ([]Result, error) {
	return results(e.St.Exact(ctx, modelID, query, k))
}

// results converts the store's search results.
func results(res []store.Result, err error) ([]Result, error) {
	if err != nil {
		return nil, err
	}
	out := make([]Result, len(res))
	for i, r := range res {
		out[i] = Result{r.Path, r.Score}
	}
	return out, nil
}

// CheckModel implements ModelChecker without writing to the store.
func (e *Embedded) CheckModel(_ context.Context, modelID string, dim int) error {
	if _, err := e.St.Count(modelID); err != nil {
		return err // wraps ErrNoModel and names the models the file holds
	}
	infos, err := e.St.Models()
	if err != nil {
		return err
	}
	for _, mi := range infos {
		if mi.ID == modelID && mi.Dim != dim {
			return fmt.Errorf("%s: model %s holds %d-d embeddings, the model gives %d-d: %w", e.St.Path(), modelID, mi.Dim, dim, ErrDimension)
		}
	}
	return nil
}

// String names the store in messages.
func (e *Embedded) String() string { return "embedded store " + e.St.Path() }
