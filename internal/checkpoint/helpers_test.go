package checkpoint

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// pk assembles pickle programs by hand, opcode by opcode, the way torch.save
// and torch.jit.save lay them out.
type pk struct{ bytes.Buffer }

func (p *pk) op(b ...byte) *pk { p.Write(b); return p }

func (p *pk) proto(v byte) *pk { return p.op(0x80, v) }

func (p *pk) global(mod, name string) *pk {
	p.WriteByte('c')
	p.WriteString(mod + "\n" + name + "\n")
	return p
}

func (p *pk) str(s string) *pk {
	var l [4]byte
	binary.LittleEndian.PutUint32(l[:], uint32(len(s)))
	p.WriteByte('X')
	p.Write(l[:])
	p.WriteString(s)
	return p
}

func (p *pk) int(n int64) *pk {
	switch {
	case n >= 0 && n < 256:
		return p.op('K', byte(n))
	case n >= 0 && n < 65536:
		return p.op('M', byte(n), byte(n>>8))
	case n >= math.MinInt32 && n <= math.MaxInt32:
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(int32(n)))
		p.WriteByte('J')
		p.Write(b[:])
		return p
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(n))
	p.op(0x8a, 8)
	p.Write(b[:])
	return p
}

func (p *pk) ints(v []int64) *pk {
	p.op('(')
	for _, n := range v {
		p.int(n)
	}
	return p.op('t')
}

func (p *pk) put(i byte) *pk { return p.op('q', i) }
func (p *pk) get(i byte) *pk { return p.op('h', i) }

// tensor emits torch._utils._rebuild_tensor_v2(storage, offset, size,
// stride, False, OrderedDict()) with a ('storage', torch.<typ>, key, 'cpu',
// numel) persistent id, as torch.save does.
func (p *pk) tensor(typ, key string, numel, offset int64, size, stride []int64) *pk {
	p.global("torch._utils", "_rebuild_tensor_v2")
	p.op('(')
	p.op('(').str("storage").global("torch", typ).str(key).str("cpu").int(numel).op('t', 'Q')
	p.int(offset).ints(size).ints(stride).op(0x89)
	p.global("collections", "OrderedDict").op(')', 'R')
	return p.op('t', 'R')
}

// stateDict emits OrderedDict() REDUCE then MARK, items, SETITEMS.
func (p *pk) stateDict(items func(p *pk)) *pk {
	p.global("collections", "OrderedDict").op(')', 'R', '(')
	items(p)
	return p.op('u')
}

type zent struct {
	name string
	data []byte
}

// zipBytes builds an uncompressed zip archive (as torch.save writes).
func zipBytes(t testing.TB, ents []zent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func f32bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func i64bytes(v ...int64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return b
}

func f16bytes(v ...uint16) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], x)
	}
	return b
}

// stBytes assembles a safetensors file from a raw header and data section.
func stBytes(header string, data []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}
