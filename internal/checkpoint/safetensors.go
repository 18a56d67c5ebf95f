package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sort"
)

// MaxHeaderSize bounds the JSON header of a safetensors file (100 MB, the
// limit of the reference implementation).
const MaxHeaderSize = 100 << 20

// maxDims bounds the rank of a tensor read from any file.
const maxDims = 64

// OpenSafetensors reads a safetensors file. The file is memory-mapped where
// the platform allows (tensor Data then aliases the mapping, see
// File.Close) and read into memory elsewhere. The header is validated
// against the file size before anything is allocated from it.
func OpenSafetensors(path string) (*File, error) {
	data, mapped, err := readWhole(path)
	if err != nil {
		return nil, err
	}
	f, err := ParseSafetensors(path, data)
	if err != nil {
		if mapped {
			unmapFile(data)
		}
		return nil, err
	}
	if mapped {
		f.mappings = [][]byte{data}
	}
	return f, nil
}

// ReadSafetensors reads a safetensors stream of the given size from r; name
// is used in errors and recorded as File.Path. The header is validated
// against size before the data section is read into memory.
func ReadSafetensors(name string, r io.ReaderAt, size int64) (*File, error) {
	var lenBuf [8]byte
	if size < 8 {
		return nil, fmt.Errorf("%s: not a safetensors file: %d bytes is too short for the 8-byte header length", name, size)
	}
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("%s: reading header length: %w", name, err)
	}
	hlen, err := checkHeaderLen(name, binary.LittleEndian.Uint64(lenBuf[:]), size)
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, hlen)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("%s: reading header: %w", name, err)
	}
	dataLen := size - 8 - hlen
	f, spans, err := parseSafetensorsHeader(name, hdr, dataLen)
	if err != nil {
		return nil, err
	}
	data := make([]byte, dataLen)
	if _, err := r.ReadAt(data, 8+hlen); err != nil && !(err == io.EOF && dataLen == 0) {
		return nil, fmt.Errorf("%s: reading tensor data: %w", name, err)
	}
	attach(f, spans, data)
	return f, nil
}

// ParseSafetensors parses a whole safetensors file held in b; tensor Data
// aliases b (no copy). name is used in errors and recorded as File.Path.
func ParseSafetensors(name string, b []byte) (*File, error) {
	size := int64(len(b))
	if size < 8 {
		return nil, fmt.Errorf("%s: not a safetensors file: %d bytes is too short for the 8-byte header length", name, size)
	}
	hlen, err := checkHeaderLen(name, binary.LittleEndian.Uint64(b), size)
	if err != nil {
		return nil, err
	}
	f, spans, err := parseSafetensorsHeader(name, b[8:8+hlen], size-8-hlen)
	if err != nil {
		return nil, err
	}
	attach(f, spans, b[8+hlen:])
	return f, nil
}

func checkHeaderLen(name string, hlen uint64, size int64) (int64, error) {
	if hlen > MaxHeaderSize {
		return 0, fmt.Errorf("%s: safetensors header length %d exceeds the %d-byte limit (not a safetensors file?)", name, hlen, MaxHeaderSize)
	}
	if int64(hlen) > size-8 {
		return 0, fmt.Errorf("%s: safetensors header length %d runs past the end of the %d-byte file (truncated?)", name, hlen, size)
	}
	if hlen < 2 {
		return 0, fmt.Errorf("%s: safetensors header length %d is too short for a JSON object", name, hlen)
	}
	return int64(hlen), nil
}

type headerEntry struct {
	DType   DType     `json:"dtype"`
	Shape   []int64   `json:"shape"`
	Offsets *[2]int64 `json:"data_offsets"`
}

type span struct {
	t      *Tensor
	lo, hi int64
}

func attach(f *File, spans []span, data []byte) {
	for _, s := range spans {
		s.t.Data = data[s.lo:s.hi:s.hi]
	}
}

