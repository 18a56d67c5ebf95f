package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrQueueFull is returned by Batcher.Do when accepting the inputs would
// exceed the queue bound; the HTTP layer answers 503 with Retry-After.
var ErrQueueFull = errors.New("server busy: the inference queue is full")

// ErrClosed is returned by Batcher.Do after Close.
var ErrClosed = errors.New("server is shutting down")

// BatcherConfig sets how a Batcher merges requests.
type BatcherConfig struct {
	// MaxBatch is the most inputs run together (whole requests are never
	// split, so one request larger than MaxBatch runs as its own batch).
	MaxBatch int
	// MaxWait is how long the first queued input waits for others to
	// join its batch before it runs anyway.
	MaxWait time.Duration
	// MaxQueue bounds the inputs waiting to run; Do fails with
	// ErrQueueFull beyond it (one request larger than MaxQueue is taken
	// only when nothing else waits).
	MaxQueue int
	// Workers is the number of batches run at once.
	Workers int
}

// Batcher merges the inputs of concurrent Do calls into batches for run
// (dynamic batching): a batch starts when MaxBatch inputs are waiting or
// the oldest has waited MaxWait.
type Batcher[I, O any] struct {
	cfg BatcherConfig
	run func(ctx context.Context, in []I) ([]O, error)

	mu     sync.Mutex
	queue  []*job[I, O]
	queued int // inputs in queue
	closed bool
	wake   chan struct{}
	stop   chan struct{}
	wg     sync.WaitGroup

	// Counters (read with Stats).
	batches, items, rejected, canceled atomic.Int64
	sizeHist                           [len(batchBuckets) + 1]atomic.Int64
}

type job[I, O any] struct {
	ctx      context.Context
	in       []I
	out      []O
	err      error
	enqueued time.Time
	done     chan struct{}
}

// batchBuckets are the upper bounds of the batch-size histogram.
var batchBuckets = [...]int{1, 2, 4, 8, 16, 32, 64, 128, 256}

// NewBatcher starts cfg.Workers goroutines that call run on merged inputs.
// run must return one output per input, in order. Close stops them.
func NewBatcher[I, O any](cfg BatcherConfig, run func(ctx context.Context, in []I) ([]O, error)) *Batcher[I, O] {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 1024
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	b := &Batcher[I, O]{cfg: cfg, run: run, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	for range cfg.Workers {
		b.wg.Add(1)
		go b.worker()
	}
	return b
}

// Do queues in, waits for its batch to run and returns the outputs. It
// returns ErrQueueFull at once when the queue has no room, and ctx's error
// when ctx ends first (the inputs are then dropped if not yet running).
func (b *Batcher[I, O]) Do(ctx context.Context, in []I) ([]O, error) {
	if len(in) == 0 {
		return nil, nil
	}
	j := &job[I, O]{ctx: ctx, in: in, enqueued: time.Now(), done: make(chan struct{})}
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return nil, ErrClosed
	case b.queued > 0 && b.queued+len(in) > b.cfg.MaxQueue:
		// (A request larger than the whole queue is still taken when the
		// queue is empty, so that it cannot be refused forever.)
		b.mu.Unlock()
		b.rejected.Add(1)
		return nil, fmt.Errorf("%w (%d inputs waiting, limit %d)", ErrQueueFull, b.queued, b.cfg.MaxQueue)
	}
	b.queue = append(b.queue, j)
	b.queued += len(in)
	b.mu.Unlock()
	b.signal()
	select {
	case <-j.done:
		return j.out, j.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Queued returns the number of inputs waiting to run.
func (b *Batcher[I, O]) Queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.queued
}

// BatchStats are a Batcher's counters since it started.
type BatchStats struct {
	Batches, Items, Rejected, Canceled int64
	// SizeCounts[i] counts batches of at most BatchBuckets[i] inputs; the
	// last entry counts larger ones.
	SizeCounts []int64
}

// BatchBuckets returns the upper bounds used by BatchStats.SizeCounts.
func BatchBuckets() []int { return batchBuckets[:] }

// Stats returns the counters.
func (b *Batcher[I, O]) Stats() BatchStats {
	s := BatchStats{Batches: b.batches.Load(), Items: b.items.Load(), Rejected: b.rejected.Load(), Canceled: b.canceled.Load()}
	for i := range b.sizeHist {
		s.SizeCounts = append(s.SizeCounts, b.sizeHist[i].Load())
	}
	return s
}

// Close stops the workers after failing every queued call with ErrClosed.
func (b *Batcher[I, O]) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	q := b.queue
	b.queue, b.queued = nil, 0
	b.mu.Unlock()
	close(b.stop)
	for _, j := range q {
		j.err = ErrClosed
		close(j.done)
	}
	b.wg.Wait()
}

