// Package edit changes an image so that CLIP finds it more similar to a
// text prompt ("CLIP-guided editing"), by gradient ascent on the cosine
// similarity through the image tower.
//
// To get a picture rather than adversarial noise the change is
// parameterised smoothly and the gradient is averaged over augmented views:
//
//   - the change Δ = strength·tanh(D) is bounded by strength per channel,
//     and D = Σ_k up(P_k) is a sum of bilinearly upsampled coarse grids
//     P_k of side S/2, S/4, … (a Laplacian-pyramid-like basis with no
//     pixel-level degrees of freedom);
//   - every step scores the unaugmented image and random crops (75–100% of
//     the side, resized back bilinearly) with random horizontal flips;
//   - a penalty λ·mean((x−x₀)²) keeps the result close to the input.
//
// The objective is the cosine to the prompt, or, given negative concepts,
// the zero-shot classification cross-entropy of the prompt against them.
//
// The image is edited at the model's input resolution (the centre crop
// the model sees).
package edit

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/model"
)

// Options control an edit. Zero values take the defaults.
type Options struct {
	// Steps is the number of optimisation steps (default 40).
	Steps int
	// Strength in [0, 1] bounds the change of every channel value (on the
	// 0..1 scale): 0 leaves the image as it is, 1 allows any change
	// (default 0.25). Use StrengthSet to ask for exactly 0.
	Strength    float64
	StrengthSet bool
	// Views is the number of views per step: the image itself and
	// Views-1 random crops/flips (default 4).
	Views int
	// LR is the Adam learning rate on the grid coefficients (default 0.1).
	LR float64
	// Penalty weighs mean((x−x₀)²) against the cosine (default 2).
	Penalty float64
	// Negatives, when set, are text features of other concepts (e.g. a
	// zero-shot label set). The objective then becomes the cross-entropy
	// of a zero-shot classification of every view over the target and the
	// negatives, at temperature 1/Scale, instead of the plain cosine: the
	// edit then aims at making the prompt win over the alternatives.
	Negatives [][]float32
	// Scale is the logit scale of the classification (default 100,
	// OpenAI CLIP's exp(logit_scale)).
	Scale float64
	// Levels is the number of grids, of side S/2, S/4, … (default 5,
	// fewer when the image is small).
	Levels int
	// Frames is how many snapshots Result.Frames keeps, first and last
	// included (default 6; at most Steps+1).
	Frames int
	// Seed makes the augmentations reproducible.
	Seed uint64
	// Progress, if set, is called after every step with the step number
	// (1-based) and the current cosine similarity of the image to the
	// prompt.
	Progress func(step int, cosine float64)
}

func (o *Options) defaults() error {
	if o.Steps == 0 {
		o.Steps = 60
	}
	if !o.StrengthSet && o.Strength == 0 {
		o.Strength = 0.25
	}
	if o.Views == 0 {
		o.Views = 4
	}
	if o.LR == 0 {
		o.LR = 0.1
	}
	if o.Penalty == 0 {
		o.Penalty = 2
	}
	if o.Levels == 0 {
		o.Levels = 5
	}
	if o.Scale == 0 {
		o.Scale = 100
	}
	if o.Frames == 0 {
		o.Frames = 6
	}
	switch {
	case math.IsNaN(o.Strength) || o.Strength < 0 || o.Strength > 1:
		return fmt.Errorf("edit: strength %v is outside [0, 1]", o.Strength)
	case o.Steps < 0 || o.Steps > 100000:
		return fmt.Errorf("edit: %d steps (want 0..100000)", o.Steps)
	case o.Views < 1 || o.Views > 256:
		return fmt.Errorf("edit: %d views per step (want 1..256)", o.Views)
	case !(o.LR > 0) || math.IsInf(o.LR, 0):
		return fmt.Errorf("edit: learning rate %v must be positive", o.LR)
	case o.Penalty < 0 || math.IsNaN(o.Penalty) || math.IsInf(o.Penalty, 0):
		return fmt.Errorf("edit: penalty %v must be ≥ 0", o.Penalty)
	case o.Levels < 1 || o.Levels > 12:
		return fmt.Errorf("edit: %d levels (want 1..12)", o.Levels)
	case o.Frames < 2:
		return fmt.Errorf("edit: %d frames (want at least 2: first and last)", o.Frames)
	}
	return nil
}

// Result is an edited image with what happened on the way.
type Result struct {
	// Image is the edited S×S image.
	Image *image.RGBA
	// Frames are snapshots from the input to the result.
	Frames []*image.RGBA
	// FrameSteps are the steps the frames were taken at (0 = input).
	FrameSteps []int
	// Start and Final are the cosine similarities of the input and of the
	// result (after rounding to 8 bits) to the prompt.
	Start, Final float64
	// MeanAbsChange and MaxAbsChange are the mean and largest absolute
	// change of a channel value on the 0..1 scale.
	MeanAbsChange, MaxAbsChange float64
	Steps                       int
	Duration                    time.Duration
}

