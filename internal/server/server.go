// Package server is goclip's HTTP inference server (goclip serve): a JSON
// API to embed, classify and search images and texts, drop-in copies of
// the Weaviate multi2vec-clip inference API and the immich
// machine-learning API, Prometheus metrics and an embedded web page for
// searching an index.
//
// Concurrent requests are merged into batches (see Batcher) so that the
// model runs on several inputs at once; the queue is bounded and a full
// queue is answered with 503 and Retry-After. Every request has a body
// size limit, an input-count limit and a timeout, and bad input is
// answered with a 4xx status and a JSON body {"error": "..."} that names
// the problem.
//
// Endpoints:
//
//	POST /v1/embed     {"texts":[…],"images":[base64…]} (or multipart) → {"text_embeddings":[[…]],"image_embeddings":[[…]]}
//	POST /v1/classify  {"image":base64,"labels":[…],"template":"a photo of a {}."} → {"labels":[{"label","prob"}…]}
//	POST /v1/search    {"text":…} | {"image":base64} | {"path":…}, "top":K → {"results":[{"path","score"}…]}
//	                   with "videos":true also → "moments":[{"video","start","end","score","peak"}…]
//	GET  /v1/models, /healthz, /metrics, /v1/thumb?path=…
//	GET  /v1/video/thumb?path=…&t=SECONDS, /v1/video/file?path=…      (indexed videos: frame JPEG, file with Range)
//	GET  /.well-known/live, /.well-known/ready, /meta; POST /vectorize   (Weaviate multi2vec-clip)
//	GET  /ping; POST /predict                                           (immich machine learning)
//	GET  /                                                              (web page)
//
// All embeddings are L2-normalised.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/imageproc"
)

// Hit is one search result: an indexed item and its cosine similarity to
// the query.
type Hit struct {
	Path  string  `json:"path"`
	Score float32 `json:"score"`
}

// Searcher finds the indexed items nearest to a query embedding. query is
// L2-normalised; the result holds at most k hits, best first. goclip's
// embedded store implements it; any index can be plugged in.
type Searcher interface {
	Search(ctx context.Context, query []float32, k int) ([]Hit, error)
}

// FileOpener is implemented by a Searcher that can open the image behind a
// hit. The server then serves thumbnails (GET /v1/thumb) and searches by
// an indexed image ({"path": …} in /v1/search). OpenFile must refuse paths
// that are not in the index: the path comes from the client.
type FileOpener interface {
	OpenFile(ctx context.Context, path string) (io.ReadCloser, error)
}

// Config configures a Server. Only Model is required.
type Config struct {
	// Model embeds texts and images.
	Model *clip.Model
	// ModelName is reported by /v1/models and /meta (default: the base
	// name of the model path).
	ModelName string
	// Searcher, when set, answers /v1/search and the web page.
	Searcher Searcher
	// Videos, when set, adds video moments to /v1/search and the web
	// page, and serves frames and files of indexed videos.
	Videos VideoSearcher
	// NoVideos, when Videos is nil, says why (e.g. "the weaviate store
	// holds no videos"): the 501 answer to a video search names it.
	NoVideos string

	// TextBatch and ImageBatch configure the dynamic batching of each
	// tower. Zero fields take defaults: MaxBatch 32, MaxWait 5 ms,
	// MaxQueue 1024, Workers 1.
	TextBatch, ImageBatch BatcherConfig

	// RequestTimeout bounds each request (default 30 s): 504 past it.
	RequestTimeout time.Duration
	// MaxBodyBytes bounds a request body (default 32 MiB): 413 past it.
	MaxBodyBytes int64
	// MaxInputs bounds the texts plus images (or labels) in one request
	// (default 256): 413 past it.
	MaxInputs int
	// MaxTextBytes bounds one text (default 16 KiB; CLIP reads at most
	// 77 tokens anyway).
	MaxTextBytes int
	// MaxPixels bounds the width×height of an uploaded image (default
	// 40 megapixels): the decompression-bomb guard.
	MaxPixels int64
	// Decoders bounds the images decoded at once (default GOMAXPROCS),
	// which bounds the memory decoding takes.
	Decoders int
	// Logf, when set, receives one line per failed request.
	Logf func(format string, args ...any)
}

