package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loadResult is what one load run measured.
type loadResult struct {
	mode                string
	requests, rejected  int64 // rejected: deliberate 503s
	errors              int64
	firstErr            string
	elapsed             time.Duration
	p50, p99            time.Duration
	peakRSS             int64 // bytes, sampled during the run
	textBatch, imgBatch float64
}

func (r loadResult) throughput() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r loadResult) String() string {
	return fmt.Sprintf("%-10s %6d requests in %v = %7.1f req/s, p50 %v, p99 %v, %d deliberate 503s, %d errors, peak RSS %d MiB, mean batch text %.1f / image %.1f",
		r.mode, r.requests, r.elapsed.Round(time.Millisecond), r.throughput(), r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond),
		r.rejected, r.errors, r.peakRSS>>20, r.textBatch, r.imgBatch)
}

// loadDuration is the time each load run lasts: short by default,
// $GOCLIP_LOAD_DURATION (a Go duration such as 30s) when set.
func loadDuration(tb testing.TB, def time.Duration) time.Duration {
	if v := os.Getenv("GOCLIP_LOAD_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			tb.Fatalf("$GOCLIP_LOAD_DURATION=%q: want a positive Go duration such as 30s", v)
		}
		return d
	}
	return def
}

// runLoad starts a server with batching cfg and has clients concurrent
// clients send a fixed mix of embed and search requests to it over
// 127.0.0.1 for d.
func runLoad(tb testing.TB, mode string, cfg BatcherConfig, clients int, d time.Duration) loadResult {
	s, ts := newTestServer(tb, func(c *Config) {
		c.TextBatch, c.ImageBatch = cfg, cfg
	})
	_, dir := testModel(tb)
	idx := testIndex(tb)
	// Small images keep the per-request decoding cheap: the model is what
	// is being measured. Take the fixture images with the fewest bytes.
	imgs := slices.Clone(idx.paths)
	slices.SortFunc(imgs, func(a, b string) int { return int(fileSize(a) - fileSize(b)) })
	imgs = imgs[:min(3, len(imgs))]
	_ = dir
	type reqSpec struct{ path, body string }
	var mix []reqSpec
	add := func(path string, v any) {
		b, _ := json.Marshal(v)
		mix = append(mix, reqSpec{path, string(b)})
	}
	texts := []string{"a photo of a cat", "a red square on a white background", "stripes", "a diagram of a neural network", "noise"}
	for i, t := range texts { // 40% text embeds, 30% text searches
		add("/v1/embed", EmbedRequest{Texts: texts[i : i+1]})
		add("/v1/embed", EmbedRequest{Texts: []string{t, texts[(i+1)%len(texts)]}})
		add("/v1/search", map[string]any{"text": t, "top": 5})
	}
	for _, p := range imgs { // image embeds and searches
		add("/v1/embed", EmbedRequest{Images: []string{b64File(tb, p)}})
		add("/v1/search", map[string]any{"image": b64File(tb, p), "top": 5})
	}

	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}

	var peak atomic.Int64
	stopSample := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, ok := residentBytes(); ok && rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-stopSample:
				return
			case <-tick.C:
			}
		}
	}()

	var mu sync.Mutex
	var lat []time.Duration
	var res loadResult
	res.mode = mode
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			var n, rej, errs int64
			var firstErr string
			for k := c; time.Now().Before(deadline); k++ {
				spec := mix[k%len(mix)]
				t0 := time.Now()
				r, err := client.Post(ts.URL+spec.path, "application/json", bytes.NewReader([]byte(spec.body)))
				if err != nil {
					errs++
					firstErr = cmpStr(firstErr, err.Error())
					continue
				}
				body, err := io.ReadAll(r.Body)
				r.Body.Close()
				switch {
				case err != nil:
					errs++
					firstErr = cmpStr(firstErr, err.Error())
				case r.StatusCode == http.StatusServiceUnavailable && r.Header.Get("Retry-After") != "":
					rej++
					time.Sleep(10 * time.Millisecond)
				case r.StatusCode != 200:
					errs++
					firstErr = cmpStr(firstErr, fmt.Sprintf("%s: %d %s", spec.path, r.StatusCode, body))
				default:
					n++
					mine = append(mine, time.Since(t0))
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			res.requests += n
			res.rejected += rej
			res.errors += errs
			res.firstErr = cmpStr(res.firstErr, firstErr)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	close(stopSample)
	<-sampled
	res.peakRSS = peak.Load()
	slices.Sort(lat)
	if len(lat) > 0 {
		res.p50 = lat[len(lat)/2]
		res.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	ts2, is := s.TextStats(), s.ImageStats()
	if ts2.Batches > 0 {
		res.textBatch = float64(ts2.Items) / float64(ts2.Batches)
	}
	if is.Batches > 0 {
		res.imgBatch = float64(is.Items) / float64(is.Batches)
	}
	return res
}

func cmpStr(old, s string) string {
	if old != "" {
		return old
	}
	return s
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 1 << 62
	}
	return st.Size()
}

// loadModes are the two configurations compared in one run: dynamic
// batching as goclip serve runs by default, and one input per model pass.
var loadModes = []struct {
	name string
	cfg  BatcherConfig
}{
	{"batched", BatcherConfig{MaxBatch: DefaultMaxBatch, MaxWait: DefaultMaxWait, MaxQueue: DefaultMaxQueue}},
	{"batch=1", BatcherConfig{MaxBatch: 1, MaxWait: -1, MaxQueue: DefaultMaxQueue}},
}

// maxLoadRSS bounds the resident memory during the load runs.
const maxLoadRSS = 2 << 30

func checkLoad(tb testing.TB, results []loadResult) {
	tb.Helper()
	for _, r := range results {
		tb.Log(r)
		if r.errors > 0 {
			tb.Errorf("%s: %d errors other than deliberate 503s; first: %s", r.mode, r.errors, r.firstErr)
		}
		if r.requests == 0 {
			tb.Errorf("%s: no request succeeded", r.mode)
		}
		if r.peakRSS > maxLoadRSS {
			tb.Errorf("%s: peak RSS %d MiB exceeds %d MiB", r.mode, r.peakRSS>>20, maxLoadRSS>>20)
		}
	}
	if len(results) == 2 {
		speedup := results[0].throughput() / results[1].throughput()
		tb.Logf("dynamic batching: %.2fx the throughput of batch size 1", speedup)
		if speedup <= 1 {
			tb.Errorf("dynamic batching (%.1f req/s) is not faster than batch size 1 (%.1f req/s)", results[0].throughput(), results[1].throughput())
		}
	}
}

// TestLoad: 200 concurrent clients, mixed embed/search traffic, batched vs
// batch size 1 in the same run. 2 s per mode by default;
// GOCLIP_LOAD_DURATION=30s for the long run.
func TestLoad(t *testing.T) {
	if raceEnabled {
		t.Skip("throughput test skipped under -race (instrumented model kernels are far slower); run go test without -race")
	}
	d := loadDuration(t, 2*time.Second)
	if testing.Short() && os.Getenv("GOCLIP_LOAD_DURATION") == "" {
		d = time.Second
	}
	var results []loadResult
	for _, m := range loadModes {
		results = append(results, runLoad(t, m.name, m.cfg, 200, d))
	}
	checkLoad(t, results)
}

// BenchmarkServeLoad is TestLoad as a benchmark (5 s per mode by default),
// reporting throughput, latency and peak RSS as metrics:
//
//	go test -run '^$' -bench ServeLoad -benchtime 1x ./internal/server
func BenchmarkServeLoad(b *testing.B) {
	d := loadDuration(b, 5*time.Second)
	var results []loadResult
	for _, m := range loadModes {
		results = append(results, runLoad(b, m.name, m.cfg, 200, d))
	}
	checkLoad(b, results)
	r := results[0]
	b.ReportMetric(r.throughput(), "req/s")
	b.ReportMetric(float64(r.p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(r.p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(results[1].throughput(), "batch1-req/s")
	b.ReportMetric(r.throughput()/results[1].throughput(), "speedup")
	b.ReportMetric(float64(max(results[0].peakRSS, results[1].peakRSS)>>20), "peak-RSS-MiB")
}
