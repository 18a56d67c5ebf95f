package checkpoint

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// synthStateDict is a torch.save-style archive with a contiguous matrix, a
// transposed (non-contiguous) view of the same storage, a 0-d tensor at an
// offset, a half-precision vector and an int64 scalar, nested under
// {"state_dict": ..., "epoch": 3} with DistributedDataParallel "module."
// names, in a zip whose top folder is oddly named.
func synthStateDict(t testing.TB) []byte {
	var p pk
	p.proto(2)
	p.op('}').put(0).op('(')
	p.str("epoch").int(3)
	p.str("state_dict")
	p.stateDict(func(p *pk) {
		p.str("module.a").tensor("FloatStorage", "0", 6, 0, []int64{2, 3}, []int64{3, 1})
		p.str("module.a_t").tensor("FloatStorage", "0", 6, 0, []int64{3, 2}, []int64{1, 3})
		p.str("module.s").tensor("FloatStorage", "0", 6, 4, []int64{}, []int64{})
		p.str("module.h").tensor("HalfStorage", "1", 2, 0, []int64{2}, []int64{1})
		p.str("module.n").tensor("LongStorage", "2", 1, 0, []int64{}, []int64{})
	})
	p.op('u', '.')
	return zipBytes(t, []zent{
		{"some_stem/data.pkl", p.Bytes()},
		{"some_stem/version", []byte("3\n")},
		{"some_stem/data/0", f32bytes(0, 1, 2, 3, 4, 5)},
		{"some_stem/data/1", f16bytes(0x3c00, 0xbc00)},
		{"some_stem/data/2", i64bytes(42)},
	})
}

func TestPyTorchZipSynthetic(t *testing.T) {
	path := writeTemp(t, "ckpt.pt", synthStateDict(t))
	raw, err := OpenPyTorch(path)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Format != "pytorch-zip" || raw.Tensor("module.a") == nil {
		t.Fatalf("Format %q, names %q", raw.Format, raw.Names)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if want := []string{"a", "a_t", "s", "h", "n"}; !reflect.DeepEqual(f.Names, want) {
		t.Fatalf("Names = %q, want %q", f.Names, want)
	}
	check := func(name string, dt DType, shape []int, want []float32) {
		t.Helper()
		tt := f.Tensor(name)
		if tt.Name != name || tt.DType != dt || !reflect.DeepEqual(tt.Shape, shape) {
			t.Errorf("%s: %q %s %v, want %s %v", name, tt.Name, tt.DType, tt.Shape, dt, shape)
		}
		got, err := tt.Float32()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: values %v, %v; want %v", name, got, err, want)
		}
	}
	check("a", F32, []int{2, 3}, []float32{0, 1, 2, 3, 4, 5})
	check("a_t", F32, []int{3, 2}, []float32{0, 3, 1, 4, 2, 5})
	check("s", F32, []int{}, []float32{4})
	check("h", F16, []int{2}, []float32{1, -1})
	if v, err := f.Tensor("n").Int64(); err != nil || v[0] != 42 {
		t.Errorf("n = %v, %v", v, err)
	}
}

