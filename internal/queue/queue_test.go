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

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/backend"
	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/queue/queuetest"
)

func loadModel(tb testing.TB) (*clip.Model, string) {
	tb.Helper()
	dir := fixtures.Dir(tb)
	man := fixtures.ReadManifest(tb, dir)
	for _, m := range man.Models {
		if slices.Contains(m.Files, "open_clip_model.safetensors") {
			p := filepath.Join(dir, m.Name, "open_clip_model.safetensors")
			model, err := clip.Load(p, clip.WithTokenizer(filepath.Join(dir, "tokenizer")), clip.WithBatchSize(16))
			if err != nil {
				tb.Fatal(err)
			}
			return model, dir
		}
	}
	tb.Skip("no open_clip safetensors model in the fixtures")
	return nil, ""
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in, servers string
		ok          bool
	}{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222", true},
		{"nats://a:1,b:2,c:3?replicas=3&ackwait=2s&maxdeliver=4", "nats://a:1,nats://b:2,nats://c:3", true},
		{"nats://a:1,nats://b:2", "nats://a:1,nats://b:2", true},
		{"http://a:1", "", false},
		{"nats://a", "", false},
		{"nats://a:1?replicas=0", "", false},
		{"nats://a:1?bogus=1", "", false},
		{"nats://a:1/path", "", false},
		{"nats://", "", false},
	} {
		got, _, err := ParseURL(tc.in)
		if (err == nil) != tc.ok || got != tc.servers {
			t.Errorf("ParseURL(%q) = %q, %v; want %q ok=%v", tc.in, got, err, tc.servers, tc.ok)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"nats://127.0.0.1:4222", "nats://a:1,b:2?replicas=3", "nats://x?ackwait=1s", "", "nats://[::1]:4222"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		servers, o, err := ParseURL(s)
		if err == nil && (servers == "" || o.Replicas < 0) {
			t.Fatalf("ParseURL(%q) accepted with servers %q", s, servers)
		}
	})
}

