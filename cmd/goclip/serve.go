package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/goclip/goclip/internal/server"
	"github.com/goclip/goclip/internal/video"
)

func init() {
	register("serve", "serve the HTTP API, the Weaviate/immich-compatible endpoints and the web page", runServe)
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	var mf modelFlags
	mf.register(fs)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	db := fs.String("db", "", "index to search (/v1/search and the web page); its videos (goclip video index) are searched too when ffmpeg is installed")
	var storeURL string
	storeFlag(fs, &storeURL)
	maxBatch := fs.Int("max-batch", server.DefaultMaxBatch, "most inputs merged into one model batch (1 disables batching)")
	maxWait := fs.Duration("max-wait", server.DefaultMaxWait, "longest an input waits for its batch to fill")
	queue := fs.Int("queue", server.DefaultMaxQueue, "most inputs waiting per tower before 503 Retry-After")
	workers := fs.Int("workers", 1, "batches run at once per tower")
	timeout := fs.Duration("timeout", server.DefaultRequestTimeout, "per-request timeout")
	maxBody := fs.Int64("max-body", server.DefaultMaxBodyBytes, "largest request body in bytes")
	maxInputs := fs.Int("max-inputs", server.DefaultMaxInputs, "most texts+images in one request")
	maxPixels := fs.Int64("max-pixels", server.DefaultMaxPixels, "largest uploaded image in pixels (width×height)")
	verbose := fs.Bool("v", false, "log every failed request")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %q", fs.Args())
	}
	if *maxBatch < 1 || *queue < 1 || *workers < 1 || *maxInputs < 1 {
		return usagef("--max-batch, --queue, --workers and --max-inputs must be at least 1")
	}
	spec, err := storeSpec(*db, storeURL)
	if err != nil {
		return err
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	wait := *maxWait
	if wait == 0 {
		wait = -1 // no waiting (0 would mean the default)
	}
	bc := server.BatcherConfig{MaxBatch: *maxBatch, MaxWait: wait, MaxQueue: *queue, Workers: *workers}
	logger := log.New(stderr, "goclip serve: ", log.LstdFlags)
	cfg := server.Config{
		Model:          m,
		TextBatch:      bc,
		ImageBatch:     bc,
		RequestTimeout: *timeout,
		MaxBodyBytes:   *maxBody,
		MaxInputs:      *maxInputs,
		MaxPixels:      *maxPixels,
	}
	if *verbose {
		cfg.Logf = logger.Printf
	}
	if spec != "" {
		ss, err := openServeStore(ctx, spec, m, logger.Printf)
		if err != nil {
			return err
		}
		defer ss.close()
		cfg.Searcher, cfg.NoVideos = ss.searcher, ss.noVideos
		if ss.videos != nil {
			cfg.Videos = ss.videos
		}
	}
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *addr, err)
	}
	logger.Printf("listening on http://%s (model %s, %d-d; batching up to %d inputs, waiting %v)",
		ln.Addr(), m.Path(), m.EmbedDim(), *maxBatch, max(wait, 0))
	start := time.Now()
	err = srv.Serve(ctx, ln)
	logger.Printf("stopped after %v", time.Since(start).Round(time.Second))
	return err
}

// videoThumbSide is the largest side of the frames served for moments.
const videoThumbSide = 320

// storeVideos adapts internal/video's Library (the videos indexed in the
// store) to the HTTP server's VideoSearcher.
type storeVideos struct{ lib *video.Library }

func (v storeVideos) SearchMoments(ctx context.Context, q []float32, k int) ([]server.Moment, error) {
	ms, err := v.lib.Search(ctx, q, k, video.MomentOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]server.Moment, len(ms))
	for i, m := range ms {
		out[i] = server.Moment{Video: m.Video, Start: float64(m.Start), End: float64(m.End), Score: shortFloat(m.Score), Peak: float64(m.Peak)}
	}
	return out, nil
}

// shortFloat widens f to the float64 with f's shortest decimal form, so
// that JSON shows 0.1203 rather than 0.12030000239610672.
func shortFloat(f float32) float64 {
	x, _ := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	return x
}

func (v storeVideos) VideoThumbnail(ctx context.Context, path string, t float64) ([]byte, error) {
	return v.lib.Thumbnail(ctx, path, t, videoThumbSide)
}

// OpenVideo opens an indexed video; any other path is refused.
func (v storeVideos) OpenVideo(ctx context.Context, path string) (io.ReadSeekCloser, error) {
	clean := filepath.Clean(path)
	indexed, err := v.lib.Videos()
	if err != nil {
		return nil, err
	}
	if !slices.Contains(indexed, clean) {
		return nil, fmt.Errorf("%s is not an indexed video: %w", path, fs.ErrNotExist)
	}
	return os.Open(clean)
}
