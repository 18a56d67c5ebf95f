package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/builtin"
	"github.com/goclip/goclip/internal/hub"
	"github.com/goclip/goclip/internal/kernels"
)

func init() {
	register("embed", "embed images and texts; JSON Lines on stdout", runEmbed)
	register("tokenize", "print the 77 token ids of each text as a JSON array", runTokenize)
	register("similarity", "print logits and softmax probabilities of images against texts", runSimilarity)
}

// modelFlags adds the flags every model-using command shares.
type modelFlags struct {
	stderr           io.Writer // where the built-in-model notice goes
	model, tokenizer string
	batch            int
	hf, exif         bool
	precision        string
}

func (mf *modelFlags) register(fs *flag.FlagSet) {
	mf.stderr = fs.Output()
	fs.StringVar(&mf.model, "model", os.Getenv("GOCLIP_MODEL"), "model file, directory or pulled name (default $GOCLIP_MODEL, else a cached ViT-B-32, else the built-in model)")
	fs.StringVar(&mf.tokenizer, "tokenizer", os.Getenv("GOCLIP_TOKENIZER"), "BPE vocabulary (default: next to the model, then $GOCLIP_TOKENIZER)")
	fs.IntVar(&mf.batch, "batch", 32, "inputs per forward pass")
	fs.BoolVar(&mf.hf, "hf-preprocess", false, "use the Hugging Face CLIPImageProcessor order instead of openai/CLIP's")
	fs.BoolVar(&mf.exif, "exif", false, "apply EXIF orientation before preprocessing (the reference does not)")
	fs.StringVar(&mf.precision, "precision", "fp32", "weights of the linear layers: fp32 (exact), bf16 (half the memory, faster with AVX512_BF16, features within cosine ~0.9999) or int8 (a quarter of the memory, faster with AVX2, features within cosine ~0.999)")
}

func (mf *modelFlags) load() (*clip.Model, error) {
	path, err := resolveModel(mf.model, mf.stderr)
	if err != nil {
		return nil, err
	}
	if mf.precision == "int8" && !kernels.Int8Accelerated() && mf.stderr != nil {
		fmt.Fprintln(mf.stderr, "goclip: warning: --precision int8 runs in portable Go on this CPU (no AVX2): slower than fp32, only the memory is saved")
	}
	opts := []clip.Option{clip.WithBatchSize(mf.batch), clip.WithHFPreprocessing(mf.hf), clip.WithEXIFOrientation(mf.exif), clip.WithPrecision(mf.precision)}
	if mf.tokenizer != "" {
		opts = append(opts, clip.WithTokenizer(mf.tokenizer))
	}
	return clip.Load(path, opts...)
}

// resolveModel turns --model into a path: a file or directory, or a pulled
// name. With no --model and no $GOCLIP_MODEL it takes the cached ViT-B-32
// when there is one, else goclip's built-in model, saying so on stderr.
func resolveModel(name string, stderr io.Writer) (string, error) {
	c := hub.NewClient()
	if name != "" {
		return c.Resolve(name)
	}
	if p, err := c.Resolve("ViT-B-32"); err == nil {
		return p, nil
	}
	p, err := builtin.Dir("")
	if err != nil {
		return "", err
	}
	if stderr != nil {
		fmt.Fprintln(stderr, builtin.Notice)
	}
	return p, nil
}

func runEmbed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("embed", stderr)
	var mf modelFlags
	mf.register(fs)
	var inputs []input
	fs.Var(inputList{"image", &inputs}, "image", "image file to embed (repeatable)")
	fs.Var(inputList{"text", &inputs}, "text", "text to embed (repeatable)")
	raw := fs.Bool("raw", false, "write the projection output as the reference returns it, not L2-normalized")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(inputs) == 0 {
		return usagef("nothing to embed: give --image FILE or --text STRING")
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	var images, texts []string
	for _, in := range inputs {
		if in.kind == "image" {
			images = append(images, in.value)
		} else {
			texts = append(texts, in.value)
		}
	}
	imgEmb, err := m.EncodeImageFiles(ctx, images)
	if err != nil {
		return err
	}
	txtRes, err := m.EmbedTexts(ctx, texts)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	ii, ti := 0, 0
	for _, in := range inputs {
		var v []float32
		if in.kind == "image" {
			v = imgEmb[ii]
			ii++
		} else {
			r := txtRes[ti]
			ti++
			v = r.Embedding
			if r.Truncated {
				fmt.Fprintf(stderr, "goclip embed: warning: text %q is longer than %d tokens and was truncated\n", clipText(in.value), m.ContextLength())
			}
		}
		if !*raw {
			v = clip.Normalize(v)
		}
		if err := enc.Encode(struct {
			Type      string    `json:"type"`
			Input     string    `json:"input"`
			Embedding []float32 `json:"embedding"`
		}{in.kind, in.value, v}); err != nil {
			return err
		}
	}
	return nil
}

func clipText(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}

func runTokenize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tokenize", stderr)
	var mf modelFlags
	mf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("give one or more texts to tokenize")
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for _, t := range fs.Args() {
		ids, truncated := m.Tokenize(t)
		if truncated {
			fmt.Fprintf(stderr, "goclip tokenize: warning: text %q is longer than %d tokens and was truncated\n", clipText(t), m.ContextLength())
		}
		if err := enc.Encode(ids); err != nil {
			return err
		}
	}
	return nil
}

func runSimilarity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("similarity", stderr)
	var mf modelFlags
	mf.register(fs)
	var images, texts stringList
	fs.Var(&images, "image", "image file (repeatable)")
	fs.Var(&texts, "text", "text (repeatable)")
	asJSON := fs.Bool("json", false, "write one JSON object per image")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(images) == 0 || len(texts) == 0 {
		return usagef("give at least one --image and one --text")
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	ie, err := m.EncodeImageFiles(ctx, images)
	if err != nil {
		return err
	}
	te, err := m.EmbedTexts(ctx, texts)
	if err != nil {
		return err
	}
	tv := make([][]float32, len(te))
	for i, r := range te {
		tv[i] = r.Embedding
		if r.Truncated {
			fmt.Fprintf(stderr, "goclip similarity: warning: text %q is longer than %d tokens and was truncated\n", clipText(texts[i]), m.ContextLength())
		}
	}
	logits := m.Logits(ie, tv)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for i, row := range logits {
			if err := enc.Encode(struct {
				Image  string    `json:"image"`
				Texts  []string  `json:"texts"`
				Logits []float32 `json:"logits"`
				Probs  []float32 `json:"probs"`
			}{images[i], texts, row, clip.Softmax(row)}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for i, row := range logits {
		fmt.Fprintf(tw, "%s\n", images[i])
		probs := clip.Softmax(row)
		for j := range row {
			fmt.Fprintf(tw, "  %s\tlogit %.4f\tprob %.4f\n", texts[j], row[j], probs[j])
		}
	}
	return tw.Flush()
}
