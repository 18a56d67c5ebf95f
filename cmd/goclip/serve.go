package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"time"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/server"
)

func init() {
	register("serve", "serve the HTTP API, the Weaviate/immich-compatible endpoints and the web page", runServe)
}

// openStore opens the index given with --db for searching. It is set by
// the file that wires in goclip's embedded store; while it is nil, --db is
// refused.
var openStore func(path string, m *clip.Model) (server.Searcher, io.Closer, error)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	var mf modelFlags
	mf.register(fs)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	db := fs.String("db", "", "index to search (/v1/search and the web page)")
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
	if *db != "" && openStore == nil {
		return usagef("--db is not available in this build (no store is wired in)")
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
	if *db != "" {
		searcher, closer, err := openStore(*db, m)
		if err != nil {
			return err
		}
		defer closer.Close()
		cfg.Searcher = searcher
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