func TestPyTorchZipBadInput(t *testing.T) {
	good := func(p *pk) *pk {
		return p.str("w").tensor("FloatStorage", "0", 4, 0, []int64{2, 2}, []int64{2, 1})
	}
	prog := func(items func(p *pk)) []byte {
		var p pk
		p.proto(2).stateDict(items).op('.')
		return p.Bytes()
	}
	data0 := zent{"archive/data/0", f32bytes(1, 2, 3, 4)}
	cases := []struct {
		name string
		zip  []zent
		want []string
	}{
		{"missing data.pkl", []zent{{"archive/version", []byte("3\n")}, data0}, []string{"no data.pkl"}},
		{"storage without entry", []zent{{"archive/data.pkl", prog(func(p *pk) { good(p) })}}, []string{`storage "0"`, "no zip entry archive/data/0", `tensor "w"`}},
		{"storage too short", []zent{{"archive/data.pkl", prog(func(p *pk) { good(p) })}, {"archive/data/0", f32bytes(1, 2, 3)}}, []string{`storage "0"`, "too short", `tensor "w"`}},
		{"size and stride beyond storage", []zent{{"archive/data.pkl", prog(func(p *pk) {
			p.str("w").tensor("FloatStorage", "0", 4, 0, []int64{2, 3}, []int64{3, 1})
		})}, data0}, []string{"size [2 3]", "stride [3 1]", `storage "0"`, `tensor "w"`}},
		{"offset beyond storage", []zent{{"archive/data.pkl", prog(func(p *pk) {
			p.str("w").tensor("FloatStorage", "0", 4, 4, []int64{}, []int64{})
		})}, data0}, []string{"offset 4", `storage "0"`, `tensor "w"`}},
		{"size stride rank mismatch", []zent{{"archive/data.pkl", prog(func(p *pk) {
			p.str("w").tensor("FloatStorage", "0", 4, 0, []int64{4}, []int64{1, 1})
		})}, data0}, []string{"invalid size/stride"}},
		{"unknown storage type", []zent{{"archive/data.pkl", prog(func(p *pk) {
			p.str("w").tensor("QInt8Storage", "0", 4, 0, []int64{4}, []int64{1})
		})}, data0}, []string{"refusing", "torch.QInt8Storage"}},
		{"no tensors", []zent{{"archive/data.pkl", prog(func(p *pk) {})}}, []string{"no state dict", "dict with keys []"}},
		{"two pickles", []zent{{"a/data.pkl", prog(func(p *pk) {})}, {"b/data.pkl", prog(func(p *pk) {})}}, []string{"two pickles"}},
		{"truncated pickle", []zent{{"archive/data.pkl", prog(func(p *pk) { good(p) })[:40]}, data0}, []string{"truncated pickle"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, "bad.bin", zipBytes(t, c.zip))
			_, err := Open(path)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range append(c.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("truncated zip", func(t *testing.T) {
		b := synthStateDict(t)
		for _, n := range []int{len(b) / 2, len(b) - 30, 10} {
			path := writeTemp(t, "cut.bin", b[:n])
			if _, err := Open(path); err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("cut to %d bytes: error %v", n, err)
			}
		}
	})
	t.Run("legacy format", func(t *testing.T) {
		path := writeTemp(t, "old.pt", []byte{0x80, 0x02, 0x8a, 0x0a})
		if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "legacy") {
			t.Errorf("error %v", err)
		}
	})
}

// TestPickleRefusesGlobals feeds pickles that would run code if unpickled
// by Python; each must be refused by name and nothing run.
func TestPickleRefusesGlobals(t *testing.T) {
	cases := []struct {
		mod, name string
		stack     bool // STACK_GLOBAL instead of GLOBAL
	}{
		{"os", "system", false},
		{"builtins", "eval", false},
		{"__builtin__", "getattr", false},
		{"posix", "system", true},
		{"subprocess", "Popen", true},
		{"torch.storage", "_load_from_bytes", false},
		{"__torch__.clip.model", "CLIP", false}, // inert classes only in TorchScript archives
		{"torch", "device", false},
	}
	for _, c := range cases {
		t.Run(c.mod+"."+c.name, func(t *testing.T) {
			var p pk
			p.proto(4)
			if c.stack {
				p.op(0x8c, byte(len(c.mod))).op([]byte(c.mod)...).op(0x94)
				p.op(0x8c, byte(len(c.name))).op([]byte(c.name)...).op(0x94, 0x93)
			} else {
				p.global(c.mod, c.name)
			}
			p.str("touch /tmp/pwned").op(0x85, 'R', '.')
			path := writeTemp(t, "evil.bin", zipBytes(t, []zent{{"archive/data.pkl", p.Bytes()}}))
			_, err := Open(path)
			want := "refusing to unpickle global " + c.mod + "." + c.name
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %v, want %q naming the file", err, want)
			}
		})
	}
}

