package index

import (
	"context"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkANN measures HNSW against brute force on clustered 512-d unit
// vectors (1000 Gaussian centres on the sphere, points and queries =
// normalise(centre + noise)). Sizes come from the environment:
//
//	GOCLIP_ANN_N        corpus size (default 100000)
//	GOCLIP_ANN_QUERIES  queries (default 1000)
//	GOCLIP_ANN_DIM      dimension (default 512)
//	GOCLIP_ANN_EF       efSearch, or a comma-separated list measured on the
//	                    same graph (default 100)
//	GOCLIP_ANN_M        M (default 16)
//	GOCLIP_ANN_EFC      efConstruction (default 200)
//
// It reports build time, recall@10 against the exact Flat answer, and the
// mean/p50/p99 query latency of both (one query at a time).
//
//	go test ./internal/index -run '^$' -bench ANN -benchtime 1x -timeout 60m
func BenchmarkANN(b *testing.B) {
	n := envInt("GOCLIP_ANN_N", 100000)
	nq := envInt("GOCLIP_ANN_QUERIES", 1000)
	dim := envInt("GOCLIP_ANN_DIM", 512)
	efs := envInts("GOCLIP_ANN_EF", []int{100})
	cfg := Config{M: envInt("GOCLIP_ANN_M", 16), EfConstruction: envInt("GOCLIP_ANN_EFC", 200), Seed: 1}
	const k = 10
	t0 := time.Now()
	vecs, qs := dataset(2024, n, nq, dim, 1000)
	b.Logf("generated %d×%d clustered vectors in %v", n, dim, time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	h, err := Build(context.Background(), vecs, dim, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	build := time.Since(t0)
	f, _ := NewFlat(vecs, dim)
	exact := make([][]Hit, nq)
	var lf []time.Duration
	for qi := range nq {
		t := time.Now()
		exact[qi] = f.Search(qs[qi*dim:(qi+1)*dim], k)
		lf = append(lf, time.Since(t))
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	sf := stats(lf)
	b.Logf("n=%d dim=%d M=%d efC=%d GOMAXPROCS=%d: build %v (%.0f vec/s)", n, dim, cfg.M, cfg.EfConstruction,
		runtime.GOMAXPROCS(0), build.Round(time.Millisecond), float64(n)/build.Seconds())
	b.Logf("Flat  latency mean %.3f ms  p50 %.3f ms  p99 %.3f ms", ms(sf[0]), ms(sf[1]), ms(sf[2]))
	b.ResetTimer()
	for range b.N {
		for _, ef := range efs {
			var recall float64
			var lh []time.Duration
			for qi := range nq {
				t := time.Now()
				got := h.Search(qs[qi*dim:(qi+1)*dim], k, ef)
				lh = append(lh, time.Since(t))
				recall += recallAt(got, exact[qi], k)
			}
			recall /= float64(nq)
			sh := stats(lh)
			b.Logf("ef=%d: recall@%d = %.4f over %d queries; HNSW latency mean %.3f ms  p50 %.3f ms  p99 %.3f ms",
				ef, k, recall, nq, ms(sh[0]), ms(sh[1]), ms(sh[2]))
			if ef == efs[len(efs)-1] {
				b.ReportMetric(recall, "recall@10")
				b.ReportMetric(ms(sh[2]), "hnsw-p99-ms")
			}
		}
	}
	b.ReportMetric(build.Seconds(), "build-s") // after ResetTimer, which clears metrics
	b.ReportMetric(ms(sf[2]), "flat-p99-ms")
}

// envInts reads a comma-separated list of positive integers.
func envInts(name string, def []int) []int {
	var out []int
	for _, f := range strings.Split(os.Getenv(name), ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && v > 0 {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return def
	}
	return out
}

// stats returns mean, p50 and p99 of d.
func stats(d []time.Duration) [3]time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, x := range s {
		sum += x
	}
	at := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return [3]time.Duration{sum / time.Duration(len(s)), at(0.5), at(0.99)}
}
