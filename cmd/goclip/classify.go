package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/evaluate"
	"github.com/goclip/goclip/internal/zeroshot"
)

func init() {
	register("classify", "zero-shot classify images into labels given by name", runClassify)
}

// zsFlags are the prompt and cache flags shared by classify and eval.
type zsFlags struct {
	templates, template string
	noCache, quiet      bool
	cacheDir            string
}

func (z *zsFlags) register(fs *flag.FlagSet, defTemplates string) {
	fs.StringVar(&z.templates, "templates", defTemplates, "prompt template set: a built-in name ("+strings.Join(zeroshot.TemplateNames(), ", ")+") or a file with one template per line")
	fs.StringVar(&z.template, "template", "", `a single prompt template, e.g. "a photo of a {}." ("{}" = the label itself)`)
	fs.BoolVar(&z.noCache, "no-cache", false, "do not read or write the class-weight cache")
	fs.StringVar(&z.cacheDir, "cache-dir", "", "class-weight cache (default $GOCLIP_CACHE/classifiers or the user cache dir)")
	fs.BoolVar(&z.quiet, "quiet", false, "no progress bar or summary on stderr")
}

// resolve returns the templates the flags select.
func (z *zsFlags) resolve(fs *flag.FlagSet) ([]string, error) {
	if z.template != "" {
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "templates" })
		if set {
			return nil, usagef("give --template or --templates, not both")
		}
		if err := zeroshot.CheckTemplate(z.template); err != nil {
			return nil, usageError{err}
		}
		return []string{z.template}, nil
	}
	t, err := zeroshot.LoadTemplates(z.templates)
	if err != nil {
		return nil, usageError{err}
	}
	return t, nil
}

// build makes the zero-shot classifier for labels with m, through the cache.
func (z *zsFlags) build(ctx context.Context, m *clip.Model, mf *modelFlags, labels, templates []string, stderr io.Writer) (*zeroshot.Classifier, evaluate.Throughput, error) {
	o := zeroshot.Options{Scale: m.LogitScale()}
	if !z.noCache {
		dir := z.cacheDir
		if dir == "" {
			dir, _ = zeroshot.DefaultCacheDir()
		}
		// The class weights depend on the text encoder's weights as
		// loaded: an int8 or bf16 model has its own entries.
		key, err := zeroshot.ModelKey(m.Path(), "tokenizer="+mf.tokenizer, "precision="+m.Precision())
		if err == nil && dir != "" {
			o.CacheDir, o.ModelKey = dir, key
		}
	}
	n := len(labels) * len(templates)
	bar := evaluate.NewProgress(stderr, n, "encoding prompts", "prompt", !z.quiet)
	o.Progress = bar.Func()
	start := time.Now()
	c, err := zeroshot.Build(ctx, m, labels, templates, o)
	bar.Finish()
	d := time.Since(start)
	tp := evaluate.Throughput{Items: n, Seconds: d.Seconds()}
	if c != nil && !c.FromCache && d > 0 {
		tp.PerSec = float64(n) / d.Seconds()
	}
	return c, tp, err
}

