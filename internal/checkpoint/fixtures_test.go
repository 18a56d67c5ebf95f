package checkpoint_test

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/fixtures"
)

type stateEntry struct {
	name  string
	shape []int
	dtype checkpoint.DType
}

// manifestStateDict returns a model's [key, shape, dtype] list in
// state_dict order.
func manifestStateDict(t *testing.T, raw [][]any) []stateEntry {
	t.Helper()
	dtypes := map[string]checkpoint.DType{"float32": checkpoint.F32, "float16": checkpoint.F16, "bfloat16": checkpoint.BF16, "float64": checkpoint.F64, "int64": checkpoint.I64, "int32": checkpoint.I32, "uint8": checkpoint.U8, "bool": checkpoint.Bool}
	var out []stateEntry
	for _, e := range raw {
		if len(e) != 3 {
			t.Fatalf("manifest state_dict entry %v is not [key, shape, dtype]", e)
		}
		name, _ := e[0].(string)
		dims, _ := e[1].([]any)
		shape := []int{}
		for _, d := range dims {
			shape = append(shape, int(d.(float64)))
		}
		ds, _ := e[2].(string)
		dt, ok := dtypes[ds]
		if !ok {
			t.Fatalf("manifest dtype %q unknown", ds)
		}
		out = append(out, stateEntry{name, shape, dt})
	}
	return out
}

// checkpointFiles are the manifest's model files that hold weights.
func checkpointFiles(files []string) []string {
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, ".safetensors") || strings.HasSuffix(f, ".bin") || strings.HasSuffix(f, ".pt") {
			out = append(out, f)
		}
	}
	return out
}

