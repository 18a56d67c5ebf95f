package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/goclip/goclip/internal/evaluate"
)

func init() {
	register("eval", "evaluate a model: zeroshot, retrieval or linear-probe (CLIP_benchmark metrics)", runEval)
}

var evalSubs = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"zeroshot":     runEvalZeroShot,
	"retrieval":    runEvalRetrieval,
	"linear-probe": runEvalLinearProbe,
}

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, "Usage: goclip eval zeroshot|retrieval|linear-probe --model PATH [flags]\n\n"+
			"  zeroshot      --data DIR|CSV [--templates NAME] [--plot confusion.png] [--json]\n"+
			"  retrieval     --captions FILE [--images DIR] [--split test] [--json]\n"+
			"  linear-probe  --train DIR|CSV --test DIR|CSV [--lambda L] [--json]\n\n"+
			"Run \"goclip eval SUBCOMMAND -h\" for its flags.")
		if len(args) == 0 {
			return usagef("missing subcommand")
		}
		return flag.ErrHelp
	}
	sub, ok := evalSubs[args[0]]
	if !ok {
		return usagef("unknown eval subcommand %q (zeroshot, retrieval, linear-probe)", args[0])
	}
	return sub(ctx, args[1:], stdout, stderr)
}

// evalOut are the reporting flags every eval subcommand shares.
type evalOut struct {
	asJSON                         bool
	dataset, modelName, pretrained string
	language                       string
}

func (e *evalOut) register(fs *flag.FlagSet) {
	fs.BoolVar(&e.asJSON, "json", false, "print the result as CLIP_benchmark JSON {dataset, model, pretrained, task, metrics, language} (goclip details under \"goclip\")")
	fs.StringVar(&e.dataset, "dataset-name", "", "dataset name for the JSON (default: the folder or file name)")
	fs.StringVar(&e.modelName, "model-name", "", "model name for the JSON (default: --model)")
	fs.StringVar(&e.pretrained, "pretrained", "", "pretrained tag for the JSON (e.g. openai)")
	fs.StringVar(&e.language, "language", "en", "language for the JSON")
}

func (e *evalOut) result(task, dataset, model string, metrics map[string]float64, d *evaluate.Details) *evaluate.Result {
	if e.dataset != "" {
		dataset = e.dataset
	}
	if e.modelName != "" {
		model = e.modelName
	}
	return &evaluate.Result{Dataset: dataset, Model: model, Pretrained: e.pretrained, Task: task,
		Metrics: metrics, Language: e.language, Details: d}
}

