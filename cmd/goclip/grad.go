package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/imageproc"
)

func init() {
	register("grad", "write the contrastive loss gradients of image/text pairs to a safetensors file", runGrad)
}

func runGrad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("grad", stderr)
	var mf modelFlags
	mf.register(fs)
	var images, texts stringList
	fs.Var(&images, "image", "image file of pair i (repeatable, in order)")
	fs.Var(&texts, "text", "text of pair i (repeatable, in order)")
	out := fs.String("out", "", "output safetensors file (loss, grad/<parameter>, grad/pixels)")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case len(images) == 0:
		return usagef("no pairs: give --image FILE and --text STRING once per pair")
	case len(images) != len(texts):
		return usagef("%d images but %d texts: the loss pairs image i with text i", len(images), len(texts))
	case *out == "":
		return usagef("no output file: pass --out FILE.safetensors")
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	pixels, err := imageproc.PreprocessFiles(images, m.PreprocessOptions())
	if err != nil {
		return err
	}
	tokens := make([][]int32, len(texts))
	for i, t := range texts {
		var truncated bool
		tokens[i], truncated = m.Tokenize(t)
		if truncated {
			fmt.Fprintf(stderr, "warning: text %d truncated to %d tokens\n", i, m.ContextLength())
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	loss, dpix, err := m.ContrastiveGrad(pixels, tokens)
	if err != nil {
		return err
	}
	s := m.ImageSize()
	ts := []*checkpoint.Tensor{
		checkpoint.FromFloat32("loss", []int{}, []float32{loss}),
		checkpoint.FromFloat32("grad/pixels", []int{len(images), 3, s, s}, dpix),
	}
	for _, p := range m.Params() {
		ts = append(ts, checkpoint.FromFloat32("grad/"+p.Name, p.Shape, p.Grad))
	}
	meta := map[string]string{
		"model": m.Path(), "loss": "open_clip ClipLoss over pairs (image i, text i)",
		"images": strings.Join(images, "\n"), "pairs": strconv.Itoa(len(images)),
	}
	if err := checkpoint.WriteSafetensors(*out, ts, meta); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "loss %.9g over %d pairs; %d gradients written to %s\n", loss, len(images), len(ts)-1, *out)
	return nil
}
