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

// TextEncoder encodes texts (clip.Model.EncodeTexts).
type TextEncoder func(ctx context.Context, texts []string) ([][]float32, error)

// EncodeTexts encodes texts chunk by chunk (default 256 per call), calling
// progress after each.
func EncodeTexts(ctx context.Context, enc TextEncoder, texts []string, chunk int, progress func(done, total int)) ([][]float32, error) {
	if chunk <= 0 {
		chunk = 256
	}
	out := make([][]float32, 0, len(texts))
	for lo := 0; lo < len(texts); lo += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+chunk, len(texts))
		e, err := enc(ctx, texts[lo:hi])
		if err != nil {
			return nil, err
		}
		if len(e) != hi-lo {
			return nil, fmt.Errorf("evaluate: text encoder returned %d embeddings for %d texts", len(e), hi-lo)
		}
		out = append(out, e...)
		if progress != nil {
			progress(hi, len(texts))
		}
	}
	return out, nil
}

// RetrievalReport is the outcome of a retrieval run.
type RetrievalReport struct {
	Metrics  RetrievalMetrics
	Skipped  []Skipped // unreadable images (their captions are dropped too)
	Captions int       // captions scored
	Images   Throughput
	Texts    Throughput
}

// RunRetrieval embeds the images and captions of c and scores retrieval at
// each k. Unreadable images are skipped with their captions.
func RunRetrieval(ctx context.Context, c *Captions, embed ImageEmbedder, enc TextEncoder, ks []int, imgProgress, txtProgress func(done, total int)) (*RetrievalReport, error) {
	start := time.Now()
	emb, skipped, err := EmbedFiles(ctx, embed, c.Images, 0, imgProgress)
	if err != nil {
		return nil, err
	}
	rep := &RetrievalReport{Skipped: skipped, Images: throughput(len(emb)-len(skipped), time.Since(start))}
	newIdx := make([]int, len(emb))
	var imgs [][]float32
	for i, e := range emb {
		newIdx[i] = -1
		if e != nil {
			newIdx[i] = len(imgs)
			imgs = append(imgs, e)
		}
	}
	var texts []string
	var owner []int
	for j, t := range c.Texts {
		if k := newIdx[c.TextImage[j]]; k >= 0 {
			texts = append(texts, t)
			owner = append(owner, k)
		}
	}
	if len(imgs) == 0 || len(texts) == 0 {
		return nil, fmt.Errorf("evaluate: no readable captioned images (%d skipped)", len(skipped))
	}
	start = time.Now()
	temb, err := EncodeTexts(ctx, enc, texts, 0, txtProgress)
	if err != nil {
		return nil, err
	}
	rep.Texts = throughput(len(texts), time.Since(start))
	rep.Captions = len(texts)
	rep.Metrics, err = Retrieval(imgs, temb, owner, ks)
	return rep, err
}

// ProbeReport is the outcome of a linear-probe run.
type ProbeReport struct {
	*ProbeResult
	Skipped []Skipped
	Train   int // training images used
	Test    int // test images scored
	Images  Throughput
}

// RunLinearProbe embeds the training and test sets and fits and scores a
// linear probe (see LinearProbe). Test classes are matched to training
// classes by name; a test class the training set lacks is an error.
// Unreadable images are skipped and reported.
func RunLinearProbe(ctx context.Context, train, test *Dataset, embed ImageEmbedder, o ProbeOptions, imgProgress func(done, total int)) (*ProbeReport, error) {
	idx := map[string]int{}
	for i, c := range train.Classes {
		idx[c] = i
	}
	testMap := make([]int, len(test.Classes))
	for i, c := range test.Classes {
		j, ok := idx[c]
		if !ok {
			return nil, fmt.Errorf("evaluate: test class %q is not a class of the training set %s", c, train.Name)
		}
		testMap[i] = j
	}
	paths := append(train.Paths(), test.Paths()...)
	start := time.Now()
	emb, skipped, err := EmbedFiles(ctx, embed, paths, 0, imgProgress)
	if err != nil {
		return nil, err
	}
	rep := &ProbeReport{Skipped: skipped, Images: throughput(len(emb)-len(skipped), time.Since(start))}
	var trX, teX [][]float32
	var trY, teY []int
	for i, e := range emb {
		if e == nil {
			continue
		}
		if i < len(train.Samples) {
			trX, trY = append(trX, e), append(trY, train.Samples[i].Label)
		} else {
			s := test.Samples[i-len(train.Samples)]
			teX, teY = append(teX, e), append(teY, testMap[s.Label])
		}
	}
	rep.Train, rep.Test = len(trX), len(teX)
	rep.ProbeResult, err = LinearProbe(ctx, trX, trY, teX, teY, train.Classes, o)
	if err != nil {
		return nil, err
	}
	return rep, nil
}