// Defaults used for zero Config fields.
const (
	DefaultMaxBatch       = 32
	DefaultMaxWait        = 5 * time.Millisecond
	DefaultMaxQueue       = 1024
	DefaultRequestTimeout = 30 * time.Second
	DefaultMaxBodyBytes   = 32 << 20
	DefaultMaxInputs      = 256
	DefaultMaxTextBytes   = 16 << 10
	DefaultMaxPixels      = 40_000_000
)

func (c *Config) fill() {
	for _, b := range []*BatcherConfig{&c.TextBatch, &c.ImageBatch} {
		if b.MaxBatch <= 0 {
			b.MaxBatch = DefaultMaxBatch
		}
		if b.MaxWait < 0 {
			b.MaxWait = 0
		} else if b.MaxWait == 0 {
			b.MaxWait = DefaultMaxWait
		}
		if b.MaxQueue <= 0 {
			b.MaxQueue = DefaultMaxQueue
		}
		if b.Workers <= 0 {
			b.Workers = 1
		}
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxInputs <= 0 {
		c.MaxInputs = DefaultMaxInputs
	}
	if c.MaxTextBytes <= 0 {
		c.MaxTextBytes = DefaultMaxTextBytes
	}
	if c.MaxPixels <= 0 {
		c.MaxPixels = DefaultMaxPixels
	}
	if c.Decoders <= 0 {
		c.Decoders = runtime.GOMAXPROCS(0)
	}
	if c.ModelName == "" && c.Model != nil {
		c.ModelName = strings.TrimSuffix(filepath.Base(c.Model.Path()), filepath.Ext(c.Model.Path()))
		if c.ModelName == "open_clip_model" || c.ModelName == "model" {
			c.ModelName = filepath.Base(filepath.Dir(c.Model.Path()))
		}
	}
}

// Server is the HTTP inference server. It is an http.Handler.
type Server struct {
	cfg     Config
	m       *clip.Model
	pre     imageproc.Options
	text    *Batcher[[]int32, []float32]
	image   *Batcher[[]float32, []float32]
	mux     *http.ServeMux
	metrics *metrics
	decode  chan struct{}
	thumbs  *thumbCache
	started time.Time
}

// New returns a Server for cfg. Close releases its batch workers.
// A negative MaxWait in a BatcherConfig means no waiting (0 takes the
// default).
func New(cfg Config) (*Server, error) {
	if cfg.Model == nil {
		return nil, errors.New("server: no model")
	}
	cfg.fill()
	s := &Server{
		cfg:     cfg,
		m:       cfg.Model,
		pre:     cfg.Model.PreprocessOptions(),
		mux:     http.NewServeMux(),
		metrics: newMetrics(),
		decode:  make(chan struct{}, cfg.Decoders),
		thumbs:  newThumbCache(512),
		started: time.Now(),
	}
	s.pre.MaxPixels = cfg.MaxPixels
	s.text = NewBatcher(cfg.TextBatch, s.runText)
	s.image = NewBatcher(cfg.ImageBatch, s.runImages)
	s.routes()
	return s, nil
}

// Close stops the batch workers; queued requests fail with 503.
func (s *Server) Close() {
	s.text.Close()
	s.image.Close()
}

// TextStats and ImageStats return the batchers' counters.
func (s *Server) TextStats() BatchStats  { return s.text.Stats() }
func (s *Server) ImageStats() BatchStats { return s.image.Stats() }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) routes() {
	h := s.mux
	h.Handle("POST /v1/embed", s.api("embed", s.handleEmbed))
	h.Handle("POST /v1/classify", s.api("classify", s.handleClassify))
	h.Handle("POST /v1/search", s.api("search", s.handleSearch))
	h.Handle("GET /v1/models", s.api("models", s.handleModels))
	h.Handle("GET /v1/thumb", s.api("thumb", s.handleThumb))
	h.Handle("GET /v1/video/thumb", s.api("video_thumb", s.handleVideoThumb))
	h.Handle("GET /v1/video/file", s.api("video_file", s.handleVideoFile))
	h.Handle("GET /healthz", s.api("healthz", s.handleHealth))
	h.HandleFunc("GET /metrics", s.handleMetrics)
	// Weaviate multi2vec-clip inference container.
	h.Handle("GET /.well-known/live", s.api("live", s.handleNoContent))
	h.Handle("GET /.well-known/ready", s.api("ready", s.handleNoContent))
	h.Handle("GET /meta", s.api("meta", s.handleMeta))
	h.Handle("POST /vectorize", s.api("vectorize", s.handleVectorize))
	// immich machine learning.
	h.Handle("GET /ping", s.api("ping", s.handlePing))
	h.Handle("POST /predict", s.api("predict", s.handlePredict))
	// Web page.
	h.Handle("GET /{$}", s.api("ui", s.handleIndex))
	h.Handle("GET /static/", s.api("static", s.handleStatic))
	h.Handle("/", s.api("notfound", func(w http.ResponseWriter, r *http.Request) error {
		return errorf(http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
}

// api wraps a handler with the body limit, the timeout, panic recovery,
// error rendering and metrics.
func (s *Server) api(name string, fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.metrics.inflight.Add(1)
		rec := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				s.logf("%s %s: panic: %v", r.Method, r.URL.Path, p)
				if rec.status == 0 {
					writeError(rec, errorf(http.StatusInternalServerError, "internal error: %v", p))
				}
			}
			s.metrics.inflight.Add(-1)
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			s.metrics.observe(name, status, time.Since(start))
		}()
		if r.ContentLength > s.cfg.MaxBodyBytes {
			writeError(rec, errorf(http.StatusRequestEntityTooLarge,
				"request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, s.cfg.MaxBodyBytes))
			return
		}
		r.Body = http.MaxBytesReader(rec, r.Body, s.cfg.MaxBodyBytes)
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		err := fn(rec, r)
		if err == nil {
			return
		}
		ae := s.toAPIError(ctx, err)
		if ae.Status >= 500 || s.cfg.Logf != nil {
			s.logf("%s %s: %d %s", r.Method, r.URL.Path, ae.Status, ae.Msg)
		}
		if rec.status == 0 {
			writeError(rec, ae)
		}
	})
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// toAPIError maps any error to a status and message.
func (s *Server) toAPIError(ctx context.Context, err error) *apiError {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, "request body exceeds the limit of %d bytes", mbe.Limit)
	case errors.Is(err, ErrQueueFull):
		return &apiError{Status: http.StatusServiceUnavailable, Msg: err.Error(), RetryAfter: 1}
	case errors.Is(err, ErrClosed):
		return &apiError{Status: http.StatusServiceUnavailable, Msg: err.Error(), RetryAfter: 5}
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return errorf(http.StatusGatewayTimeout, "request timed out after %v", s.cfg.RequestTimeout)
	case errors.Is(err, context.Canceled):
		// The client went away; 499 as nginx logs it (nobody reads it).
		return errorf(499, "request canceled by the client")
	}
	return errorf(http.StatusInternalServerError, "%v", err)
}

// statusWriter records the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Serve serves s on ln until ctx ends, then shuts down gracefully (waiting
// up to 10 s for requests in flight). It sets conservative connection
// timeouts.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.cfg.RequestTimeout + 10*time.Second,
		WriteTimeout:      s.cfg.RequestTimeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	s.Close()
	if err != nil {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	return nil
}