// TestPickleDeepAndRecursive checks that deeply nested and self-referencing
// structures are handled without recursion blowing up.
func TestPickleDeepAndRecursive(t *testing.T) {
	// 200000 nested lists: ] ] ] ... a a a .
	var deep pk
	deep.proto(2)
	for i := 0; i < 200000; i++ {
		deep.op(']')
	}
	for i := 0; i < 199999; i++ {
		deep.op('a')
	}
	deep.op('.')
	// 100000 nested MARKs never closed.
	var marks pk
	marks.proto(2)
	for i := 0; i < 100000; i++ {
		marks.op('(')
	}
	marks.op('N', '.')
	// A dict whose "state_dict" is itself.
	var self pk
	self.proto(2).op('}').put(0).str("state_dict").get(0).op('s', '.')
	// A list containing itself, as the state dict.
	var selfList pk
	selfList.proto(2).op(']').put(0).get(0).op('a', '.')
	for _, c := range []struct {
		name string
		prog []byte
	}{{"deep lists", deep.Bytes()}, {"open marks", marks.Bytes()}, {"self dict", self.Bytes()}, {"self list", selfList.Bytes()}} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParsePyTorch("deep.bin", zipBytes(t, []zent{{"archive/data.pkl", c.prog}}))
			if err == nil {
				t.Fatal("accepted a checkpoint without tensors")
			}
		})
	}
}