func runClassify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("classify", stderr)
	var mf modelFlags
	mf.register(fs)
	var z zsFlags
	z.register(fs, "simple")
	labelList := fs.String("labels", "", `comma-separated labels, e.g. "cat,dog,red car"`)
	labelFile := fs.String("labels-file", "", "file with one label per line")
	top := fs.Int("top", 5, "labels to show per image")
	asJSON := fs.Bool("json", false, "one JSON object per image: {\"image\",\"labels\":[{\"label\",\"prob\"}]}")
	multi := fs.Bool("multi-label", false, "score labels independently: sigmoid(scaled similarity + bias) ≥ --threshold")
	threshold := fs.Float64("threshold", 0.5, "multi-label: keep labels with probability ≥ this")
	biasFlag := fs.String("bias", "mean", `multi-label: bias added to the scaled similarity: a number, or "mean" = minus the image's mean logit over the labels (CLIP has no learned bias)`)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: goclip classify --model PATH (--labels L1,L2,... | --labels-file F) [flags] IMAGE...")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("no images: give one or more IMAGE paths")
	}
	if *top <= 0 {
		return usagef("--top must be positive, not %d", *top)
	}
	var bias float32
	meanBias := *biasFlag == "mean"
	if !meanBias {
		b, err := strconv.ParseFloat(*biasFlag, 32)
		if err != nil {
			return usagef("--bias must be a number or \"mean\", not %q", *biasFlag)
		}
		bias = float32(b)
	}
	labels, warnings, err := zsLabels(*labelList, *labelFile)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "goclip classify: warning: %s\n", w)
	}
	templates, err := z.resolve(fs)
	if err != nil {
		return err
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	clf, textTP, err := z.build(ctx, m, &mf, labels, templates, stderr)
	if err != nil {
		return err
	}
	images := fs.Args()
	bar := evaluate.NewProgress(stderr, len(images), "encoding images", "img", !z.quiet)
	start := time.Now()
	emb, skipped, err := evaluate.EmbedFiles(ctx, m.EmbedImageFiles, images, 0, bar.Func())
	bar.Finish()
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	errOf := map[string]string{}
	for _, s := range skipped {
		errOf[s.Path] = s.Err
	}
	type labelProb struct {
		Label string  `json:"label"`
		Prob  float32 `json:"prob"`
	}
	enc := json.NewEncoder(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	failed := 0
	for i, path := range images {
		if emb[i] == nil {
			failed++
			msg := errOf[path]
			fmt.Fprintf(stderr, "goclip classify: %s\n", msg)
			if *asJSON {
				if err := enc.Encode(struct {
					Image string `json:"image"`
					Error string `json:"error"`
				}{path, msg}); err != nil {
					return err
				}
			}
			continue
		}
		var preds []zeroshot.Prediction
		if *multi {
			b := bias
			if meanBias {
				b = clf.MeanBias(emb[i])
			}
			preds = clf.MultiLabel(emb[i], b, float32(*threshold))
		} else {
			preds = clf.TopK(emb[i], *top)
		}
		if *asJSON {
			out := make([]labelProb, len(preds))
			for k, p := range preds {
				out[k] = labelProb{p.Label, p.Prob}
			}
			if err := enc.Encode(struct {
				Image  string      `json:"image"`
				Labels []labelProb `json:"labels"`
			}{path, out}); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(tw, "%s\n", path)
		if len(preds) == 0 {
			fmt.Fprintf(tw, "  (no label ≥ %g)\n", *threshold)
		}
		for k, p := range preds {
			fmt.Fprintf(tw, "  %d\t%s\t%.4f\n", k+1, p.Label, p.Prob)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !z.quiet {
		done := len(images) - failed
		fmt.Fprintf(stderr, "goclip classify: %d image(s) in %.2fs (%.2f img/s); %d label(s) × %d template(s) %s\n",
			done, elapsed.Seconds(), float64(done)/max(elapsed.Seconds(), 1e-9), len(labels), len(templates), zsTextSummary(clf, textTP))
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d image(s) could not be read", failed, len(images))
	}
	return nil
}

func zsTextSummary(c *zeroshot.Classifier, tp evaluate.Throughput) string {
	if c.FromCache {
		return "from the classifier cache"
	}
	return fmt.Sprintf("encoded in %.2fs (%.2f prompts/s)", tp.Seconds, tp.PerSec)
}

// zsLabels returns the labels of --labels or --labels-file.
func zsLabels(list, file string) ([]string, []string, error) {
	switch {
	case list != "" && file != "":
		return nil, nil, usagef("give --labels or --labels-file, not both")
	case list != "":
		l, w := zeroshot.SplitLabels(list)
		if len(l) == 0 {
			return nil, nil, usagef("--labels %q has no labels", list)
		}
		return l, w, nil
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		return zeroshot.ReadLabels(f, file)
	}
	return nil, nil, usagef("no labels: give --labels L1,L2,... or --labels-file FILE")
}
