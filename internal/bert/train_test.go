package bert

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/model"
)

// randomIDs returns batch rows of seq ids with [PAD] tails of different
// lengths (row b keeps max(1, seq-2b) real tokens).
func randomIDs(cfg Config, batch, seq int, r *rand.Rand) [][]int32 {
	var ids [][]int32
	for b := range batch {
		row := make([]int32, seq)
		n := max(1, seq-2*b)
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
	return ids
}

// setValue sets element i of a float32 tensor of f and returns the value
// actually stored.
func setValue(f *checkpoint.File, name string, i int, v float64) float64 {
	x := float32(v)
	binary.LittleEndian.PutUint32(f.Tensors[name].Data[4*i:], math.Float32bits(x))
	return float64(x)
}

// TestBackwardFiniteDifferences checks every parameter gradient of the
// encoder against central differences of the float64 forward (naive) for
// the loss Σ R ⊙ hidden, on tiny random shapes with padded rows.
func TestBackwardFiniteDifferences(t *testing.T) {
	for ci, cfg := range []Config{
		{VocabSize: 13, Hidden: 8, Layers: 2, Heads: 2, Intermediate: 12, MaxPositions: 7, TypeVocab: 2, LayerNormEps: 1e-12},
		{VocabSize: 9, Hidden: 6, Layers: 1, Heads: 3, Intermediate: 10, MaxPositions: 5, TypeVocab: 1, LayerNormEps: 1e-5, PadID: 4},
	} {
		const prefix = "bert."
		f := randomFile(cfg, prefix, uint64(11+ci))
		e, err := New(cfg, f, prefix)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(5, uint64(ci)))
		seq := cfg.MaxPositions - 1
		ids := randomIDs(cfg, 3, seq, r)
		H := cfg.Hidden
		R := make([]float64, len(ids)*seq*H)
		for i := range R {
			R[i] = r.NormFloat64()
		}
		loss := func() float64 {
			var s float64
			for b, row := range ids {
				h := naive(cfg, f, prefix, row)
				for l := range seq {
					for i, v := range h[l] {
						s += R[(b*seq+l)*H+i] * v
					}
				}
			}
			return s
		}

		ar := &model.Arena{}
		hidden := make([]float32, len(R))
		params := e.Params(prefix)
		// Two steps: the second must not see the first's activations or
		// gradients (buffers are reused; ZeroGrad clears).
		for step := range 2 {
			ar.Reset()
			e.ZeroGrad()
			tp, err := e.ForwardTrain(ar, hidden, ids)
			if err != nil {
				t.Fatal(err)
			}
			if step == 0 {
				continue
			}
			// The training forward equals the inference forward.
			inf := make([]float32, len(hidden))
			if err := e.Forward(&model.Arena{}, inf, ids, nil); err != nil {
				t.Fatal(err)
			}
			var fwd float64
			for i := range inf {
				fwd = max(fwd, math.Abs(float64(inf[i]-hidden[i])))
			}
			if fwd > 1e-5 {
				t.Errorf("config %d: training forward differs from Forward by %g", ci, fwd)
			}
			d := make([]float32, len(R))
			for i, v := range R {
				d[i] = float32(v)
			}
			e.Backward(ar, tp, d)
		}

		used := map[int]bool{}
		for _, row := range ids {
			for _, id := range row {
				used[int(id)] = true
			}
		}
		const h = 1e-3
		for _, p := range params {
			if len(p.Grad) != len(p.Value) {
				t.Fatalf("%s: %d gradients for %d values", p.Name, len(p.Grad), len(p.Value))
			}
			var scale float64
			for _, g := range p.Grad {
				scale = max(scale, math.Abs(float64(g)))
			}
			var idx []int
			switch p.Name {
			case prefix + "embeddings.word_embeddings.weight":
				for row := range cfg.VocabSize {
					g := p.Grad[row*H : (row+1)*H]
					zero := true
					for _, v := range g {
						zero = zero && v == 0
					}
					if row == int(cfg.PadID) || !used[row] {
						if !zero {
							t.Errorf("config %d: word embedding row %d (pad %v, used %v) has a gradient", ci, row, row == int(cfg.PadID), used[row])
						}
						continue
					}
					idx = append(idx, row*H+r.IntN(H))
				}
			default:
				for range 4 {
					idx = append(idx, r.IntN(len(p.Value)))
				}
			}
			var worst float64
			for _, i := range idx {
				v := float64(p.Value[i])
				hi := setValue(f, p.Name, i, v+h)
				lp := loss()
				lo := setValue(f, p.Name, i, v-h)
				lm := loss()
				setValue(f, p.Name, i, v)
				fd := (lp - lm) / (hi - lo)
				worst = max(worst, math.Abs(fd-float64(p.Grad[i])))
			}
			t.Logf("config %d %s: max |Δ| %.3g (max |grad| %.3g)", ci, p.Name, worst, scale)
			if worst > 1e-4*scale+1e-5 {
				t.Errorf("config %d %s: analytic gradient off finite differences by %g (max |grad| %g)", ci, p.Name, worst, scale)
			}
		}
	}
}
