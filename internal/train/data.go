package train

import (
	"archive/tar"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Sample is one image–caption pair of a training set.
type Sample struct {
	// Key names the sample in messages: the image path, or shard:key for
	// WebDataset samples.
	Key     string
	Caption string
	// Image returns the encoded image bytes.
	Image func() ([]byte, error)
}

// Dataset is a random-access list of samples.
type Dataset interface {
	Len() int
	Sample(i int) Sample
}

// CSVOptions says how to read a CSV training list (open_clip's
// --csv-img-key, --csv-caption-key and --csv-separator).
type CSVOptions struct {
	ImageKey   string // column holding the image path (default "filepath")
	CaptionKey string // column holding the caption (default "caption")
	Separator  rune   // field separator (default ',')
}

// CSVDataset is a training set read from a CSV file with a header row.
// Relative image paths are resolved against the CSV file's directory.
type CSVDataset struct {
	Path  string
	Rows  []CSVRow
	Empty int // rows dropped because their caption is empty
}

// CSVRow is one kept row of a CSVDataset.
type CSVRow struct {
	Image, Caption string
}

// ReadCSV reads a training CSV from path.
func ReadCSV(path string, o CSVOptions) (*CSVDataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d, err := ParseCSV(f, path, o)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	for i := range d.Rows {
		if !filepath.IsAbs(d.Rows[i].Image) {
			d.Rows[i].Image = filepath.Join(dir, d.Rows[i].Image)
		}
	}
	return d, nil
}

// ParseCSV reads a training CSV from r; name is used in messages. Image
// paths are returned as written.
func ParseCSV(r io.Reader, name string, o CSVOptions) (*CSVDataset, error) {
	if o.ImageKey == "" {
		o.ImageKey = "filepath"
	}
	if o.CaptionKey == "" {
		o.CaptionKey = "caption"
	}
	cr := csv.NewReader(r)
	if o.Separator != 0 {
		cr.Comma = o.Separator
	}
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: empty CSV (want a header row with %q and %q)", name, o.ImageKey, o.CaptionKey)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ii, ci := -1, -1
	for i, h := range head {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		switch h {
		case o.ImageKey:
			ii = i
		case o.CaptionKey:
			ci = i
		}
	}
	if ii < 0 || ci < 0 {
		return nil, fmt.Errorf("%s: header %q lacks the image column %q or the caption column %q (set --csv-img-key/--csv-caption-key)",
			name, strings.Join(head, string(cr.Comma)), o.ImageKey, o.CaptionKey)
	}
	d := &CSVDataset{Path: name}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if ii >= len(rec) || ci >= len(rec) {
			return nil, fmt.Errorf("%s: line %d has %d fields, want at least %d", name, lineOf(cr), len(rec), max(ii, ci)+1)
		}
		img := strings.TrimSpace(rec[ii])
		capt := strings.TrimSpace(rec[ci])
		if img == "" {
			return nil, fmt.Errorf("%s: line %d has an empty image path", name, lineOf(cr))
		}
		if capt == "" {
			d.Empty++
			continue
		}
		d.Rows = append(d.Rows, CSVRow{Image: img, Caption: capt})
	}
	if len(d.Rows) == 0 {
		return nil, fmt.Errorf("%s: no rows with a caption", name)
	}
	return d, nil
}

func lineOf(cr *csv.Reader) int {
	l, _ := cr.FieldPos(0)
	return l
}

// Len returns the number of rows.
func (d *CSVDataset) Len() int { return len(d.Rows) }

// Sample returns row i; the image is read from disk on demand.
func (d *CSVDataset) Sample(i int) Sample {
	r := d.Rows[i]
	return Sample{Key: r.Image, Caption: r.Caption, Image: func() ([]byte, error) { return os.ReadFile(r.Image) }}
}

// imageExts are the WebDataset image extensions, in order of preference.
var imageExts = []string{"jpg", "jpeg", "png", "webp", "gif", "bmp"}

// WebDataset is a training set of WebDataset tar shards: files grouped by
// key (the name up to the first dot of its base name), each group holding
// an image (.jpg, .jpeg, .png…) and a caption (.txt). Only the index is
// kept in memory; samples are read from the shards by offset.
type WebDataset struct {
	Shards  []string
	Samples []wdsSample
	// Incomplete counts groups dropped because they lack an image or a
	// caption, or their caption is empty.
	Incomplete int
}

type wdsSample struct {
	shard          int
	key            string
	imgOff, imgLen int64
	caption        string
}

