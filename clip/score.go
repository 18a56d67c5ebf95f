package clip

import (
	"context"
	"fmt"
	"sort"
)

// CLIPScoreWeight is w in CLIPScore = w·max(cos, 0) (Hessel et al. 2021),
// which stretches the usual cosine range of CLIP to about [0, 1].
const CLIPScoreWeight = 2.5

// CLIPScore returns w·max(cos(image, text), 0) with w = CLIPScoreWeight,
// the reference-free caption metric of Hessel et al. 2021. The inputs are
// image and text features (normalised or not).
func CLIPScore(image, text []float32) float32 {
	return CLIPScoreWeight * max(Similarity(image, text), 0)
}

// RefCLIPScore returns the harmonic mean of CLIPScore(image, text) and
// max(max_r cos(text, r), 0) over the reference caption features refs
// (Hessel et al. 2021, eq. 2). With no references it is CLIPScore; a zero
// sum gives 0.
func RefCLIPScore(image, text []float32, refs [][]float32) float32 {
	c := CLIPScore(image, text)
	if len(refs) == 0 {
		return c
	}
	r := RefSimilarity(text, refs)
	if c+r == 0 {
		return 0
	}
	return 2 * c * r / (c + r)
}

// RefSimilarity returns max(max_r cos(text, r), 0), the text-text side of
// RefCLIPScore (0 when refs is empty).
func RefSimilarity(text []float32, refs [][]float32) float32 {
	best := float32(0)
	for _, r := range refs {
		best = max(best, Similarity(text, r))
	}
	return best
}

// Ranked is one candidate of a ranking: its index in the input and its
// cosine similarity and CLIPScore against the query.
type Ranked struct {
	Index     int     `json:"index"`
	Cosine    float32 `json:"cosine"`
	CLIPScore float32 `json:"clipscore"`
}

// Rank orders candidates by decreasing cosine similarity to query (ties
// keep input order).
func Rank(query []float32, candidates [][]float32) []Ranked {
	out := make([]Ranked, len(candidates))
	for i, c := range candidates {
		cos := Similarity(query, c)
		out[i] = Ranked{Index: i, Cosine: cos, CLIPScore: CLIPScoreWeight * max(cos, 0)}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Cosine > out[b].Cosine })
	return out
}

// PairScore is the score of one (image, text) pair.
type PairScore struct {
	Cosine    float32
	CLIPScore float32
	// RefCLIPScore is set when references were given for the pair (HasRefs).
	RefCLIPScore float32
	HasRefs      bool
	// Truncated reports that the text was cut to the context length.
	Truncated bool
}

// ScorePairs returns the CLIPScore of each pair (images[i], texts[i]), and
// with refs (nil, or one list of reference captions per pair) the
// RefCLIPScore too. Mismatched counts and unreadable images are errors.
func (m *Model) ScorePairs(ctx context.Context, images, texts []string, refs [][]string) ([]PairScore, error) {
	switch {
	case len(images) == 0:
		return nil, fmt.Errorf("clip: no (image, text) pairs to score")
	case len(images) != len(texts):
		return nil, fmt.Errorf("clip: %d images but %d texts: scoring pairs image i with text i, so the counts must be equal", len(images), len(texts))
	case refs != nil && len(refs) != len(images):
		return nil, fmt.Errorf("clip: %d reference lists for %d pairs: give one list per pair", len(refs), len(images))
	}
	ie, err := m.EncodeImageFiles(ctx, images)
	if err != nil {
		return nil, err
	}
	te, err := m.EmbedTexts(ctx, texts)
	if err != nil {
		return nil, err
	}
	// All references in one pass.
	var flat []string
	for _, r := range refs {
		flat = append(flat, r...)
	}
	re, err := m.EncodeTexts(ctx, flat)
	if err != nil {
		return nil, err
	}
	out := make([]PairScore, len(images))
	k := 0
	for i := range images {
		t := te[i].Embedding
		cos := Similarity(ie[i], t)
		out[i] = PairScore{Cosine: cos, CLIPScore: CLIPScore(ie[i], t), Truncated: te[i].Truncated}
		if refs != nil && len(refs[i]) > 0 {
			out[i].HasRefs = true
			out[i].RefCLIPScore = RefCLIPScore(ie[i], t, re[k:k+len(refs[i])])
		}
		if refs != nil {
			k += len(refs[i])
		}
	}
	return out, nil
}

// RerankImageFiles orders image files by similarity to prompt, best first
// (reranking a generator's samples, as DALL·E did with CLIP). Unreadable
// files are errors naming the file.
func (m *Model) RerankImageFiles(ctx context.Context, prompt string, paths []string) ([]Ranked, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("clip: no images to rerank")
	}
	t, err := m.EncodeTexts(ctx, []string{prompt})
	if err != nil {
		return nil, err
	}
	ie, err := m.EncodeImageFiles(ctx, paths)
	if err != nil {
		return nil, err
	}
	return Rank(t[0], ie), nil
}

// CaptionImageFiles ranks the candidate captions for each image file and
// returns the best k per image (all when k <= 0 or k exceeds the
// candidates): retrieval-based captioning.
func (m *Model) CaptionImageFiles(ctx context.Context, paths, candidates []string, k int) ([][]Ranked, error) {
	switch {
	case len(paths) == 0:
		return nil, fmt.Errorf("clip: no images to caption")
	case len(candidates) == 0:
		return nil, fmt.Errorf("clip: no candidate captions")
	}
	te, err := m.EncodeTexts(ctx, candidates)
	if err != nil {
		return nil, err
	}
	ie, err := m.EncodeImageFiles(ctx, paths)
	if err != nil {
		return nil, err
	}
	if k <= 0 || k > len(candidates) {
		k = len(candidates)
	}
	out := make([][]Ranked, len(paths))
	for i, im := range ie {
		out[i] = Rank(im, te)[:k]
	}
	return out, nil
}
