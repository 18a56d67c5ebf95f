package checkpoint

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// EncodeSafetensors writes tensors to w in the safetensors format: an 8-byte
// little-endian header length N, N bytes of compact JSON padded with spaces
// so that 8+N is a multiple of 8, then the raw data. __metadata__ (omitted
// when empty) comes first in the header; tensors are stored and listed by
// decreasing dtype size (alignment), then by name, which keeps every tensor
// aligned to its element size. Every tensor must have a unique name, a
// known dtype and exactly NumElements × dtype-size bytes of Data.
func EncodeSafetensors(w io.Writer, tensors []*Tensor, metadata map[string]string) error {
	ts := append([]*Tensor(nil), tensors...)
	seen := map[string]bool{}
	for _, t := range ts {
		if t == nil {
			return fmt.Errorf("safetensors: nil tensor")
		}
		if t.Name == "" || t.Name == "__metadata__" {
			return fmt.Errorf("safetensors: invalid tensor name %q", t.Name)
		}
		if seen[t.Name] {
			return fmt.Errorf("safetensors: tensor %q given twice", t.Name)
		}
		seen[t.Name] = true
		es := t.DType.Size()
		if es == 0 {
			return fmt.Errorf("safetensors: tensor %q: unknown dtype %q", t.Name, t.DType)
		}
		n := 1
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("safetensors: tensor %q: negative dimension in shape %v", t.Name, t.Shape)
			}
			n *= d
		}
		if len(t.Data) != n*es {
			return fmt.Errorf("safetensors: tensor %q: %d bytes of data for shape %v of %s (want %d)", t.Name, len(t.Data), t.Shape, t.DType, n*es)
		}
	}
	sort.SliceStable(ts, func(i, j int) bool {
		a, b := ts[i].DType.Size(), ts[j].DType.Size()
		if a != b {
			return a > b
		}
		return ts[i].Name < ts[j].Name
	})

	var h bytes.Buffer
	h.WriteByte('{')
	first := true
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		h.WriteString(`"__metadata__":{`)
		for i, k := range keys {
			if i > 0 {
				h.WriteByte(',')
			}
			writeJSONString(&h, k)
			h.WriteByte(':')
			writeJSONString(&h, metadata[k])
		}
		h.WriteByte('}')
		first = false
	}
	var off int64
	for _, t := range ts {
		if !first {
			h.WriteByte(',')
		}
		first = false
		writeJSONString(&h, t.Name)
		h.WriteString(`:{"dtype":`)
		writeJSONString(&h, string(t.DType))
		h.WriteString(`,"shape":[`)
		for i, d := range t.Shape {
			if i > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		end := off + int64(len(t.Data))
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, off, end)
		off = end
	}
	h.WriteByte('}')
	for (8+h.Len())%8 != 0 {
		h.WriteByte(' ')
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(h.Len()))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(h.Bytes()); err != nil {
		return err
	}
	for _, t := range ts {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// writeJSONString writes s as a JSON string without HTML escaping (as
// serde_json and Python's json do).
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)           // cannot fail for a string
	b.Truncate(b.Len() - 1) // Encode appends a newline
}

// WriteSafetensors writes tensors to path with EncodeSafetensors. It writes
// a temporary file beside path and renames it into place, so path is either
// the old file or the complete new one.
func WriteSafetensors(path string, tensors []*Tensor, metadata map[string]string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := EncodeSafetensors(bw, tensors, metadata); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
