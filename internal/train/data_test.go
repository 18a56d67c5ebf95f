package train

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/imageproc"
)

func TestParseCSV(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		o        CSVOptions
		rows     int
		empty    int
		err      string
	}{
		{"basic", "filepath,caption\na.png,a cat\nb.png,a dog\n", CSVOptions{}, 2, 0, ""},
		{"quoted and BOM", "\ufefffilepath,caption\n\"a,b.png\",\"a cat, sitting\"\n", CSVOptions{}, 1, 0, ""},
		{"empty caption", "filepath,caption\na.png,\nb.png,  \nc.png,x\n", CSVOptions{}, 1, 2, ""},
		{"open_clip keys, tab", "title\tfilepath\nhello\tx.jpg\n", CSVOptions{CaptionKey: "title", Separator: '\t'}, 1, 0, ""},
		{"missing column", "path,caption\na.png,x\n", CSVOptions{}, 0, 0, "lacks the image column"},
		{"short row", "filepath,caption\na.png\n", CSVOptions{}, 0, 0, "line 2 has 1 fields"},
		{"empty path", "filepath,caption\n,x\n", CSVOptions{}, 0, 0, "empty image path"},
		{"no rows", "filepath,caption\n", CSVOptions{}, 0, 0, "no rows"},
		{"empty file", "", CSVOptions{}, 0, 0, "empty CSV"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseCSV(strings.NewReader(tc.in), "test.csv", tc.o)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Rows) != tc.rows || d.Empty != tc.empty {
				t.Fatalf("%d rows, %d empty; want %d, %d", len(d.Rows), d.Empty, tc.rows, tc.empty)
			}
		})
	}
}

func FuzzParseCSV(f *testing.F) {
	f.Add("filepath,caption\na.png,a cat\n")
	f.Add("filepath,caption\n\"a\nb\",\"x\"\"y\"\n")
	f.Add("caption,filepath\n,\n,,,\n")
	f.Fuzz(func(t *testing.T, in string) {
		d, err := ParseCSV(strings.NewReader(in), "fuzz.csv", CSVOptions{})
		if err == nil {
			for _, r := range d.Rows {
				if r.Image == "" || r.Caption == "" {
					t.Fatalf("row %+v kept with an empty field", r)
				}
			}
		}
	})
}

// makeTar builds a WebDataset shard from name → content.
func makeTar(t testing.TB, files [][2]string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f[0], Mode: 0o644, Size: int64(len(f[1])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(f[1]))
	}
	tw.Close()
	return buf.Bytes()
}

func TestWebDataset(t *testing.T) {
	dir := t.TempDir()
	csv := writeImages(t, dir, 3)
	_ = csv
	png0, _ := os.ReadFile(filepath.Join(dir, "img00.png"))
	png1, _ := os.ReadFile(filepath.Join(dir, "img01.png"))
	shard := makeTar(t, [][2]string{
		{"000/a.png", string(png0)}, {"000/a.txt", " a red thing \n"},
		{"000/b.txt", "no image"},
		{"000/c.jpg", "x"}, {"000/c.png", string(png1)}, {"000/c.txt", "a green thing"},
		{"000/d.png", string(png1)}, {"000/d.txt", "   "},
		{"000/e.png", "corrupt"}, {"000/e.txt", "a corrupt image"},
	})
	p := filepath.Join(dir, "shard-000.tar")
	os.WriteFile(p, shard, 0o644)
	ds, desc, err := OpenData(filepath.Join(dir, "shard-*.tar"), CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := ds.(*WebDataset)
	if w.Len() != 3 || w.Incomplete != 2 {
		t.Fatalf("%s: %d samples, %d incomplete; want 3, 2", desc, w.Len(), w.Incomplete)
	}
	s := w.Sample(0)
	if s.Caption != "a red thing" {
		t.Errorf("caption %q", s.Caption)
	}
	b, err := s.Image()
	if err != nil || !bytes.Equal(b, png0) {
		t.Fatalf("image bytes differ (%v)", err)
	}
	// c: the .jpg comes first by preference, is corrupt, and is skipped.
	l := &Loader{Data: w, Tok: byteTokenizer(t), Context: 8, Pre: imageproc.DefaultOptions(16), Seed: 3}
	batch, _, err := l.Next(Cursor{}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if batch.N != 4 || len(batch.Skipped) == 0 {
		t.Fatalf("batch of %d with %d skipped", batch.N, len(batch.Skipped))
	}
	if _, err := OpenWebDataset([]string{filepath.Join(dir, "img00.png")}); err == nil {
		t.Fatal("a PNG was accepted as a shard")
	}
}

func FuzzWebDatasetIndex(f *testing.F) {
	f.Add(makeTar(f, [][2]string{{"a.png", "x"}, {"a.txt", "cap"}}))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, b []byte) {
		w := &WebDataset{Shards: []string{"fuzz.tar"}}
		if err := w.index(0, bytes.NewReader(b), "fuzz.tar"); err != nil {
			return
		}
		for _, s := range w.Samples {
			if s.imgOff < 0 || s.imgOff+s.imgLen > int64(len(b)) || s.caption == "" {
				t.Fatalf("bad sample %+v for %d bytes", s, len(b))
			}
		}
	})
}

func TestRandomResizedCrop(t *testing.T) {
	l := &Loader{Seed: 1}
	_ = l
	for _, sz := range [][2]int{{64, 64}, {10, 100}, {300, 20}, {1, 1}} {
		for i := range 50 {
			r := newRand(uint64(i))
			c := randomResizedCrop(r, sz[0], sz[1], 0.9, 1)
			if c.x < 0 || c.y < 0 || c.w <= 0 || c.h <= 0 || c.x+c.w > sz[0] || c.y+c.h > sz[1] {
				t.Fatalf("%v: crop %+v outside the image", sz, c)
			}
		}
	}
}
