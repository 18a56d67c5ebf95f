package edit

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/imageproc"
)

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func randVec(r *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = r.NormFloat64()
	}
	return v
}

// TestResampleAdjoint checks <resample(a), b> = <a, resampleAdjoint(b)>
// for the view crops/flips and the grid upsampling.
func TestResampleAdjoint(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name           string
		sh, sw, oh, ow int
		ny, nx         axis
	}{
		{"identity", 9, 9, 9, 9, newAxis(9, 9, 0, 1, false), newAxis(9, 9, 0, 1, false)},
		{"crop", 16, 16, 16, 16, newAxis(16, 16, 2.3, 0.8, false), newAxis(16, 16, 1.1, 0.8, false)},
		{"crop flip", 16, 16, 16, 16, newAxis(16, 16, 0.7, 0.9, false), newAxis(16, 16, 3.2, 0.8, true)},
		{"upsample 4→16", 4, 4, 16, 16, newAxis(16, 4, 0, 0.25, false), newAxis(16, 4, 0, 0.25, false)},
		{"upsample 1→7", 1, 1, 7, 7, newAxis(7, 1, 0, 1.0/7, false), newAxis(7, 1, 0, 1.0/7, false)},
	} {
		a := randVec(r, 3*tc.sh*tc.sw)
		b := randVec(r, 3*tc.oh*tc.ow)
		out := make([]float64, 3*tc.oh*tc.ow)
		tmp := make([]float64, 3*tc.sh*tc.ow)
		resample(out, a, tc.sh, tc.sw, tc.ny, tc.nx, tmp)
		back := make([]float64, 3*tc.sh*tc.sw)
		resampleAdjoint(back, b, tc.sh, tc.sw, tc.ny, tc.nx, tmp)
		l, rr := dot(out, b), dot(a, back)
		if math.Abs(l-rr) > 1e-9*math.Max(1, math.Abs(l)) {
			t.Errorf("%s: <Ra, b> = %.12g, <a, Rᵀb> = %.12g", tc.name, l, rr)
		}
	}
	// The identity view reproduces the image exactly.
	x := randVec(r, 3*8*8)
	ax := newAxis(8, 8, 0, 1, false)
	out := make([]float64, len(x))
	resample(out, x, 8, 8, ax, ax, make([]float64, 3*8*8))
	for i := range x {
		if out[i] != x[i] {
			t.Fatalf("identity view changed value %d: %v → %v", i, x[i], out[i])
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Strength: 1.5}, "strength 1.5 is outside [0, 1]"},
		{Options{Strength: -0.1}, "outside [0, 1]"},
		{Options{Strength: math.NaN()}, "outside [0, 1]"},
		{Options{Steps: -1}, "steps"},
		{Options{Views: 1000}, "views"},
		{Options{LR: -1}, "learning rate"},
		{Options{Penalty: -1}, "penalty"},
		{Options{Frames: 1}, "frames"},
	} {
		err := tc.o.defaults()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.o, err, tc.want)
		}
	}
	o := Options{StrengthSet: true}
	if err := o.defaults(); err != nil || o.Strength != 0 {
		t.Errorf("explicit strength 0: %v, strength %v", err, o.Strength)
	}
}

func loadFixture(t *testing.T) (*clip.Model, string) {
	t.Helper()
	dir := fixtures.Dir(t)
	m, err := clip.Load(fixtures.ModelFile(t, dir, "open_clip_model.safetensors"), clip.WithTokenizer(filepath.Join(dir, "tokenizer")))
	if err != nil {
		t.Fatal(err)
	}
	return m, dir
}

// TestEditRaisesSimilarity runs a short edit on the fixture model: the
// cosine to the prompt goes up, the change stays within the strength, the
// frames run from the input to the result, and strength 0 changes nothing.
func TestEditRaisesSimilarity(t *testing.T) {
	m, dir := loadFixture(t)
	ctx := context.Background()
	img, err := imageproc.LoadFile(filepath.Join(dir, "images", "shapes_640x480.png"), m.PreprocessOptions())
	if err != nil {
		t.Fatal(err)
	}
	crop, err := imageproc.CropRGB(img, m.PreprocessOptions())
	if err != nil {
		t.Fatal(err)
	}
	txt, err := m.EncodeTexts(ctx, []string{"a photo of a dog"})
	if err != nil {
		t.Fatal(err)
	}
	ed, err := New(m.Network(), m.PreprocessOptions())
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	o := Options{Steps: 8, Views: 2, Strength: 0.2, Frames: 3, Seed: 1, Progress: func(step int, c float64) { calls++ }}
	res, err := ed.Edit(ctx, crop, txt[0], o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cosine %.4f → %.4f, mean |Δ| %.4f, max |Δ| %.4f, %v", res.Start, res.Final, res.MeanAbsChange, res.MaxAbsChange, res.Duration)
	if res.Final <= res.Start {
		t.Errorf("cosine did not rise: %.5f → %.5f", res.Start, res.Final)
	}
	if res.MaxAbsChange > 0.2+1.0/255 {
		t.Errorf("max change %.4f exceeds the strength 0.2", res.MaxAbsChange)
	}
	if calls != o.Steps {
		t.Errorf("progress called %d times, want %d", calls, o.Steps)
	}
	if len(res.Frames) != 3 || res.FrameSteps[0] != 0 || res.FrameSteps[2] != o.Steps || res.Frames[2] != res.Image {
		t.Errorf("frames at steps %v", res.FrameSteps)
	}
	s := m.ImageSize()
	if b := res.Image.Bounds(); b.Dx() != s || b.Dy() != s {
		t.Errorf("result is %v, want %d×%d", b, s, s)
	}
	// The first frame is the input.
	for i := range s * s {
		for c := range 3 {
			if res.Frames[0].Pix[4*i+c] != crop[3*i+c] {
				t.Fatalf("frame 0 differs from the input at pixel %d", i)
			}
		}
	}
	if st := Strip(res.Frames, 4).Bounds(); st.Dx() != 3*s+8 || st.Dy() != s {
		t.Errorf("strip is %v", st)
	}

	zero, err := ed.Edit(ctx, crop, txt[0], Options{Steps: 2, Views: 1, StrengthSet: true})
	if err != nil {
		t.Fatal(err)
	}
	if zero.MaxAbsChange != 0 {
		t.Errorf("strength 0 changed the image by up to %v", zero.MaxAbsChange)
	}
	if _, err := ed.Edit(ctx, crop[:10], txt[0], Options{}); err == nil {
		t.Error("short pixel buffer: no error")
	}
	if _, err := ed.Edit(ctx, crop, make([]float32, m.EmbedDim()), Options{}); err == nil {
		t.Error("zero target: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ed.Edit(cctx, crop, txt[0], Options{Steps: 3}); err == nil {
		t.Error("cancelled context: no error")
	}
	if _, err := New(nil, m.PreprocessOptions()); err == nil {
		t.Error("nil network: no error")
	}
}
