package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/indexer"
	"github.com/goclip/goclip/internal/store"
)

// ErrNoModel is wrapped by errors about a model the backend holds no
// embeddings of (the same value as store.ErrNoModel).
var ErrNoModel = store.ErrNoModel

// ErrUnsupported is wrapped by errors for a feature a backend does not
// have (e.g. exhaustive search on Weaviate).
var ErrUnsupported = errors.New("not supported by this store")

// Exacter is implemented by backends that can also search exhaustively,
// comparing the query with every stored embedding (goclip search
// --exact).
type Exacter interface {
	Exact(ctx context.Context, modelID string, query []float32, k int) ([]Result, error)
}

// ModelChecker is implemented by backends that can check, without
// writing anything, that they hold dim-dimensional embeddings of
// modelID: the check goclip search and serve make before answering, so
// that a store of another model is refused instead of searched.
type ModelChecker interface {
	// CheckModel returns an error wrapping ErrNoModel when the backend
	// holds nothing for modelID and one wrapping ErrDimension when it
	// holds embeddings of another dimension.
	CheckModel(ctx context.Context, modelID string, dim int) error
}

// Describe names b for messages: its String method when it has one.
func Describe(b Backend) string {
	if s, ok := b.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T store", b)
}

// CheckModel runs b's ModelChecker when it has one; other backends are
// checked by counting the model's records (an error naming the model).
func CheckModel(ctx context.Context, b Backend, modelID string, dim int) error {
	if mc, ok := b.(ModelChecker); ok {
		return mc.CheckModel(ctx, modelID, dim)
	}
	_, err := b.Count(ctx, modelID)
	return err
}

// Get returns the record of path (without its embedding) through
// b.Lookup.
func Get(ctx context.Context, b Backend, modelID, path string) (Record, bool, error) {
	m, err := b.Lookup(ctx, modelID, []string{path})
	if err != nil {
		return Record{}, false, err
	}
	r, ok := m[path]
	return r, ok, nil
}

// SearchVector returns the k files of b most similar to query, best
// first: b.Search, or with exact an exhaustive search, which b must
// implement (Exacter) — otherwise the error wraps ErrUnsupported and
// names the store.
func SearchVector(ctx context.Context, b Backend, modelID string, query []float32, k int, exact bool) ([]Result, error) {
	if !exact {
		return b.Search(ctx, modelID, query, k)
	}
	ex, ok := b.(Exacter)
	if !ok {
		return nil, fmt.Errorf("exact (brute-force) search: %w: %s only has its approximate index", ErrUnsupported, Describe(b))
	}
	return ex.Exact(ctx, modelID, query, k)
}

// Query is one search of goclip search and of the cross-backend tests.
type Query struct {
	// Text is a combined query in indexer.ParseQuery syntax:
	// `"beach" + 2*"sunset" - "people"`, or plain text.
	Text string
	// Images are image files added to the text terms with weight 1.
	Images []string
	// Top is the number of results (default 10).
	Top int
	// Exact asks for an exhaustive search (see SearchVector).
	Exact bool
}

// QueryVector embeds q's text terms and images with m and combines them
// (indexer.Combine): the L2-normalised vector q searches with.
func QueryVector(ctx context.Context, m *clip.Model, q Query) ([]float32, error) {
	var terms []indexer.Term
	if text := strings.TrimSpace(q.Text); text != "" {
		var err error
		if terms, err = indexer.ParseQuery(text); err != nil {
			return nil, err
		}
	}
	if len(terms) == 0 && len(q.Images) == 0 {
		return nil, errors.New("empty query: give a text or an image")
	}
	return indexer.EmbedQuery(ctx, m, terms, q.Images)
}

// SearchQuery runs q against b: it embeds the query with m (see
// QueryVector) and returns the q.Top best files, best first. It is the
// search path of goclip search, for every backend.
func SearchQuery(ctx context.Context, b Backend, m *clip.Model, modelID string, q Query) ([]Result, error) {
	v, err := QueryVector(ctx, m, q)
	if err != nil {
		return nil, err
	}
	k := q.Top
	if k <= 0 {
		k = 10
	}
	return SearchVector(ctx, b, modelID, v, k, q.Exact)
}
