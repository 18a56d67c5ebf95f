package clip_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
)

func loadTiny(t *testing.T) *clip.Model {
	t.Helper()
	dir := fixtures.Dir(t)
	m, err := clip.Load(fixtures.ModelFile(t, dir, "open_clip_model.safetensors"), clip.WithTokenizer(filepath.Join(dir, "tokenizer")))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// pngHeader returns a PNG whose IHDR declares w×h and whose data is empty.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		c := crc32.NewIEEE()
		c.Write([]byte(typ))
		c.Write(data)
		binary.Write(&b, binary.BigEndian, c.Sum32())
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk("IHDR", ihdr)
	chunk("IEND", nil)
	return b.Bytes()
}

func TestBadImageFiles(t *testing.T) {
	m := loadTiny(t)
	dir := fixtures.Dir(t)
	tmp := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := fixtures.ImageFile(t, dir, 1)
	goodData, _ := os.ReadFile(good)
	cases := []struct {
		name, path, want string
	}{
		{"not an image", write("notes.txt", []byte("just some text, not pixels")), "notes.txt"},
		{"empty file", write("empty.png", nil), "empty.png"},
		{"zero-size image", write("zero.png", pngHeader(0, 10)), "zero.png"},
		{"decompression bomb", write("bomb.png", pngHeader(100000, 100000)), "bomb.png"},
		{"truncated", write("cut.png", goodData[:len(goodData)/3]), "cut.png"},
		{"missing", filepath.Join(tmp, "absent.jpg"), "absent.jpg"},
	}
	paths := []string{good}
	for _, c := range cases {
		paths = append(paths, c.path)
	}
	emb, errs := m.EmbedImageFiles(context.Background(), paths)
	if errs[0] != nil || emb[0] == nil {
		t.Fatalf("good image failed: %v", errs[0])
	}
	for i, c := range cases {
		err := errs[i+1]
		if err == nil || emb[i+1] != nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not name the file", c.name, err)
		}
	}
	// EncodeImageFiles fails on the first bad file, naming it.
	if _, err := m.EncodeImageFiles(context.Background(), []string{good, cases[0].path}); err == nil || !strings.Contains(err.Error(), "notes.txt") {
		t.Errorf("EncodeImageFiles: %v", err)
	}
}

func TestTextEdgeCases(t *testing.T) {
	m := loadTiny(t)
	long := strings.Repeat("word ", 300)
	res, err := m.EmbedTexts(context.Background(), []string{"", "a photo of a cat", long})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Truncated || res[1].Truncated || !res[2].Truncated {
		t.Errorf("truncation flags %v %v %v, want false false true", res[0].Truncated, res[1].Truncated, res[2].Truncated)
	}
	ids, trunc := m.Tokenize(long)
	if !trunc || len(ids) != m.ContextLength() || ids[len(ids)-1] != 49407 {
		t.Errorf("long text tokenized to %d ids ending %d, truncated=%v", len(ids), ids[len(ids)-1], trunc)
	}
	ids, _ = m.Tokenize("")
	if ids[0] != 49406 || ids[1] != 49407 || ids[2] != 0 {
		t.Errorf("empty text tokens %v", ids[:3])
	}
}

func TestContextCancel(t *testing.T) {
	m := loadTiny(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.EncodeTexts(ctx, []string{"x"}); err == nil {
		t.Error("cancelled context not honoured")
	}
}

func TestConcurrentUse(t *testing.T) {
	m := loadTiny(t)
	dir := fixtures.Dir(t)
	img := fixtures.ImageFile(t, dir, 3)
	want, err := m.EncodeImageFiles(context.Background(), []string{img})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 4)
	for range 4 {
		go func() {
			got, err := m.EncodeImageFiles(context.Background(), []string{img, img})
			if err == nil && clip.Similarity(got[1], want[0]) < 0.999999 {
				err = os.ErrInvalid
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
