package checkpoint

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

func TestFloat32IntoMatchesFloat32(t *testing.T) {
	cases := []Tensor{
		{Name: "f32", DType: F32, Shape: []int{3}, Data: f32bytes(1, -2.5, float32(math.Inf(1)))},
		{Name: "f32 misaligned", DType: F32, Shape: []int{2}, Data: append([]byte{0}, f32bytes(3, 4)...)[1:]},
		{Name: "bf16", DType: BF16, Shape: []int{2}, Data: f16bytes(0x3f80, 0xc040)},
		{Name: "f16", DType: F16, Shape: []int{2, 1}, Data: f16bytes(0x3555, 0x0001)},
		{Name: "f64", DType: F64, Shape: []int{1}, Data: binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.1))},
		{Name: "i64", DType: I64, Shape: []int{1}, Data: i64bytes(-5)},
		{Name: "i32", DType: I32, Shape: []int{1}, Data: binary.LittleEndian.AppendUint32(nil, 0xfffffffe)},
		{Name: "i16", DType: I16, Shape: []int{1}, Data: binary.LittleEndian.AppendUint16(nil, 0xfffd)},
		{Name: "u8", DType: U8, Shape: []int{2}, Data: []byte{255, 0}},
		{Name: "empty", DType: F32, Shape: []int{0, 3}, Data: []byte{}},
	}
	for _, c := range cases {
		want, err := c.Float32()
		if err != nil {
			t.Fatalf("%s: Float32: %v", c.Name, err)
		}
		got := make([]float32, c.NumElements())
		if err := c.Float32Into(got); err != nil {
			t.Fatalf("%s: Float32Into: %v", c.Name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Float32Into = %v, Float32 = %v", c.Name, got, want)
		}
	}
}

func TestFloat32IntoRejects(t *testing.T) {
	cases := []struct {
		t    Tensor
		dst  int
		want string
	}{
		{Tensor{Name: "short", DType: F32, Shape: []int{2}, Data: f32bytes(1)}, 2, "4 bytes for 2 elements"},
		{Tensor{Name: "q", DType: "Q4", Shape: []int{1}, Data: []byte{1}}, 1, "cannot convert Q4"},
		{Tensor{Name: "dst", DType: F32, Shape: []int{2}, Data: f32bytes(1, 2)}, 3, "2 elements into a buffer of 3"},
	}
	for _, c := range cases {
		err := c.t.Float32Into(make([]float32, c.dst))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.t.Name, err, c.want)
		}
	}
}

func TestFlat(t *testing.T) {
	x := &Tensor{Name: "x", DType: F16, Shape: []int{2, 3}, Data: f16bytes(1, 2, 3, 4, 5, 6)}
	p, err := x.Flat(2, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Shape, []int{3}) || !bytes.Equal(p.Data, f16bytes(3, 4, 5)) || &p.Data[0] != &x.Data[4] {
		t.Errorf("Flat(2, 5) = %v %x, want a [3] view of elements 2..4", p.Shape, p.Data)
	}
	if cap(p.Data) != len(p.Data) {
		t.Error("Flat's data can grow into the rest of the tensor")
	}
	for _, r := range [][2]int{{-1, 2}, {3, 2}, {0, 7}} {
		if _, err := x.Flat(r[0], r[1]); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("Flat(%d, %d): err = %v", r[0], r[1], err)
		}
	}
	bad := &Tensor{Name: "bad", DType: F32, Shape: []int{3}, Data: f32bytes(1)}
	if _, err := bad.Flat(0, 1); err == nil {
		t.Error("Flat accepted bytes that do not match the shape")
	}
}

// residentPages counts the pages of b that are mapped into this process
// (the present bit of /proc/self/pagemap); ok is false where that cannot
// be read.
func residentPages(b []byte) (n int, ok bool) {
	if runtime.GOOS != "linux" || len(b) == 0 {
		return 0, false
	}
	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return 0, false
	}
	defer pm.Close()
	ps := uintptr(os.Getpagesize())
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(b))) / ps
	hi := (uintptr(unsafe.Pointer(unsafe.SliceData(b))) + uintptr(len(b)) + ps - 1) / ps
	buf := make([]byte, 8*(hi-lo))
	if _, err := pm.ReadAt(buf, int64(lo*8)); err != nil {
		return 0, false
	}
	for i := 0; i < len(buf); i += 8 {
		if binary.LittleEndian.Uint64(buf[i:])&(1<<63) != 0 {
			n++
		}
	}
	return n, true
}

// TestReleaseKeepsDataValid releases tensors of a mapped file one by one
// (as model.New does) and checks that their bytes stay readable and
// unchanged, and, on Linux, that the pages really left the resident set,
// including those a later tensor's page faults map back.
func TestReleaseKeepsDataValid(t *testing.T) {
	const n = 3 << 20 // 12 MiB per tensor: several 2 MiB blocks
	var ts []*Tensor
	for i, name := range []string{"a", "b", "c"} {
		v := make([]float32, n+i) // odd lengths: tensors do not end on page boundaries
		for j := range v {
			v[j] = float32(i*n + j)
		}
		ts = append(ts, &Tensor{Name: name, DType: F32, Shape: []int{len(v)}, Data: f32bytes(v...)})
	}
	path := writeTemp(t, "big.safetensors", nil)
	if err := WriteSafetensors(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	f, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum := func(b []byte) (s byte) {
		for i := 0; i < len(b); i += 512 {
			s += b[i]
		}
		return s
	}
	for _, name := range f.Names {
		x := f.Tensor(name)
		sum(x.Data) // touch every page
		f.Release(x)
	}
	for _, w := range ts { // before reading any data back, which maps pages again
		if n, ok := residentPages(f.Tensor(w.Name).Data); ok && n != 0 {
			t.Errorf("tensor %q: %d pages still resident after Release", w.Name, n)
		}
	}
	for _, w := range ts {
		if g := f.Tensor(w.Name); !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("tensor %q: data changed after Release", w.Name)
		}
	}
	// Release is a no-op for data not in a mapping, for nil, and for a File
	// without mappings.
	f.Release(nil)
	f.Release(ts[0])
	(&File{}).Release(ts[0])
	var nilFile *File
	nilFile.Release(ts[0])
	if !bytes.Equal(ts[0].Data[:8], f32bytes(0, 1)) {
		t.Error("Release touched memory outside the mapping")
	}
}
