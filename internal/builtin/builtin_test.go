package builtin

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/goclip/goclip/clip"
)

func TestDirLoads(t *testing.T) {
	root := t.TempDir()
	p, err := Dir(root)
	if err != nil {
		t.Fatal(err)
	}
	if p2, err := Dir(root); err != nil || p2 != p {
		t.Fatalf("second Dir: %v %v", p2, err)
	}
	m, err := clip.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	txt, err := m.EncodeTexts(ctx, []string{"cat face", "猫", "red apple"})
	if err != nil {
		t.Fatal(err)
	}
	if len(txt) != 3 || len(txt[0]) != m.EmbedDim() {
		t.Fatalf("text embeddings %d×%d", len(txt), len(txt[0]))
	}
	st, err := os.Stat(filepath.Join(filepath.Dir(p), "open_clip_model.safetensors"))
	if err != nil || st.Size() > 16<<20 {
		t.Fatalf("weights: %v, %d bytes (limit 16 MiB)", err, st.Size())
	}
}