// TestOpenFixtures opens every checkpoint file (and every model directory)
// of the fixture set and checks the state dict keys, shapes and dtypes
// against the manifest, and that every format holds the same bytes.
func TestOpenFixtures(t *testing.T) {
	dir := fixtures.Dir(t)
	m := fixtures.ReadManifest(t, dir)
	if len(m.Models) == 0 {
		t.Fatal("manifest lists no models")
	}
	for _, model := range m.Models {
		want := manifestStateDict(t, model.StateDict)
		shapes := map[string][]int{}
		for _, e := range want {
			shapes[e.name] = e.shape
		}
		files := checkpointFiles(model.Files)
		if len(files) == 0 {
			t.Fatalf("model %s lists no checkpoint file", model.Name)
		}
		var ref *checkpoint.File
		paths := append([]string{}, files...)
		for _, f := range files {
			if d := filepath.Dir(f); d != "." && !contains(paths, d) {
				paths = append(paths, d) // e.g. the hf/ directory
			}
		}
		paths = append(paths, ".") // the model directory itself
		for _, rel := range paths {
			p := filepath.Join(dir, model.Name, rel)
			t.Run(model.Name+"/"+rel, func(t *testing.T) {
				f, err := checkpoint.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := checkpoint.Validate(f, shapes); err != nil {
					t.Fatal(err)
				}
				for _, e := range want {
					if tt := f.Tensor(e.name); tt.DType != e.dtype {
						t.Errorf("%s: dtype %s, want %s", e.name, tt.DType, e.dtype)
					}
				}
				switch f.Format {
				case "pytorch-zip":
					// The pickle keeps the state_dict order.
					var order []string
					for _, e := range want {
						order = append(order, e.name)
					}
					if !reflect.DeepEqual(f.Names, order) {
						t.Errorf("pickle order differs from state_dict order:\n got %q\nwant %q", f.Names, order)
					}
				case "safetensors", "hf-safetensors", "hf-pytorch-zip", "torchscript":
				default:
					t.Errorf("unknown Format %q", f.Format)
				}
				if strings.HasSuffix(rel, ".safetensors") && !strings.Contains(rel, "/") && ref == nil {
					ref = f
					return
				}
				if ref == nil {
					return
				}
				for _, e := range want {
					a, b := ref.Tensor(e.name), f.Tensor(e.name)
					if !bytes.Equal(a.Data, b.Data) {
						t.Errorf("%s: bytes differ from %s", e.name, ref.Path)
					}
				}
			})
		}
		if ref == nil {
			t.Errorf("model %s: no open_clip safetensors reference was loaded first", model.Name)
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// TestPickleMatchesSafetensors checks every value of each .bin pickle
// against the model's safetensors, bit for bit, through Float32/Int64.
func TestPickleMatchesSafetensors(t *testing.T) {
	dir := fixtures.Dir(t)
	m := fixtures.ReadManifest(t, dir)
	n := 0
	for _, model := range m.Models {
		var st, bin string
		for _, f := range checkpointFiles(model.Files) {
			switch {
			case strings.HasSuffix(f, ".bin"):
				bin = f
			case strings.HasSuffix(f, ".safetensors") && !strings.Contains(f, "/"):
				st = f
			}
		}
		if st == "" || bin == "" {
			continue
		}
		n++
		a, err := checkpoint.OpenSafetensors(filepath.Join(dir, model.Name, st))
		if err != nil {
			t.Fatal(err)
		}
		b, err := checkpoint.OpenPyTorch(filepath.Join(dir, model.Name, bin))
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Names) != len(b.Names) {
			t.Errorf("%s: %d tensors in %s, %d in %s", model.Name, len(a.Names), st, len(b.Names), bin)
		}
		for _, name := range b.Names {
			x, y := a.Tensor(name), b.Tensor(name)
			if x == nil {
				t.Errorf("%s: %s not in %s", model.Name, name, st)
				continue
			}
			if x.DType != y.DType || !reflect.DeepEqual(x.Shape, y.Shape) {
				t.Errorf("%s: %s is %s %v vs %s %v", model.Name, name, x.DType, x.Shape, y.DType, y.Shape)
				continue
			}
			switch x.DType {
			case checkpoint.I64:
				xv, _ := x.Int64()
				yv, err := y.Int64()
				if err != nil || !reflect.DeepEqual(xv, yv) {
					t.Errorf("%s: %s values differ", model.Name, name)
				}
			default:
				xv, _ := x.Float32()
				yv, err := y.Float32()
				if err != nil || !sameBits(xv, yv) {
					t.Errorf("%s: %s values differ", model.Name, name)
				}
				if v, ok := y.Float32View(); !ok || len(v) != len(yv) {
					t.Errorf("%s: %s: no zero-copy view of the stored zip entry", model.Name, name)
				}
			}
		}
		a.Close()
		b.Close()
	}
	if n == 0 {
		t.Skip("no model has both a .bin and a .safetensors file")
	}
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestHFMappingExact maps every Hugging Face checkpoint of the fixture set
// to reference names and compares it with the open_clip safetensors of the
// same model, every tensor, every byte.
func TestHFMappingExact(t *testing.T) {
	dir := fixtures.Dir(t)
	m := fixtures.ReadManifest(t, dir)
	n := 0
	for _, model := range m.Models {
		for _, rel := range checkpointFiles(model.Files) {
			if !strings.Contains(rel, "/") {
				continue
			}
			raw, err := checkpoint.OpenSafetensors(filepath.Join(dir, model.Name, rel))
			if err != nil {
				t.Fatal(err)
			}
			if !checkpoint.IsHF(raw) {
				continue
			}
			n++
			got, err := checkpoint.FromHF(raw)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := checkpoint.OpenSafetensors(filepath.Join(dir, model.Name, "open_clip_model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Names) != len(ref.Names) {
				t.Errorf("%s: %d tensors mapped, %d in the reference", rel, len(got.Names), len(ref.Names))
			}
			for _, name := range ref.Names {
				a, b := ref.Tensor(name), got.Tensor(name)
				if b == nil {
					t.Errorf("%s: %s missing after mapping", rel, name)
					continue
				}
				if a.DType != b.DType || !reflect.DeepEqual(a.Shape, b.Shape) || !bytes.Equal(a.Data, b.Data) {
					t.Errorf("%s: %s differs: %s %v vs %s %v", rel, name, b.DType, b.Shape, a.DType, a.Shape)
				}
			}
		}
	}
	if n == 0 {
		t.Skip("fixture set has no Hugging Face checkpoint")
	}
}

// TestWriterReproducesFixtures re-encodes each open_clip safetensors file
// with EncodeSafetensors and expects the identical bytes (same layout rules
// as the reference writer).
func TestWriterReproducesFixtures(t *testing.T) {
	dir := fixtures.Dir(t)
	m := fixtures.ReadManifest(t, dir)
	for _, model := range m.Models {
		for _, rel := range checkpointFiles(model.Files) {
			if !strings.HasSuffix(rel, ".safetensors") || strings.Contains(rel, "/") {
				continue
			}
			p := filepath.Join(dir, model.Name, rel)
			f, err := checkpoint.OpenSafetensors(p)
			if err != nil {
				t.Fatal(err)
			}
			var ts []*checkpoint.Tensor
			for _, n := range f.Names {
				ts = append(ts, f.Tensor(n))
			}
			var buf bytes.Buffer
			if err := checkpoint.EncodeSafetensors(&buf, ts, f.Metadata); err != nil {
				t.Fatal(err)
			}
			orig, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), orig) {
				t.Errorf("%s: re-encoded file differs (%d vs %d bytes)", p, buf.Len(), len(orig))
			}
			f.Close()
		}
	}
}
