package model

import (
	"path/filepath"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/fixtures"
)

// TestNewPrecision checks that loading with bfloat16 or int8 weights
// (NewPrecision, converted layer by layer) gives exactly the model that New
// followed by UsePrecision gives, on every fixture model, and that every
// Linear is held in that precision.
func TestNewPrecision(t *testing.T) {
	dir := fixtures.Dir(t)
	exp := fixtures.Expected(t, dir)
	pixels, nimg := fixturePixels(t, dir, exp)
	tokens := fixtureTokens(t, dir)
	for _, mm := range fixtures.ReadManifest(t, dir).Models {
		for _, prec := range []Precision{BF16, Int8} {
			t.Run(mm.Name+"/"+string(prec), func(t *testing.T) {
				f, err := checkpoint.OpenSafetensors(filepath.Join(dir, mm.Name, "open_clip_model.safetensors"))
				if err != nil {
					t.Fatal(err)
				}
				cfg, err := InferConfig(f)
				if err != nil {
					t.Fatal(err)
				}
				a, err := NewPrecision(cfg, f, prec)
				if err != nil {
					t.Fatal(err)
				}
				b, err := New(cfg, f)
				if err != nil {
					t.Fatal(err)
				}
				b.UsePrecision(prec)
				for _, l := range a.Linears() {
					if l.packed == nil || l.packed.BF16() != (prec == BF16) || l.packed.Int8() != (prec == Int8) {
						t.Fatalf("a Linear (%d→%d) is not held as %s", l.In, l.Out, prec)
					}
				}
				if r, ok := a.Visual.(*ModifiedResNet); ok {
					n := 0
					for _, c := range r.convs() {
						want := prec == Int8 && c.K == 1
						if c.packed.Int8() != want {
							t.Fatalf("a %d×%d convolution (%d→%d): int8 %v, want %v", c.K, c.K, c.In, c.Out, c.packed.Int8(), want)
						}
						if want {
							n++
						}
					}
					if prec == Int8 && n == 0 {
						t.Fatal("no 1×1 convolution to hold as int8")
					}
				}
				ia, ib := make([]float32, nimg*cfg.EmbedDim), make([]float32, nimg*cfg.EmbedDim)
				a.EncodeImage(ia, pixels, nimg, nil)
				b.EncodeImage(ib, pixels, nimg, nil)
				ta, tb := make([]float32, len(tokens)*cfg.EmbedDim), make([]float32, len(tokens)*cfg.EmbedDim)
				if err := a.EncodeText(ta, tokens, nil); err != nil {
					t.Fatal(err)
				}
				if err := b.EncodeText(tb, tokens, nil); err != nil {
					t.Fatal(err)
				}
				for i := range ia {
					if ia[i] != ib[i] {
						t.Fatalf("image feature %d: %v vs %v", i, ia[i], ib[i])
					}
				}
				for i := range ta {
					if ta[i] != tb[i] {
						t.Fatalf("text feature %d: %v vs %v", i, ta[i], tb[i])
					}
				}
			})
		}
	}
	if _, err := ParsePrecision("int4"); err == nil {
		t.Error("ParsePrecision accepts int4")
	}
}
