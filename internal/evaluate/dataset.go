// Package evaluate measures CLIP models the way CLIP_benchmark does:
// zero-shot classification (acc@1, acc@5, mean per-class recall, confusion
// matrix), image–text retrieval (recall@k both directions) and linear
// probes (L2-regularised multinomial logistic regression on frozen
// features). It also reads the datasets: image folders, path,label CSVs,
// Karpathy-style caption JSON and image<TAB>caption files.
package evaluate

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// Sample is one labelled image.
type Sample struct {
	Path  string
	Label int // index into Dataset.Classes
}

// Dataset is a labelled image set.
type Dataset struct {
	Name    string
	Classes []string
	Samples []Sample
}

// imageExts are the file extensions LoadFolder takes as images.
var imageExts = map[string]bool{
	".jpg": true, ".jpeg": true, ".png": true, ".gif": true, ".bmp": true,
	".webp": true, ".tif": true, ".tiff": true, ".ppm": true, ".pgm": true,
}

// IsImageName reports whether a file name has an image extension.
func IsImageName(name string) bool { return imageExts[strings.ToLower(filepath.Ext(name))] }

// Load reads a dataset from path: a directory (LoadFolder) or a CSV file
// (LoadCSV).
func Load(path string) (*Dataset, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if st.IsDir() {
		return LoadFolder(path)
	}
	return LoadCSV(path)
}

// ClassName turns a folder name into a class name: '_' becomes a space.
func ClassName(folder string) string { return strings.ReplaceAll(folder, "_", " ") }

// LoadFolder reads an image folder: one sub-folder per class (sorted by
// folder name, as torchvision's ImageFolder), class name = folder name with
// '_' → ' ', every file with an image extension below it (recursively,
// sorted) a sample. Hidden files and folders are skipped. Files are not
// opened here; unreadable images surface when they are encoded.
func LoadFolder(dir string) (*Dataset, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	ds := &Dataset{Name: filepath.Base(filepath.Clean(dir))}
	seen := map[string]string{}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		name := ClassName(e.Name())
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("dataset %s: folders %q and %q give the same class name %q", dir, prev, e.Name(), name)
		}
		seen[name] = e.Name()
		label := len(ds.Classes)
		ds.Classes = append(ds.Classes, name)
		root := filepath.Join(dir, e.Name())
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") && p != root {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && IsImageName(d.Name()) {
				ds.Samples = append(ds.Samples, Sample{Path: p, Label: label})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("dataset: %w", err)
		}
	}
	if len(ds.Classes) == 0 {
		return nil, fmt.Errorf("dataset %s: no class sub-folders (expected DIR/CLASS/IMAGE)", dir)
	}
	if len(ds.Samples) == 0 {
		return nil, fmt.Errorf("dataset %s: no images (extensions %s)", dir, strings.Join(sortedExts(), " "))
	}
	return ds, nil
}

func sortedExts() []string {
	var e []string
	for k := range imageExts {
		e = append(e, k)
	}
	sort.Strings(e)
	return e
}

// LoadCSV reads a "path,label" CSV. A first row whose first field is
// "path", "filepath", "image" or "filename" is a header. Relative paths are
// relative to the CSV's folder. Classes are the distinct labels, sorted.
// Errors name the line.
func LoadCSV(path string) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	ds, err := ParseCSV(f, path, filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	ds.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return ds, nil
}

// ParseCSV parses "path,label" rows from r; name is used in errors and
// base is prepended to relative paths.
func ParseCSV(r io.Reader, name, base string) (*Dataset, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	type row struct {
		path, label string
	}
	var rows []row
	first := true
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		if first {
			first = false
			switch strings.ToLower(strings.TrimSpace(strings.TrimPrefix(rec[0], "\ufeff"))) {
			case "path", "filepath", "image", "filename", "file":
				continue
			}
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // blank line
		}
		if len(rec) < 2 {
			return nil, fmt.Errorf("%s:%d: missing label column (want path,label)", name, line)
		}
		p, l := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1])
		if p == "" {
			return nil, fmt.Errorf("%s:%d: empty path", name, line)
		}
		if l == "" {
			return nil, fmt.Errorf("%s:%d: empty label", name, line)
		}
		if !utf8.ValidString(p) || !utf8.ValidString(l) {
			return nil, fmt.Errorf("%s:%d: not valid UTF-8", name, line)
		}
		if !filepath.IsAbs(p) && base != "" {
			p = filepath.Join(base, p)
		}
		rows = append(rows, row{p, l})
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows", name)
	}
	idx := map[string]int{}
	for _, r := range rows {
		idx[r.label] = 0
	}
	ds := &Dataset{Name: name}
	for l := range idx {
		ds.Classes = append(ds.Classes, l)
	}
	sort.Strings(ds.Classes)
	for i, c := range ds.Classes {
		idx[c] = i
	}
	ds.Samples = make([]Sample, len(rows))
	for i, r := range rows {
		ds.Samples[i] = Sample{Path: r.path, Label: idx[r.label]}
	}
	return ds, nil
}

// Paths returns the samples' paths in order.
func (d *Dataset) Paths() []string {
	p := make([]string, len(d.Samples))
	for i, s := range d.Samples {
		p[i] = s.Path
	}
	return p
}
