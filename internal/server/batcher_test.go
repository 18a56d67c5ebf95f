package server

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBatcherConcurrent hammers a Batcher from many goroutines (run it
// with -race): every caller gets exactly its own outputs, batches merge
// callers and stay within MaxBatch unless one request alone is larger.
func TestBatcherConcurrent(t *testing.T) {
	for _, workers := range []int{1, 3} {
		const maxBatch = 16
		var mu sync.Mutex
		var sizes []int
		b := NewBatcher(BatcherConfig{MaxBatch: maxBatch, MaxWait: 2 * time.Millisecond, MaxQueue: 1 << 20, Workers: workers},
			func(ctx context.Context, in []int) ([]int, error) {
				mu.Lock()
				sizes = append(sizes, len(in))
				mu.Unlock()
				time.Sleep(200 * time.Microsecond) // a model pass
				out := make([]int, len(in))
				for i, v := range in {
					out[i] = v * 2
				}
				return out, nil
			})
		var wg sync.WaitGroup
		var fails atomic.Int64
		for g := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(g), 1))
				for k := range 20 {
					n := 1 + r.IntN(5)
					if k == 7 && g%16 == 0 {
						n = maxBatch + 3 // larger than a batch: runs alone
					}
					in := make([]int, n)
					for i := range in {
						in[i] = g*1_000_000 + k*1000 + i
					}
					out, err := b.Do(context.Background(), in)
					if err != nil || len(out) != n {
						t.Errorf("Do: %d outputs, %v", len(out), err)
						fails.Add(1)
						return
					}
					for i := range in {
						if out[i] != in[i]*2 {
							t.Errorf("caller %d got output %d for input %d", g, out[i], in[i])
							fails.Add(1)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		b.Close()
		st := b.Stats()
		biggest := 0
		for _, s := range sizes {
			if s > maxBatch && s != maxBatch+3 {
				t.Errorf("workers=%d: batch of %d inputs exceeds MaxBatch %d", workers, s, maxBatch)
			}
			biggest = max(biggest, s)
		}
		if st.Batches != int64(len(sizes)) || st.Batches >= 64*20 {
			t.Errorf("workers=%d: %d batches for %d requests: nothing was merged", workers, st.Batches, 64*20)
		}
		var hist int64
		for _, c := range st.SizeCounts {
			hist += c
		}
		if hist != st.Batches {
			t.Errorf("histogram counts %d batches, want %d", hist, st.Batches)
		}
		t.Logf("workers=%d: %d requests in %d batches (largest %d, mean %.1f inputs)", workers, 64*20, st.Batches, biggest, float64(st.Items)/float64(st.Batches))
	}
}

// blockingBatcher returns a Batcher whose run waits for release.
func blockingBatcher(cfg BatcherConfig) (*Batcher[int, int], chan struct{}, chan int) {
	release := make(chan struct{})
	started := make(chan int, 100)
	b := NewBatcher(cfg, func(ctx context.Context, in []int) ([]int, error) {
		started <- len(in)
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return in, nil
	})
	return b, release, started
}

func TestBatcherQueueFull(t *testing.T) {
	b, release, started := blockingBatcher(BatcherConfig{MaxBatch: 1, MaxWait: -1, MaxQueue: 3})
	defer b.Close()
	errc := make(chan error, 10)
	go func() { _, err := b.Do(context.Background(), []int{1}); errc <- err }()
	<-started // the worker holds the first input; the queue is empty
	for range 3 {
		go func() { _, err := b.Do(context.Background(), []int{2}); errc <- err }()
	}
	waitFor(t, func() bool { return b.Queued() == 3 })
	if _, err := b.Do(context.Background(), []int{3}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Do on a full queue: %v, want ErrQueueFull", err)
	}
	if st := b.Stats(); st.Rejected != 1 {
		t.Errorf("Rejected = %d", st.Rejected)
	}
	close(release)
	for range 4 {
		if err := <-errc; err != nil {
			t.Errorf("queued call: %v", err)
		}
	}
}

func TestBatcherCancel(t *testing.T) {
	b, release, started := blockingBatcher(BatcherConfig{MaxBatch: 1, MaxWait: -1, MaxQueue: 10})
	defer b.Close()
	done := make(chan error, 1)
	go func() { _, err := b.Do(context.Background(), []int{1}); done <- err }()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() { _, err := b.Do(ctx, []int{2}); gone <- err }()
	waitFor(t, func() bool { return b.Queued() == 1 })
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled call: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("first call: %v", err)
	}
	// The canceled input is dropped, not run.
	waitFor(t, func() bool { return b.Queued() == 0 && b.Stats().Canceled == 1 })
	if st := b.Stats(); st.Items != 1 {
		t.Errorf("%d inputs ran, want 1 (the canceled one is skipped)", st.Items)
	}
}

// TestBatcherOneCallerGivesUp checks that a batch keeps running for the
// callers still waiting when one of them cancels.
func TestBatcherOneCallerGivesUp(t *testing.T) {
	release := make(chan struct{})
	b := NewBatcher(BatcherConfig{MaxBatch: 8, MaxWait: 50 * time.Millisecond, MaxQueue: 10},
		func(ctx context.Context, in []int) ([]int, error) {
			<-release
			return in, ctx.Err()
		})
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	e1, e2 := make(chan error, 1), make(chan error, 1)
	go func() { _, err := b.Do(ctx, []int{1}); e1 <- err }()
	go func() { _, err := b.Do(context.Background(), []int{2}); e2 <- err }()
	waitFor(t, func() bool { return b.Queued() == 0 }) // both taken into one batch
	cancel()
	if err := <-e1; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled caller: %v", err)
	}
	close(release)
	if err := <-e2; err != nil {
		t.Errorf("other caller in the same batch failed: %v", err)
	}
}

func TestBatcherErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(context.Context, []int) ([]int, error)
	}{
		{"panic", func(context.Context, []int) ([]int, error) { panic("boom") }},
		{"short output", func(_ context.Context, in []int) ([]int, error) { return in[1:], nil }},
		{"error", func(context.Context, []int) ([]int, error) { return nil, errors.New("model failed") }},
	} {
		b := NewBatcher(BatcherConfig{MaxBatch: 4}, tc.run)
		if _, err := b.Do(context.Background(), []int{1, 2}); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
		// The worker survives.
		if _, err := b.Do(context.Background(), []int{1, 2}); err == nil {
			t.Errorf("%s: no error on the second call", tc.name)
		}
		b.Close()
	}
}

func TestBatcherClose(t *testing.T) {
	b, release, started := blockingBatcher(BatcherConfig{MaxBatch: 1, MaxWait: -1, MaxQueue: 10})
	first := make(chan error, 1)
	go func() { _, err := b.Do(context.Background(), []int{1}); first <- err }()
	<-started
	queued := make(chan error, 1)
	go func() { _, err := b.Do(context.Background(), []int{2}); queued <- err }()
	waitFor(t, func() bool { return b.Queued() == 1 })
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	if err := <-queued; !errors.Is(err, ErrClosed) {
		t.Errorf("queued call after Close: %v", err)
	}
	if _, err := b.Do(context.Background(), []int{3}); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close: %v", err)
	}
	// Close waits for the running batch, which still completes.
	select {
	case <-closed:
		t.Error("Close returned while a batch was running")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	<-closed
	if err := <-first; err != nil {
		t.Errorf("running call: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBatcherOversizeRequest: a request larger than the queue runs when
// nothing else waits, and is refused while the queue holds work.
func TestBatcherOversizeRequest(t *testing.T) {
	b, release, started := blockingBatcher(BatcherConfig{MaxBatch: 2, MaxWait: -1, MaxQueue: 2})
	defer b.Close()
	done := make(chan error, 2)
	go func() { _, err := b.Do(context.Background(), []int{1, 2, 3, 4, 5}); done <- err }()
	if n := <-started; n != 5 {
		t.Fatalf("oversize request ran as a batch of %d", n)
	}
	go func() { _, err := b.Do(context.Background(), []int{6}); done <- err }()
	waitFor(t, func() bool { return b.Queued() == 1 })
	if _, err := b.Do(context.Background(), []int{7, 8, 9}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("oversize request with a non-empty queue: %v, want ErrQueueFull", err)
	}
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
