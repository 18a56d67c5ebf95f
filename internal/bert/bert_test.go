package bert

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/model"
)

// randomFile builds a state dict of random weights for cfg under prefix.
func randomFile(cfg Config, prefix string, seed uint64) *checkpoint.File {
	r := rand.New(rand.NewPCG(seed, 1))
	f := &checkpoint.File{Path: "random", Tensors: map[string]*checkpoint.Tensor{}}
	for name, shape := range cfg.Shapes(prefix) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]byte, 4*n)
		for i := range n {
			v := float32(r.NormFloat64() * 0.3)
			if strings.HasSuffix(name, "LayerNorm.weight") {
				v = 1 + float32(r.Float64()-0.5)*0.2
			}
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
		}
		f.Tensors[name] = &checkpoint.Tensor{Name: name, DType: checkpoint.F32, Shape: shape, Data: data}
		f.Names = append(f.Names, name)
	}
	return f
}

func vals(f *checkpoint.File, name string) []float64 {
	v, err := f.Tensor(name).Float32()
	if err != nil {
		panic(err)
	}
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// naive is a float64 BERT forward written straight from the definition.
func naive(cfg Config, f *checkpoint.File, prefix string, ids []int32) [][]float64 {
	H, L := cfg.Hidden, len(ids)
	g := func(n string) []float64 { return vals(f, prefix+n) }
	ln := func(x []float64, name string) []float64 {
		w, b := g(name+".weight"), g(name+".bias")
		var m, v float64
		for _, a := range x {
			m += a
		}
		m /= float64(len(x))
		for _, a := range x {
			v += (a - m) * (a - m)
		}
		v /= float64(len(x))
		out := make([]float64, len(x))
		for i, a := range x {
			out[i] = (a-m)/math.Sqrt(v+float64(cfg.LayerNormEps))*w[i] + b[i]
		}
		return out
	}
	lin := func(x []float64, name string) []float64 {
		w, b := g(name+".weight"), g(name+".bias")
		out := make([]float64, len(b))
		for o := range out {
			s := b[o]
			for i, a := range x {
				s += w[o*len(x)+i] * a
			}
			out[o] = s
		}
		return out
	}
	we, pe, te := g("embeddings.word_embeddings.weight"), g("embeddings.position_embeddings.weight"), g("embeddings.token_type_embeddings.weight")
	h := make([][]float64, L)
	for l, id := range ids {
		e := make([]float64, H)
		for i := range e {
			e[i] = we[int(id)*H+i] + pe[l*H+i] + te[i]
		}
		h[l] = ln(e, "embeddings.LayerNorm")
	}
	hd := H / cfg.Heads
	for li := range cfg.Layers {
		p := fmt.Sprintf("encoder.layer.%d.", li)
		q, k, v := make([][]float64, L), make([][]float64, L), make([][]float64, L)
		for l := range L {
			q[l], k[l], v[l] = lin(h[l], p+"attention.self.query"), lin(h[l], p+"attention.self.key"), lin(h[l], p+"attention.self.value")
		}
		next := make([][]float64, L)
		for l := range L {
			ctx := make([]float64, H)
			for hh := range cfg.Heads {
				sc := make([]float64, L)
				mx := math.Inf(-1)
				for j := range L {
					var s float64
					for d := range hd {
						s += q[l][hh*hd+d] * k[j][hh*hd+d]
					}
					s /= math.Sqrt(float64(hd))
					if ids[j] == cfg.PadID {
						s -= 10000
					}
					sc[j] = s
					mx = max(mx, s)
				}
				var sum float64
				for j := range sc {
					sc[j] = math.Exp(sc[j] - mx)
					sum += sc[j]
				}
				for j := range L {
					for d := range hd {
						ctx[hh*hd+d] += sc[j] / sum * v[j][hh*hd+d]
					}
				}
			}
			a := lin(ctx, p+"attention.output.dense")
			for i := range a {
				a[i] += h[l][i]
			}
			a = ln(a, p+"attention.output.LayerNorm")
			m := lin(a, p+"intermediate.dense")
			for i, x := range m {
				m[i] = x * 0.5 * (1 + math.Erf(x/math.Sqrt2))
			}
			o := lin(m, p+"output.dense")
			for i := range o {
				o[i] += a[i]
			}
			next[l] = ln(o, p+"output.LayerNorm")
		}
		h = next
	}
	return h
}

func TestForwardMatchesNaive(t *testing.T) {
	for _, cfg := range []Config{
		{VocabSize: 50, Hidden: 32, Layers: 2, Heads: 4, Intermediate: 48, MaxPositions: 16, TypeVocab: 2, LayerNormEps: 1e-12},
		{VocabSize: 30, Hidden: 24, Layers: 1, Heads: 3, Intermediate: 100, MaxPositions: 9, TypeVocab: 1, LayerNormEps: 1e-5, PadID: 3},
		{VocabSize: 20, Hidden: 16, Layers: 0, Heads: 1, Intermediate: 8, MaxPositions: 4, TypeVocab: 2, LayerNormEps: 1e-12},
	} {
		f := randomFile(cfg, "text_model.", 7)
		e, err := New(cfg, f, "text_model.")
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(3, 4))
		seq := cfg.MaxPositions
		var ids [][]int32
		for b := range 3 {
			row := make([]int32, seq)
			n := max(1, seq-2*b) // padded tails of different lengths
			for l := range row {
				row[l] = cfg.PadID
				if l < n {
					for row[l] == cfg.PadID {
						row[l] = int32(r.IntN(cfg.VocabSize))
					}
				}
			}
			ids = append(ids, row)
		}
		hidden := make([]float32, len(ids)*seq*cfg.Hidden)
		if err := e.Forward(&model.Arena{}, hidden, ids, nil); err != nil {
			t.Fatal(err)
		}
		var worst float64
		for b, row := range ids {
			want := naive(cfg, f, "text_model.", row)
			for l := range seq {
				for i, w := range want[l] {
					worst = max(worst, math.Abs(float64(hidden[(b*seq+l)*cfg.Hidden+i])-w))
				}
			}
		}
		t.Logf("hidden %d, %d layers: max |Δ| from the float64 forward %.3g", cfg.Hidden, cfg.Layers, worst)
		if worst > 2e-4 {
			t.Errorf("config %+v: max |Δ| from the float64 forward %g", cfg, worst)
		}
	}
}