// TestNATSUnreachable: a closed port is a clear, prompt error naming it.
func TestNATSUnreachable(t *testing.T) {
	port := freePorts(t, 1)[0]
	u := fmt.Sprintf("nats://127.0.0.1:%d", port)
	start := time.Now()
	_, err := Connect(context.Background(), u)
	if err == nil || !strings.Contains(err.Error(), "unreachable") || !strings.Contains(err.Error(), fmt.Sprint(port)) {
		t.Fatalf("Connect(%s) = %v; want an 'unreachable' error naming the port", u, err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("Connect took %v", d)
	}
}

// TestDistributedIndex indexes the fixture images and generated images
// through a 3-server JetStream cluster with 3 workers into one store;
// one worker is killed after storing a job but before acking it. Every
// file must end up stored exactly once, the killed job redelivered, and
// Status must account for every file and the broken one.
func TestDistributedIndex(t *testing.T) {
	model, fixDir := loadModel(t)
	n := 300
	if testing.Short() {
		n = 60
	}
	root, paths := queuetest.PhotoTree(t, fixDir, n)
	_, qurl := natsCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	q, err := Connect(ctx, qurl+"?replicas=3&ackwait=2s&maxdeliver=5")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()

	modelID := "test-model"
	st, err := backend.OpenEmbedded(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	counting := &countingBackend{Backend: st, puts: map[string]int{}}

	sum, err := q.Publish(ctx, "", "embedded", modelID, []string{root}, 8)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Files != len(paths) {
		t.Fatalf("published %d files, want %d", sum.Files, len(paths))
	}

	var killed atomic.Bool
	var killedJob string
	var wg sync.WaitGroup
	stats := make([]WorkerStats, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qi, err := Connect(ctx, qurl+"?replicas=3&ackwait=2s&maxdeliver=5")
			if err != nil {
				errs[i] = err
				return
			}
			defer qi.Close()
			o := WorkerOptions{Name: fmt.Sprintf("w%d", i), Model: model, ModelID: modelID, Store: counting, Idle: 6 * time.Second}
			if i == 0 {
				o.beforeAck = func(j *Job) error {
					if killed.CompareAndSwap(false, true) {
						killedJob = j.ID
						return errKilled
					}
					return nil
				}
			}
			stats[i], errs[i] = qi.Work(ctx, o)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && !(i == 0 && errors.Is(err, errKilled)) {
			t.Fatalf("worker %d: %v", i, err)
		}
	}
	if !killed.Load() {
		t.Fatal("the killed worker never got a job")
	}
	t.Logf("worker stats: %+v; killed job %s", stats, killedJob)

	// Every file is stored exactly once (one record per path), embedded
	// except the broken one.
	got, err := st.Lookup(ctx, modelID, paths)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		r, ok := got[p]
		switch {
		case !ok:
			t.Errorf("%s not stored", p)
		case strings.HasSuffix(p, "broken.jpg") != (r.Err != ""):
			t.Errorf("%s: err %q", p, r.Err)
		}
	}
	if c, _ := st.Count(ctx, modelID); c != len(paths)-1 {
		t.Errorf("count %d, want %d", c, len(paths)-1)
	}
	// The killed job's files were written once, then found unchanged on
	// redelivery (the broken file is rewritten as a failure).
	for p, n := range counting.snapshot() {
		if n != 1 && !strings.HasSuffix(p, "broken.jpg") {
			t.Errorf("%s written %d times", p, n)
		}
	}
	status, err := q.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(status.Runs) != 1 {
		t.Fatalf("status runs: %+v", status.Runs)
	}
	r := status.Runs[0]
	t.Logf("status: pending %d in progress %d redelivered %d; run %+v", status.Pending, status.InProgress, status.Redelivered, r)
	if status.Pending != 0 || status.InProgress != 0 {
		t.Errorf("queue not drained: %+v", status)
	}
	if r.Files != len(paths) || r.JobsDone != r.Jobs || r.Embedded+r.Unchanged+r.Failed != len(paths) || r.Failed != 1 || len(r.Failures) != 1 {
		t.Errorf("run status %+v; want %d files all accounted for, 1 failure", r, len(paths))
	}
	if r.Unchanged == 0 {
		t.Errorf("the redelivered job found nothing unchanged: %+v", r)
	}
}

// countingBackend counts writes per path.
type countingBackend struct {
	backend.Backend
	mu   sync.Mutex
	puts map[string]int
}

func (c *countingBackend) Upsert(ctx context.Context, modelID string, recs []backend.Record) error {
	c.mu.Lock()
	for _, r := range recs {
		c.puts[r.Path]++
	}
	c.mu.Unlock()
	return c.Backend.Upsert(ctx, modelID, recs)
}

func (c *countingBackend) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps(c.puts)
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestCallRetriesLostRequest: a request that gets no answer (as during a
// leader election) is retried after its own timeout instead of waiting
// for the caller's whole deadline; a persistent failure ends in bounded
// time with the last error.
func TestCallRetriesLostRequest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	calls := 0
	start := time.Now()
	v, err := callTimeout(ctx, 50*time.Millisecond, func(c context.Context) (int, error) {
		calls++
		if calls == 1 {
			<-c.Done() // lost: no reply
			return 0, c.Err()
		}
		return 7, nil
	})
	if v != 7 || err != nil || calls != 2 {
		t.Fatalf("got %d, %v after %d calls", v, err, calls)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v", d)
	}
	boom := errors.New("boom")
	calls = 0
	_, err = callTimeout(ctx, 50*time.Millisecond, func(context.Context) (int, error) { calls++; return 0, boom })
	if !errors.Is(err, boom) || calls != 8 {
		t.Fatalf("persistent failure: %v after %d calls", err, calls)
	}
}
