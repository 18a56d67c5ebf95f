package video

import (
	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/zeroshot"
)

// MeanEmbedding returns the L2-normalised mean of the L2-normalised
// embeddings emb (CLIP4Clip's mean pooling of frame embeddings), summed
// in float64; nil for no embeddings.
func MeanEmbedding(emb [][]float32) []float32 {
	if len(emb) == 0 {
		return nil
	}
	sum := make([]float64, len(emb[0]))
	for _, e := range emb {
		for i, v := range clip.Normalize(e) {
			sum[i] += float64(v)
		}
	}
	mean := make([]float32, len(sum))
	for i, v := range sum {
		mean[i] = float32(v / float64(len(emb)))
	}
	return clip.Normalize(mean)
}

// LabelProb is one label with its probability.
type LabelProb struct {
	Label string  `json:"label"`
	Prob  float32 `json:"prob"`
}

// Segment is the classification of one window of a video.
type Segment struct {
	Start  Seconds     `json:"start"`
	End    Seconds     `json:"end"`
	Frames int         `json:"frames"`
	Labels []LabelProb `json:"labels"`
}

// Classification is a video's zero-shot classification.
type Classification struct {
	Video  string `json:"video"`
	Frames int    `json:"frames"`
	// Labels are the clip-level top labels: softmax over all labels of
	// exp(logit_scale)·cos(mean frame embedding, class weights).
	Labels []LabelProb `json:"labels"`
	// Segments classify windows of the video the same way (empty
	// without a window).
	Segments []Segment `json:"segments,omitempty"`
	// Warning says why decoding stopped early, when it did.
	Warning string `json:"warning,omitempty"`
}

func topLabels(clf *zeroshot.Classifier, emb []float32, top int) []LabelProb {
	preds := clf.TopK(emb, top)
	out := make([]LabelProb, len(preds))
	for i, p := range preds {
		out[i] = LabelProb{p.Label, p.Prob}
	}
	return out
}

// Classify classifies the video e with clf: the whole clip from the mean
// of its frame embeddings, and, when window > 0, every window
// [s, s+window) for s = 0, stride, 2·stride, … (stride ≤ 0: stride =
// window) that holds frames, from the mean of those frames. top labels
// are kept per clip and per segment.
func Classify(e *Embedded, clf *zeroshot.Classifier, window, stride float64, top int) *Classification {
	c := &Classification{Video: e.Path, Frames: len(e.Times)}
	if len(e.Times) == 0 {
		return c
	}
	c.Labels = topLabels(clf, MeanEmbedding(e.Embeddings), top)
	if window <= 0 {
		return c
	}
	if stride <= 0 {
		stride = window
	}
	n := len(e.Times)
	end := max(e.Duration, e.Times[n-1]+e.Step)
	lo := 0
	for k := 0; ; k++ {
		s := float64(k) * stride
		if s >= end || s > e.Times[n-1] {
			break
		}
		for lo < n && e.Times[lo] < s {
			lo++
		}
		hi := lo
		for hi < n && e.Times[hi] < s+window {
			hi++
		}
		if hi == lo {
			continue
		}
		c.Segments = append(c.Segments, Segment{
			Start:  Seconds(roundMicro(s)),
			End:    Seconds(roundMicro(min(s+window, end))),
			Frames: hi - lo,
			Labels: topLabels(clf, MeanEmbedding(e.Embeddings[lo:hi]), top),
		})
	}
	return c
}
