package main

import (
	"context"
	"fmt"
	"io"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/edit"
	"github.com/goclip/goclip/internal/heatmap"
	"github.com/goclip/goclip/internal/imageproc"
)

func init() {
	register("heatmap", "overlay the per-patch similarity of an image to a text on the image (PNG)", runHeatmap)
}

func runHeatmap(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("heatmap", stderr)
	var mf modelFlags
	mf.register(fs)
	img := fs.String("image", "", "image file")
	text := fs.String("text", "", "text to locate")
	out := fs.String("out", "", "output PNG")
	method := fs.String("method", "value", `patch features: "value" (last block's attention value path, MaskCLIP: sharper maps) or "tokens" (final output tokens)`)
	size := fs.Int("size", 448, "side of the output image in pixels")
	alpha := fs.Float64("alpha", 0.55, "opacity of the colour map over the image, in [0, 1]")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *img == "" || *text == "" || *out == "":
		return usagef("give --image FILE, --text STRING and --out FILE.png")
	case *method != "value" && *method != "tokens":
		return usagef("--method %q: want value or tokens", *method)
	case *size < 16 || *size > 8192:
		return usagef("--size %d: want 16..8192", *size)
	case !(*alpha >= 0 && *alpha <= 1):
		return usagef("--alpha %v is outside [0, 1]", *alpha)
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	pre := m.PreprocessOptions()
	im, err := imageproc.LoadFile(*img, pre)
	if err != nil {
		return err
	}
	crop, err := imageproc.CropRGB(im, pre)
	if err != nil {
		return fmt.Errorf("%s: %w", *img, err)
	}
	pix := make([]float32, len(crop))
	imageproc.Normalize(pix, crop, pre)
	p, err := m.EncodeImagePatches(ctx, pix, 1, clip.PatchOptions{Layer: clip.LastLayer, Project: true, ValuePath: *method == "value"})
	if err != nil {
		return err
	}
	t, err := m.EncodeTexts(ctx, []string{*text})
	if err != nil {
		return err
	}
	sim, err := heatmap.PatchSimilarity(p.Projected[0], p.Grid, p.EmbedDim, t[0])
	if err != nil {
		return err
	}
	pic, err := heatmap.Overlay(crop, m.ImageSize(), sim, p.Grid, *size, *alpha)
	if err != nil {
		return err
	}
	if err := edit.SavePNG(*out, pic); err != nil {
		return err
	}
	lo, hi, at := sim[0], sim[0], 0
	for i, v := range sim {
		lo = min(lo, v)
		if v > hi {
			hi, at = v, i
		}
	}
	fmt.Fprintf(stdout, "%s: %d×%d patch similarities to %q from %.4f to %.4f (peak at row %d, column %d); image cosine %.4f; written to %s\n",
		*img, p.Grid, p.Grid, clipText(*text), lo, hi, at/p.Grid, at%p.Grid, clip.Similarity(p.Features[0], t[0]), *out)
	return nil
}
