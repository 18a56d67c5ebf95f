package queue

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goclip/goclip/internal/backend"
	"github.com/goclip/goclip/internal/queue/queuetest"
)

// flakyBackend fails EnsureModel and Upsert while down is set, as an
// unreachable store does.
type flakyBackend struct {
	backend.Backend
	down     atomic.Bool
	failures atomic.Int32
	mu       sync.Mutex
	puts     map[string]int
}

var errDown = errors.New("store unreachable: connection refused")

func (f *flakyBackend) EnsureModel(ctx context.Context, id string, dim int, src string) error {
	if f.down.Load() {
		f.failures.Add(1)
		return errDown
	}
	return f.Backend.EnsureModel(ctx, id, dim, src)
}

func (f *flakyBackend) Lookup(ctx context.Context, id string, paths []string) (map[string]backend.Record, error) {
	if f.down.Load() {
		f.failures.Add(1)
		return nil, errDown
	}
	return f.Backend.Lookup(ctx, id, paths)
}

func (f *flakyBackend) Upsert(ctx context.Context, id string, recs []backend.Record) error {
	if f.down.Load() {
		f.failures.Add(1)
		return errDown
	}
	f.mu.Lock()
	for _, r := range recs {
		f.puts[r.Path]++
	}
	f.mu.Unlock()
	return f.Backend.Upsert(ctx, id, recs)
}

// TestStoreUnreachable: a store that cannot be reached when workers
// start, and again while they run, loses no job: a worker refuses to
// start (clear error), and jobs whose writes fail are retried (nak with
// backoff) until the store answers; every file ends up stored once.
func TestStoreUnreachable(t *testing.T) {
	model, fixDir := loadModel(t)
	root, paths := queuetest.PhotoTree(t, fixDir, 40)
	_, qurl := natsCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	q, err := Connect(ctx, qurl+"?ackwait=2s&maxdeliver=20")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()

	// A real weaviate:// store on a closed port: a clear error, after
	// the retries, naming the address.
	// (The Weaviate backend is not built on 32-bit platforms.)
	dead := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	if !slices.Contains(backend.Schemes(), "weaviate") {
		t.Log("no weaviate:// backend in this build (32-bit): its unreachable-store check is not run")
	} else if _, err := backend.Open(ctx, "weaviate://"+dead+"/Images?grpc=1&retries=2&backoff=20ms"); err == nil ||
		!strings.Contains(err.Error(), dead) || !strings.Contains(err.Error(), "after 2 retries") {
		t.Fatalf("opening an unreachable Weaviate: %v", err)
	}

	emb, err := backend.OpenEmbedded(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	st := &flakyBackend{Backend: emb, puts: map[string]int{}}
	st.down.Store(true)
	sum, err := q.Publish(ctx, "", "flaky", "m", []string{root}, 8)
	if err != nil {
		t.Fatal(err)
	}
	// Down at start: the worker stops with the store's error, taking
	// nothing from the queue.
	_, err = q.Work(ctx, WorkerOptions{Name: "w", Model: model, ModelID: "m", Store: st, Idle: time.Second})
	if !errors.Is(err, errDown) {
		t.Fatalf("worker with an unreachable store: %v", err)
	}
	// The consumer's pending count can trail the publish acks for a
	// moment: wait (bounded) for every job to show as pending, none in
	// progress.
	var status *Status
	for deadline := time.Now().Add(10 * time.Second); ; {
		if status, err = q.Status(ctx); err != nil {
			t.Fatal(err)
		}
		if (status.Pending == uint64(sum.Jobs) && status.InProgress == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status.Pending != uint64(sum.Jobs) || status.InProgress != 0 {
		t.Fatalf("after a failed start: %d jobs pending and %d in progress, want %d and 0", status.Pending, status.InProgress, sum.Jobs)
	}
	// Up, then down for a while mid-run: jobs fail and are retried.
	st.down.Store(false)
	var once sync.Once
	o := WorkerOptions{Name: "w", Model: model, ModelID: "m", Store: st, Idle: 4 * time.Second}
	o.beforeAck = func(*Job) error {
		once.Do(func() {
			st.down.Store(true)
			time.AfterFunc(1500*time.Millisecond, func() { st.down.Store(false) })
		})
		return nil
	}
	ws, err := q.Work(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if ws.Retried == 0 || st.failures.Load() < 2 {
		t.Fatalf("no job was retried while the store was down: %+v, %d failures", ws, st.failures.Load())
	}
	got, err := emb.Lookup(ctx, "m", paths)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if _, ok := got[p]; !ok {
			t.Errorf("%s lost", p)
		}
		if n := st.puts[p]; n != 1 && !strings.HasSuffix(p, "broken.jpg") {
			t.Errorf("%s written %d times", p, n)
		}
	}
	status, err = q.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := status.Runs[len(status.Runs)-1]; status.Pending != 0 || r.JobsDone != r.Jobs || r.JobsLost != 0 {
		t.Fatalf("run incomplete: %+v %+v", status, r)
	}
	t.Logf("worker: %+v; %d store failures retried", ws, st.failures.Load())
}
