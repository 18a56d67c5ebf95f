package evaluate

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func touch(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadFolder(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{
		"golden_retriever/a.jpg", "golden_retriever/sub/b.PNG", "golden_retriever/notes.txt",
		"cat/c.jpeg", "cat/.hidden.jpg", ".git/x.jpg", "empty_class/readme.md",
	} {
		touch(t, filepath.Join(dir, p))
	}
	touch(t, filepath.Join(dir, "stray.jpg"))
	ds, err := LoadFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ds.Classes, []string{"cat", "empty class", "golden retriever"}) {
		t.Errorf("classes %q", ds.Classes)
	}
	want := []Sample{
		{filepath.Join(dir, "cat/c.jpeg"), 0},
		{filepath.Join(dir, "golden_retriever/a.jpg"), 2},
		{filepath.Join(dir, "golden_retriever/sub/b.PNG"), 2},
	}
	if !reflect.DeepEqual(ds.Samples, want) {
		t.Errorf("samples %v", ds.Samples)
	}
	// Clashing names, no classes, no images.
	clash := t.TempDir()
	touch(t, filepath.Join(clash, "a_b/x.jpg"))
	touch(t, filepath.Join(clash, "a b/y.jpg"))
	if _, err := LoadFolder(clash); err == nil || !strings.Contains(err.Error(), "same class name") {
		t.Errorf("clash: %v", err)
	}
	if _, err := LoadFolder(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no class") {
		t.Errorf("empty: %v", err)
	}
	noimg := t.TempDir()
	touch(t, filepath.Join(noimg, "a/x.txt"))
	if _, err := LoadFolder(noimg); err == nil || !strings.Contains(err.Error(), "no images") {
		t.Errorf("no images: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing path: no error")
	}
}

func TestParseCSV(t *testing.T) {
	ds, err := ParseCSV(strings.NewReader("path,label\nimg/1.jpg,dog\n\n/abs/2.jpg, cat \n\"3,x.jpg\",dog\n"), "d.csv", "/base")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ds.Classes, []string{"cat", "dog"}) {
		t.Errorf("classes %q", ds.Classes)
	}
	want := []Sample{{"/base/img/1.jpg", 1}, {"/abs/2.jpg", 0}, {"/base/3,x.jpg", 1}}
	if !reflect.DeepEqual(ds.Samples, want) {
		t.Errorf("samples %v", ds.Samples)
	}
	for _, tc := range []struct{ in, err string }{
		{"a.jpg,dog\nb.jpg\n", "d.csv:2: missing label column"},
		{"path,label\na.jpg,dog\n\nb.jpg,\n", "d.csv:4: empty label"},
		{",dog\n", "d.csv:1: empty path"},
		{"path,label\n", "no rows"},
		{"a.jpg,\"dog\n", "d.csv"},
		{"a.jpg,\xff\n", "UTF-8"},
	} {
		_, err := ParseCSV(strings.NewReader(tc.in), "d.csv", "")
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
		}
	}
	// LoadCSV resolves paths against the file's folder.
	dir := t.TempDir()
	p := filepath.Join(dir, "set.csv")
	os.WriteFile(p, []byte("x.jpg,a\n"), 0o644)
	ds, err = Load(p)
	if err != nil || ds.Samples[0].Path != filepath.Join(dir, "x.jpg") || ds.Name != "set" {
		t.Errorf("LoadCSV: %v %+v", err, ds)
	}
}

func TestParseCaptions(t *testing.T) {
	karpathy := `{"images":[
	 {"filepath":"val2014","filename":"a.jpg","split":"test","sentences":[{"raw":"A cat."},{"raw":" Two cats. "}]},
	 {"filepath":"val2014","filename":"b.jpg","split":"train","sentences":[{"raw":"A dog."}]},
	 {"filename":"c.jpg","split":"test","sentences":[{"raw":"A car."}]}],"dataset":"coco"}`
	c, err := ParseCaptions([]byte(karpathy), "k.json", CaptionOptions{Split: "test", ImageRoot: "/r"})
	if err != nil {
		t.Fatal(err)
	}
	want := &Captions{Images: []string{"/r/val2014/a.jpg", "/r/c.jpg"}, Texts: []string{"A cat.", "Two cats.", "A car."}, TextImage: []int{0, 0, 1}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("karpathy: %+v", c)
	}
	all, _ := ParseCaptions([]byte(karpathy), "k.json", CaptionOptions{Split: "all"})
	if len(all.Images) != 3 || len(all.Texts) != 4 {
		t.Errorf("split all: %+v", all)
	}
	if _, err := ParseCaptions([]byte(karpathy), "k.json", CaptionOptions{Split: "val"}); err == nil || !strings.Contains(err.Error(), "test (2)") {
		t.Errorf("missing split: %v", err)
	}
	list := `[{"image":"x.jpg","caption":["one","two"]},{"image":"y.jpg","captions":"three"},{"image":"x.jpg","caption":"four"}]`
	c, err = ParseCaptions([]byte(list), "l.json", CaptionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want = &Captions{Images: []string{"x.jpg", "y.jpg"}, Texts: []string{"one", "two", "three", "four"}, TextImage: []int{0, 0, 1, 0}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("list: %+v", c)
	}
	tsv := "a.jpg\tA cat.\r\n\nb.jpg\tA dog.\na.jpg\tStill a cat.\n"
	c, err = ParseCaptions([]byte(tsv), "c.tsv", CaptionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want = &Captions{Images: []string{"a.jpg", "b.jpg"}, Texts: []string{"A cat.", "A dog.", "Still a cat."}, TextImage: []int{0, 1, 0}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("tsv: %+v", c)
	}
	for _, tc := range []struct{ in, err string }{
		{"a.jpg\tok\nno tab here\n", "c.txt:2: no tab"},
		{"a.jpg\t \n", "c.txt:1: empty"},
		{"", "no captioned images"},
		{`{"dataset":"x"}`, "without an \"images\" list"},
		{`{"images":[{"filename":"a.jpg","sentences":[]}]}`, "no sentences"},
		{`[{"caption":"x"}]`, "no \"image\""},
		{`[{"image":"a","caption":5}]`, "string or a list"},
		{`[{"image":"a","caption":[]}]`, "no captions"},
		{`{"images":`, "c.txt"},
	} {
		_, err := ParseCaptions([]byte(tc.in), "c.txt", CaptionOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
		}
	}
}

func FuzzParseCSV(f *testing.F) {
	f.Add("path,label\na.jpg,dog\n")
	f.Add("a.jpg\n")
	f.Add("\"a\n")
	f.Fuzz(func(t *testing.T, s string) {
		ds, err := ParseCSV(strings.NewReader(s), "fuzz", "")
		if err != nil {
			return
		}
		for _, smp := range ds.Samples {
			if smp.Label < 0 || smp.Label >= len(ds.Classes) || smp.Path == "" {
				t.Fatalf("bad sample %+v", smp)
			}
		}
	})
}

func FuzzParseCaptions(f *testing.F) {
	f.Add([]byte(`{"images":[{"filename":"a.jpg","split":"test","sentences":[{"raw":"x"}]}]}`))
	f.Add([]byte(`[{"image":"a","caption":["x","y"]}]`))
	f.Add([]byte("a.jpg\tcap\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCaptions(data, "fuzz", CaptionOptions{})
		if err != nil {
			return
		}
		if len(c.Texts) != len(c.TextImage) {
			t.Fatal("caption links out of step")
		}
		for _, i := range c.TextImage {
			if i < 0 || i >= len(c.Images) {
				t.Fatalf("caption of image %d of %d", i, len(c.Images))
			}
		}
	})
}
