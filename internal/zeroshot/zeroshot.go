// Package zeroshot builds CLIP zero-shot classifiers from class names and
// prompt templates, exactly as the CLIP notebook
// (Prompt_Engineering_for_ImageNet) does: for each class every template is
// filled in and encoded, the embeddings are L2-normalised, averaged and
// normalised again; an image's logits are exp(logit_scale) times the dot
// products of its normalised embedding with those class vectors.
//
// The text encoder is a function (or a *clip.Model through its EncodeTexts
// method), so classifiers can be built from any model, including random
// benchmark weights. Class-weight matrices can be cached on disk.
package zeroshot

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/goclip/goclip/clip"
)

// Encoder turns texts into unnormalised embeddings, one per text, in order.
// *clip.Model implements it.
type Encoder interface {
	EncodeTexts(ctx context.Context, texts []string) ([][]float32, error)
}

// EncodeFunc adapts a function to Encoder.
type EncodeFunc func(ctx context.Context, texts []string) ([][]float32, error)

// EncodeTexts calls f.
func (f EncodeFunc) EncodeTexts(ctx context.Context, texts []string) ([][]float32, error) {
	return f(ctx, texts)
}

// Classifier is a zero-shot classifier: one unit-norm weight row per class.
type Classifier struct {
	Labels    []string
	Templates []string
	// Weights[c] is class c's normalised mean template embedding (the
	// columns of the notebook's zeroshot_weights).
	Weights [][]float32
	// Scale multiplies the cosine similarities: exp(logit_scale).
	Scale float32
	// FromCache is set when the weights were read from the cache.
	FromCache bool
}

// Options tunes Build.
type Options struct {
	// Scale is exp(logit_scale), the factor of the logits (the model's
	// clip.Model.LogitScale()). Zero means 100.
	Scale float32
	// Chunk is how many prompts go to one Encoder call (default 64). All
	// label×template prompts are flattened and encoded in order, chunk by
	// chunk, whatever the number of labels.
	Chunk int
	// Progress, if set, is called after each chunk with the prompts done.
	Progress func(done, total int)
	// CacheDir, when not empty and ModelKey is set, is where class-weight
	// matrices are cached, keyed by (ModelKey, labels, templates).
	CacheDir string
	// ModelKey identifies the text encoder (see ModelKey); it must change
	// whenever the encoder's output could.
	ModelKey string
}

// Build encodes every (label, template) prompt and returns the classifier.
func Build(ctx context.Context, enc Encoder, labels, templates []string, o Options) (*Classifier, error) {
	if len(labels) == 0 {
		return nil, errors.New("zeroshot: no labels")
	}
	if len(templates) == 0 {
		return nil, errors.New("zeroshot: no templates")
	}
	for _, t := range templates {
		if err := CheckTemplate(t); err != nil {
			return nil, fmt.Errorf("zeroshot: %w", err)
		}
	}
	if o.Scale == 0 {
		o.Scale = 100
	}
	if o.Chunk <= 0 {
		o.Chunk = 64
	}
	c := &Classifier{Labels: labels, Templates: templates, Scale: o.Scale}
	useCache := o.CacheDir != "" && o.ModelKey != ""
	var key [32]byte
	if useCache {
		key = CacheKey(o.ModelKey, labels, templates)
		if w, err := readCache(o.CacheDir, key, len(labels)); err == nil {
			c.Weights, c.FromCache = w, true
			if o.Progress != nil {
				o.Progress(len(labels)*len(templates), len(labels)*len(templates))
			}
			return c, nil
		}
	}
	prompts := Prompts(labels, templates)
	emb := make([][]float32, 0, len(prompts))
	for lo := 0; lo < len(prompts); lo += o.Chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+o.Chunk, len(prompts))
		e, err := enc.EncodeTexts(ctx, prompts[lo:hi])
		if err != nil {
			return nil, fmt.Errorf("zeroshot: encoding prompts %d..%d: %w", lo, hi-1, err)
		}
		if len(e) != hi-lo {
			return nil, fmt.Errorf("zeroshot: encoder returned %d embeddings for %d prompts", len(e), hi-lo)
		}
		emb = append(emb, e...)
		if o.Progress != nil {
			o.Progress(hi, len(prompts))
		}
	}
	w, err := ClassWeights(emb, len(labels), len(templates))
	if err != nil {
		return nil, err
	}
	c.Weights = w
	if useCache {
		// A failed cache write only costs the next run a rebuild.
		_ = writeCache(o.CacheDir, key, w)
	}
	return c, nil
}

