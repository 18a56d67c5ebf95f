package checkpoint

import (
	"bytes"
	"encoding/binary"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	in := []*Tensor{
		{Name: "w", DType: F32, Shape: []int{2, 2}, Data: f32bytes(1, 2, 3, 4)},
		{Name: "scalar", DType: F32, Shape: []int{}, Data: f32bytes(7)},
		{Name: "steps", DType: I64, Shape: []int{}, Data: i64bytes(1)},
		{Name: "half", DType: F16, Shape: []int{3}, Data: f16bytes(0x3c00, 0xc000, 0x0001)},
		{Name: "empty", DType: F32, Shape: []int{0, 4}, Data: []byte{}},
		{Name: "a<b>&\"c\"", DType: U8, Shape: []int{1}, Data: []byte{9}},
	}
	path := writeTemp(t, "x", nil)
	if err := WriteSafetensors(path, in, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	hlen := binary.LittleEndian.Uint64(raw)
	if (8+hlen)%8 != 0 {
		t.Errorf("data section starts at %d, not 8-aligned", 8+hlen)
	}
	if !bytes.HasPrefix(raw[8:], []byte(`{"__metadata__":{"format":"pt"},"steps":{"dtype":"I64","shape":[],"data_offsets":[0,8]},`)) {
		t.Errorf("header does not start with metadata then the 8-byte tensors: %s", raw[8:8+hlen])
	}
	f, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Format != "safetensors" || f.Metadata["format"] != "pt" {
		t.Errorf("Format %q, Metadata %v", f.Format, f.Metadata)
	}
	wantOrder := []string{"steps", "empty", "scalar", "w", "half", "a<b>&\"c\""}
	if !reflect.DeepEqual(f.Names, wantOrder) {
		t.Errorf("Names = %q, want %q", f.Names, wantOrder)
	}
	for _, w := range in {
		g := f.Tensor(w.Name)
		if g == nil {
			t.Fatalf("tensor %q missing", w.Name)
		}
		if g.DType != w.DType || !reflect.DeepEqual(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("tensor %q: got %s %v %x, want %s %v %x", w.Name, g.DType, g.Shape, g.Data, w.DType, w.Shape, w.Data)
		}
	}
	v, ok := f.Tensor("w").Float32View()
	if !ok || !reflect.DeepEqual(v, []float32{1, 2, 3, 4}) {
		t.Errorf("Float32View = %v, %v", v, ok)
	}
	h, err := f.Tensor("half").Float32()
	if err != nil || h[0] != 1 || h[1] != -2 || h[2] != HalfToFloat32(1) {
		t.Errorf("half Float32 = %v, %v", h, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f.Tensor("w").Data != nil {
		t.Error("Close left tensor data in place")
	}
}

func TestWriteSafetensorsRejects(t *testing.T) {
	cases := []struct {
		name string
		ts   []*Tensor
		want string
	}{
		{"duplicate", []*Tensor{{Name: "a", DType: U8, Shape: []int{1}, Data: []byte{1}}, {Name: "a", DType: U8, Shape: []int{1}, Data: []byte{1}}}, `"a" given twice`},
		{"dtype", []*Tensor{{Name: "a", DType: "Q4", Shape: []int{1}, Data: []byte{1}}}, `unknown dtype "Q4"`},
		{"bytes", []*Tensor{{Name: "a", DType: F32, Shape: []int{2}, Data: []byte{1}}}, `tensor "a": 1 bytes`},
		{"metadata name", []*Tensor{{Name: "__metadata__", DType: U8, Shape: []int{1}, Data: []byte{1}}}, "invalid tensor name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := EncodeSafetensors(new(bytes.Buffer), c.ts, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to mention %q", err, c.want)
			}
		})
	}
}

