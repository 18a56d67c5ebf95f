package checkpoint

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unsafe"
)

// File is a loaded checkpoint: named tensors plus the order they appeared in.
type File struct {
	Path     string
	Tensors  map[string]*Tensor
	Names    []string
	Metadata map[string]string
	// Format names the layout the tensors were read from: "safetensors",
	// "pytorch-zip", "torchscript", or, after a Hugging Face key mapping,
	// "hf-safetensors" / "hf-pytorch-zip".
	Format string

	mappings [][]byte // memory-mapped files backing Tensor.Data
}

// NewFile returns an in-memory File named name holding ts, in their order
// (a model's state dict, to build a model from or to write).
func NewFile(name string, ts []*Tensor) *File {
	f := &File{Path: name, Tensors: make(map[string]*Tensor, len(ts))}
	for _, t := range ts {
		f.Tensors[t.Name] = t
		f.Names = append(f.Names, t.Name)
	}
	return f
}

// Tensor returns the named tensor or nil.
func (f *File) Tensor(name string) *Tensor { return f.Tensors[name] }

// Close releases the file's memory mapping, if any. Afterwards the Data of
// every tensor (and every Float32View) read from a mapped file is invalid
// and must not be touched. Close is only needed to reclaim address space
// early; an unclosed File stays valid for the life of the process.
func (f *File) Close() error {
	if f == nil || len(f.mappings) == 0 {
		return nil
	}
	ms := f.mappings
	f.mappings = nil
	for _, t := range f.Tensors {
		t.Data = nil
	}
	var first error
	for _, m := range ms {
		if err := unmapFile(m); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Release hints that t's bytes are no longer needed in memory. Where t's
// Data lies in a memory-mapped file, the pages holding it are dropped from
// the process's resident set — on Linux with madvise(MADV_DONTNEED), rounded
// out to whole 2 MiB blocks of the file, since a page fault maps a whole
// page-cache folio and so maps back parts of neighbouring tensors —
// so that a loader which copies or packs tensors one at a time never holds
// the whole file resident beside its copies. Data stays valid: touching it
// again reads the bytes back from the file (the mapping is private and
// never written, so what comes back is what was there). Release does
// nothing for a nil tensor, a tensor held in ordinary memory, or on
// platforms without the hint.
func (f *File) Release(t *Tensor) {
	if f == nil || t == nil || len(t.Data) == 0 {
		return
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(t.Data)))
	for _, m := range f.mappings {
		if len(m) == 0 {
			continue
		}
		base := uintptr(unsafe.Pointer(unsafe.SliceData(m)))
		if p >= base && p-base < uintptr(len(m)) && p-base+uintptr(len(t.Data)) <= uintptr(len(m)) {
			lo := int(p - base)
			releasePages(m, lo, lo+len(t.Data))
			return
		}
	}
}

// add appends a tensor, rejecting duplicates.
func (f *File) add(t *Tensor) error {
	if f.Tensors == nil {
		f.Tensors = map[string]*Tensor{}
	}
	if _, dup := f.Tensors[t.Name]; dup {
		return fmt.Errorf("%s: tensor %q appears twice", f.Path, t.Name)
	}
	f.Tensors[t.Name] = t
	f.Names = append(f.Names, t.Name)
	return nil
}

// readWhole maps path into memory, or reads it where mapping is unavailable.
// mapped says which; a mapping must be released with unmapFile.
func readWhole(path string) (data []byte, mapped bool, err error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, false, err
	}
	if !st.Mode().IsRegular() {
		return nil, false, fmt.Errorf("%s: not a regular file", path)
	}
	size := st.Size()
	if m, _ := mapFile(fh, size); m != nil {
		return m, true, nil
	}
	if int64(int(size)) != size {
		return nil, false, fmt.Errorf("%s: %d bytes is too large for this platform", path, size)
	}
	data = make([]byte, size)
	if _, err := io.ReadFull(fh, data); err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	return data, false, nil
}

// ShapeMismatch is one tensor whose shape differs from the expected one.
type ShapeMismatch struct {
	Name      string
	Want, Got []int
}

// ValidationError lists every way a checkpoint differs from the tensor
// shapes a model expects.
type ValidationError struct {
	Path       string
	Missing    []string // expected but absent
	Unexpected []string // present but not expected
	Mismatched []ShapeMismatch
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: checkpoint does not match the model:", e.Path)
	for _, n := range e.Missing {
		fmt.Fprintf(&b, "\n  missing tensor %q", n)
	}
	for _, n := range e.Unexpected {
		fmt.Fprintf(&b, "\n  unexpected tensor %q", n)
	}
	for _, m := range e.Mismatched {
		fmt.Fprintf(&b, "\n  tensor %q: expected shape %v, got %v", m.Name, m.Want, m.Got)
	}
	return b.String()
}

// Validate checks f against the shapes a model expects (name to shape). It
// returns nil when the names match exactly and every shape agrees, and
// otherwise a *ValidationError naming each missing tensor, each unexpected
// tensor and each shape mismatch (sorted by name).
func Validate(f *File, want map[string][]int) error {
	e := &ValidationError{Path: f.Path}
	for name, ws := range want {
		t := f.Tensors[name]
		if t == nil {
			e.Missing = append(e.Missing, name)
			continue
		}
		if !equalShape(ws, t.Shape) {
			e.Mismatched = append(e.Mismatched, ShapeMismatch{Name: name, Want: ws, Got: t.Shape})
		}
	}
	for name := range f.Tensors {
		if _, ok := want[name]; !ok {
			e.Unexpected = append(e.Unexpected, name)
		}
	}
	if len(e.Missing)+len(e.Unexpected)+len(e.Mismatched) == 0 {
		return nil
	}
	sort.Strings(e.Missing)
	sort.Strings(e.Unexpected)
	sort.Slice(e.Mismatched, func(i, j int) bool { return e.Mismatched[i].Name < e.Mismatched[j].Name })
	return e
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// errLegacy is returned for torch.save files from before PyTorch 1.6.
var errLegacy = errors.New("legacy (pre-1.6, non-zip) torch.save format is not supported: re-save it with a current PyTorch or convert it to safetensors")
