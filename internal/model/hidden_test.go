package model

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/fixtures"
)

func TestResolveLayer(t *testing.T) {
	for _, tc := range []struct {
		layer, n, want int
		bad            bool
	}{
		{0, 12, 0, false}, {11, 12, 11, false}, {-1, 12, 11, false}, {-2, 12, 10, false}, {-12, 12, 0, false},
		{12, 12, 0, true}, {-13, 12, 0, true}, {0, 0, 0, true},
	} {
		got, err := ResolveLayer(tc.layer, tc.n, "text")
		if tc.bad {
			if err == nil {
				t.Errorf("ResolveLayer(%d, %d) = %d, want an error", tc.layer, tc.n, got)
			} else if tc.n > 0 && !strings.Contains(err.Error(), "valid layers are 0..") {
				t.Errorf("ResolveLayer(%d, %d) error %q does not name the valid range", tc.layer, tc.n, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ResolveLayer(%d, %d) = %d, %v; want %d", tc.layer, tc.n, got, err, tc.want)
		}
	}
}

func loadFixtureModel(t *testing.T, dir, name string) *Model {
	t.Helper()
	f, err := checkpoint.OpenSafetensors(filepath.Join(dir, name, "open_clip_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, _, err := ReadOpenCLIPConfig(filepath.Join(dir, name, "open_clip_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// rowsOf returns the first n rows of width w of v.
func rowsOf(v []float32, n, w int) []float32 { return v[:n*w] }

func TestHiddenStatesMatchIntermediates(t *testing.T) {
	dir := fixtures.Dir(t)
	exp := fixtures.Expected(t, dir)
	man := fixtures.ReadManifest(t, dir)
	tokens := fixtureTokens(t, dir)
	pixels, nimg := fixturePixels(t, dir, exp)
	for _, mm := range man.Models {
		t.Run(mm.Name, func(t *testing.T) {
			m := loadFixtureModel(t, dir, mm.Name)
			cfg := m.Config
			w, L, e := cfg.Text.Width, cfg.Text.ContextLength, cfg.EmbedDim
			n := len(tokens)
			hidden := make([]float32, n*L*w)
			feat := make([]float32, n*e)
			// Layer 0 is the output of block 0.
			if err := m.EncodeTextHidden(feat, hidden, tokens, 0, false); err != nil {
				t.Fatal(err)
			}
			ref, shape := fixtures.Float32(t, exp, "intermediates/"+mm.Name+"/text/block0")
			checkRows(t, "text layer 0", rowsOf(hidden, shape[0], L*w), ref, w)
			ref, _ = fixtures.Float32(t, exp, "text_features/"+mm.Name)
			checkRows(t, "text features beside hidden states", feat, ref, e)
			// The last layer with ln_final, at the EOT position, is the
			// pooled output.
			if err := m.EncodeTextHidden(nil, hidden, tokens, -1, true); err != nil {
				t.Fatal(err)
			}
			pooled := make([]float32, n*w)
			for b, row := range tokens {
				eot := 0
				for l, id := range row {
					if id > row[eot] {
						eot = l
					}
				}
				copy(pooled[b*w:(b+1)*w], hidden[(b*L+eot)*w:])
			}
			ref, _ = fixtures.Float32(t, exp, "intermediates/"+mm.Name+"/text/pooled")
			checkRows(t, "text last layer + ln_final at EOT", pooled, ref, w)
			if err := m.EncodeTextHidden(nil, hidden, tokens, len(m.Text.Transformer.Blocks), false); err == nil || !strings.Contains(err.Error(), "valid layers") {
				t.Errorf("out-of-range text layer: error %v", err)
			}

			seq, _, err := m.TokenCount()
			if cfg.Vision.IsResNet() {
				if err == nil {
					t.Error("TokenCount of a ResNet: no error")
				}
				if err := m.EncodeImageTokens(nil, pixels, nimg, ImageTokens{Raw: []float32{}}); err == nil {
					t.Error("EncodeImageTokens on a ResNet: no error")
				}
				return
			}
			vw := cfg.Vision.Width
			raw := make([]float32, nimg*seq*vw)
			if err := m.EncodeImageTokens(nil, pixels, nimg, ImageTokens{Layer: 0, Raw: raw}); err != nil {
				t.Fatal(err)
			}
			ref, shape = fixtures.Float32(t, exp, "intermediates/"+mm.Name+"/visual/block0")
			checkRows(t, "visual layer 0", rowsOf(raw, shape[0], seq*vw), ref, vw)
			normed := make([]float32, nimg*seq*vw)
			proj := make([]float32, nimg*seq*e)
			ifeat := make([]float32, nimg*e)
			if err := m.EncodeImageTokens(ifeat, pixels, nimg, ImageTokens{Layer: -1, Raw: raw, Normed: normed, Projected: proj}); err != nil {
				t.Fatal(err)
			}
			cls := make([]float32, nimg*vw)
			clsProj := make([]float32, nimg*e)
			for b := range nimg {
				copy(cls[b*vw:(b+1)*vw], normed[b*seq*vw:])
				copy(clsProj[b*e:(b+1)*e], proj[b*seq*e:])
			}
			ref, _ = fixtures.Float32(t, exp, "intermediates/"+mm.Name+"/visual/pooled")
			checkRows(t, "visual last layer ln_post class token", cls, ref, vw)
			ref, _ = fixtures.Float32(t, exp, "image_features/"+mm.Name)
			checkRows(t, "projected class token", clsProj, ref, e)
			checkRows(t, "image features beside tokens", ifeat, ref, e)
			// The value path of block 0 is out_proj(v(ln_1(ln_pre output))).
			val := make([]float32, nimg*seq*vw)
			if err := m.EncodeImageTokens(nil, pixels, nimg, ImageTokens{Layer: 0, Raw: val, ValuePath: true}); err != nil {
				t.Fatal(err)
			}
			lnPre, _ := fixtures.Float32(t, exp, "intermediates/"+mm.Name+"/visual/ln_pre")
			blk := &m.Visual.(*VisionTransformer).Transformer.Blocks[0]
			rows := len(lnPre) / vw
			want := refValuePath(blk, lnPre, rows, vw)
			if rel := relErr(val[:len(want)], want); rel > 1e-5 {
				t.Errorf("value path of block 0: max|Δ|/max|ref| = %.3g", rel)
			}
			if err := m.EncodeImageTokens(nil, pixels, nimg, ImageTokens{Layer: 99, Raw: raw}); err == nil || !strings.Contains(err.Error(), "valid layers") {
				t.Errorf("out-of-range image layer: error %v", err)
			}
			if err := m.EncodeImageTokens(nil, pixels, nimg, ImageTokens{Raw: raw[:1]}); err == nil {
				t.Error("short token buffer: no error")
			}
		})
	}
}

// refValuePath computes out_proj(v(ln_1(x))) with plain float64 loops.
func refValuePath(blk *Block, x []float32, rows, w int) []float32 {
	out := make([]float32, rows*w)
	h := make([]float64, w)
	v := make([]float64, w)
	for r := range rows {
		xr := x[r*w : (r+1)*w]
		var mean, vr float64
		for _, a := range xr {
			mean += float64(a)
		}
		mean /= float64(w)
		for _, a := range xr {
			vr += (float64(a) - mean) * (float64(a) - mean)
		}
		vr /= float64(w)
		for c, a := range xr {
			h[c] = (float64(a)-mean)/math.Sqrt(vr+float64(blk.LN1.Eps))*float64(blk.LN1.G[c]) + float64(blk.LN1.B[c])
		}
		for o := range w {
			s := float64(blk.Attn.In.B[2*w+o])
			wr := blk.Attn.In.Unpack()[(2*w+o)*w:]
			for c := range w {
				s += float64(wr[c]) * h[c]
			}
			v[o] = s
		}
		for o := range w {
			s := float64(blk.Attn.Out.B[o])
			wr := blk.Attn.Out.Unpack()[o*w:]
			for c := range w {
				s += float64(wr[c]) * v[c]
			}
			out[r*w+o] = float32(s)
		}
	}
	return out
}
