package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
)

// MaxHeaderSize bounds the JSON header of a safetensors file (100 MB, the
// limit of the reference implementation).
const MaxHeaderSize = 100 << 20

// File is a loaded checkpoint: named tensors plus the order they appeared in.
type File struct {
	Path     string
	Tensors  map[string]*Tensor
	Names    []string
	Metadata map[string]string
}

// Tensor returns the named tensor or nil.
func (f *File) Tensor(name string) *Tensor { return f.Tensors[name] }

// OpenSafetensors reads a safetensors file, validating its header against
// the file size before any tensor memory is allocated.
func OpenSafetensors(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	var lenBuf [8]byte
	if _, err := io.ReadFull(fh, lenBuf[:]); err != nil {
		return nil, fmt.Errorf("%s: not a safetensors file: too short for the 8-byte header length", path)
	}
	hlen := binary.LittleEndian.Uint64(lenBuf[:])
	if hlen > MaxHeaderSize {
		return nil, fmt.Errorf("%s: safetensors header length %d exceeds the %d-byte limit", path, hlen, MaxHeaderSize)
	}
	if int64(hlen) > size-8 {
		return nil, fmt.Errorf("%s: safetensors header length %d runs past the end of the %d-byte file (truncated?)", path, hlen, size)
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(fh, hdr); err != nil {
		return nil, fmt.Errorf("%s: reading header: %w", path, err)
	}
	dataLen := size - 8 - int64(hlen)
	f, err := parseSafetensorsHeader(path, hdr, dataLen)
	if err != nil {
		return nil, err
	}
	data := make([]byte, dataLen)
	if _, err := io.ReadFull(fh, data); err != nil {
		return nil, fmt.Errorf("%s: reading tensor data: %w", path, err)
	}
	for _, t := range f.Tensors {
		t.Tensor.Data = data[t.off[0]:t.off[1]:t.off[1]]
	}
	return f.File, nil
}

type headerEntry struct {
	DType   DType    `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

type parsedTensor struct {
	*Tensor
	off [2]int64
}

type parsedFile struct {
	*File
	Tensors map[string]parsedTensor
}

func parseSafetensorsHeader(path string, hdr []byte, dataLen int64) (*parsedFile, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("%s: safetensors header is not a JSON object: %v", path, err)
	}
	pf := &parsedFile{File: &File{Path: path, Tensors: map[string]*Tensor{}}, Tensors: map[string]parsedTensor{}}
	type span struct {
		name   string
		lo, hi int64
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &pf.Metadata); err != nil {
				return nil, fmt.Errorf("%s: __metadata__ must map strings to strings: %v", path, err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("%s: tensor %q: bad header entry: %v", path, name, err)
		}
		es := e.DType.Size()
		if es == 0 {
			return nil, fmt.Errorf("%s: tensor %q: unknown dtype %q", path, name, e.DType)
		}
		n := int64(1)
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && n > (1<<62)/int64(d)) {
				return nil, fmt.Errorf("%s: tensor %q: invalid shape %v", path, name, e.Shape)
			}
			n *= int64(d)
		}
		lo, hi := e.Offsets[0], e.Offsets[1]
		if lo < 0 || hi < lo || hi > dataLen {
			return nil, fmt.Errorf("%s: tensor %q: data offsets [%d, %d) out of range (data section is %d bytes)", path, name, lo, hi, dataLen)
		}
		if hi-lo != n*int64(es) {
			return nil, fmt.Errorf("%s: tensor %q: data offsets [%d, %d) hold %d bytes, shape %v of %s needs %d", path, name, lo, hi, hi-lo, e.Shape, e.DType, n*int64(es))
		}
		t := &Tensor{Name: name, DType: e.DType, Shape: append([]int{}, e.Shape...)}
		pf.File.Tensors[name] = t
		pf.Tensors[name] = parsedTensor{t, [2]int64{lo, hi}}
		spans = append(spans, span{name, lo, hi})
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].lo != spans[j].lo {
			return spans[i].lo < spans[j].lo
		}
		return spans[i].name < spans[j].name
	})
	for i := 1; i < len(spans); i++ {
		if spans[i].lo < spans[i-1].hi && spans[i].hi > spans[i].lo {
			return nil, fmt.Errorf("%s: tensors %q and %q overlap in the data section", path, spans[i-1].name, spans[i].name)
		}
	}
	for _, s := range spans {
		pf.File.Names = append(pf.File.Names, s.name)
	}
	return pf, nil
}
