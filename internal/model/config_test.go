package model

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/fixtures"
)

// cloneFile returns a shallow copy of f whose tensor map can be edited.
func cloneFile(f *checkpoint.File) *checkpoint.File {
	g := &checkpoint.File{Path: f.Path, Tensors: map[string]*checkpoint.Tensor{}}
	for k, v := range f.Tensors {
		g.Tensors[k] = v
	}
	return g
}

func TestCheckShapesNamesTheProblem(t *testing.T) {
	dir := fixtures.Dir(t)
	for _, mm := range fixtures.ReadManifest(t, dir).Models {
		f, err := checkpoint.OpenSafetensors(filepath.Join(dir, mm.Name, "open_clip_model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := InferConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		// Pick a real tensor of this model to remove and to reshape.
		victim := "ln_final.weight"
		tests := []struct {
			name string
			edit func(g *checkpoint.File)
			want []string
		}{
			{"missing", func(g *checkpoint.File) { delete(g.Tensors, victim) }, []string{"missing tensor", victim}},
			{"extra", func(g *checkpoint.File) {
				g.Tensors["visual.bogus.weight"] = &checkpoint.Tensor{Name: "visual.bogus.weight", DType: checkpoint.F32, Shape: []int{1}, Data: make([]byte, 4)}
			}, []string{"unexpected tensor", "visual.bogus.weight"}},
			{"shape", func(g *checkpoint.File) {
				old := g.Tensors[victim]
				g.Tensors[victim] = &checkpoint.Tensor{Name: victim, DType: old.DType, Shape: []int{old.Shape[0] + 1}, Data: make([]byte, 4*(old.Shape[0]+1))}
			}, []string{victim, "expected shape", "got"}},
		}
		for _, tc := range tests {
			t.Run(mm.Name+"/"+tc.name, func(t *testing.T) {
				g := cloneFile(f)
				tc.edit(g)
				_, err := New(cfg, g)
				if err == nil {
					t.Fatal("accepted a bad state dict")
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
			})
		}
	}
}

func TestInferConfigErrors(t *testing.T) {
	f := &checkpoint.File{Path: "empty.safetensors", Tensors: map[string]*checkpoint.Tensor{}}
	if _, err := InferConfig(f); err == nil || !strings.Contains(err.Error(), "empty.safetensors") {
		t.Fatalf("InferConfig on an empty state dict: %v", err)
	}
}

func TestArchShapesBuild(t *testing.T) {
	for _, name := range ArchNames() {
		cfg, err := Arch(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if cfg.ImageFLOPs() <= 0 || cfg.TextFLOPs() <= 0 {
			t.Errorf("%s: non-positive FLOP count", name)
		}
	}
	if _, err := Arch("ViT-Z-99"); err == nil {
		t.Error("unknown arch accepted")
	}
}

// TestOtherShapes builds small random models with shapes unlike the
// fixtures' (patch 16 at 160 px, 3 heads, a deeper ResNet) and checks that
// batched and one-at-a-time inference agree: nothing assumes fixture shapes.
func TestOtherShapes(t *testing.T) {
	cfgs := map[string]Config{
		"vit-p16-160": vit(48, 160, 16, 96, 3, 3, 96, 3, 2),
		"rn-deep":     resnet(32, 96, [4]int{2, 1, 2, 1}, 8, 64, 2, 1),
	}
	for name, cfg := range cfgs {
		t.Run(name, func(t *testing.T) {
			m, err := Random(cfg, 7)
			if err != nil {
				t.Fatal(err)
			}
			s := cfg.Vision.ImageSize
			const n = 3
			px := make([]float32, n*3*s*s)
			for i := range px {
				px[i] = float32((i*7919)%255)/127 - 1
			}
			all := make([]float32, n*cfg.EmbedDim)
			m.EncodeImage(all, px, n, nil)
			for i := range n {
				one := make([]float32, cfg.EmbedDim)
				m.EncodeImage(one, px[i*3*s*s:(i+1)*3*s*s], 1, nil)
				if e := relErr(one, all[i*cfg.EmbedDim:(i+1)*cfg.EmbedDim]); e > 1e-5 {
					t.Errorf("image %d: batch-1 vs batched differ by %.3g", i, e)
				}
			}
			toks := [][]int32{make([]int32, 77), make([]int32, 77)}
			toks[0][0], toks[0][1], toks[0][2] = 49406, 320, 49407
			toks[1][0], toks[1][1] = 49406, 49407
			out := make([]float32, 2*cfg.EmbedDim)
			if err := m.EncodeText(out, toks, nil); err != nil {
				t.Fatal(err)
			}
			bad := [][]int32{make([]int32, 76)}
			if err := m.EncodeText(out, bad, nil); err == nil {
				t.Error("accepted a 76-token row")
			}
			bad = [][]int32{make([]int32, 77)}
			bad[0][3] = 60000
			if err := m.EncodeText(out, bad, nil); err == nil || !strings.Contains(err.Error(), "60000") {
				t.Errorf("out-of-vocabulary id: %v", err)
			}
		})
	}
}
