package video

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/imageproc"
)

// Encoder embeds preprocessed frames; *clip.Model implements it.
type Encoder interface {
	ImageSize() int
	EmbedDim() int
	PreprocessOptions() imageproc.Options
	// EncodePixels runs the image tower on n preprocessed images
	// [n, 3, S, S] and returns unnormalised embeddings.
	EncodePixels(ctx context.Context, pixels []float32, n int) ([][]float32, error)
}

// Embedded holds the sampled frames of one video and their embeddings.
type Embedded struct {
	Path     string
	Info     *Info
	Sampling string // Options.Sampling
	// Duration is the video's length in seconds (the probed duration,
	// else the end of the last frame).
	Duration float64
	// Step is the seconds each frame stands for (Options.Step).
	Step float64
	// Times are the frame timestamps in seconds; Embeddings the frames'
	// L2-normalised embeddings, one per time.
	Times      []float64
	Embeddings [][]float32
	Stats      Stats
}

// Stats says where the time of an Embed call went. Decode, Preprocess
// and Embed overlap (ffmpeg decodes while the previous batch is
// preprocessed and embedded), so they add up to more than Wall.
type Stats struct {
	Frames int
	// Decode is the time spent waiting for ffmpeg's next frame (decoding
	// and the pipe), Preprocess the CPU time of resizing and normalising
	// frames (summed over goroutines), Embed the image tower's time.
	Decode, Preprocess, Embed, Wall time.Duration
}

// DefaultBatch is the number of frames per forward pass when Embed is
// given 0.
const DefaultBatch = 32

// Embed samples the video at path as o says, preprocesses every frame
// with enc's image transform and embeds it, batch frames per forward
// pass, while ffmpeg goes on decoding. When decoding stops part way (a
// truncated file) it returns the frames embedded so far together with
// the *DecodeError.
func Embed(ctx context.Context, enc Encoder, path string, o Options, batch int) (*Embedded, error) {
	start := time.Now()
	if batch <= 0 {
		batch = DefaultBatch
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pre := enc.PreprocessOptions()
	size := enc.ImageSize()
	per := 3 * size * size

	frames := make(chan *Frame, 4)
	var info *Info
	var extractErr error
	go func() {
		defer close(frames)
		info, extractErr = Extract(ctx, path, o, func(f *Frame) error {
			select {
			case frames <- f:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()

	type job struct {
		pix   []float32
		n     int
		times []float64
	}
	jobs := make(chan job, 1)
	free := make(chan []float32, 2)
	free <- make([]float32, batch*per)
	free <- make([]float32, batch*per)
	e := &Embedded{Path: path, Sampling: o.Sampling()}
	var embedErr error
	embedDone := make(chan struct{})
	go func() {
		defer close(embedDone)
		for j := range jobs {
			if embedErr == nil {
				t0 := time.Now()
				emb, err := enc.EncodePixels(ctx, j.pix[:j.n*per], j.n)
				e.Stats.Embed += time.Since(t0)
				if err != nil {
					embedErr = err
					cancel()
				} else {
					for _, v := range emb {
						e.Embeddings = append(e.Embeddings, clip.Normalize(v))
					}
					e.Times = append(e.Times, j.times...)
				}
			}
			free <- j.pix
		}
	}()

	var preNanos int64
	var preMu sync.Mutex
	var preErr error
	workers := runtime.GOMAXPROCS(0)
	done := false
	for !done && preErr == nil {
		pix := <-free
		var batchFrames []*Frame
		t0 := time.Now()
		for len(batchFrames) < batch {
			f, ok := <-frames
			if !ok {
				done = true
				break
			}
			batchFrames = append(batchFrames, f)
		}
		e.Stats.Decode += time.Since(t0)
		if len(batchFrames) == 0 {
			free <- pix
			break
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, workers)
		for i, f := range batchFrames {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				t := time.Now()
				err := imageproc.PreprocessInto(pix[i*per:(i+1)*per], f.Image, pre)
				preMu.Lock()
				preNanos += int64(time.Since(t))
				if err != nil && preErr == nil {
					preErr = fmt.Errorf("video: %s: frame %d at %.3f s: %w", path, f.Index, f.Time, err)
				}
				preMu.Unlock()
			}()
		}
		wg.Wait()
		if preErr != nil {
			free <- pix
			break
		}
		times := make([]float64, len(batchFrames))
		for i, f := range batchFrames {
			times[i] = f.Time
		}
		jobs <- job{pix, len(batchFrames), times}
	}
	close(jobs)
	<-embedDone
	if preErr != nil || embedErr != nil {
		cancel()
	}
	for range frames { // let the extractor finish
	}
	e.Stats.Preprocess = time.Duration(preNanos)
	e.Stats.Frames = len(e.Times)
	e.Info = info
	if info != nil {
		e.Duration = info.Duration
	}
	e.Step = o.Step(e.Duration)
	if n := len(e.Times); n > 0 && e.Duration < e.Times[n-1]+e.Step && (info == nil || info.Duration <= 0) {
		e.Duration = e.Times[n-1] + e.Step
	}
	e.Stats.Wall = time.Since(start)
	switch {
	case preErr != nil:
		return nil, preErr
	case embedErr != nil:
		return nil, fmt.Errorf("video: %s: %w", path, embedErr)
	case extractErr != nil:
		var de *DecodeError
		if errors.As(extractErr, &de) && len(e.Times) > 0 {
			return e, extractErr
		}
		return nil, extractErr
	}
	return e, nil
}