// Editor edits images with one model and preprocessing. The model's
// training passes are used, so it must not be trained at the same time,
// and one Editor runs one edit at a time.
type Editor struct {
	Net *model.Model
	// Mean and Std are the model's input normalisation.
	Mean, Std [3]float32
}

// New returns an Editor for net with the normalisation of pre.
func New(net *model.Model, pre imageproc.Options) (*Editor, error) {
	if net == nil {
		return nil, errors.New("edit: CLIP-guided editing needs an OpenAI/open_clip CLIP model (not Chinese-CLIP)")
	}
	return &Editor{Net: net, Mean: pre.Mean, Std: pre.Std}, nil
}

// size returns the model input side.
func (e *Editor) size() int { return e.Net.Config.Vision.ImageSize }

// Edit optimises crop (S×S×3 RGB bytes, HWC: what imageproc.CropRGB
// returns for the model's preprocessing) toward the text features target.
func (e *Editor) Edit(ctx context.Context, crop []uint8, target []float32, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	S := e.size()
	if len(crop) != S*S*3 {
		return nil, fmt.Errorf("edit: %d bytes of pixels, the model takes %d×%d×3", len(crop), S, S)
	}
	if len(target) != e.Net.Config.EmbedDim {
		return nil, fmt.Errorf("edit: target has %d values, the model's embedding has %d", len(target), e.Net.Config.EmbedDim)
	}
	tn := normalized(target)
	if tn == nil {
		return nil, errors.New("edit: the target text features are zero")
	}
	start := time.Now()
	n := S * S
	x0 := make([]float64, 3*n) // CHW, 0..1
	for i := range n {
		for c := range 3 {
			x0[c*n+i] = float64(crop[3*i+c]) / 255
		}
	}
	st := newState(S, o.Levels)
	x := make([]float64, 3*n)
	res := &Result{Steps: o.Steps}
	snap := func(step int) {
		res.Frames = append(res.Frames, toRGBA(x, S))
		res.FrameSteps = append(res.FrameSteps, step)
	}
	copy(x, x0)
	var err error
	if res.Start, err = e.cosine(toBytes(x), tn); err != nil {
		return nil, err
	}
	// Class directions: the target first, then the negatives.
	dirs := [][]float64{tn}
	for i, n := range o.Negatives {
		if len(n) != len(target) {
			return nil, fmt.Errorf("edit: negative %d has %d values, the target %d", i, len(n), len(target))
		}
		if u := normalized(n); u != nil {
			dirs = append(dirs, u)
		}
	}
	cosines := make([]float64, len(dirs))
	probs := make([]float64, len(dirs))
	snap(0)
	frames := min(o.Frames, o.Steps+1)
	next := 1 // next frame index to take
	rng := rand.New(rand.NewPCG(o.Seed, 0x9e3779b97f4a7c15))
	V := o.Views
	pix := make([]float32, V*3*n)
	views := make([]view, V)
	dx := make([]float64, 3*n)
	dfeat := make([]float32, V*e.Net.Config.EmbedDim)
	for step := 1; step <= o.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		delta := st.delta(o.Strength)
		for i := range x {
			x[i] = min(max(x0[i]+delta[i], 0), 1)
		}
		for v := range V {
			if v == 0 {
				views[v] = view{side: float64(S)}
			} else {
				side := float64(S) * (0.75 + 0.25*rng.Float64())
				views[v] = view{
					y0:   rng.Float64() * (float64(S) - side),
					x0:   rng.Float64() * (float64(S) - side),
					side: side, flip: rng.IntN(2) == 1,
				}
			}
			views[v].sample(pix[v*3*n:(v+1)*3*n], x, S, e.Mean, e.Std)
		}
		feat, back, err := e.Net.EncodeImageTrain(pix, V)
		if err != nil {
			return nil, err
		}
		ed := e.Net.Config.EmbedDim
		var cos0 float64
		for v := range V {
			f := feat[v*ed : (v+1)*ed]
			var nf float64
			for _, a := range f {
				nf += float64(a) * float64(a)
			}
			nf = math.Sqrt(nf)
			if nf == 0 {
				clear(dfeat[v*ed : (v+1)*ed])
				continue
			}
			for j, u := range dirs {
				var d float64
				for i, a := range f {
					d += float64(a) * u[i]
				}
				cosines[j] = d / nf
			}
			if v == 0 {
				cos0 = cosines[0]
			}
			// d loss / d cos_j: −1 for the plain cosine; with negatives
			// Scale·(p_j − [j = 0]) for the cross-entropy.
			if len(dirs) == 1 {
				probs[0] = -1
			} else {
				mx := math.Inf(-1)
				for _, c := range cosines {
					mx = max(mx, o.Scale*c)
				}
				var z float64
				for j, c := range cosines {
					probs[j] = math.Exp(o.Scale*c - mx)
					z += probs[j]
				}
				for j := range probs {
					probs[j] = o.Scale * probs[j] / z
				}
				probs[0] -= o.Scale
			}
			// d cos(f, u) / d f = (u − cos·f̂)/|f|; averaged over views.
			df := dfeat[v*ed : (v+1)*ed]
			for i, a := range f {
				fh := float64(a) / nf
				var g float64
				for j, u := range dirs {
					if probs[j] != 0 {
						g += probs[j] * (u[i] - cosines[j]*fh)
					}
				}
				df[i] = float32(g / nf / float64(V))
			}
		}
		dpix := back(dfeat)
		clear(dx)
		for v := range V {
			views[v].backward(dx, dpix[v*3*n:(v+1)*3*n], S, e.Std)
		}
		// Penalty λ·mean((x-x0)²).
		k := 2 * o.Penalty / float64(len(x))
		for i := range dx {
			dx[i] += k * (x[i] - x0[i])
		}
		st.step(dx, x0, delta, o.Strength, o.LR)
		if o.Progress != nil {
			o.Progress(step, cos0)
		}
		if next < frames-1 && step*(frames-1) >= next*o.Steps {
			snap(step)
			next++
		}
	}
	delta := st.delta(o.Strength)
	for i := range x {
		x[i] = min(max(x0[i]+delta[i], 0), 1)
	}
	out := toBytes(x)
	if frames > 1 {
		snap(o.Steps)
	}
	res.Image = res.Frames[len(res.Frames)-1]
	if res.Final, err = e.cosine(out, tn); err != nil {
		return nil, err
	}
	for i := range n {
		for c := range 3 {
			d := math.Abs(float64(out[3*i+c])-float64(crop[3*i+c])) / 255
			res.MeanAbsChange += d
			res.MaxAbsChange = max(res.MaxAbsChange, d)
		}
	}
	res.MeanAbsChange /= float64(3 * n)
	res.Duration = time.Since(start)
	return res, nil
}