// badSafetensors are malformed files, each with what the error must say.
var badSafetensors = []struct {
	name string
	file []byte
	want []string // substrings of the error (besides the file name)
}{
	{"empty file", nil, []string{"too short"}},
	{"short file", []byte{1, 2, 3}, []string{"too short"}},
	{"header length beyond file", stBytes(`{}`, nil)[:9], []string{"header length 2 runs past the end"}},
	{"header length above 100 MB", append(binary.LittleEndian.AppendUint64(nil, 200<<20), "{}"...), []string{"exceeds", "limit"}},
	{"header length huge", append(binary.LittleEndian.AppendUint64(nil, 1<<63), "{}"...), []string{"exceeds"}},
	{"header not JSON", stBytes(`{"a": nope}`, nil), []string{"not valid JSON"}},
	{"header not an object", stBytes(`[1, 2, 3]`, nil), []string{"not a JSON object"}},
	{"header binary", stBytes("\x00\x01\x02\x03", nil), []string{"not a JSON object"}},
	{"offsets out of range", stBytes(`{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 4)), []string{`tensor "t"`, "out of range"}},
	{"offsets negative", stBytes(`{"t":{"dtype":"F32","shape":[0],"data_offsets":[-4,-4]}}`, make([]byte, 4)), []string{`tensor "t"`, "out of range"}},
	{"offsets reversed", stBytes(`{"t":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, make([]byte, 4)), []string{`tensor "t"`, "out of range"}},
	{"truncated data", stBytes(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, make([]byte, 12)), []string{`tensor "b"`, "truncated"}},
	{"overlapping", stBytes(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)), []string{`"a"`, `"b"`, "overlap"}},
	{"unknown dtype", stBytes(`{"t":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1)), []string{`tensor "t"`, `unknown dtype "F8_E9"`}},
	{"missing dtype", stBytes(`{"t":{"shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1)), []string{`tensor "t"`, "no dtype"}},
	{"missing offsets", stBytes(`{"t":{"dtype":"U8","shape":[1]}}`, make([]byte, 1)), []string{`tensor "t"`, "no data_offsets"}},
	{"shape mismatch", stBytes(`{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, make([]byte, 8)), []string{`tensor "t"`, "hold 8 bytes", "needs 12"}},
	{"negative shape", stBytes(`{"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}`, nil), []string{`tensor "t"`, "invalid shape"}},
	{"overflowing shape", stBytes(`{"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil), []string{`tensor "t"`, "invalid shape"}},
	{"float offsets", stBytes(`{"t":{"dtype":"F32","shape":[1],"data_offsets":[0.5,4]}}`, make([]byte, 8)), []string{`tensor "t"`, "bad header entry"}},
	{"bad metadata", stBytes(`{"__metadata__":{"a":1}}`, nil), []string{"__metadata__"}},
}

func TestSafetensorsBadInput(t *testing.T) {
	for _, c := range badSafetensors {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, "bad.safetensors", c.file)
			_, errOpen := OpenSafetensors(path)
			_, errParse := ParseSafetensors(path, c.file)
			_, errRead := ReadSafetensors(path, bytes.NewReader(c.file), int64(len(c.file)))
			for i, err := range []error{errOpen, errParse, errRead} {
				if err == nil {
					t.Fatalf("reader %d accepted the file", i)
				}
				msg := err.Error()
				if !strings.Contains(msg, path) {
					t.Errorf("reader %d: error %q does not name the file", i, msg)
				}
				for _, w := range c.want {
					if !strings.Contains(msg, w) {
						t.Errorf("reader %d: error %q does not mention %q", i, msg, w)
					}
				}
			}
		})
	}
}

// TestSafetensorsMisaligned checks the documented handling of offsets that
// are not a multiple of the element size: the file is accepted, the values
// are right, and no zero-copy view is offered.
func TestSafetensorsMisaligned(t *testing.T) {
	data := append([]byte{0xAA}, f32bytes(1.5, -2)...)
	b := stBytes(`{"pad":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"t":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}}      `, data)
	path := writeTemp(t, "mis.safetensors", b)
	f, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tt := f.Tensor("t")
	if _, ok := tt.Float32View(); ok {
		t.Error("Float32View offered a view of misaligned data")
	}
	v, err := tt.AsFloat32()
	if err != nil || !reflect.DeepEqual(v, []float32{1.5, -2}) {
		t.Errorf("AsFloat32 = %v, %v", v, err)
	}
}

func TestSafetensorsGapsAllowed(t *testing.T) {
	b := stBytes(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[5,6]}}`, []byte{1, 0, 0, 0, 0, 2, 0})
	f, err := ParseSafetensors("gap", b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Tensor("a").Data[0] != 1 || f.Tensor("b").Data[0] != 2 {
		t.Error("wrong data across a gap")
	}
}

func TestValidate(t *testing.T) {
	f := &File{Path: "ckpt"}
	f.add(&Tensor{Name: "a", DType: F32, Shape: []int{2, 3}})
	f.add(&Tensor{Name: "b", DType: F32, Shape: []int{4}})
	f.add(&Tensor{Name: "extra", DType: F32, Shape: []int{1}})
	if err := Validate(f, map[string][]int{"a": {2, 3}, "b": {4}, "extra": {1}}); err != nil {
		t.Fatalf("exact match rejected: %v", err)
	}
	err := Validate(f, map[string][]int{"a": {3, 2}, "b": {4}, "gone": {5}})
	ve, ok := err.(*ValidationError)
	if !ok {
		t.Fatalf("error %v is not a *ValidationError", err)
	}
	if !reflect.DeepEqual(ve.Missing, []string{"gone"}) || !reflect.DeepEqual(ve.Unexpected, []string{"extra"}) ||
		len(ve.Mismatched) != 1 || ve.Mismatched[0].Name != "a" {
		t.Errorf("got %+v", ve)
	}
	for _, w := range []string{`missing tensor "gone"`, `unexpected tensor "extra"`, `tensor "a": expected shape [3 2], got [2 3]`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

func TestFloat32Conversions(t *testing.T) {
	cases := []struct {
		t    Tensor
		want []float32
	}{
		{Tensor{DType: BF16, Shape: []int{2}, Data: f16bytes(0x3f80, 0xc040)}, []float32{1, -3}},
		{Tensor{DType: F16, Shape: []int{2}, Data: f16bytes(0x3555, 0x7c00)}, []float32{HalfToFloat32(0x3555), HalfToFloat32(0x7c00)}},
		{Tensor{DType: I64, Shape: []int{1}, Data: i64bytes(-5)}, []float32{-5}},
		{Tensor{DType: I8, Shape: []int{1}, Data: []byte{0xff}}, []float32{-1}},
		{Tensor{DType: Bool, Shape: []int{2}, Data: []byte{1, 0}}, []float32{1, 0}},
	}
	for _, c := range cases {
		got, err := c.t.Float32()
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, %v; want %v", c.t.DType, got, err, c.want)
		}
	}
}
