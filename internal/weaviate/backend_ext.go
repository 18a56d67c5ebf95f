//go:build !386 && !arm && !mips && !mipsle

package weaviate

import (
	"context"
	"fmt"

	"github.com/goclip/goclip/internal/backend"
)

// CheckModel implements backend.ModelChecker for goclip search and
// serve: it reads the class without creating it; a missing class is an
// error wrapping backend.ErrNoModel, a class of another model or
// dimension is refused as by EnsureModel.
func (s *Store) CheckModel(ctx context.Context, modelID string, dim int) error {
	cls, err := s.readClass(ctx)
	if err != nil {
		return err
	}
	if cls == nil {
		return fmt.Errorf("weaviate %s: class %s does not exist (index into it first with goclip index --store): %w", s.cfg.Host, s.cfg.Class, backend.ErrNoModel)
	}
	return s.checkClass(ctx, cls, modelID, dim)
}

// String names the store in messages: weaviate://host:port/Class.
func (s *Store) String() string { return "weaviate://" + s.cfg.Host + "/" + s.cfg.Class }
