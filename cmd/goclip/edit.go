package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goclip/goclip/internal/edit"
	"github.com/goclip/goclip/internal/imageproc"
	"github.com/schollz/progressbar/v3"
)

func init() {
	register("edit", "edit an image toward a text prompt by CLIP guidance (PNG out, plus a strip of frames)", runEdit)
}

func runEdit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("edit", stderr)
	var mf modelFlags
	mf.register(fs)
	in := fs.String("image", "", "input image")
	prompt := fs.String("prompt", "", "what the image should look like")
	out := fs.String("out", "", "output PNG (the model's input size: the centre crop the model sees)")
	frames := fs.String("frames", "", "PNG strip of intermediate frames (default: OUT with -frames before the extension; \"-\" for none)")
	steps := fs.Int("steps", 60, "optimisation steps")
	strength := fs.Float64("strength", 0.25, "largest change of a channel value, in [0, 1] (0: none, 1: anything)")
	views := fs.Int("views", 4, "augmented views per step (the image and random crops/flips)")
	penalty := fs.Float64("penalty", 2, "weight of the mean squared change")
	lr := fs.Float64("lr", 0.1, "Adam learning rate")
	negPath := fs.String("negatives", "", "text file of other concepts, one per line: optimise the zero-shot classification of the prompt against them")
	nframes := fs.Int("nframes", 6, "frames in the strip")
	seed := fs.Uint64("seed", 1, "seed of the random augmentations")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *in == "" || *prompt == "" || *out == "":
		return usagef("give --image FILE, --prompt TEXT and --out FILE.png")
	case math.IsNaN(*strength) || *strength < 0 || *strength > 1:
		return usagef("--strength %v is outside [0, 1]", *strength)
	case *steps < 1 || *steps > 100000:
		return usagef("--steps %d: want 1..100000", *steps)
	case *views < 1 || *views > 256:
		return usagef("--views %d: want 1..256", *views)
	case !(*penalty >= 0) || math.IsInf(*penalty, 0):
		return usagef("--penalty %v: want a finite value ≥ 0", *penalty)
	case !(*lr > 0) || math.IsInf(*lr, 0):
		return usagef("--lr %v: want a finite value > 0", *lr)
	case *nframes < 2:
		return usagef("--nframes %d: want at least 2", *nframes)
	}
	if *frames == "" {
		ext := filepath.Ext(*out)
		*frames = strings.TrimSuffix(*out, ext) + "-frames" + ext
	}
	var negTexts []string
	if *negPath != "" {
		data, err := os.ReadFile(*negPath)
		if err != nil {
			return err
		}
		if negTexts = readLines(string(data)); len(negTexts) == 0 {
			return fmt.Errorf("%s: no concepts (one per line)", *negPath)
		}
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	ed, err := edit.New(m.Network(), m.PreprocessOptions())
	if err != nil {
		return err
	}
	pre := m.PreprocessOptions()
	im, err := imageproc.LoadFile(*in, pre)
	if err != nil {
		return err
	}
	crop, err := imageproc.CropRGB(im, pre)
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	t, err := m.EncodeTexts(ctx, append([]string{*prompt}, negTexts...))
	if err != nil {
		return err
	}
	o := edit.Options{Steps: *steps, Strength: *strength, StrengthSet: true, Views: *views, Penalty: *penalty,
		LR: *lr, Frames: *nframes, Seed: *seed, Negatives: t[1:], Scale: float64(m.LogitScale())}
	if *penalty == 0 {
		o.Penalty = 1e-12 // the zero value means the default
	}
	var bar *progressbar.ProgressBar
	if !*quiet && isTerminal(stderr) {
		bar = progressbar.NewOptions(*steps, progressbar.OptionSetWriter(stderr), progressbar.OptionSetWidth(25),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetDescription("editing"), progressbar.OptionClearOnFinish())
		o.Progress = func(step int, cos float64) {
			bar.Describe(fmt.Sprintf("cosine %.4f", cos))
			bar.Set(step)
		}
	}
	res, err := ed.Edit(ctx, crop, t[0], o)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	if err := edit.SavePNG(*out, res.Image); err != nil {
		return err
	}
	if *frames != "-" {
		if err := edit.SavePNG(*frames, edit.Strip(res.Frames, 4)); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "cosine to %q: %.4f → %.4f; mean |Δ| %.4f, max |Δ| %.4f (0..1 scale); %d steps in %v; wrote %s",
		clipText(*prompt), res.Start, res.Final, res.MeanAbsChange, res.MaxAbsChange, res.Steps, res.Duration.Round(time.Millisecond), *out)
	if *frames != "-" {
		fmt.Fprintf(stdout, " and %s (steps %v)", *frames, res.FrameSteps)
	}
	fmt.Fprintln(stdout)
	return nil
}
