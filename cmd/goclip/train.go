package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/model"
	"github.com/goclip/goclip/internal/tokenizer"
	"github.com/goclip/goclip/internal/train"
)

func init() {
	register("train", "train or fine-tune a CLIP or Chinese-CLIP model (open_clip recipe; CSV or WebDataset data)", runTrain)
}

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train", stderr)
	data := fs.String("train-data", "", "training data: a CSV file, or WebDataset .tar shards (globs, '::'-separated)")
	imgKey := fs.String("csv-img-key", "filepath", "CSV column with the image path (relative paths are relative to the CSV)")
	capKey := fs.String("csv-caption-key", "caption", "CSV column with the caption")
	sep := fs.String("csv-separator", ",", "CSV field separator")
	modelPath := fs.String("model", "", "fine-tune from this checkpoint (any format goclip loads, Chinese-CLIP included)")
	modelCfg := fs.String("model-config", "", "train from scratch: an open_clip model config JSON")
	tokPath := fs.String("tokenizer", os.Getenv(tokenizer.EnvTokenizer), "tokenizer (default: next to --model/--resume, then $GOCLIP_TOKENIZER)")
	resume := fs.String("resume", "", "resume from a checkpoint: a step directory or a run's checkpoints/ directory")
	out := fs.String("out", "", "output directory (checkpoints/, loss.csv, loss.png)")
	batch := fs.Int("batch-size", 64, "samples per forward/backward pass")
	accum := fs.Int("accum-freq", 1, "micro-batches per step (loss over all of them, open_clip --accum-freq)")
	epochs := fs.Float64("epochs", 0, "train this many passes over the data (sets --steps)")
	steps := fs.Int64("steps", 0, "optimiser steps")
	lr := fs.Float64("lr", 5e-4, "peak learning rate")
	warmup := fs.Int64("warmup", 100, "linear warm-up steps")
	wd := fs.Float64("wd", 0.2, "weight decay (not applied to gains, biases, class embedding, logit_scale)")
	beta1 := fs.Float64("beta1", 0.9, "AdamW β1")
	beta2 := fs.Float64("beta2", 0.98, "AdamW β2")
	eps := fs.Float64("eps", 1e-6, "AdamW ε")
	clipNorm := fs.Float64("grad-clip-norm", 0, "clip the global gradient norm (0: off)")
	lockImage := fs.Bool("lock-image", false, "freeze the image tower (LiT)")
	lockText := fs.Bool("lock-text", false, "freeze the text tower")
	aug := fs.Bool("aug", false, "random resized crop augmentation (scale 0.9–1)")
	seed := fs.Uint64("seed", 0, "seed for initialisation, data order and augmentation")
	replicas := fs.Int("replicas", runtime.GOMAXPROCS(0), "model copies working on shards of each batch (the result depends on this number)")
	saveEvery := fs.Int64("save-every", 100, "checkpoint every N steps (and at the end)")
	keep := fs.Int("keep", 3, "checkpoints to keep (0: all)")
	export := fs.String("export", "", "after training, write the final model here as a loadable directory")
	exportF16 := fs.Bool("export-f16", false, "store the exported weights as float16")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *data == "" || *out == "" {
		return usagef("--train-data and --out are required")
	}
	if n := btoi(*modelPath != "") + btoi(*modelCfg != "") + btoi(*resume != ""); n == 0 {
		return usagef("give --model (fine-tune), --model-config (from scratch) or --resume")
	} else if *modelPath != "" && *modelCfg != "" {
		return usagef("--model and --model-config are exclusive")
	}
	if utf8.RuneCountInString(*sep) != 1 {
		return usagef("--csv-separator must be one character")
	}
	sepRune, _ := utf8.DecodeRuneInString(*sep)

	// The model to train, its caption tokenizer and preprocessing.
	var (
		net      train.Network
		clipNet  *model.Model // net's model when it is CLIP
		captions train.TokenizeFunc
		tok      *tokenizer.Tokenizer
		tokSrc   string
		pre      imageproc.Options
		saved    *train.Saved
		err      error
	)
	resolveTok := func(dir string) error {
		p := *tokPath
		if p == "" {
			if p, err = tokenizer.Find(dir); err != nil {
				return err
			}
		} else if st, err := os.Stat(p); err == nil && st.IsDir() {
			if p, err = tokenizer.Find(p); err != nil {
				return err
			}
		}
		tokSrc = p
		tok, err = tokenizer.Load(p)
		return err
	}
	// useLoaded trains a model clip.Load read: Chinese-CLIP with its
	// WordPiece tokenizer, CLIP with its BPE tokenizer.
	useLoaded := func(cm *clip.Model, dir string) error {
		pre = cm.PreprocessOptions()
		if cn := cm.ChineseCLIP(); cn != nil {
			if err := cn.Trainable(); err != nil {
				return fmt.Errorf("%s: %w", cm.Path(), err)
			}
			net, captions = cn, cn.Captions() // checkpoints carry its vocab.txt
			return nil
		}
		m := cm.Network()
		if m == nil {
			return fmt.Errorf("%s is a %s model: goclip train does not train it yet (its gradients are available: goclip grad, clip.Model.ContrastiveGrad)", cm.Path(), cm.Kind())
		}
		net, clipNet, tok = train.CLIP(m), m, cm.Tokenizer()
		if err := resolveTok(dir); err != nil {
			tokSrc = "" // loaded by clip.Load but not copyable: checkpoints will need --tokenizer
		}
		return nil
	}
	// Only a --tokenizer given on the command line is passed to clip.Load:
	// $GOCLIP_TOKENIZER names a BPE tokenizer, which a Chinese-CLIP model
	// must not get (CLIP models fall back to it anyway).
	var loadOpts []clip.Option
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "tokenizer" && *tokPath != "" {
			loadOpts = append(loadOpts, clip.WithTokenizer(*tokPath))
		}
	})
	switch {
	case *modelPath != "":
		cm, err := clip.Load(*modelPath, loadOpts...)
		if err != nil {
			return err
		}
		dir := *modelPath
		if st, err := os.Stat(dir); err == nil && !st.IsDir() {
			dir = filepath.Dir(dir)
		}
		if err := useLoaded(cm, dir); err != nil {
			return err
		}
	case *modelCfg != "":
		cfg, pcfg, err := model.ReadOpenCLIPConfig(*modelCfg)
		if err != nil {
			return err
		}
		m, err := model.Random(cfg, *seed)
		if err != nil {
			return err
		}
		train.InitWeights(m, *seed)
		net, clipNet = train.CLIP(m), m
		if err := resolveTok(""); err != nil {
			return err
		}
		pre = imageproc.DefaultOptions(cfg.Vision.ImageSize)
		if pcfg != nil && pcfg.Interpolation != "" {
			pre.Interpolation = pcfg.Interpolation
		}
	}
	if *resume != "" {
		if saved, err = train.LoadCheckpoint(*resume); err != nil {
			return err
		}
		switch {
		case net != nil:
			if err := saved.Check(net); err != nil {
				return err
			}
		case saved.Kind == train.KindChineseCLIP:
			// The step directory is a Hugging Face ChineseCLIPModel
			// directory with its vocabulary.
			cm, err := clip.Load(saved.Dir, loadOpts...)
			if err != nil {
				return fmt.Errorf("resume: %w", err)
			}
			if err := useLoaded(cm, saved.Dir); err != nil {
				return err
			}
		default:
			m, err := model.New(saved.Config, saved.Weights)
			if err != nil {
				return fmt.Errorf("resume: %w", err)
			}
			net, clipNet = train.CLIP(m), m
			if err := resolveTok(saved.Dir); err != nil {
				return err
			}
			pre = imageproc.DefaultOptions(saved.Config.Vision.ImageSize)
		}
		if saved.Kind == train.KindCLIP {
			if _, p, err := model.ReadOpenCLIPConfig(filepath.Join(saved.Dir, train.ConfigFile)); err == nil && p != nil && len(p.Mean) == 3 && len(p.Std) == 3 {
				for i := range 3 {
					pre.Mean[i], pre.Std[i] = float32(p.Mean[i]), float32(p.Std[i])
				}
			}
		}
	}
	if clipNet != nil {
		if tok.VocabSize() > clipNet.Config.Text.VocabSize {
			return fmt.Errorf("the tokenizer has %d tokens but the model's vocabulary holds %d", tok.VocabSize(), clipNet.Config.Text.VocabSize)
		}
		captions = train.BPECaptions(tok, clipNet.Config.Text.ContextLength)
	}
	ds, desc, err := train.OpenData(*data, train.CSVOptions{ImageKey: *imgKey, CaptionKey: *capKey, Separator: sepRune})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "data: %s\n", desc)
	perStep := *batch * max(*accum, 1)
	if *epochs > 0 {
		*steps = int64(*epochs * float64(ds.Len()) / float64(perStep))
	}
	if *steps <= 0 {
		return usagef("give --steps or --epochs")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if clipNet != nil {
		c := clipNet.Config
		fmt.Fprintf(stderr, "model: %s, embed %d, text width %d × %d layers, context %d, vocab %d; %d steps of %d samples, %d replicas\n",
			c.Arch(), c.EmbedDim, c.Text.Width, c.Text.Layers, c.Text.ContextLength, c.Text.VocabSize, *steps, perStep, *replicas)
	} else {
		fmt.Fprintf(stderr, "model: %s, context %d; %d steps of %d samples, %d replicas\n",
			net.Arch(), net.ContextLength(), *steps, perStep, *replicas)
	}

	var bar *progressbar.ProgressBar
	if !*quiet && isTerminal(stderr) {
		bar = progressbar.NewOptions64(*steps, progressbar.OptionSetWriter(stderr), progressbar.OptionSetWidth(25),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond))
		if saved != nil {
			bar.Set64(saved.State.Step)
		}
	}
	var lastLine time.Time
	rc := train.RunConfig{
		Options: train.Options{BatchSize: *batch, AccumFreq: *accum, Steps: *steps, LR: *lr, Warmup: *warmup,
			AdamW:    train.AdamWConfig{Beta1: *beta1, Beta2: *beta2, Eps: *eps, WeightDecay: *wd},
			GradClip: *clipNorm, LockImage: *lockImage, LockText: *lockText},
		Data: ds, Net: net, Captions: captions, TokPath: tokSrc, Pre: pre, Augment: *aug, Seed: *seed, Resume: saved,
		Replicas: *replicas, OutDir: *out, SaveEvery: *saveEvery, Keep: *keep,
		Logf: func(f string, a ...any) {
			if bar != nil {
				bar.Clear()
			}
			fmt.Fprintf(stderr, f+"\n", a...)
		},
		Progress: func(l train.StepLog, sps float64) {
			if bar != nil {
				bar.Describe(fmt.Sprintf("loss %.4f lr %.2e %.1f samples/s", l.Loss, l.LR, sps))
				bar.Set64(l.Step + 1)
			} else if !*quiet && (time.Since(lastLine) > 10*time.Second || l.Step+1 == *steps) {
				lastLine = time.Now()
				fmt.Fprintf(stderr, "step %d/%d loss %.4f lr %.2e scale %.2f %.1f samples/s\n", l.Step+1, *steps, l.Loss, l.LR, l.LogitScale, sps)
			}
		},
	}
	res, err := train.Run(ctx, rc)
	if bar != nil {
		bar.Finish()
		fmt.Fprintln(stderr)
	}
	if res != nil && len(res.Log) > 0 {
		if perr := train.PlotLoss(filepath.Join(*out, "loss.png"), res.Log); perr != nil && err == nil {
			err = perr
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "trained %d steps in %s: %.1f samples/s; %d unreadable images skipped; %d captions truncated to %d tokens; peak RSS %.0f MiB\n",
		len(res.Log), res.Elapsed.Round(time.Second), res.SamplesPerSec, res.Skipped, res.Truncated, net.ContextLength(), float64(train.PeakRSS())/(1<<20))
	if len(res.Log) > 0 {
		fmt.Fprintf(stdout, "final loss %.4f; checkpoint %s; loss curve %s\n", res.Log[len(res.Log)-1].Loss, res.Checkpoint, filepath.Join(*out, "loss.png"))
	}
	// Forward-only throughput on one batch, for the training/inference ratio.
	l := &train.Loader{Data: ds, Captions: captions, Pre: pre, Seed: *seed}
	if b, _, err := l.Next(train.Cursor{}, *batch); err == nil {
		fwd := train.ForwardThroughput(net, b, 3)
		fmt.Fprintf(stdout, "forward-only: %.1f samples/s; training/forward throughput ratio %.3f\n", fwd, res.SamplesPerSec/fwd)
	}
	if *export != "" {
		if err := os.MkdirAll(*export, 0o755); err != nil {
			return err
		}
		if err := train.ExportNetwork(*export, net, pre, tokSrc, *exportF16); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "exported the model to %s\n", *export)
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