// parseSafetensorsHeader validates the JSON header against a data section
// of dataLen bytes and returns the tensors (without data) in offset order.
//
// Rules: the header is a JSON object; every entry but __metadata__ has a
// known dtype, a non-negative shape and data_offsets [begin, end) inside the
// data section holding exactly shape × dtype-size bytes; no two tensors
// overlap. Gaps between tensors are allowed. Offsets that are not a multiple
// of the dtype size are accepted: the bytes are read as stored, and such a
// tensor simply has no zero-copy Float32View (Float32 converts it).
func parseSafetensorsHeader(name string, hdr []byte, dataLen int64) (*File, []span, error) {
	if t := bytes.TrimLeft(hdr, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, nil, fmt.Errorf("%s: safetensors header is not a JSON object", name)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, nil, fmt.Errorf("%s: safetensors header is not valid JSON: %v", name, err)
	}
	f := &File{Path: name, Tensors: map[string]*Tensor{}, Format: "safetensors"}
	var spans []span
	for tname, msg := range raw {
		if tname == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, nil, fmt.Errorf("%s: __metadata__ must map strings to strings: %v", name, err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, nil, fmt.Errorf("%s: tensor %q: bad header entry: %v", name, tname, err)
		}
		if e.DType == "" {
			return nil, nil, fmt.Errorf("%s: tensor %q: header entry has no dtype", name, tname)
		}
		es := int64(e.DType.Size())
		if es == 0 {
			return nil, nil, fmt.Errorf("%s: tensor %q: unknown dtype %q", name, tname, e.DType)
		}
		if e.Offsets == nil {
			return nil, nil, fmt.Errorf("%s: tensor %q: header entry has no data_offsets", name, tname)
		}
		if e.Shape == nil {
			return nil, nil, fmt.Errorf("%s: tensor %q: header entry has no shape", name, tname)
		}
		if len(e.Shape) > maxDims {
			return nil, nil, fmt.Errorf("%s: tensor %q: %d dimensions (at most %d)", name, tname, len(e.Shape), maxDims)
		}
		n, ok := numel(e.Shape)
		if !ok {
			return nil, nil, fmt.Errorf("%s: tensor %q: invalid shape %v", name, tname, e.Shape)
		}
		lo, hi := e.Offsets[0], e.Offsets[1]
		if lo < 0 || hi < lo || hi > dataLen {
			return nil, nil, fmt.Errorf("%s: tensor %q: data offsets [%d, %d) out of range: the data section is %d bytes (truncated file?)", name, tname, lo, hi, dataLen)
		}
		if n > (1<<62)/es || hi-lo != n*es {
			return nil, nil, fmt.Errorf("%s: tensor %q: data offsets [%d, %d) hold %d bytes, but shape %v of %s needs %d", name, tname, lo, hi, hi-lo, e.Shape, e.DType, n*es)
		}
		shape := make([]int, len(e.Shape))
		for i, d := range e.Shape {
			shape[i] = int(d)
		}
		t := &Tensor{Name: tname, DType: e.DType, Shape: shape}
		f.Tensors[tname] = t
		spans = append(spans, span{t, lo, hi})
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].lo != spans[j].lo {
			return spans[i].lo < spans[j].lo
		}
		if spans[i].hi != spans[j].hi {
			return spans[i].hi < spans[j].hi
		}
		return spans[i].t.Name < spans[j].t.Name
	})
	var prev *span
	for i := range spans {
		s := &spans[i]
		if s.hi == s.lo { // empty tensors occupy no bytes
			continue
		}
		if prev != nil && s.lo < prev.hi {
			return nil, nil, fmt.Errorf("%s: tensors %q [%d, %d) and %q [%d, %d) overlap in the data section", name, prev.t.Name, prev.lo, prev.hi, s.t.Name, s.lo, s.hi)
		}
		prev = s
	}
	for _, s := range spans {
		f.Names = append(f.Names, s.t.Name)
	}
	return f, spans, nil
}

// numel returns the product of a shape, false if a dimension is negative or
// the product exceeds 2^50 elements.
func numel(shape []int64) (int64, bool) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		if d > 0 && n > (1<<50)/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}
