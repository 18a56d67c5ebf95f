//go:build !386 && !arm && !mips && !mipsle

package weaviate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goclip/goclip/internal/backend"
)

// TestWeaviateScale measures, on this machine, what deploy/README.md
// reports: import rate, query latency and recall@10 against exact search
// for GOCLIP_WEAVIATE_N real-shaped vectors (clustered, 512-d,
// normalised) on 1 node and on 3 nodes, and the nodes' memory. It runs
// only when GOCLIP_WEAVIATE_N is set (100000 takes a few minutes):
//
//	GOCLIP_WEAVIATE_N=100000 go test -run TestWeaviateScale -v -timeout 30m ./internal/weaviate
//
// GOCLIP_WEAVIATE_SCALE lists the configurations as nodes x replication
// (default "1x1,3x1"); GOCLIP_WEAVIATE_EF the ef values to measure
// (default "64,128,256"), all with maxConnections 32, efConstruction 128.
func TestWeaviateScale(t *testing.T) {
	n := envInt("GOCLIP_WEAVIATE_N", 0)
	if n == 0 {
		t.Skip("measurement: set GOCLIP_WEAVIATE_N (e.g. 100000) to run it")
	}
	weaviateBin(t)
	const dim, k, nq = 512, 10, 200
	r := rand.New(rand.NewPCG(7, 11))
	// Topics of about 1000 vectors.
	all := clusteredVecs(r, n+nq, dim, max(10, n/1000), 1)
	vecs, queries := all[:n], all[n:]
	start := time.Now()
	truth := make([]map[int]bool, nq)
	kth := make([]float32, nq)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < nq; i += 2 {
				top, s := exactTop(vecs, queries[i], k)
				truth[i], kth[i] = map[int]bool{}, s
				for _, j := range top {
					truth[i][j] = true
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d clustered %d-d vectors; exact top-%d of %d queries in %v", n, dim, k, nq, time.Since(start).Round(time.Millisecond))

	configs := strings.Split(envStr("GOCLIP_WEAVIATE_SCALE", "1x1,3x1"), ",")
	efs := strings.Split(envStr("GOCLIP_WEAVIATE_EF", "64,128,256"), ",")
	var table []string
	for _, cfg := range configs {
		var nodesN, repl int
		if _, err := fmt.Sscanf(cfg, "%dx%d", &nodesN, &repl); err != nil || nodesN < 1 || repl < 1 || repl > nodesN {
			t.Fatalf("GOCLIP_WEAVIATE_SCALE entry %q: want NODESxREPLICATION", cfg)
		}
		t.Run(cfg, func(t *testing.T) {
			rows := scaleOne(t, nodesN, repl, vecs, queries, truth, kth, efs)
			table = append(table, rows...)
		})
	}
	t.Logf("\n| nodes × replication | import (vectors/s) | ef | recall@10 | p50 | p99 | QPS (4 clients) | RSS per 1M vectors |\n|---|---:|---:|---:|---:|---:|---:|---:|\n%s", strings.Join(table, "\n"))
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func rssBytes(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func scaleOne(t *testing.T, nodesN, repl int, vecs, queries [][]float32, truth []map[int]bool, kth []float32, efs []string) []string {
	nodes := startCluster(t, nodesN)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	var rss0 int64
	for _, nd := range nodes {
		rss0 += rssBytes(nd.cmd.Process.Pid)
	}
	opts := fmt.Sprintf("&replication=%d&efConstruction=128&maxConnections=32&ef=64&consistency=ONE&timeout=120s", repl)
	s := openStore(t, ctx, nodes[0], "Scale", opts)
	if err := s.EnsureModel(ctx, "scale", len(vecs[0]), "scale test"); err != nil {
		t.Fatal(err)
	}
	path := func(i int) string { return fmt.Sprintf("/v/%07d", i) }
	// Two importers (one per core), batches of 500 by gRPC.
	start := time.Now()
	const batch = 500
	next := make(chan int)
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lo := range next {
				recs := make([]backend.Record, 0, batch)
				for i := lo; i < min(lo+batch, len(vecs)); i++ {
					recs = append(recs, backend.Record{Path: path(i), Embedding: vecs[i]})
				}
				if err := s.Upsert(ctx, "scale", recs); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for lo := 0; lo < len(vecs); lo += batch {
		select {
		case next <- lo:
		case err := <-errs:
			t.Fatal(err)
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	imp := time.Since(start)
	rate := float64(len(vecs)) / imp.Seconds()
	var rss int64
	for _, nd := range nodes {
		rss += rssBytes(nd.cmd.Process.Pid)
	}
	perM := float64(rss-rss0) / float64(len(vecs)) * 1e6 / (1 << 30)
	t.Logf("%d nodes, replication %d: imported %d vectors in %v (%.0f vectors/s); nodes' RSS %.0f MiB → %.0f MiB (%.2f GiB per million vectors, all copies)",
		nodesN, repl, len(vecs), imp.Round(time.Millisecond), rate, float64(rss0)/(1<<20), float64(rss)/(1<<20), perM)
	if c, err := s.Count(ctx, "scale"); err != nil || c != len(vecs) {
		t.Fatalf("count %d, %v; want %d", c, err, len(vecs))
	}
	var rows []string
	for _, efs := range efs {
		ef, err := strconv.Atoi(efs)
		if err != nil {
			t.Fatalf("GOCLIP_WEAVIATE_EF entry %q", efs)
		}
		setEf(t, ctx, s, ef)
		// Sequential queries: latency; then 4 concurrent clients: QPS.
		lat := make([]time.Duration, len(queries))
		hit := 0
		for i, q := range queries {
			t0 := time.Now()
			res, err := s.Search(ctx, "scale", q, 10)
			lat[i] = time.Since(t0)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range res {
				var j int
				fmt.Sscanf(h.Path, "/v/%d", &j)
				if truth[i][j] || h.Score >= kth[i]-1e-6 {
					hit++
				}
			}
		}
		recall := float64(hit) / float64(10*len(queries))
		sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
		p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
		t0 := time.Now()
		var qwg sync.WaitGroup
		for c := range 4 {
			qwg.Add(1)
			go func() {
				defer qwg.Done()
				for i := c; i < len(queries); i += 4 {
					if _, err := s.Search(ctx, "scale", queries[i], 10); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		qwg.Wait()
		qps := float64(len(queries)) / time.Since(t0).Seconds()
		t.Logf("%d nodes, replication %d, ef %d, maxConnections 32: recall@10 %.3f, p50 %v, p99 %v, %.0f QPS with 4 clients",
			nodesN, repl, ef, recall, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), qps)
		rows = append(rows, fmt.Sprintf("| %d × %d | %.0f | %d | %.3f | %.1f ms | %.1f ms | %.0f | %.2f GiB |",
			nodesN, repl, rate, ef, recall, float64(p50.Microseconds())/1000, float64(p99.Microseconds())/1000, qps, perM))
	}
	return rows
}

// setEf changes the query-time ef of the store's class (ef is mutable).
func setEf(t *testing.T, ctx context.Context, s *Store, ef int) {
	t.Helper()
	cls, err := s.client.Schema().ClassGetter().WithClassName(s.cfg.Class).Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vic, _ := cls.VectorIndexConfig.(map[string]any)
	if vic == nil {
		t.Fatalf("class %s has no vectorIndexConfig: %#v", s.cfg.Class, cls.VectorIndexConfig)
	}
	vic["ef"] = ef
	cls.VectorIndexConfig = vic
	if err := s.client.Schema().ClassUpdater().WithClass(cls).Do(ctx); err != nil {
		t.Fatalf("setting ef=%d: %v", ef, err)
	}
	// The update reaches every node through raft; wait until node-local
	// reads see it.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		got, err := s.client.Schema().ClassGetter().WithClassName(s.cfg.Class).Do(ctx)
		if err == nil {
			if m, ok := got.VectorIndexConfig.(map[string]any); ok && fmt.Sprint(m["ef"]) == fmt.Sprint(ef) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("ef=%d not applied after 10s", ef)
}
