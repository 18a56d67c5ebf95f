package clip_test

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
)

// checkTensor compares got with ref within the fixtures' parity bound for
// features and intermediates: |Δ| ≤ 1e-5·max|ref| + 1e-7.
func checkTensor(t *testing.T, name string, got, ref []float32) {
	t.Helper()
	if len(got) < len(ref) {
		t.Fatalf("%s: %d values, reference has %d", name, len(got), len(ref))
	}
	var mr, md float64
	for i := range ref {
		mr = math.Max(mr, math.Abs(float64(ref[i])))
		md = math.Max(md, math.Abs(float64(got[i])-float64(ref[i])))
	}
	if md > 1e-5*mr+1e-7 {
		t.Errorf("%s: max|Δ| %.3g, bound %.3g", name, md, 1e-5*mr+1e-7)
	} else {
		t.Logf("%s: max|Δ|/max|ref| = %.2g", name, md/mr)
	}
}

func flat(rows [][]float32) []float32 {
	var out []float32
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

func TestHiddenStatesAndPatchesMatchFixtures(t *testing.T) {
	dir, files, texts, models := loadFixtureModels(t)
	exp := fixtures.Expected(t, dir)
	ctx := context.Background()
	for _, fm := range models {
		t.Run(fm.name, func(t *testing.T) {
			m := fm.m
			pre := "intermediates/" + fm.name + "/"
			block0, shape := fixtures.Float32(t, exp, pre+"text/block0")
			h, err := m.EncodeTextHidden(ctx, texts[:shape[0]], 0, false)
			if err != nil {
				t.Fatal(err)
			}
			if h.Context != shape[1] || h.Width != shape[2] || len(h.States) != shape[0] {
				t.Fatalf("hidden states %d×[%d, %d], fixture %v", len(h.States), h.Context, h.Width, shape)
			}
			checkTensor(t, "text layer 0", flat(h.States), block0)
			checkTensor(t, "text pooled projection", flat(h.Pooled), flat(fm.texts[:shape[0]]))
			// Last layer + ln_final at the EOT token is text/pooled.
			pooledRef, _ := fixtures.Float32(t, exp, pre+"text/pooled")
			h, err = m.EncodeTextHidden(ctx, texts, clip.LastLayer, true)
			if err != nil {
				t.Fatal(err)
			}
			var pooled []float32
			for i, row := range h.Tokens {
				eot := 0
				for l, id := range row {
					if id > row[eot] {
						eot = l
					}
				}
				pooled = append(pooled, h.States[i][eot*h.Width:(eot+1)*h.Width]...)
			}
			checkTensor(t, "text last layer + ln_final at EOT", pooled, pooledRef)
			layers := m.Config().Text.Layers
			_, err = m.EncodeTextHidden(ctx, texts[:1], layers, false)
			if err == nil || !strings.Contains(err.Error(), "valid layers are 0..") {
				t.Errorf("layer %d of %d: error %v, want one naming the valid range", layers, layers, err)
			}

			if m.Config().Vision.IsResNet() {
				if _, err := m.EncodeImagePatchFiles(ctx, files[:1], clip.PatchOptions{Layer: clip.LastLayer}); err == nil || !strings.Contains(err.Error(), "vision transformer") {
					t.Errorf("patches of a ResNet model: error %v", err)
				}
				return
			}
			vb0, vshape := fixtures.Float32(t, exp, pre+"visual/block0")
			p, err := m.EncodeImagePatchFiles(ctx, files[:vshape[0]], clip.PatchOptions{Layer: 0})
			if err != nil {
				t.Fatal(err)
			}
			if p.Tokens != vshape[1] || p.Width != vshape[2] || p.Tokens != p.Grid*p.Grid+1 {
				t.Fatalf("patches: %d tokens (grid %d) of width %d, fixture %v", p.Tokens, p.Grid, p.Width, vshape)
			}
			checkTensor(t, "visual layer 0", flat(p.Raw), vb0)
			p, err = m.EncodeImagePatchFiles(ctx, files, clip.PatchOptions{Layer: clip.LastLayer, Project: true})
			if err != nil {
				t.Fatal(err)
			}
			var cls, clsProj []float32
			for i := range p.Normed {
				cls = append(cls, p.Normed[i][:p.Width]...)
				clsProj = append(clsProj, p.Projected[i][:p.EmbedDim]...)
			}
			vpooled, _ := fixtures.Float32(t, exp, pre+"visual/pooled")
			checkTensor(t, "visual ln_post class token", cls, vpooled)
			checkTensor(t, "visual projected class token", clsProj, flat(fm.images))
			checkTensor(t, "image features", flat(p.Features), flat(fm.images))
			if _, err := m.EncodeImagePatchFiles(ctx, files[:1], clip.PatchOptions{Layer: -99}); err == nil || !strings.Contains(err.Error(), "valid layers") {
				t.Errorf("image layer -99: error %v", err)
			}
		})
	}
}

func TestHiddenChineseCLIP(t *testing.T) {
	dir := fixtures.CNDir(t)
	var man struct {
		Models []struct {
			Name string `json:"name"`
		} `json:"models"`
	}
	fixtures.ReadJSON(t, filepath.Join(dir, "manifest.json"), &man)
	if len(man.Models) == 0 {
		t.Skip("no Chinese-CLIP models")
	}
	m, err := clip.Load(filepath.Join(dir, man.Models[0].Name, "hf"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.EncodeTextHidden(context.Background(), []string{"猫"}, -1, false); err == nil || !strings.Contains(err.Error(), "chinese-clip") {
		t.Errorf("Chinese-CLIP hidden states: error %v, want one naming the model kind", err)
	}
	if _, err := m.EncodeImagePatches(context.Background(), make([]float32, 3*m.ImageSize()*m.ImageSize()), 1, clip.PatchOptions{}); err == nil {
		t.Error("Chinese-CLIP patches: no error")
	}
}