// TestUnpickleOpcodes runs the VM over small programs using the less common
// opcodes and checks the decoded values.
func TestUnpickleOpcodes(t *testing.T) {
	cases := []struct {
		name string
		prog []byte
		want any
	}{
		{"ints", []byte("\x80\x02(K\x05M\x00\x01J\xff\xff\xff\xff\x8a\x01\xff\x8a\x00\x8a\x02\x00\x80t."), pyTuple{int64(5), int64(256), int64(-1), int64(-1), int64(0), int64(-32768)}},
		{"text ops", []byte("(I42\nL-7L\nI01\nF2.5\nS'ab'\nVxy\nl."), &pyList{items: []any{int64(42), int64(-7), true, 2.5, "ab", "xy"}}},
		{"binfloat", []byte("\x80\x02G\x3f\xf8\x00\x00\x00\x00\x00\x00."), 1.5},
		{"strings", []byte("\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00(\x8c\x01a\x94X\x01\x00\x00\x00bC\x01c\x8d\x01\x00\x00\x00\x00\x00\x00\x00dt."), pyTuple{"a", "b", []byte("c"), "d"}},
		{"memo", []byte("\x80\x02X\x01\x00\x00\x00kq\x01r\x02\x00\x00\x000h\x01j\x02\x00\x00\x00\x86."), pyTuple{"k", "k"}},
		{"dict", []byte("(X\x01\x00\x00\x00aK\x01d."), func() any { d := newDict(); d.set("a", int64(1)); return d }()},
		{"big long", []byte("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01."), &pyBigInt{b: []byte{0, 0, 0, 0, 0, 0, 0, 0, 1}}},
		{"set", []byte("\x80\x04\x8f(K\x01K\x02\x90."), &pyList{items: []any{int64(1), int64(2)}}},
		{"dup pop", []byte("\x80\x02K\x01K\x022\x86."), pyTuple{int64(1), int64(2)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := newUnpickler("t", c.prog, false, nil).run()
			if err != nil {
				t.Fatal(err)
			}
			if c.name == "dup pop" {
				return // 2 then TUPLE2 of the top two
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %#v, want %#v", got, c.want)
			}
		})
	}
	bad := []struct{ name, prog, want string }{
		{"empty", "", "no STOP"},
		{"underflow", "\x80\x02R.", "stack underflow"},
		{"unknown op", "\x80\x02\xff", "unsupported pickle opcode 0xff"},
		{"memo miss", "\x80\x02h\x05.", "memo entry 5"},
		{"string past end", "X\xff\xff\xff\x7fab.", "truncated"},
		{"bytes8 past end", "\x8e\xff\xff\xff\xff\xff\xff\xff\xffab.", "truncated"},
		{"setitem on list", "]K\x01K\x02s.", "SETITEM on a list"},
		{"unhashable key", "}]K\x01s.", "unhashable"},
		{"protocol 9", "\x80\x09N.", "protocol 9"},
		{"no mark", "K\x01t.", "MARK"},
		{"reduce non-global", "K\x01)R.", "REDUCE calls a int"},
		{"persid junk", "K\x01Q.", "persistent id"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := newUnpickler("t.pkl", []byte(c.prog), false, nil).run()
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "t.pkl") {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}

// synthTorchScript builds a miniature of OpenAI's TorchScript CLIP archive:
// __torch__ module objects built with NEWOBJ + BUILD of their attribute
// dicts, fp16 parameters, a mangled submodule class, a tensor attribute that
// is neither parameter nor buffer (attn_mask) and an int64 buffer
// (input_resolution), plus the code/ declarations that say which is which.
func synthTorchScript(t testing.TB, withCode bool) []byte {
	var p pk
	p.proto(2)
	obj := func(mod, cls string, memo byte, attrs func()) {
		p.global(mod, cls).put(memo).op(')', 0x81, '}', '(')
		p.str("training").op(0x89)
		p.str("_is_full_backward_hook").op('N')
		attrs()
		p.op('u', 'b')
	}
	half := func(key string, n int64, size []int64) {
		stride := make([]int64, len(size))
		s := int64(1)
		for i := len(size) - 1; i >= 0; i-- {
			stride[i] = s
			s *= size[i]
		}
		p.tensor("HalfStorage", key, n, 0, size, stride)
	}
	obj("__torch__.clip.model", "CLIP", 0, func() {
		p.str("visual")
		obj("__torch__.clip.model", "VisionTransformer", 1, func() {
			p.str("class_embedding")
			half("0", 4, []int64{4})
			p.str("transformer")
			obj("__torch__.clip.model", "Transformer", 2, func() {
				p.str("width").int(4)
				p.str("resblocks")
				obj("__torch__.torch.nn.modules.container", "Sequential", 3, func() {
					p.str("0")
					obj("__torch__.clip.model", "ResidualAttentionBlock", 4, func() {
						p.str("attn")
						obj("__torch__.torch.nn.modules.activation", "MultiheadAttention", 5, func() {
							p.str("in_proj_weight")
							half("1", 48, []int64{12, 4})
							p.str("in_proj_bias")
							half("2", 12, []int64{12})
							p.str("out_proj")
							obj("__torch__.torch.nn.modules.linear.___torch_mangle_1", "NonDynamicallyQuantizableLinear", 6, func() {
								p.str("weight")
								half("3", 16, []int64{4, 4})
								p.str("bias").op('N')
							})
						})
						p.str("attn_mask")
						half("4", 4, []int64{2, 2})
					})
				})
			})
		})
		p.str("logit_scale")
		p.tensor("FloatStorage", "5", 1, 0, []int64{}, []int64{})
		p.str("input_resolution")
		p.tensor("LongStorage", "6", 1, 0, []int64{}, []int64{})
	})
	p.op('.')
	var consts pk
	consts.proto(2).op(')', '.')
	ents := []zent{
		{"ViT-T/data.pkl", p.Bytes()},
		{"ViT-T/constants.pkl", consts.Bytes()},
		{"ViT-T/version", []byte("3\n")},
	}
	if withCode {
		ents = append(ents,
			zent{"ViT-T/code/__torch__/clip/model.py", []byte(`class CLIP(Module):
  __parameters__ = ["logit_scale", ]
  __buffers__ = ["input_resolution", ]
  logit_scale : Tensor
  input_resolution : Tensor
  training : bool
  visual : __torch__.clip.model.VisionTransformer
  def forward(self: __torch__.clip.model.CLIP) -> Tensor:
    return self.logit_scale
class VisionTransformer(Module):
  __parameters__ = ["class_embedding", ]
  __buffers__ = []
  class_embedding : Tensor
class Transformer(Module):
  __parameters__ = []
  __buffers__ = []
  width : int
class ResidualAttentionBlock(Module):
  __parameters__ = []
  __buffers__ = []
  attn_mask : Tensor
`)},
			zent{"ViT-T/code/__torch__/torch/nn/modules/activation.py", []byte("class MultiheadAttention(Module):\n  __parameters__ = [\"in_proj_weight\", \"in_proj_bias\", ]\n  __buffers__ = []\n")},
			zent{"ViT-T/code/__torch__/torch/nn/modules/linear/___torch_mangle_1.py", []byte("class NonDynamicallyQuantizableLinear(Module):\n  __parameters__ = [\"weight\", \"bias\", ]\n  __buffers__ = []\n")},
		)
	}
	for i, n := range []int{4, 48, 12, 16, 4} {
		d := make([]uint16, n)
		for j := range d {
			d[j] = uint16(0x3c00 + 16*i + j) // distinct fp16 values
		}
		ents = append(ents, zent{"ViT-T/data/" + string(rune('0'+i)), f16bytes(d...)})
	}
	ents = append(ents, zent{"ViT-T/data/5", f32bytes(4.6052)}, zent{"ViT-T/data/6", i64bytes(224)})
	return zipBytes(t, ents)
}

func TestTorchScriptSynthetic(t *testing.T) {
	path := writeTemp(t, "ViT-T.pt", synthTorchScript(t, true))
	raw, err := OpenPyTorch(path)
	if err != nil {
		t.Fatal(err)
	}
	wantRaw := []string{
		"visual.class_embedding",
		"visual.transformer.resblocks.0.attn.in_proj_weight",
		"visual.transformer.resblocks.0.attn.in_proj_bias",
		"visual.transformer.resblocks.0.attn.out_proj.weight",
		"logit_scale",
		"input_resolution",
	}
	if raw.Format != "torchscript" || !reflect.DeepEqual(raw.Names, wantRaw) {
		t.Fatalf("Format %q, Names %q; want torchscript, %q", raw.Format, raw.Names, wantRaw)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Names, wantRaw[:5]) {
		t.Errorf("Open kept %q, want %q (input_resolution dropped)", f.Names, wantRaw[:5])
	}
	w := f.Tensor("visual.transformer.resblocks.0.attn.in_proj_weight")
	if w.DType != F16 || !reflect.DeepEqual(w.Shape, []int{12, 4}) || binaryLE16(w.Data, 47) != 0x3c00+16+47 {
		t.Errorf("in_proj_weight: %s %v", w.DType, w.Shape)
	}
	if v, err := f.Tensor("visual.class_embedding").Float32(); err != nil || v[0] != 1 {
		t.Errorf("class_embedding = %v, %v", v, err)
	}

	// Without code/ declarations every tensor attribute counts, attn_mask too.
	nocode, err := ParsePyTorch("nocode.pt", synthTorchScript(t, false))
	if err != nil {
		t.Fatal(err)
	}
	if nocode.Format != "torchscript" || nocode.Tensor("visual.transformer.resblocks.0.attn_mask") == nil {
		t.Errorf("without declarations: %q", nocode.Names)
	}
}

func TestTorchScriptSelfReference(t *testing.T) {
	var p pk
	p.proto(2).global("__torch__.m", "M").put(0).op(')', 0x81).put(1).op('}', '(')
	p.str("child").get(1)
	p.op('u', 'b', '.')
	b := zipBytes(t, []zent{{"m/data.pkl", p.Bytes()}, {"m/constants.pkl", []byte("\x80\x02).")}})
	if _, err := ParsePyTorch("self.pt", b); err == nil || !strings.Contains(err.Error(), "contains itself") {
		t.Errorf("error %v", err)
	}
}

func binaryLE16(b []byte, i int) uint16 { return uint16(b[2*i]) | uint16(b[2*i+1])<<8 }

func TestHFSynthetic(t *testing.T) {
	f := &File{Path: "hf", Format: "safetensors"}
	f.add(&Tensor{Name: "text_model.encoder.layers.0.self_attn.q_proj.bias", DType: U8, Shape: []int{2}, Data: []byte{1, 2}})
	f.add(&Tensor{Name: "text_model.encoder.layers.0.self_attn.k_proj.bias", DType: U8, Shape: []int{2}, Data: []byte{3, 4}})
	f.add(&Tensor{Name: "text_model.encoder.layers.0.self_attn.v_proj.bias", DType: U8, Shape: []int{2}, Data: []byte{5, 6}})
	f.add(&Tensor{Name: "text_model.embeddings.position_ids", DType: I64, Shape: []int{1, 1}, Data: i64bytes(0)})
	f.add(&Tensor{Name: "visual_projection.weight", DType: U8, Shape: []int{2, 3}, Data: []byte{1, 2, 3, 4, 5, 6}})
	f.add(&Tensor{Name: "vision_model.something_new", DType: U8, Shape: []int{1}, Data: []byte{9}})
	g, err := FromHF(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"transformer.resblocks.0.attn.in_proj_bias", "visual.proj", "vision_model.something_new"}; !reflect.DeepEqual(g.Names, want) {
		t.Errorf("Names %q, want %q", g.Names, want)
	}
	if b := g.Tensor("transformer.resblocks.0.attn.in_proj_bias"); !bytes.Equal(b.Data, []byte{1, 2, 3, 4, 5, 6}) || !reflect.DeepEqual(b.Shape, []int{6}) {
		t.Errorf("in_proj_bias %v %v", b.Shape, b.Data)
	}
	if p := g.Tensor("visual.proj"); !bytes.Equal(p.Data, []byte{1, 4, 2, 5, 3, 6}) || !reflect.DeepEqual(p.Shape, []int{3, 2}) {
		t.Errorf("visual.proj %v %v", p.Shape, p.Data)
	}
	delete(f.Tensors, "text_model.encoder.layers.0.self_attn.k_proj.bias")
	f.Names = append(f.Names[:1], f.Names[2:]...)
	if _, err := FromHF(f); err == nil || !strings.Contains(err.Error(), "the k projection is missing") {
		t.Errorf("missing k: error %v", err)
	}
}

func TestOpenDirectories(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "no checkpoint found") {
		t.Errorf("empty directory: %v", err)
	}
	// A sharded safetensors checkpoint with DDP "module." names.
	shard := func(name string, ts ...*Tensor) {
		var b bytes.Buffer
		if err := EncodeSafetensors(&b, ts, nil); err != nil {
			t.Fatal(err)
		}
		writeTempIn(t, dir, name, b.Bytes())
	}
	shard("model-00001-of-00002.safetensors", &Tensor{Name: "module.a", DType: F32, Shape: []int{1}, Data: f32bytes(1)})
	shard("model-00002-of-00002.safetensors", &Tensor{Name: "module.b", DType: F32, Shape: []int{1}, Data: f32bytes(2)})
	writeTempIn(t, dir, "model.safetensors.index.json", []byte(`{"metadata":{},"weight_map":{"module.a":"model-00001-of-00002.safetensors","module.b":"model-00002-of-00002.safetensors"}}`))
	f, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Names, []string{"a", "b"}) || f.Tensor("b").Data[3] != f32bytes(2)[3] {
		t.Errorf("sharded: %q", f.Names)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	writeTempIn(t, dir, "model.safetensors.index.json", []byte(`{"weight_map":{"module.a":"../etc/passwd"}}`))
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "invalid shard") {
		t.Errorf("escaping shard name: %v", err)
	}
}

func writeTempIn(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
