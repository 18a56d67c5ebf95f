package checkpoint

import (
	"bytes"
	"reflect"
	"testing"
)

func FuzzSafetensors(f *testing.F) {
	for _, c := range badSafetensors {
		f.Add(c.file)
	}
	var good bytes.Buffer
	EncodeSafetensors(&good, []*Tensor{
		{Name: "w", DType: F32, Shape: []int{2, 2}, Data: f32bytes(1, 2, 3, 4)},
		{Name: "n", DType: I64, Shape: []int{}, Data: i64bytes(7)},
		{Name: "h", DType: BF16, Shape: []int{1}, Data: f16bytes(0x3f80)},
	}, map[string]string{"format": "pt"})
	f.Add(good.Bytes())
	f.Add(stBytes(`{"pad":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"t":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}}`, make([]byte, 5)))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, errA := ParseSafetensors("fuzz", data)
		b, errB := ReadSafetensors("fuzz", bytes.NewReader(data), int64(len(data)))
		if (errA == nil) != (errB == nil) {
			t.Fatalf("ParseSafetensors: %v, ReadSafetensors: %v", errA, errB)
		}
		if errA != nil {
			return
		}
		if !reflect.DeepEqual(a.Names, b.Names) {
			t.Fatalf("names differ: %q vs %q", a.Names, b.Names)
		}
		var ts []*Tensor
		for _, n := range a.Names {
			x, y := a.Tensor(n), b.Tensor(n)
			if !bytes.Equal(x.Data, y.Data) || len(x.Data) != x.NumElements()*x.DType.Size() {
				t.Fatalf("tensor %q: inconsistent data", n)
			}
			x.Float32()
			x.Int64()
			x.Float32View()
			ts = append(ts, x)
		}
		// What was read can be written and read back unchanged.
		var buf bytes.Buffer
		if err := EncodeSafetensors(&buf, ts, a.Metadata); err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		c, err := ParseSafetensors("again", buf.Bytes())
		if err != nil {
			t.Fatalf("re-reading: %v", err)
		}
		for _, n := range a.Names {
			if x, y := a.Tensor(n), c.Tensor(n); y == nil || !bytes.Equal(x.Data, y.Data) || !reflect.DeepEqual(x.Shape, y.Shape) || x.DType != y.DType {
				t.Fatalf("tensor %q changed in a round trip", n)
			}
		}
	})
}

// fuzzStorage serves 64 bytes for any short storage key.
func fuzzStorage(key string) ([]byte, error) {
	if len(key) > 3 {
		return nil, errNoEntry
	}
	return make([]byte, 64), nil
}

var errNoEntry = &pickleError{name: "fuzz", msg: "no such entry"}

func FuzzUnpickle(f *testing.F) {
	var sd pk
	sd.proto(2).stateDict(func(p *pk) {
		p.str("a").tensor("FloatStorage", "0", 16, 0, []int64{4, 4}, []int64{4, 1})
		p.str("b").tensor("HalfStorage", "1", 8, 1, []int64{2, 3}, []int64{1, 2})
		p.str("c").tensor("LongStorage", "2", 1, 0, []int64{}, []int64{})
	}).op('.')
	f.Add(sd.Bytes())
	var ts pk
	ts.proto(2).global("__torch__.m", "M").op(')', 0x81, '}', '(').str("w").tensor("FloatStorage", "0", 4, 0, []int64{4}, []int64{1}).op('u', 'b', '.')
	f.Add(ts.Bytes())
	f.Add([]byte("\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00(\x8c\x01a\x94K\x01\x8a\x02\x00\x80I42\nF1.5\nt."))
	f.Add([]byte("\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R."))
	f.Fuzz(func(t *testing.T, data []byte) {
		u := newUnpickler("fuzz", data, true, fuzzStorage)
		u.copyBudget = 1 << 20
		v, err := u.run()
		if err != nil {
			return
		}
		describe(v)
		if sd := findStateDict(v, 0); sd != nil {
			for _, x := range sd.vals {
				if t2, ok := x.(*Tensor); ok && len(t2.Data) != t2.NumElements()*t2.DType.Size() {
					t.Fatalf("tensor with %d bytes for shape %v", len(t2.Data), t2.Shape)
				}
			}
		}
		if o, ok := v.(*pyObject); ok {
			walkScript(&File{Path: "fuzz"}, "", o, nil, map[*pyObject]bool{})
		}
	})
}

func FuzzPyTorchZip(f *testing.F) {
	f.Add(synthStateDict(f))
	f.Add(synthTorchScript(f, true))
	f.Add(zipBytes(f, []zent{{"a/data.pkl", []byte("\x80\x02}.")}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		ff, err := ParsePyTorch("fuzz.bin", data)
		if err != nil {
			return
		}
		for _, n := range ff.Names {
			x := ff.Tensor(n)
			if len(x.Data) != x.NumElements()*x.DType.Size() {
				t.Fatalf("tensor %q: %d bytes for shape %v", n, len(x.Data), x.Shape)
			}
		}
		normalize(ff)
	})
}
