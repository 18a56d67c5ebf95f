package video

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/indexer"
	"github.com/goclip/goclip/internal/store"
)

// Library searches the videos indexed under one model for moments. It
// keeps the frame embeddings in memory, reloading them when the store
// changes. It is safe for concurrent use.
type Library struct {
	st    *store.Store
	id    string
	tools *Tools

	mu     sync.Mutex
	gen    uint64
	loaded bool
	dim    int
	videos []*libVideo
}

type libVideo struct {
	path           string
	step, duration float64
	times          []float64
	emb            [][]float32

	mu    sync.Mutex
	shots map[float32][]int // shot ids per frame, by threshold
}

// NewLibrary returns the moment searcher over the videos of model id in
// st. tools are used for thumbnails (nil: FindTools).
func NewLibrary(st *store.Store, modelID string, tools *Tools) *Library {
	return &Library{st: st, id: modelID, tools: tools}
}

// load returns the current videos, reading them when the store changed.
func (l *Library) load() ([]*libVideo, int, error) {
	gen, err := l.st.VideoGeneration(l.id)
	if err != nil {
		return nil, 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.loaded && l.gen == gen {
		return l.videos, l.dim, nil
	}
	var vs []*libVideo
	dim := 0
	err = l.st.ScanVideos(l.id, false, func(p string, r store.VideoRecord) error {
		if r.Failed() {
			return nil
		}
		if dim == 0 {
			dim = len(r.Embeddings[0])
		}
		vs = append(vs, &libVideo{path: p, step: r.Step, duration: r.Duration, times: r.Times, emb: r.Embeddings})
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	l.videos, l.dim, l.gen, l.loaded = vs, dim, gen, true
	return vs, dim, nil
}

func (v *libVideo) shotIDs(threshold float32) []int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if ids, ok := v.shots[threshold]; ok {
		return ids
	}
	if v.shots == nil {
		v.shots = map[float32][]int{}
	}
	ids := shotIDs(len(v.emb), ShotStarts(v.emb, threshold))
	v.shots[threshold] = ids
	return ids
}

// Videos returns the paths of the videos with frames, in path order.
func (l *Library) Videos() ([]string, error) {
	vs, _, err := l.load()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.path
	}
	return out, nil
}

// Shots returns the start times of the shots of the indexed video at
// path (the first is its first frame's time).
func (l *Library) Shots(path string, threshold float32) ([]float64, error) {
	vs, _, err := l.load()
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		if v.path == path {
			out := []float64{v.times[0]}
			for _, i := range ShotStarts(v.emb, threshold) {
				out = append(out, v.times[i])
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("video: %s is not indexed under model %s: %w", path, l.id, os.ErrNotExist)
}

// Search returns the k moments whose frames are most similar to the
// query embedding q (any scale), best first, across all videos.
func (l *Library) Search(ctx context.Context, q []float32, k int, o MomentOptions) ([]Moment, error) {
	vs, dim, err := l.load()
	if err != nil {
		return nil, err
	}
	if len(vs) > 0 && len(q) != dim {
		return nil, fmt.Errorf("video: %d-d query for frame embeddings of %d-d", len(q), dim)
	}
	if k <= 0 {
		return nil, nil
	}
	qn := clip.Normalize(q)
	thr, margin := o.shotThreshold(), o.margin()
	minScore := o.MinScore
	if minScore == 0 {
		minScore = -2
	}
	var all []Moment
	for i, v := range vs {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		scores := make([]float32, len(v.emb))
		for j, e := range v.emb {
			scores[j] = dot(qn, e)
		}
		all = append(all, FindMoments(v.path, v.times, v.step, v.duration, scores, v.shotIDs(thr), margin, minScore, k)...)
	}
	sortMoments(all)
	if len(all) > k {
		all = all[:k]
	}
	return all, nil
}

// QueryVector embeds a search: text in goclip search's combined syntax
// (`"beach" + 2*"sunset" - "people"`, see indexer.ParseQuery) and image
// files (weight 1 each), combined with indexer.Combine.
func QueryVector(ctx context.Context, m *clip.Model, text string, images []string) ([]float32, error) {
	var terms []indexer.Term
	if strings.TrimSpace(text) != "" {
		var err error
		if terms, err = indexer.ParseQuery(text); err != nil {
			return nil, err
		}
	}
	if len(terms) == 0 && len(images) == 0 {
		return nil, fmt.Errorf("video: empty query")
	}
	return indexer.EmbedQuery(ctx, m, terms, images)
}

// Query returns the k best moments for a text query (and optional image
// files) embedded with m — what a search box needs.
func (l *Library) Query(ctx context.Context, m *clip.Model, text string, images []string, k int, o MomentOptions) ([]Moment, error) {
	q, err := QueryVector(ctx, m, text, images)
	if err != nil {
		return nil, err
	}
	return l.Search(ctx, q, k, o)
}

// Thumbnail returns a JPEG of the frame at t seconds of the indexed video
// at path, scaled so neither side exceeds maxSide (0: full size). Only
// indexed videos are served.
func (l *Library) Thumbnail(ctx context.Context, path string, t float64, maxSide int) ([]byte, error) {
	clean := filepath.Clean(path)
	r, ok, err := l.st.GetVideo(l.id, clean)
	if err != nil {
		return nil, err
	}
	if !ok || r.Failed() {
		return nil, fmt.Errorf("video: %s is not indexed under model %s: %w", path, l.id, os.ErrNotExist)
	}
	return Thumbnail(ctx, clean, t, maxSide, l.tools)
}

// FrameAt decodes the frame shown at t seconds of the video at path,
// scaled so neither side exceeds maxSide (0: full size).
func FrameAt(ctx context.Context, path string, t float64, maxSide int, tools *Tools) (*Frame, error) {
	var got *Frame
	_, err := Extract(ctx, path, Options{Start: t, Limit: 1, MaxSide: maxSide, Tools: tools}, func(f *Frame) error {
		got = f
		return nil
	})
	if got != nil {
		return got, nil
	}
	if err == nil || errors.Is(err, ErrNoFrames) {
		err = fmt.Errorf("video: %s: no frame at %.3f s (past the end?)", path, t)
	}
	return nil, err
}

// Thumbnail returns a JPEG (quality 85) of FrameAt(path, t, maxSide).
func Thumbnail(ctx context.Context, path string, t float64, maxSide int, tools *Tools) ([]byte, error) {
	f, err := FrameAt(ctx, path, t, maxSide, tools)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, ToRGBA(f), &jpeg.Options{Quality: 85}); err != nil {
		return nil, fmt.Errorf("video: %s: %w", path, err)
	}
	return buf.Bytes(), nil
}

// ToRGBA converts a frame to an image.RGBA.
func ToRGBA(f *Frame) *image.RGBA {
	im := f.Image
	out := image.NewRGBA(image.Rect(0, 0, im.Width, im.Height))
	for i, j := 0, 0; i+2 < len(im.Pix); i, j = i+3, j+4 {
		out.Pix[j], out.Pix[j+1], out.Pix[j+2], out.Pix[j+3] = im.Pix[i], im.Pix[i+1], im.Pix[i+2], 255
	}
	return out
}