func (b *Batcher[I, O]) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// worker waits for queued work, lets a batch fill for up to MaxWait, then
// runs it.
func (b *Batcher[I, O]) worker() {
	defer b.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		b.mu.Lock()
		for len(b.queue) == 0 {
			b.mu.Unlock()
			select {
			case <-b.stop:
				return
			case <-b.wake:
			}
			b.mu.Lock()
		}
		// Let the batch fill until MaxBatch inputs or the oldest input's
		// MaxWait is up.
		for b.queued < b.cfg.MaxBatch && len(b.queue) > 0 {
			left := b.cfg.MaxWait - time.Since(b.queue[0].enqueued)
			if left <= 0 {
				break
			}
			b.mu.Unlock()
			timer.Reset(left)
			select {
			case <-b.stop:
				timer.Stop()
				return
			case <-b.wake:
				timer.Stop() // Go 1.23 timers: no stale value after Stop
			case <-timer.C:
			}
			b.mu.Lock()
		}
		batch := b.take()
		more := len(b.queue) > 0
		b.mu.Unlock()
		if more {
			b.signal() // another worker may start on the rest
		}
		if len(batch) > 0 {
			b.runBatch(batch)
		}
	}
}

// take removes whole jobs from the queue front, up to MaxBatch inputs
// (at least one job), skipping jobs whose callers have gone. b.mu is held.
func (b *Batcher[I, O]) take() []*job[I, O] {
	var batch []*job[I, O]
	n, i := 0, 0
	for ; i < len(b.queue); i++ {
		j := b.queue[i]
		if j.ctx.Err() != nil {
			b.queued -= len(j.in)
			b.canceled.Add(1)
			j.err = j.ctx.Err()
			close(j.done)
			continue
		}
		if n > 0 && n+len(j.in) > b.cfg.MaxBatch {
			break
		}
		batch = append(batch, j)
		n += len(j.in)
		b.queued -= len(j.in)
	}
	rest := copy(b.queue, b.queue[i:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	return batch
}

// runBatch runs the merged inputs of batch and hands each job its outputs.
func (b *Batcher[I, O]) runBatch(batch []*job[I, O]) {
	var in []I
	if len(batch) == 1 {
		in = batch[0].in
	} else {
		for _, j := range batch {
			in = append(in, j.in...)
		}
	}
	// The batch runs under a context that ends only when every caller's
	// has: one caller giving up must not fail the others.
	ctx, cancel := mergedContext(batch)
	out, err := b.safeRun(ctx, in)
	cancel()
	if err == nil && len(out) != len(in) {
		err = fmt.Errorf("internal error: batch of %d inputs gave %d outputs", len(in), len(out))
	}
	b.batches.Add(1)
	b.items.Add(int64(len(in)))
	k := len(batchBuckets)
	for i, ub := range batchBuckets {
		if len(in) <= ub {
			k = i
			break
		}
	}
	b.sizeHist[k].Add(1)
	off := 0
	for _, j := range batch {
		if err != nil {
			j.err = err
		} else {
			j.out = out[off : off+len(j.in) : off+len(j.in)]
		}
		off += len(j.in)
		close(j.done)
	}
}

func (b *Batcher[I, O]) safeRun(ctx context.Context, in []I) (out []O, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error: inference panicked: %v", p)
		}
	}()
	return b.run(ctx, in)
}

// mergedContext returns a context that is done when all the jobs' contexts
// are done.
func mergedContext[I, O any](batch []*job[I, O]) (context.Context, context.CancelFunc) {
	if len(batch) == 1 {
		return context.WithCancel(batch[0].ctx)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var left atomic.Int64
	left.Store(int64(len(batch)))
	stops := make([]func() bool, 0, len(batch))
	for _, j := range batch {
		stops = append(stops, context.AfterFunc(j.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		}))
	}
	return ctx, func() {
		for _, s := range stops {
			s()
		}
		cancel()
	}
}