// cosine returns the cosine similarity of an S×S×3 byte image to tn
// (unit length), through the inference path.
func (e *Editor) cosine(rgb []uint8, tn []float64) (float64, error) {
	S := e.size()
	pre := imageproc.Options{Size: S, Mean: e.Mean, Std: e.Std}
	pix := make([]float32, 3*S*S)
	imageproc.Normalize(pix, rgb, pre)
	f := make([]float32, e.Net.Config.EmbedDim)
	e.Net.EncodeImage(f, pix, 1, nil)
	fn := normalized(f)
	if fn == nil {
		return 0, nil
	}
	var s float64
	for i := range fn {
		s += fn[i] * tn[i]
	}
	return s, nil
}

func normalized(v []float32) []float64 {
	var s float64
	for _, a := range v {
		s += float64(a) * float64(a)
	}
	if s == 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return nil
	}
	out := make([]float64, len(v))
	inv := 1 / math.Sqrt(s)
	for i, a := range v {
		out[i] = float64(a) * inv
	}
	return out
}

// toBytes rounds CHW 0..1 values to HWC bytes.
func toBytes(x []float64) []uint8 {
	n := len(x) / 3
	out := make([]uint8, 3*n)
	for i := range n {
		for c := range 3 {
			out[3*i+c] = uint8(math.Round(min(max(x[c*n+i], 0), 1) * 255))
		}
	}
	return out
}

func toRGBA(x []float64, S int) *image.RGBA {
	b := toBytes(x)
	img := image.NewRGBA(image.Rect(0, 0, S, S))
	for i := range S * S {
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = b[3*i], b[3*i+1], b[3*i+2], 255
	}
	return img
}

// SavePNG writes img to path as a PNG (through a temporary file, so path
// is either untouched or complete).
func SavePNG(path string, img image.Image) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	werr := png.Encode(tmp, img)
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("edit: writing %s: %w", path, werr)
	}
	return nil
}

// Strip lays frames side by side on a white background, gap pixels apart.
func Strip(frames []*image.RGBA, gap int) *image.RGBA {
	if len(frames) == 0 {
		return image.NewRGBA(image.Rect(0, 0, 0, 0))
	}
	w, h := 0, 0
	for _, f := range frames {
		w += f.Bounds().Dx()
		h = max(h, f.Bounds().Dy())
	}
	w += gap * (len(frames) - 1)
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range out.Pix {
		out.Pix[i] = 255
	}
	x := 0
	for _, f := range frames {
		b := f.Bounds()
		for y := range b.Dy() {
			for xx := range b.Dx() {
				out.Set(x+xx, y, f.At(b.Min.X+xx, b.Min.Y+y))
			}
		}
		x += b.Dx() + gap
	}
	return out
}
