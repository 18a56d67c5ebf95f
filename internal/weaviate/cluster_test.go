//go:build !386 && !arm && !mips && !mipsle

package weaviate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goclip/goclip/internal/backend"
	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/kernels"
	"github.com/goclip/goclip/internal/queue"
	"github.com/goclip/goclip/internal/queue/queuetest"
)

// TestCluster runs on a 3-node loopback Weaviate cluster with
// replication factor 2 and an embedded 3-server NATS JetStream cluster:
//
//   - vectors: gRPC batch import of random vectors, idempotent upsert,
//     the dimension refusal, recall@10 of nearVector against exact search;
//   - queue: the fixture images and GOCLIP_WEAVIATE_IMAGES (default 2000)
//     generated images indexed through the queue by 3 workers; one worker
//     is killed after storing a job and before acking it, one Weaviate
//     node is killed (SIGKILL) mid-run; the run must complete with every
//     file present exactly once;
//   - then searches through the surviving nodes answer, for both classes,
//     and match exact search and the embedded store on the same data up
//     to the approximate index's recall.
func TestCluster(t *testing.T) {
	start := time.Now()
	nodes := startCluster(t, 3)
	t.Logf("3 Weaviate nodes ready in %v", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	vecCheck := clusterVectors(t, ctx, nodes)
	imgCheck := func() {}
	if _, ok := fixtures.Lookup(); ok {
		imgCheck = clusterQueue(t, ctx, nodes) // kills node 2 mid-run
	} else {
		t.Log("reference fixtures not found ($GOCLIP_FIXTURES): the queue run with the fixture model is skipped")
		nodes[2].kill()
	}

	// Node 2 is dead: the surviving replicas answer.
	vecCheck()
	imgCheck()
	t.Logf("TestCluster wall time %v", time.Since(start).Round(time.Millisecond))
}

// clusterVectors imports random vectors into GoclipTest and returns the
// checks to repeat after a node has died.
func clusterVectors(t *testing.T, ctx context.Context, nodes []*node) func() {
	const dim, n = 64, 3000
	b := openStore(t, ctx, nodes[0], "GoclipTest", "&replication=2&ef=256&maxConnections=32&consistency=QUORUM")
	if err := b.EnsureModel(ctx, "m1", dim, "test"); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	vecs := randVecs(r, n, dim)
	path := func(i int) string { return fmt.Sprintf("/img/%05d.jpg", i) }
	start := time.Now()
	for lo := 0; lo < n; lo += 200 {
		var recs []backend.Record
		for i := lo; i < min(lo+200, n); i++ {
			recs = append(recs, backend.Record{Path: path(i), Size: int64(i), Embedding: vecs[i]})
		}
		if err := b.Upsert(ctx, "m1", recs); err != nil {
			t.Fatal(err)
		}
	}
	d := time.Since(start)
	t.Logf("vectors: imported %d %d-d vectors in %v (%.0f/s; 3 nodes, replication 2, QUORUM)", n, dim, d.Round(time.Millisecond), float64(n)/d.Seconds())
	// Idempotent: the same path again leaves n objects.
	if err := b.Upsert(ctx, "m1", []backend.Record{{Path: path(0), Embedding: vecs[0]}}); err != nil {
		t.Fatal(err)
	}
	if c, err := b.Count(ctx, "m1"); err != nil || c != n {
		t.Fatalf("count %d, %v; want %d", c, err, n)
	}
	// A model of another dimension is refused, naming both.
	b2 := openStore(t, ctx, nodes[1], "GoclipTest", "")
	if err := b2.EnsureModel(ctx, "m1", 32, "test"); !errors.Is(err, backend.ErrDimension) || !strings.Contains(err.Error(), "64-d") || !strings.Contains(err.Error(), "32-d") {
		t.Fatalf("dimension mismatch: %v", err)
	}
	recall := func(b backend.Backend) float64 {
		hit, tot := 0, 0
		for qi := range 50 {
			q := vecs[(qi*37)%n]
			top, _ := exactTop(vecs, q, 10)
			want := map[string]bool{}
			for _, i := range top {
				want[path(i)] = true
			}
			res, err := b.Search(ctx, "m1", q, 10)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range res {
				if want[h.Path] {
					hit++
				}
			}
			tot += 10
		}
		return float64(hit) / float64(tot)
	}
	rc := recall(b)
	t.Logf("vectors: recall@10 vs exact (ef=256, maxConnections=32, %d random %d-d): %.3f", n, dim, rc)
	if rc < 0.95 {
		t.Errorf("recall@10 %.3f < 0.95", rc)
	}
	return func() {
		bOne := openStore(t, ctx, nodes[1], "GoclipTest", "&consistency=ONE")
		rc := recall(bOne)
		t.Logf("vectors, node2 dead: recall@10 %.3f through node1", rc)
		if rc < 0.95 {
			t.Errorf("after a node died: recall@10 %.3f", rc)
		}
		if c, err := bOne.Count(ctx, "m1"); err != nil || c != n {
			t.Errorf("after a node died: count %d, %v; want %d", c, err, n)
		}
	}
}

// recorder is a backend that remembers the last embedding upserted per
// path and counts files written, calling onUpsert after each write.
type recorder struct {
	backend.Backend
	mu       *sync.Mutex
	vecs     map[string][]float32
	files    *atomic.Int64
	onUpsert func(n int64)
}

func (r *recorder) Upsert(ctx context.Context, modelID string, recs []backend.Record) error {
	if err := r.Backend.Upsert(ctx, modelID, recs); err != nil {
		return err
	}
	r.mu.Lock()
	for _, rec := range recs {
		r.vecs[rec.Path] = rec.Embedding
	}
	r.mu.Unlock()
	n := r.files.Add(int64(len(recs)))
	if r.onUpsert != nil {
		r.onUpsert(n)
	}
	return nil
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}

// clusterQueue indexes images through the queue into GoclipImages while a
// worker and node 2 are killed, and returns the search checks to repeat.
func clusterQueue(t *testing.T, ctx context.Context, nodes []*node) func() {
	model, fixDir := testModel(t)
	nGen := envInt("GOCLIP_WEAVIATE_IMAGES", 2000)
	root, paths := queuetest.PhotoTree(t, fixDir, nGen)
	_, qurl := queuetest.NATSCluster(t, 3)
	qurl += "?replicas=3&ackwait=3s&maxdeliver=8"
	modelID, err := backend.ModelID(model)
	if err != nil {
		t.Fatal(err)
	}
	// Writes at consistency ONE: with replication 2, QUORUM is both
	// replicas, which a dead node would block.
	storeOpts := "&replication=2&ef=256&maxConnections=32&consistency=ONE&retries=8&backoff=250ms&timeout=5s"
	storeURL := func(i int) string { return nodes[i%2].url("GoclipImages", storeOpts) }

	pub, err := queue.Connect(ctx, qurl)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sum, err := pub.Publish(ctx, "", storeURL(0), modelID, []string{root}, 16)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Files != len(paths) {
		t.Fatalf("published %d files, want %d", sum.Files, len(paths))
	}
	t.Logf("queue: published %d jobs, %d files", sum.Jobs, sum.Files)

	var (
		mu        sync.Mutex
		vecs      = map[string][]float32{}
		files     atomic.Int64
		killOnce  sync.Once
		killedAt  atomic.Int64
		killedJob atomic.Bool
	)
	killNode := func(n int64) {
		if n >= int64(len(paths)/3) {
			killOnce.Do(func() {
				killedAt.Store(n)
				go func() {
					nodes[2].kill()
					t.Logf("queue: SIGKILLed Weaviate node2 (pid %d) after %d of %d files were stored", nodes[2].cmd.Process.Pid, n, len(paths))
				}()
			})
		}
	}
	start := time.Now()
	// The workers stop when the run is complete (or after a minute
	// without jobs, should it never be).
	runCtx, runDone := context.WithCancel(ctx)
	defer runDone()
	var doneAt atomic.Int64
	go func() {
		for runCtx.Err() == nil {
			time.Sleep(250 * time.Millisecond)
			st, err := pub.Status(runCtx)
			if err == nil && len(st.Runs) == 1 && st.Runs[0].Jobs > 0 && st.Runs[0].JobsDone+st.Runs[0].JobsLost == st.Runs[0].Jobs {
				doneAt.Store(int64(time.Since(start)))
				runDone()
			}
		}
	}()
	var wg sync.WaitGroup
	stats := make([]queue.WorkerStats, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wctx, wcancel := context.WithCancel(runCtx)
		st, err := backend.Open(ctx, storeURL(i))
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{Backend: st, mu: &mu, vecs: vecs, files: &files, onUpsert: killNode}
		if i == 0 {
			// Worker 0 dies right after storing its second job, before
			// the ack: the job is redelivered to another worker.
			var writes atomic.Int32
			rec.onUpsert = func(n int64) {
				killNode(n)
				if writes.Add(1) == 2 {
					killedJob.Store(true)
					wcancel()
				}
			}
		}
		q, err := queue.Connect(ctx, qurl)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer wcancel()
			defer q.Close()
			o := queue.WorkerOptions{Name: fmt.Sprintf("w%d", i), Model: model, ModelID: modelID, Store: rec, Idle: time.Minute,
				Logf: func(f string, a ...any) { t.Logf(time.Now().Format("15:04:05.000 ")+f, a...) }}
			stats[i], errs[i] = q.Work(wctx, o)
		}()
	}
	wg.Wait()
	d := time.Duration(doneAt.Load())
	if d == 0 {
		t.Fatalf("the workers stopped before the run was complete (stats %+v, errors %v)", stats, errs)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
	}
	t.Logf("queue: run complete in %v (%.0f images/s end to end); stats %+v", d.Round(time.Millisecond), float64(len(paths))/d.Seconds(), stats)
	if !killedJob.Load() {
		t.Fatal("worker 0 was never killed")
	}
	if k := killedAt.Load(); k == 0 || k >= int64(len(paths)) {
		t.Fatalf("node2 was killed after %d of %d files: not mid-run", k, len(paths))
	}

	// The run is complete.
	status, err := pub.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(status.Runs) != 1 {
		t.Fatalf("status runs: %+v", status.Runs)
	}
	r := status.Runs[0]
	t.Logf("queue: status pending %d, in progress %d, redelivered %d; run %+v", status.Pending, status.InProgress, status.Redelivered, r)
	if status.Pending != 0 || status.InProgress != 0 || r.JobsDone != r.Jobs || r.Files != len(paths) ||
		r.Embedded+r.Unchanged+r.Failed != len(paths) || r.Failed != 1 || r.JobsLost != 0 {
		t.Errorf("run incomplete: %+v", r)
	}
	if r.Unchanged == 0 {
		t.Errorf("the killed worker's job was not redelivered and found already stored: %+v", r)
	}

	// Every file is present exactly once, through a surviving node.
	b := openStore(t, ctx, nodes[1], "GoclipImages", "&consistency=ONE")
	all, err := b.Paths(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, p := range all {
		seen[p]++
	}
	for _, p := range paths {
		if seen[p] != 1 {
			t.Errorf("%s stored %d times", p, seen[p])
		}
	}
	if len(all) != len(paths) {
		t.Errorf("class holds %d objects for %d files", len(all), len(paths))
	}
	got, err := b.Lookup(ctx, modelID, paths)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if rec, ok := got[p]; !ok || strings.HasSuffix(p, "broken.jpg") != (rec.Err != "") {
			t.Errorf("%s: lookup %+v, %v", p, rec, ok)
		}
	}
	if c, err := b.Count(ctx, modelID); err != nil || c != len(paths)-1 {
		t.Errorf("count %d, %v; want %d", c, err, len(paths)-1)
	}

	// The same data in the embedded store, and the exact answer.
	emb, err := backend.OpenEmbedded(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emb.Close() })
	if err := emb.EnsureModel(ctx, modelID, model.EmbedDim(), "test"); err != nil {
		t.Fatal(err)
	}
	var exact [][]float32
	var recs []backend.Record
	for p, v := range vecs {
		if v != nil {
			exact = append(exact, kernels.Normalized(v))
			recs = append(recs, backend.Record{Path: p, Embedding: v})
		}
	}
	if err := emb.Upsert(ctx, modelID, recs); err != nil {
		t.Fatal(err)
	}
	queries, err := model.EncodeTexts(ctx, fixtures.Texts(t, fixDir)[:min(20, len(fixtures.Texts(t, fixDir)))])
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(exact); i += max(1, len(exact)/20) {
		queries = append(queries, exact[i])
	}
	return func() {
		// Node 2 is dead by now (the queue run killed it).
		bOne := openStore(t, ctx, nodes[0], "GoclipImages", "&consistency=ONE")
		const k = 10
		hitW, hitE, tot := 0, 0, 0
		for _, q := range queries {
			qn := kernels.Normalized(q)
			_, kth := exactTop(exact, qn, k)
			for _, c := range []struct {
				b   backend.Backend
				hit *int
			}{{bOne, &hitW}, {emb, &hitE}} {
				res, err := c.b.Search(ctx, modelID, q, k)
				if err != nil {
					t.Fatal(err)
				}
				if len(res) != k {
					t.Fatalf("search answered %d hits, want %d", len(res), k)
				}
				// A hit is right when it scores at least the exact k-th
				// best (ties among near-identical images are many).
				for _, h := range res {
					if h.Score >= kth-1e-4 {
						*c.hit++
					}
				}
			}
			tot += k
		}
		rw, re := float64(hitW)/float64(tot), float64(hitE)/float64(tot)
		t.Logf("images, node2 dead: recall@10 vs exact: Weaviate %.3f, embedded store %.3f (%d query vectors)", rw, re, len(queries))
		if rw < 0.9 || re < 0.9 {
			t.Errorf("recall@10: Weaviate %.3f, embedded %.3f; want ≥ 0.9 both", rw, re)
		}

		// goclip search's own path (backend.SearchQuery: text and image
		// queries embedded by the model) on both backends, against the
		// embedded store's exhaustive search.
		if err := backend.CheckModel(ctx, bOne, modelID, model.EmbedDim()); err != nil {
			t.Fatalf("CheckModel on the surviving nodes: %v", err)
		}
		var qs []backend.Query
		for _, txt := range fixtures.Texts(t, fixDir) {
			q := backend.Query{Text: txt, Top: k}
			// Texts the query syntax reads as operators are not queries.
			if _, err := backend.QueryVector(ctx, model, q); err == nil && len(qs) < 10 {
				qs = append(qs, q)
			}
		}
		for i := range 5 {
			qs = append(qs, backend.Query{Images: []string{fixtures.ImageFile(t, fixDir, i)}, Top: k})
		}
		agree, total := 0, 0
		for _, q := range qs {
			exactQ := q
			exactQ.Exact = true
			want, err := backend.SearchQuery(ctx, emb, model, modelID, exactQ)
			if err != nil {
				t.Fatal(err)
			}
			kth := want[len(want)-1].Score
			for _, b := range []backend.Backend{bOne, emb} {
				got, err := backend.SearchQuery(ctx, b, model, modelID, q)
				if err != nil {
					t.Fatalf("%s: %+v: %v", backend.Describe(b), q, err)
				}
				for _, h := range got {
					if h.Score >= kth-1e-4 {
						agree++
					}
				}
				total += len(want)
			}
		}
		t.Logf("SearchQuery (%d text and image queries) on Weaviate and the embedded store vs exact: %.3f of the top-%d agree", len(qs), float64(agree)/float64(total), k)
		if float64(agree) < 0.9*float64(total) {
			t.Errorf("SearchQuery: only %d of %d results agree with exact search", agree, total)
		}
	}
}
