package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/goclip/goclip/internal/backend"
	"github.com/goclip/goclip/internal/indexer"
)

// BackendSearcher serves the images of one model in a store backend
// (goclip's embedded store, Weaviate, or any backend.Backend): it is the
// Searcher and FileOpener goclip serve uses, so the HTTP API behaves the
// same on every backend.
type BackendSearcher struct {
	Backend backend.Backend
	ModelID string
}

// Search implements Searcher with the backend's Search.
func (s *BackendSearcher) Search(ctx context.Context, q []float32, k int) ([]Hit, error) {
	res, err := s.Backend.Search(ctx, s.ModelID, q, k)
	if err != nil {
		return nil, err
	}
	out := make([]Hit, len(res))
	for i, r := range res {
		out[i] = Hit{Path: r.Path, Score: r.Score}
	}
	return out, nil
}

// OpenFile implements FileOpener: it opens path (on this machine) only if
// the backend holds an embedding of it under the model.
func (s *BackendSearcher) OpenFile(ctx context.Context, path string) (io.ReadCloser, error) {
	clean := filepath.Clean(path)
	r, ok, err := backend.Get(ctx, s.Backend, s.ModelID, clean)
	if err != nil {
		return nil, err
	}
	if !ok || r.Err != "" {
		return nil, fmt.Errorf("%s: %w", path, os.ErrNotExist)
	}
	return os.Open(clean)
}

// textQuery returns the vector a "text" search uses. A combined query
// (`"beach" + 2*"sunset" - "people"`, see indexer.ParseQuery) is embedded
// term by term and combined with indexer.Combine, as goclip search does;
// plain text, and text that is not a valid combined query (an
// apostrophe, a lone quote), is embedded as written.
func (s *Server) textQuery(ctx context.Context, text string) ([]float32, error) {
	terms, err := indexer.ParseQuery(text)
	if err != nil || len(terms) == 1 && terms[0].Weight == 1 && terms[0].Text == strings.TrimSpace(text) {
		e, err := s.embedTexts(ctx, []string{text}, "text")
		if err != nil {
			return nil, err
		}
		return e[0], nil
	}
	if err := s.countInputs(len(terms), 0); err != nil {
		return nil, err
	}
	texts := make([]string, len(terms))
	weights := make([]float64, len(terms))
	for i, t := range terms {
		texts[i], weights[i] = t.Text, t.Weight
	}
	e, err := s.embedTexts(ctx, texts, "text terms")
	if err != nil {
		return nil, err
	}
	q, err := indexer.Combine(e, weights)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "query %q: %v", text, strings.TrimPrefix(err.Error(), "indexer: "))
	}
	return q, nil
}
