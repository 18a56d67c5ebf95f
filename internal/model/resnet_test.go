package model

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
)

// TestResNetForwardAfterUpdate checks that the inference forward follows
// parameter changes: after AfterUpdate the repacked convolutions and the
// attention pool's key/value weights (kept in their own layouts) give the
// output of a model built afresh from the same state dict.
func TestResNetForwardAfterUpdate(t *testing.T) {
	cfg := resnet(32, 64, [4]int{1, 2, 1, 1}, 8, 64, 1, 1)
	m, err := Random(cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	const batch = 3
	s := cfg.Vision.ImageSize
	r := rand.New(rand.NewPCG(7, 8))
	px := make([]float32, batch*3*s*s)
	for i := range px {
		px[i] = float32(r.NormFloat64())
	}
	before := make([]float32, batch*cfg.EmbedDim)
	m.EncodeImage(before, px, batch, nil)
	for _, p := range m.Params() {
		if strings.HasPrefix(p.Name, "visual.") {
			for i := range p.Value {
				p.Value[i] *= 1 + 0.2*float32(r.NormFloat64())
			}
		}
	}
	m.AfterUpdate()
	after := make([]float32, batch*cfg.EmbedDim)
	m.EncodeImage(after, px, batch, nil)

	f := &checkpoint.File{Path: "state dict", Tensors: map[string]*checkpoint.Tensor{}}
	for _, tn := range m.StateDict() {
		f.Tensors[tn.Name] = tn
		f.Names = append(f.Names, tn.Name)
	}
	fresh, err := New(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, batch*cfg.EmbedDim)
	fresh.EncodeImage(want, px, batch, nil)

	var diff, scale, moved float64
	for i := range want {
		diff = math.Max(diff, math.Abs(float64(after[i]-want[i])))
		scale = math.Max(scale, math.Abs(float64(want[i])))
		moved = math.Max(moved, math.Abs(float64(after[i]-before[i])))
	}
	if diff > 1e-5*scale {
		t.Errorf("after AfterUpdate: max|Δ| = %g against a fresh model (max|ref| %g)", diff, scale)
	}
	if moved < 1e-3*scale {
		t.Errorf("the output did not follow the parameter change (max|Δ| %g)", moved)
	}
}

// TestBottleneckInPlace checks that an identity block updating its input
// in place (as ModifiedResNet.Forward runs it) gives exactly the output
// written to a separate buffer.
func TestBottleneckInPlace(t *testing.T) {
	cfg := resnet(32, 64, [4]int{1, 2, 1, 1}, 8, 64, 1, 1)
	m, err := Random(cfg, 6)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Visual.(*ModifiedResNet)
	blk := &r.Layers[1][1]
	if blk.Down != nil {
		t.Fatal("layer 2 block 1 has a downsample")
	}
	const batch, h, w = 2, 5, 5
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, batch*blk.Conv1.In*h*w)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]float32, len(x))
	var ar Arena
	blk.Forward(&ar, y, x, batch, h, w)
	in := append([]float32(nil), x...)
	ar.Reset()
	blk.Forward(&ar, in, in, batch, h, w)
	for i := range y {
		if y[i] != in[i] {
			t.Fatalf("element %d: in place %v, separate %v", i, in[i], y[i])
		}
	}
}
