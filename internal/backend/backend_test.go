package backend

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
)

func TestIsURL(t *testing.T) {
	for in, want := range map[string]bool{
		"weaviate://h:1/C?grpc=2": true, "": false, "/tmp/index.db": false, "./a://b": false, "index.db": false, "x://y": true,
	} {
		if got := IsURL(in); got != want {
			t.Errorf("IsURL(%q) = %v", in, got)
		}
	}
}

// TestEmbeddedIndex indexes the fixture images into the embedded backend
// twice (the second run embeds nothing), checks search against the
// stored embeddings and the dimension refusal.
func TestEmbeddedIndex(t *testing.T) {
	dir := fixtures.Dir(t)
	man := fixtures.ReadManifest(t, dir)
	var model *clip.Model
	for _, m := range man.Models {
		if slices.Contains(m.Files, "open_clip_model.safetensors") {
			var err error
			model, err = clip.Load(filepath.Join(dir, m.Name, "open_clip_model.safetensors"), clip.WithTokenizer(filepath.Join(dir, "tokenizer")))
			if err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if model == nil {
		t.Skip("no open_clip fixture model")
	}
	root := t.TempDir()
	for _, im := range man.Images {
		data, err := os.ReadFile(filepath.Join(dir, im.File))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, filepath.Base(im.File)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "bad.png"), []byte("nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := Open(ctx, filepath.Join(t.TempDir(), "i.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	id, err := ModelID(model)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := Index(ctx, b, model, id, []string{root}, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Embedded != len(man.Images) || r1.Failed != 1 || len(r1.Failures) != 1 {
		t.Fatalf("first run %+v, want %d embedded and 1 failure", r1, len(man.Images))
	}
	r2, err := Index(ctx, b, model, id, []string{root}, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Embedded != 0 || r2.Unchanged != len(man.Images) {
		t.Fatalf("second run %+v, want all unchanged", r2)
	}
	if c, _ := b.Count(ctx, id); c != len(man.Images) {
		t.Fatalf("count %d", c)
	}
	// The stored embedding of an image finds that image first.
	p := filepath.Join(root, filepath.Base(man.Images[0].File))
	embs, errs := model.EmbedImageFiles(ctx, []string{p})
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	res, err := b.Search(ctx, id, embs[0], 3)
	if err != nil || len(res) == 0 || res[0].Path != p {
		t.Fatalf("search: %v %v", res, err)
	}
	if err := b.EnsureModel(ctx, id, model.EmbedDim()+1, ""); !errors.Is(err, ErrDimension) {
		t.Fatalf("dimension mismatch: %v", err)
	}
}
