package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/backend"
	"github.com/goclip/goclip/internal/queue"
)

func init() {
	register("worker", "process indexing jobs from a NATS JetStream queue into a store (distributed indexing)", runWorker)
}

func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("worker", stderr)
	var mf modelFlags
	mf.register(fs)
	qurl := fs.String("queue", "", "NATS JetStream queue: nats://host:port[,host:port…][?replicas=N&ackwait=D&maxdeliver=N]")
	storeSpec := fs.String("store", "", "store: an embedded index path, or weaviate://host:httpPort/ClassName?grpc=grpcPort[&replication=N]")
	name := fs.String("name", "", "worker name shown in status (default: host-pid)")
	idle := fs.Duration("idle", 0, "exit after this long without a job (0: run until interrupted)")
	quiet := fs.Bool("quiet", false, "do not log each job")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *qurl == "" {
		return usagef("worker: --queue nats://… is required")
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	modelID, err := backend.ModelID(m)
	if err != nil {
		return err
	}
	st, err := backend.Open(ctx, *storeSpec)
	if err != nil {
		return err
	}
	defer st.Close()
	q, err := queue.Connect(ctx, *qurl)
	if err != nil {
		return err
	}
	defer q.Close()
	o := queue.WorkerOptions{Name: *name, Model: m, ModelID: modelID, Store: st, Idle: *idle}
	if !*quiet {
		o.Logf = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	}
	ws, err := q.Work(ctx, o)
	fmt.Fprintf(stdout, "worker: %d jobs, %d files (%d embedded, %d unchanged, %d failed), %d retried, %d given up\n",
		ws.Jobs, ws.Files, ws.Embedded, ws.Unchanged, ws.Failed, ws.Retried, ws.GivenUp)
	if ctx.Err() != nil {
		return nil // interrupted: unacked jobs are redelivered
	}
	return err
}

// indexModel checks that there are folders to index and loads the model
// and its store id.
func indexModel(mf *modelFlags, roots []string) (*clip.Model, string, error) {
	if len(roots) == 0 {
		return nil, "", usagef("index: no folders to index")
	}
	m, err := mf.load()
	if err != nil {
		return nil, "", err
	}
	id, err := backend.ModelID(m)
	if err != nil {
		return nil, "", err
	}
	return m, id, nil
}

// indexExternal is the hook for `goclip index` with --queue, --status or
// a non-embedded --store (index.go calls it before its embedded path):
//
//	--queue URL --status        print the queue's and every run's state
//	--queue URL roots…          publish one job per batch of files
//	--store weaviate://… roots… index directly into that backend
//
// It reports handled=false when none of these applies.
func indexExternal(ctx context.Context, mf *modelFlags, queueURL, storeSpec string, status, jsonOut bool, batch int, roots []string, stdout, stderr io.Writer) (handled bool, err error) {
	if queueURL == "" && !backend.IsURL(storeSpec) {
		if status {
			return true, usagef("index: --status needs --queue nats://…")
		}
		return false, nil
	}
	if queueURL != "" {
		q, err := queue.Connect(ctx, queueURL)
		if err != nil {
			return true, err
		}
		defer q.Close()
		if status {
			st, err := q.Status(ctx)
			if err != nil {
				return true, err
			}
			return true, printStatus(stdout, st, jsonOut)
		}
		_, modelID, err := indexModel(mf, roots)
		if err != nil {
			return true, err
		}
		sum, err := q.Publish(ctx, "", storeSpec, modelID, roots, batch)
		if err != nil {
			return true, err
		}
		fmt.Fprintf(stdout, "run %s: published %d jobs (%d files); follow with: goclip index --queue %s --status\n", sum.Run, sum.Jobs, sum.Files, queueURL)
		return true, nil
	}
	m, modelID, err := indexModel(mf, roots)
	if err != nil {
		return true, err
	}
	b, err := backend.Open(ctx, storeSpec)
	if err != nil {
		return true, err
	}
	defer b.Close()
	start := time.Now()
	res, err := backend.Index(ctx, b, m, modelID, roots, batch, nil)
	fmt.Fprintf(stdout, "indexed into %s: %d embedded, %d unchanged, %d failed in %s\n", storeSpec, res.Embedded, res.Unchanged, res.Failed, time.Since(start).Round(time.Millisecond))
	for _, f := range res.Failures {
		fmt.Fprintf(stderr, "failed: %s\n", f)
	}
	return true, err
}

func printStatus(w io.Writer, st *queue.Status, jsonOut bool) error {
	if jsonOut {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintf(w, "queue: %d jobs waiting, %d in progress, %d redelivered\n", st.Pending, st.InProgress, st.Redelivered)
	for _, r := range st.Runs {
		fmt.Fprintf(w, "run %s: %d/%d jobs done, %d failed jobs; files: %d published, %d embedded, %d unchanged, %d failed\n",
			r.Run, r.JobsDone, r.Jobs, r.JobsLost, r.Files, r.Embedded, r.Unchanged, r.Failed)
		for _, f := range r.Failures {
			fmt.Fprintf(w, "  failed file: %s\n", f)
		}
		for _, e := range r.Errors {
			fmt.Fprintf(w, "  failed job: %s\n", e)
		}
	}
	return nil
}