// Prompts returns the label-major list of filled templates: prompt
// l*len(templates)+t is Fill(templates[t], labels[l]).
func Prompts(labels, templates []string) []string {
	out := make([]string, 0, len(labels)*len(templates))
	for _, l := range labels {
		for _, t := range templates {
			out = append(out, Fill(t, l))
		}
	}
	return out
}

// ClassWeights turns label-major prompt embeddings (as ordered by Prompts)
// into class weights: each embedding is normalised with clip.Normalize,
// the nt of a class are summed in template order in float64 and divided by
// nt, and the mean is normalised again.
func ClassWeights(emb [][]float32, nLabels, nt int) ([][]float32, error) {
	if len(emb) != nLabels*nt || nt == 0 {
		return nil, fmt.Errorf("zeroshot: %d embeddings for %d labels × %d templates", len(emb), nLabels, nt)
	}
	dim := len(emb[0])
	if dim == 0 {
		return nil, errors.New("zeroshot: empty embeddings")
	}
	w := make([][]float32, nLabels)
	sum := make([]float64, dim)
	mean := make([]float32, dim)
	for l := range w {
		clear(sum)
		for t := range nt {
			e := emb[l*nt+t]
			if len(e) != dim {
				return nil, fmt.Errorf("zeroshot: embedding %d has %d values, embedding 0 has %d", l*nt+t, len(e), dim)
			}
			for i, v := range clip.Normalize(e) {
				sum[i] += float64(v)
			}
		}
		for i := range mean {
			mean[i] = float32(sum[i] / float64(nt))
		}
		w[l] = clip.Normalize(mean)
	}
	return w, nil
}

// Logits returns Scale · (normalised img · W_c) for every class c.
func (c *Classifier) Logits(img []float32) []float32 {
	x := clip.Normalize(img)
	out := make([]float32, len(c.Weights))
	for k, w := range c.Weights {
		var s float64
		for i, v := range w {
			s += float64(v) * float64(x[i])
		}
		out[k] = float32(float64(c.Scale) * s)
	}
	return out
}

// Prediction is one label with its probability.
type Prediction struct {
	Label string  `json:"label"`
	Index int     `json:"-"`
	Prob  float32 `json:"prob"`
	Logit float32 `json:"-"`
}

// Probs returns the softmax over classes of img's logits.
func (c *Classifier) Probs(img []float32) []float32 { return clip.Softmax(c.Logits(img)) }

// TopK returns the k most probable labels for img (softmax over all
// classes), most probable first; ties keep the lower class index first.
func (c *Classifier) TopK(img []float32, k int) []Prediction {
	lg := c.Logits(img)
	p := clip.Softmax(lg)
	all := make([]Prediction, len(p))
	for i := range p {
		all[i] = Prediction{Label: c.Labels[i], Index: i, Prob: p[i], Logit: lg[i]}
	}
	sortPreds(all)
	return all[:min(max(k, 0), len(all))]
}

// MultiLabel scores each label independently: prob = sigmoid(logit + bias)
// with logit = Scale·cos; it returns the labels whose prob ≥ threshold,
// most probable first. CLIP has no learned bias, and its scaled similarities
// are all large and positive, so a bias near -Scale·(typical cosine) is
// needed; MeanBias gives the per-image centring goclip uses by default.
func (c *Classifier) MultiLabel(img []float32, bias, threshold float32) []Prediction {
	lg := c.Logits(img)
	var out []Prediction
	for i, v := range lg {
		p := float32(1 / (1 + math.Exp(-float64(v+bias))))
		if p >= threshold {
			out = append(out, Prediction{Label: c.Labels[i], Index: i, Prob: p, Logit: v})
		}
	}
	sortPreds(out)
	return out
}

// MeanBias returns minus the mean of img's logits over all classes: the
// bias that centres them at zero.
func (c *Classifier) MeanBias(img []float32) float32 {
	lg := c.Logits(img)
	var s float64
	for _, v := range lg {
		s += float64(v)
	}
	return float32(-s / float64(max(len(lg), 1)))
}

func sortPreds(p []Prediction) {
	sort.SliceStable(p, func(i, j int) bool {
		if p[i].Logit != p[j].Logit {
			return p[i].Logit > p[j].Logit
		}
		return p[i].Index < p[j].Index
	})
}