func TestNewRejectsMismatch(t *testing.T) {
	cfg := Config{VocabSize: 50, Hidden: 32, Layers: 2, Heads: 4, Intermediate: 48, MaxPositions: 16, TypeVocab: 2, LayerNormEps: 1e-12}
	f := randomFile(cfg, "bert.", 1)
	for _, tc := range []struct {
		mod  func(c *Config)
		want string
	}{
		{func(c *Config) { c.Intermediate = 64 }, "bert.encoder.layer.0.intermediate.dense.weight"},
		{func(c *Config) { c.Layers = 3 }, "bert.encoder.layer.2."},
		{func(c *Config) { c.VocabSize = 51 }, "bert.embeddings.word_embeddings.weight"},
		{func(c *Config) { c.MaxPositions = 8 }, "bert.embeddings.position_embeddings.weight"},
		{func(c *Config) { c.Heads = 5 }, "not divisible"},
	} {
		c := cfg
		tc.mod(&c)
		_, err := New(c, f, "bert.")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %+v: error %v, want one naming %s", c, err, tc.want)
		}
	}
}

func TestForwardRejectsBadTokens(t *testing.T) {
	cfg := Config{VocabSize: 10, Hidden: 8, Layers: 1, Heads: 2, Intermediate: 8, MaxPositions: 4, TypeVocab: 2, LayerNormEps: 1e-12}
	e, err := New(cfg, randomFile(cfg, "", 2), "")
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, 2*5*8)
	for _, ids := range [][][]int32{
		{{1, 2, 3, 4, 5}}, // longer than the positions
		{{1, 2}, {1}},     // ragged
		{{1, 10}},         // outside the vocabulary
		{{-1, 2}},         // negative
		{{}},              // empty row
	} {
		if err := e.Forward(&model.Arena{}, out, ids, nil); err == nil {
			t.Errorf("Forward(%v) accepted", ids)
		}
	}
}
