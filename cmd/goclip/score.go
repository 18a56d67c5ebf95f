package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

func init() {
	register("score", "CLIPScore (and RefCLIPScore with --refs) of image/text pairs", runScore)
}

func runScore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("score", stderr)
	var mf modelFlags
	mf.register(fs)
	var images, texts stringList
	fs.Var(&images, "image", "image file of pair i (repeatable, in order)")
	fs.Var(&texts, "text", "text (candidate caption) of pair i (repeatable, in order)")
	refsPath := fs.String("refs", "", "reference captions for RefCLIPScore: JSON (a list per pair, one list for all, or an object keyed by image path or file name) or text (one caption per line, for all pairs)")
	asJSON := fs.Bool("json", false, `write one JSON object per pair: {"image","text","cosine","clipscore"[,"refclipscore"]}`)
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case len(images) == 0 && len(texts) == 0:
		return usagef("no pairs: give --image FILE and --text STRING once per pair")
	case len(images) != len(texts):
		return usagef("%d images but %d texts: each --image pairs with the --text at the same position, so give as many of each", len(images), len(texts))
	}
	var refs [][]string
	if *refsPath != "" {
		data, err := os.ReadFile(*refsPath)
		if err != nil {
			return err
		}
		if refs, err = parseRefs(data, images); err != nil {
			return fmt.Errorf("%s: %w", *refsPath, err)
		}
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	scores, err := m.ScorePairs(ctx, images, texts, refs)
	if err != nil {
		return err
	}
	for i, s := range scores {
		if s.Truncated {
			fmt.Fprintf(stderr, "goclip score: warning: text %q is longer than %d tokens and was truncated\n", clipText(texts[i]), m.ContextLength())
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for i, s := range scores {
			rec := struct {
				Image        string   `json:"image"`
				Text         string   `json:"text"`
				Cosine       float32  `json:"cosine"`
				CLIPScore    float32  `json:"clipscore"`
				RefCLIPScore *float32 `json:"refclipscore,omitempty"`
			}{images[i], texts[i], s.Cosine, s.CLIPScore, nil}
			if s.HasRefs {
				rec.RefCLIPScore = &scores[i].RefCLIPScore
			}
			if err := enc.Encode(rec); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	head := "image\ttext\tcosine\tCLIPScore"
	if refs != nil {
		head += "\tRefCLIPScore"
	}
	fmt.Fprintln(tw, head)
	var sum, sumRef float64
	for i, s := range scores {
		line := fmt.Sprintf("%s\t%s\t%.4f\t%.4f", images[i], clipText(texts[i]), s.Cosine, s.CLIPScore)
		if refs != nil {
			if s.HasRefs {
				line += fmt.Sprintf("\t%.4f", s.RefCLIPScore)
			} else {
				line += "\t-"
			}
		}
		fmt.Fprintln(tw, line)
		sum += float64(s.CLIPScore)
		sumRef += float64(s.RefCLIPScore)
	}
	if len(scores) > 1 {
		line := fmt.Sprintf("mean\t\t\t%.4f", sum/float64(len(scores)))
		if refs != nil {
			line += fmt.Sprintf("\t%.4f", sumRef/float64(len(scores)))
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// parseRefs reads reference captions for n pairs whose images are images:
//   - a JSON array of arrays of strings: one list per pair, in order;
//   - a JSON array of strings: the same references for every pair;
//   - a JSON object from image path (as given) or file name, with or
//     without extension, to a string or an array of strings (the clipscore
//     reference tool's format); every image must have an entry;
//   - anything else: text, one reference per non-empty line, for every pair.
func parseRefs(data []byte, images []string) ([][]string, error) {
	n := len(images)
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && (trimmed[0] == '[' || trimmed[0] == '{') {
		var raw any
		if err := json.Unmarshal(trimmed, &raw); err != nil {
			return nil, fmt.Errorf("reference captions: invalid JSON: %w", err)
		}
		switch v := raw.(type) {
		case []any:
			if len(v) == 0 {
				return nil, fmt.Errorf("reference captions: empty list")
			}
			if _, ok := v[0].(string); ok {
				list, err := stringsOf(v, "the reference list")
				if err != nil {
					return nil, err
				}
				return repeat(list, n), nil
			}
			if len(v) != n {
				return nil, fmt.Errorf("reference captions: %d lists for %d pairs (give one list per pair)", len(v), n)
			}
			out := make([][]string, n)
			for i, e := range v {
				arr, ok := e.([]any)
				if !ok {
					if s, isStr := e.(string); isStr {
						out[i] = []string{s}
						continue
					}
					return nil, fmt.Errorf("reference captions: entry %d is not a list of strings", i)
				}
				var err error
				if out[i], err = stringsOf(arr, fmt.Sprintf("entry %d", i)); err != nil {
					return nil, err
				}
			}
			return out, nil
		case map[string]any:
			out := make([][]string, n)
			for i, img := range images {
				base := filepath.Base(img)
				var e any
				found := false
				for _, k := range []string{img, base, strings.TrimSuffix(base, filepath.Ext(base))} {
					if e, found = v[k]; found {
						break
					}
				}
				if !found {
					return nil, fmt.Errorf("reference captions: no entry for image %q (keys are image paths or file names)", img)
				}
				switch r := e.(type) {
				case string:
					out[i] = []string{r}
				case []any:
					var err error
					if out[i], err = stringsOf(r, fmt.Sprintf("the entry of %q", img)); err != nil {
						return nil, err
					}
				default:
					return nil, fmt.Errorf("reference captions: the entry of %q is not a string or a list of strings", img)
				}
			}
			return out, nil
		}
	}
	var list []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			list = append(list, line)
		}
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("reference captions: the file holds no captions")
	}
	return repeat(list, n), nil
}

func stringsOf(v []any, what string) ([]string, error) {
	out := make([]string, len(v))
	for i, e := range v {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("reference captions: %s: item %d is not a string", what, i)
		}
		out[i] = s
	}
	return out, nil
}

func repeat(list []string, n int) [][]string {
	out := make([][]string, n)
	for i := range out {
		out[i] = list
	}
	return out
}
