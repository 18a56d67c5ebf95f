package model

import (
	"path/filepath"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/fixtures"
)

// TestParityFastPath checks the inference path taken without a tracer
// (text truncated at the batch's last end-of-text token, last block on the
// pooled rows only, weights held packed only) against the reference
// features, and one-text batches against the whole batch.
func TestParityFastPath(t *testing.T) {
	dir := fixtures.Dir(t)
	exp := fixtures.Expected(t, dir)
	man := fixtures.ReadManifest(t, dir)
	pixels, nimg := fixturePixels(t, dir, exp)
	tokens := fixtureTokens(t, dir)
	for _, mm := range man.Models {
		t.Run(mm.Name, func(t *testing.T) {
			f, err := checkpoint.OpenSafetensors(filepath.Join(dir, mm.Name, "open_clip_model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := InferConfig(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := New(cfg, f)
			if err != nil {
				t.Fatal(err)
			}
			f.Close() // the model must not keep views of the mapping
			ed := cfg.EmbedDim
			img := make([]float32, nimg*ed)
			m.EncodeImage(img, pixels, nimg, nil)
			ref, _ := fixtures.Float32(t, exp, "image_features/"+mm.Name)
			checkRows(t, "image_features", img, ref, ed)
			txt := make([]float32, len(tokens)*ed)
			if err := m.EncodeText(txt, tokens, nil); err != nil {
				t.Fatal(err)
			}
			ref, _ = fixtures.Float32(t, exp, "text_features/"+mm.Name)
			checkRows(t, "text_features", txt, ref, ed)
			for i := range tokens {
				one := make([]float32, ed)
				if err := m.EncodeText(one, tokens[i:i+1], nil); err != nil {
					t.Fatal(err)
				}
				checkRows(t, "text_features (one at a time)", one, ref[i*ed:(i+1)*ed], ed)
			}
		})
	}
}
