package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/checkpoint"
)

func init() {
	register("hidden", "write per-token text hidden states of a layer (diffusion conditioning) to safetensors", runHidden)
	register("patches", "write every vision-transformer output token (dense patch features) to safetensors", runPatches)
}

func runHidden(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("hidden", stderr)
	var mf modelFlags
	mf.register(fs)
	var texts stringList
	fs.Var(&texts, "text", "text to encode (repeatable)")
	layer := fs.Int("layer", -1, "transformer block whose output to write: 0 = first, -1 = last, -2 = penultimate (SDXL)")
	finalLN := fs.Bool("final-ln", false, "apply the final LayerNorm to every token (Stable Diffusion 1.x: --layer -1 --final-ln)")
	out := fs.String("out", "", "output .safetensors file: hidden_states [n, context, width], pooled [n, embed], tokens [n, context] (I32)")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case len(texts) == 0:
		return usagef("no texts: give --text STRING (repeatable)")
	case *out == "":
		return usagef("no output file: pass --out FILE.safetensors")
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	h, err := m.EncodeTextHidden(ctx, texts, *layer, *finalLN)
	if err != nil {
		return err
	}
	for i, tr := range h.Truncated {
		if tr {
			fmt.Fprintf(stderr, "goclip hidden: warning: text %q is longer than %d tokens and was truncated\n", clipText(texts[i]), m.ContextLength())
		}
	}
	n := len(texts)
	tok := make([]byte, 0, 4*n*h.Context)
	for _, row := range h.Tokens {
		for _, id := range row {
			u := uint32(id)
			tok = append(tok, byte(u), byte(u>>8), byte(u>>16), byte(u>>24))
		}
	}
	ts := []*checkpoint.Tensor{
		checkpoint.FromFloat32("hidden_states", []int{n, h.Context, h.Width}, flatten(h.States)),
		checkpoint.FromFloat32("pooled", []int{n, m.EmbedDim()}, flatten(h.Pooled)),
		{Name: "tokens", DType: checkpoint.I32, Shape: []int{n, h.Context}, Data: tok},
	}
	meta := map[string]string{"model": m.Path(), "layer": strconv.Itoa(h.Layer), "final_layer_norm": strconv.FormatBool(h.FinalLN),
		"texts": strings.Join(texts, "\n"), "pooled": "projected text features (encode_text output, unnormalised)"}
	if err := checkpoint.WriteSafetensors(*out, ts, meta); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d texts: layer %d hidden states [%d, %d, %d] (final LayerNorm %v) written to %s\n", n, h.Layer, n, h.Context, h.Width, h.FinalLN, *out)
	return nil
}

func runPatches(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("patches", stderr)
	var mf modelFlags
	mf.register(fs)
	var images stringList
	fs.Var(&images, "image", "image file (repeatable)")
	layer := fs.Int("layer", -1, "transformer block whose output tokens to write: 0 = first, -1 = last")
	project := fs.Bool("project", false, "also write the tokens after ln_post and the visual projection (tokens_projected)")
	value := fs.Bool("value-path", false, "take the layer's attention value path only (MaskCLIP dense features)")
	out := fs.String("out", "", "output .safetensors file: tokens and tokens_ln_post [n, grid²+1, width] (class token first), features [n, embed]")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case len(images) == 0:
		return usagef("no images: give --image FILE (repeatable)")
	case *out == "":
		return usagef("no output file: pass --out FILE.safetensors")
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	p, err := m.EncodeImagePatchFiles(ctx, images, clip.PatchOptions{Layer: *layer, Project: *project, ValuePath: *value})
	if err != nil {
		return err
	}
	n := len(images)
	ts := []*checkpoint.Tensor{
		checkpoint.FromFloat32("tokens", []int{n, p.Tokens, p.Width}, flatten(p.Raw)),
		checkpoint.FromFloat32("tokens_ln_post", []int{n, p.Tokens, p.Width}, flatten(p.Normed)),
		checkpoint.FromFloat32("features", []int{n, p.EmbedDim}, flatten(p.Features)),
	}
	if p.Projected != nil {
		ts = append(ts, checkpoint.FromFloat32("tokens_projected", []int{n, p.Tokens, p.EmbedDim}, flatten(p.Projected)))
	}
	meta := map[string]string{"model": m.Path(), "layer": strconv.Itoa(p.Layer), "grid": strconv.Itoa(p.Grid),
		"value_path": strconv.FormatBool(p.ValuePath), "images": strings.Join(images, "\n")}
	if err := checkpoint.WriteSafetensors(*out, ts, meta); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d images: layer %d, %d tokens (%d×%d patches + class) of width %d written to %s\n", n, p.Layer, p.Tokens, p.Grid, p.Grid, p.Width, *out)
	return nil
}

func flatten(rows [][]float32) []float32 {
	n := 0
	for _, r := range rows {
		n += len(r)
	}
	out := make([]float32, 0, n)
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}
