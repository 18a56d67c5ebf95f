package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

func init() {
	register("caption", "pick the best captions for images from a candidate list", runCaption)
}

func runCaption(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("caption", stderr)
	var mf modelFlags
	mf.register(fs)
	candPath := fs.String("candidates", "", "text file of candidate captions, one per line")
	k := fs.Int("k", 1, "captions to print per image")
	asJSON := fs.Bool("json", false, `write one JSON object per image: {"image","captions":[{"text","cosine","clipscore"}]}`)
	if err := parse(fs, args); err != nil {
		return err
	}
	images := fs.Args()
	switch {
	case *candPath == "":
		return usagef("no candidates: pass --candidates FILE (one caption per line)")
	case len(images) == 0:
		return usagef("no images: give the image files after the flags")
	case *k < 1:
		return usagef("--k %d: want at least 1", *k)
	}
	data, err := os.ReadFile(*candPath)
	if err != nil {
		return err
	}
	cands := readLines(string(data))
	if len(cands) == 0 {
		return fmt.Errorf("%s: no candidate captions (one per line)", *candPath)
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	ranked, err := m.CaptionImageFiles(ctx, images, cands, *k)
	if err != nil {
		return err
	}
	type capRec struct {
		Text      string  `json:"text"`
		Cosine    float32 `json:"cosine"`
		CLIPScore float32 `json:"clipscore"`
	}
	enc := json.NewEncoder(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for i, rs := range ranked {
		if *asJSON {
			recs := make([]capRec, len(rs))
			for j, r := range rs {
				recs[j] = capRec{cands[r.Index], r.Cosine, r.CLIPScore}
			}
			if err := enc.Encode(struct {
				Image    string   `json:"image"`
				Captions []capRec `json:"captions"`
			}{images[i], recs}); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(tw, "%s\n", images[i])
		for _, r := range rs {
			fmt.Fprintf(tw, "  %.4f\t%s\n", r.Cosine, cands[r.Index])
		}
	}
	if *asJSON {
		return nil
	}
	return tw.Flush()
}

// readLines returns the non-empty lines of s, trimmed.
func readLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