// maxCaptionBytes bounds a caption file read while indexing.
const maxCaptionBytes = 1 << 16

// OpenWebDataset indexes the given tar shards.
func OpenWebDataset(shards []string) (*WebDataset, error) {
	w := &WebDataset{Shards: shards}
	for si, path := range shards {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		err = w.index(si, f, path)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	if len(w.Samples) == 0 {
		return nil, fmt.Errorf("%s: no samples with both an image and a caption", strings.Join(shards, ", "))
	}
	return w, nil
}

// index scans one shard. r must be positioned at the start of the tar.
func (w *WebDataset) index(si int, r io.ReadSeeker, name string) error {
	type group struct {
		s            wdsSample
		hasImg, hasT bool
		imgRank      int
	}
	groups := map[string]*group{}
	var order []string
	cr := &countingReader{r: r}
	tr := tar.NewReader(cr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: not a readable tar shard: %w", name, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		dir, base := filepath.Split(h.Name)
		dot := strings.IndexByte(base, '.')
		if dot <= 0 {
			continue
		}
		key, ext := dir+base[:dot], strings.ToLower(base[dot+1:])
		g := groups[key]
		if g == nil {
			g = &group{s: wdsSample{shard: si, key: key}, imgRank: len(imageExts)}
			groups[key] = g
			order = append(order, key)
		}
		switch {
		case ext == "txt":
			b, err := io.ReadAll(io.LimitReader(tr, maxCaptionBytes+1))
			if err != nil {
				return fmt.Errorf("%s: %s: %w", name, h.Name, err)
			}
			if len(b) > maxCaptionBytes {
				return fmt.Errorf("%s: %s: caption longer than %d bytes", name, h.Name, maxCaptionBytes)
			}
			g.s.caption = strings.TrimSpace(string(b))
			g.hasT = true
		default:
			for rank, e := range imageExts {
				if ext == e && rank < g.imgRank {
					// The file's data starts where the reader is now.
					g.s.imgOff, g.s.imgLen = cr.n, h.Size
					g.imgRank, g.hasImg = rank, true
				}
			}
		}
	}
	for _, k := range order {
		g := groups[k]
		if !g.hasImg || !g.hasT || g.s.caption == "" {
			w.Incomplete++
			continue
		}
		w.Samples = append(w.Samples, g.s)
	}
	return nil
}

// countingReader counts the bytes read so far; tar.Reader reads headers
// and data through it, so after Next the count is the data offset.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Len returns the number of samples.
func (w *WebDataset) Len() int { return len(w.Samples) }

// Sample returns sample i; its image is read from the shard on demand.
func (w *WebDataset) Sample(i int) Sample {
	s := w.Samples[i]
	path := w.Shards[s.shard]
	return Sample{Key: path + ":" + s.key, Caption: s.caption, Image: func() ([]byte, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b := make([]byte, s.imgLen)
		if _, err := f.ReadAt(b, s.imgOff); err != nil {
			return nil, fmt.Errorf("%s: reading %s: %w", path, s.key, err)
		}
		return b, nil
	}}
}

// OpenData opens a training set: a CSV file, or WebDataset shards given as
// a list separated by "::" (open_clip's convention), each entry a file
// name or a glob pattern.
func OpenData(spec string, o CSVOptions) (Dataset, string, error) {
	if spec == "" {
		return nil, "", errors.New("no training data given")
	}
	var shards []string
	for _, part := range strings.Split(spec, "::") {
		if strings.ContainsAny(part, "*?[") {
			m, err := filepath.Glob(part)
			if err != nil {
				return nil, "", fmt.Errorf("bad pattern %q: %w", part, err)
			}
			if len(m) == 0 {
				return nil, "", fmt.Errorf("%s matches no files", part)
			}
			sort.Strings(m)
			shards = append(shards, m...)
			continue
		}
		shards = append(shards, part)
	}
	if len(shards) == 1 && !strings.HasSuffix(strings.ToLower(shards[0]), ".tar") {
		d, err := ReadCSV(shards[0], o)
		if err != nil {
			return nil, "", err
		}
		return d, fmt.Sprintf("%s: %d rows (%d with an empty caption skipped)", d.Path, len(d.Rows), d.Empty), nil
	}
	w, err := OpenWebDataset(shards)
	if err != nil {
		return nil, "", err
	}
	return w, fmt.Sprintf("%d shards: %d samples (%d incomplete skipped)", len(shards), len(w.Samples), w.Incomplete), nil
}