func evalWriteJSON(w io.Writer, r *evaluate.Result) error {
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func evalPrintSkipped(w io.Writer, skipped []evaluate.Skipped) {
	for _, s := range skipped {
		fmt.Fprintf(w, "skipped: %s\n", s.Err)
	}
}

func runEvalZeroShot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval zeroshot", stderr)
	var mf modelFlags
	mf.register(fs)
	var z zsFlags
	z.register(fs, "imagenet")
	var out evalOut
	out.register(fs)
	data := fs.String("data", "", "dataset: a folder with one sub-folder per class (folder name = class, _ = space) or a CSV of path,label")
	plot := fs.String("plot", "", "write the confusion matrix as a PNG here")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *data == "" {
		return usagef("no dataset: give --data DIR|CSV")
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	templates, err := z.resolve(fs)
	if err != nil {
		return err
	}
	ds, err := evaluate.Load(*data)
	if err != nil {
		return err
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	clf, textTP, err := z.build(ctx, m, &mf, ds.Classes, templates, stderr)
	if err != nil {
		return err
	}
	bar := evaluate.NewProgress(stderr, len(ds.Samples), "encoding images", "img", !z.quiet)
	rep, err := evaluate.ZeroShot(ctx, ds, clf.Logits, m.EmbedImageFiles, bar.Func())
	bar.Finish()
	if err != nil {
		return err
	}
	if *plot != "" {
		if err := evaluate.SaveConfusionPNG(*plot, rep.Metrics.Confusion, 0); err != nil {
			return err
		}
	}
	mt := rep.Metrics
	if out.asJSON {
		d := &evaluate.Details{Images: mt.N, Skipped: rep.Skipped, PerClass: mt.PerClass, Encoding: &rep.Images,
			Templates: len(templates), FromCache: clf.FromCache, Confusion: *plot}
		if !clf.FromCache {
			d.Texts = &textTP
		}
		return evalWriteJSON(stdout, out.result("zeroshot_classification", ds.Name, mf.model,
			map[string]float64{"acc1": mt.Acc1, "acc5": mt.Acc5, "mean_per_class_recall": mt.MeanPerClassRecall}, d))
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "dataset\t%s (%d images scored, %d skipped, %d classes, %d templates)\n", ds.Name, mt.N, len(rep.Skipped), len(ds.Classes), len(templates))
	fmt.Fprintf(tw, "acc@1\t%.4f\n", mt.Acc1)
	fmt.Fprintf(tw, "acc@5\t%.4f\n", mt.Acc5)
	fmt.Fprintf(tw, "mean per-class recall\t%.4f\n\n", mt.MeanPerClassRecall)
	fmt.Fprintf(tw, "class\timages\tcorrect\trecall\n")
	for _, c := range mt.PerClass {
		r := "-"
		if c.Images > 0 {
			r = fmt.Sprintf("%.4f", c.Recall)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", c.Class, c.Images, c.Correct, r)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	evalPrintSkipped(stdout, rep.Skipped)
	fmt.Fprintf(stdout, "throughput: %d images in %.2fs (%.2f img/s); prompts %s\n", rep.Images.Items, rep.Images.Seconds, rep.Images.PerSec, zsTextSummary(clf, textTP))
	if *plot != "" {
		fmt.Fprintf(stdout, "confusion matrix: %s\n", *plot)
	}
	return nil
}

// evalParseKs parses "1,5,10".
func evalParseKs(s string) ([]int, error) {
	var ks []int
	for _, f := range strings.Split(s, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || k <= 0 {
			return nil, usagef("--k wants positive integers like 1,5,10, not %q", s)
		}
		ks = append(ks, k)
	}
	sort.Ints(ks)
	return ks, nil
}

func runEvalRetrieval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval retrieval", stderr)
	var mf modelFlags
	mf.register(fs)
	var out evalOut
	out.register(fs)
	captions := fs.String("captions", "", "captions: Karpathy JSON (dataset_coco.json, dataset_flickr30k.json), a JSON list of {image, caption:[...]}, or image<TAB>caption lines")
	images := fs.String("images", "", "folder the caption file's image paths are relative to (default: the caption file's folder)")
	split := fs.String("split", "test", `Karpathy split to use ("all" for every image)`)
	kList := fs.String("k", "1,5,10", "recall@k cut-offs")
	quiet := fs.Bool("quiet", false, "no progress bars")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *captions == "" {
		return usagef("no captions: give --captions FILE")
	}
	ks, err := evalParseKs(*kList)
	if err != nil {
		return err
	}
	c, err := evaluate.ReadCaptions(*captions, evaluate.CaptionOptions{ImageRoot: *images, Split: *split})
	if err != nil {
		return err
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	ib := evaluate.NewProgress(stderr, len(c.Images), "encoding images", "img", !*quiet)
	var tb *evaluate.Progress
	rep, err := evaluate.RunRetrieval(ctx, c, m.EmbedImageFiles, m.EncodeTexts, ks,
		func(d, n int) {
			ib.Set(d)
			if d == n {
				ib.Finish()
				tb = evaluate.NewProgress(stderr, len(c.Texts), "encoding captions", "text", !*quiet)
			}
		},
		func(d, n int) { tb.Set(d) })
	ib.Finish()
	tb.Finish()
	if err != nil {
		return err
	}
	name := strings.TrimSuffix(filepath.Base(*captions), filepath.Ext(*captions))
	if out.asJSON {
		return evalWriteJSON(stdout, out.result("zeroshot_retrieval", name, mf.model, rep.Metrics,
			&evaluate.Details{Images: rep.Images.Items, Captions: rep.Captions, Skipped: rep.Skipped, Encoding: &rep.Images, Texts: &rep.Texts}))
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "dataset\t%s (%d images, %d captions, %d images skipped)\n", name, rep.Images.Items, rep.Captions, len(rep.Skipped))
	fmt.Fprintf(tw, "k\timage→text\ttext→image\n")
	for _, k := range ks {
		fmt.Fprintf(tw, "R@%d\t%.4f\t%.4f\n", k, rep.Metrics[fmt.Sprintf("text_retrieval_recall@%d", k)], rep.Metrics[fmt.Sprintf("image_retrieval_recall@%d", k)])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	evalPrintSkipped(stdout, rep.Skipped)
	fmt.Fprintf(stdout, "throughput: %d images in %.2fs (%.2f img/s); %d captions in %.2fs (%.2f text/s)\n",
		rep.Images.Items, rep.Images.Seconds, rep.Images.PerSec, rep.Texts.Items, rep.Texts.Seconds, rep.Texts.PerSec)
	return nil
}

func runEvalLinearProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval linear-probe", stderr)
	var mf modelFlags
	mf.register(fs)
	var out evalOut
	out.register(fs)
	trainPath := fs.String("train", "", "training set: class folders or a path,label CSV")
	testPath := fs.String("test", "", "test set: class folders or a path,label CSV")
	lambda := fs.Float64("lambda", 0, "L2 regularisation strength (0: choose on a validation split)")
	valFrac := fs.Float64("val-fraction", 0.2, "share of each training class held out to choose --lambda")
	quiet := fs.Bool("quiet", false, "no progress bars")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *trainPath == "" || *testPath == "" {
		return usagef("give --train and --test")
	}
	if *lambda < 0 {
		return usagef("--lambda must be ≥ 0")
	}
	train, err := evaluate.Load(*trainPath)
	if err != nil {
		return err
	}
	test, err := evaluate.Load(*testPath)
	if err != nil {
		return err
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	ib := evaluate.NewProgress(stderr, len(train.Samples)+len(test.Samples), "encoding images", "img", !*quiet)
	var fb *evaluate.Progress
	o := evaluate.ProbeOptions{Lambda: *lambda, ValFraction: *valFrac, Progress: func(d, n int) {
		if fb == nil {
			fb = evaluate.NewProgress(stderr, n, "fitting", "fit", !*quiet)
		}
		fb.Set(d)
	}}
	rep, err := evaluate.RunLinearProbe(ctx, train, test, m.EmbedImageFiles, o, func(d, n int) {
		ib.Set(d)
		if d == n {
			ib.Finish()
		}
	})
	ib.Finish()
	fb.Finish()
	if err != nil {
		return err
	}
	mt := rep.Metrics
	if out.asJSON {
		return evalWriteJSON(stdout, out.result("linear_probe", test.Name, mf.model,
			map[string]float64{"lp_acc1": mt.Acc1, "lp_acc5": mt.Acc5, "lp_mean_per_class_recall": mt.MeanPerClassRecall},
			&evaluate.Details{Images: rep.Train + rep.Test, TestImages: rep.Test, Skipped: rep.Skipped, PerClass: mt.PerClass,
				Encoding: &rep.Images, Lambda: rep.Lambda, Sweep: rep.Sweep}))
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "train\t%s (%d images)\n", train.Name, rep.Train)
	fmt.Fprintf(tw, "test\t%s (%d images)\n", test.Name, rep.Test)
	fmt.Fprintf(tw, "skipped\t%d\n", len(rep.Skipped))
	if rep.Sweep != nil {
		fmt.Fprintf(tw, "lambda\t%.3g (chosen on a %.0f%% validation split, %d fits)\n", rep.Lambda, 100**valFrac, len(rep.Sweep))
	} else {
		fmt.Fprintf(tw, "lambda\t%.3g\n", rep.Lambda)
	}
	fmt.Fprintf(tw, "accuracy\t%.4f\n", mt.Acc1)
	fmt.Fprintf(tw, "acc@5\t%.4f\n", mt.Acc5)
	fmt.Fprintf(tw, "mean per-class recall\t%.4f\n", mt.MeanPerClassRecall)
	if err := tw.Flush(); err != nil {
		return err
	}
	evalPrintSkipped(stdout, rep.Skipped)
	fmt.Fprintf(stdout, "throughput: %d images in %.2fs (%.2f img/s)\n", rep.Images.Items, rep.Images.Seconds, rep.Images.PerSec)
	return nil
}
