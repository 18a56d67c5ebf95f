package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

func init() {
	register("rerank", "order images by similarity to a prompt (best first)", runRerank)
}

func runRerank(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rerank", stderr)
	var mf modelFlags
	mf.register(fs)
	prompt := fs.String("text", "", "the prompt the images were generated from")
	top := fs.Int("top", 0, "print only the best N images (0: all)")
	asJSON := fs.Bool("json", false, `write one JSON object per image, best first: {"rank","image","cosine","clipscore"}`)
	if err := parse(fs, args); err != nil {
		return err
	}
	images := fs.Args()
	switch {
	case *prompt == "":
		return usagef("no prompt: pass --text PROMPT")
	case len(images) == 0:
		return usagef("no images: give the image files after the flags")
	case *top < 0:
		return usagef("--top %d: want 0 (all) or more", *top)
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	ranked, err := m.RerankImageFiles(ctx, *prompt, images)
	if err != nil {
		return err
	}
	if *top > 0 && *top < len(ranked) {
		ranked = ranked[:*top]
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for k, r := range ranked {
			if err := enc.Encode(struct {
				Rank      int     `json:"rank"`
				Image     string  `json:"image"`
				Cosine    float32 `json:"cosine"`
				CLIPScore float32 `json:"clipscore"`
			}{k + 1, images[r.Index], r.Cosine, r.CLIPScore}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "rank\tcosine\tCLIPScore\timage")
	for k, r := range ranked {
		fmt.Fprintf(tw, "%d\t%.4f\t%.4f\t%s\n", k+1, r.Cosine, r.CLIPScore, images[r.Index])
	}
	return tw.Flush()
}
