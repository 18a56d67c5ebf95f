package evaluate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// ImageEmbedder embeds image files, returning per file its embedding or the
// error that made it unusable (clip.Model.EmbedImageFiles).
type ImageEmbedder func(ctx context.Context, paths []string) ([][]float32, []error)

// Skipped is an input left out of an evaluation, with why.
type Skipped struct {
	Path string `json:"path"`
	Err  string `json:"error"`
}

// EmbedFiles embeds paths chunk by chunk (default 64 per call), calling
// progress after each. Unreadable files are skipped (nil embedding) and
// listed; a cancelled ctx stops the run with ctx's error.
func EmbedFiles(ctx context.Context, embed ImageEmbedder, paths []string, chunk int, progress func(done, total int)) ([][]float32, []Skipped, error) {
	if chunk <= 0 {
		chunk = 64
	}
	out := make([][]float32, len(paths))
	var skipped []Skipped
	for lo := 0; lo < len(paths); lo += chunk {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		hi := min(lo+chunk, len(paths))
		emb, errs := embed(ctx, paths[lo:hi])
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if len(emb) != hi-lo || len(errs) != hi-lo {
			return nil, nil, fmt.Errorf("evaluate: embedder returned %d embeddings and %d errors for %d files", len(emb), len(errs), hi-lo)
		}
		for i := range emb {
			if errs[i] != nil || emb[i] == nil {
				msg := "no embedding"
				if errs[i] != nil {
					msg = errs[i].Error()
				}
				skipped = append(skipped, Skipped{paths[lo+i], msg})
				continue
			}
			out[lo+i] = emb[i]
		}
		if progress != nil {
			progress(hi, len(paths))
		}
	}
	return out, skipped, nil
}

// Throughput is how long encoding took.
type Throughput struct {
	Items   int     `json:"items"`
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"per_second"`
}

func throughput(n int, d time.Duration) Throughput {
	t := Throughput{Items: n, Seconds: d.Seconds()}
	if t.Seconds > 0 {
		t.PerSec = float64(n) / t.Seconds
	}
	return t
}

// ZeroShotReport is the outcome of a zero-shot classification run.
type ZeroShotReport struct {
	Metrics *ClassificationMetrics
	Skipped []Skipped
	Images  Throughput // image encoding
}

// ZeroShot embeds every dataset image and scores the classifier on them.
// scores maps an image embedding to logits over ds.Classes (for example
// (*zeroshot.Classifier).Logits built with ds.Classes as labels).
// Unreadable images are skipped and reported.
func ZeroShot(ctx context.Context, ds *Dataset, scores func([]float32) []float32, embed ImageEmbedder, progress func(done, total int)) (*ZeroShotReport, error) {
	start := time.Now()
	emb, skipped, err := EmbedFiles(ctx, embed, ds.Paths(), 0, progress)
	if err != nil {
		return nil, err
	}
	rep := &ZeroShotReport{Skipped: skipped, Images: throughput(len(emb)-len(skipped), time.Since(start))}
	var rows [][]float32
	var truth []int
	for i, e := range emb {
		if e == nil {
			continue
		}
		rows = append(rows, scores(e))
		truth = append(truth, ds.Samples[i].Label)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("evaluate: none of the %d images of %s could be read (first: %s: %s)", len(emb), ds.Name, skipped[0].Path, skipped[0].Err)
	}
	rep.Metrics, err = Classification(rows, truth, ds.Classes)
	return rep, err
}

// Result is one evaluation in CLIP_benchmark's JSON shape; goclip's extra
// details go under "goclip".
type Result struct {
	Dataset    string             `json:"dataset"`
	Model      string             `json:"model"`
	Pretrained string             `json:"pretrained"`
	Task       string             `json:"task"`
	Metrics    map[string]float64 `json:"metrics"`
	Language   string             `json:"language"`
	Details    *Details           `json:"goclip,omitempty"`
}

// Details are the parts of a run CLIP_benchmark's JSON has no field for.
type Details struct {
	Images     int           `json:"images"`
	Skipped    []Skipped     `json:"skipped"`
	PerClass   []ClassStat   `json:"per_class,omitempty"`
	Encoding   *Throughput   `json:"image_encoding,omitempty"`
	Texts      *Throughput   `json:"text_encoding,omitempty"`
	Lambda     float64       `json:"lambda,omitempty"`
	Sweep      []LambdaScore `json:"lambda_sweep,omitempty"`
	Templates  int           `json:"templates,omitempty"`
	FromCache  bool          `json:"classifier_from_cache,omitempty"`
	Confusion  string        `json:"confusion_png,omitempty"`
	Captions   int           `json:"captions,omitempty"`
	TestImages int           `json:"test_images,omitempty"`
}

// Marshal returns r as indented JSON.
func (r *Result) Marshal() ([]byte, error) {
	if r.Details != nil && r.Details.Skipped == nil {
		r.Details.Skipped = []Skipped{}
	}
	return json.MarshalIndent(r, "", "  ")
}
