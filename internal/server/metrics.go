package server

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds (seconds) of the request-duration
// histogram.
var latencyBuckets = [...]float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// metrics holds the request counters exported at /metrics.
type metrics struct {
	inflight atomic.Int64
	mu       sync.Mutex
	requests map[reqKey]int64
	latency  map[string]*histogram
}

type reqKey struct {
	handler string
	code    int
}

type histogram struct {
	counts [len(latencyBuckets) + 1]int64
	sum    float64
	n      int64
}

func newMetrics() *metrics {
	return &metrics{requests: map[reqKey]int64{}, latency: map[string]*histogram{}}
}

func (m *metrics) observe(handler string, code int, d time.Duration) {
	sec := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[reqKey{handler, code}]++
	h := m.latency[handler]
	if h == nil {
		h = &histogram{}
		m.latency[handler] = h
	}
	i := len(latencyBuckets)
	for k, ub := range latencyBuckets {
		if sec <= ub {
			i = k
			break
		}
	}
	h.counts[i]++
	h.sum += sec
	h.n++
}

// handleMetrics writes the Prometheus text exposition format (0.0.4).
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	bw := bufio.NewWriter(w)
	s.writeMetrics(bw)
	bw.Flush()
}

func (s *Server) writeMetrics(w io.Writer) {
	m := s.metrics
	m.mu.Lock()
	keys := make([]reqKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b reqKey) int {
		if c := strings.Compare(a.handler, b.handler); c != 0 {
			return c
		}
		return a.code - b.code
	})
	fmt.Fprintln(w, "# HELP goclip_http_requests_total HTTP requests by handler and status code.")
	fmt.Fprintln(w, "# TYPE goclip_http_requests_total counter")
	for _, k := range keys {
		fmt.Fprintf(w, "goclip_http_requests_total{handler=%q,code=\"%d\"} %d\n", k.handler, k.code, m.requests[k])
	}
	names := make([]string, 0, len(m.latency))
	for n := range m.latency {
		names = append(names, n)
	}
	slices.Sort(names)
	fmt.Fprintln(w, "# HELP goclip_http_request_duration_seconds Time to answer a request.")
	fmt.Fprintln(w, "# TYPE goclip_http_request_duration_seconds histogram")
	for _, n := range names {
		h := m.latency[n]
		var cum int64
		for i, ub := range latencyBuckets {
			cum += h.counts[i]
			fmt.Fprintf(w, "goclip_http_request_duration_seconds_bucket{handler=%q,le=%q} %d\n", n, formatFloat(ub), cum)
		}
		fmt.Fprintf(w, "goclip_http_request_duration_seconds_bucket{handler=%q,le=\"+Inf\"} %d\n", n, h.n)
		fmt.Fprintf(w, "goclip_http_request_duration_seconds_sum{handler=%q} %s\n", n, formatFloat(h.sum))
		fmt.Fprintf(w, "goclip_http_request_duration_seconds_count{handler=%q} %d\n", n, h.n)
	}
	m.mu.Unlock()

	fmt.Fprintln(w, "# HELP goclip_http_requests_in_flight Requests being served.")
	fmt.Fprintln(w, "# TYPE goclip_http_requests_in_flight gauge")
	fmt.Fprintf(w, "goclip_http_requests_in_flight %d\n", m.inflight.Load())

	queues := []struct {
		name   string
		stats  BatchStats
		queued int
	}{{"text", s.text.Stats(), s.text.Queued()}, {"image", s.image.Stats(), s.image.Queued()}}
	fmt.Fprintln(w, "# HELP goclip_queue_inputs Inputs waiting to be batched.")
	fmt.Fprintln(w, "# TYPE goclip_queue_inputs gauge")
	for _, q := range queues {
		fmt.Fprintf(w, "goclip_queue_inputs{tower=%q} %d\n", q.name, q.queued)
	}
	fmt.Fprintln(w, "# HELP goclip_queue_rejected_total Requests refused with 503 because the queue was full.")
	fmt.Fprintln(w, "# TYPE goclip_queue_rejected_total counter")
	for _, q := range queues {
		fmt.Fprintf(w, "goclip_queue_rejected_total{tower=%q} %d\n", q.name, q.stats.Rejected)
	}
	fmt.Fprintln(w, "# HELP goclip_batch_size Inputs per model batch.")
	fmt.Fprintln(w, "# TYPE goclip_batch_size histogram")
	for _, q := range queues {
		var cum int64
		for i, ub := range batchBuckets {
			cum += q.stats.SizeCounts[i]
			fmt.Fprintf(w, "goclip_batch_size_bucket{tower=%q,le=\"%d\"} %d\n", q.name, ub, cum)
		}
		fmt.Fprintf(w, "goclip_batch_size_bucket{tower=%q,le=\"+Inf\"} %d\n", q.name, q.stats.Batches)
		fmt.Fprintf(w, "goclip_batch_size_sum{tower=%q} %d\n", q.name, q.stats.Items)
		fmt.Fprintf(w, "goclip_batch_size_count{tower=%q} %d\n", q.name, q.stats.Batches)
	}

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintln(w, "# HELP go_goroutines Number of goroutines.")
	fmt.Fprintln(w, "# TYPE go_goroutines gauge")
	fmt.Fprintf(w, "go_goroutines %d\n", runtime.NumGoroutine())
	fmt.Fprintln(w, "# HELP go_memstats_heap_inuse_bytes Heap bytes in use.")
	fmt.Fprintln(w, "# TYPE go_memstats_heap_inuse_bytes gauge")
	fmt.Fprintf(w, "go_memstats_heap_inuse_bytes %d\n", ms.HeapInuse)
	if rss, ok := residentBytes(); ok {
		fmt.Fprintln(w, "# HELP process_resident_memory_bytes Resident memory size in bytes.")
		fmt.Fprintln(w, "# TYPE process_resident_memory_bytes gauge")
		fmt.Fprintf(w, "process_resident_memory_bytes %d\n", rss)
	}
	fmt.Fprintln(w, "# HELP process_start_time_seconds Start time of the server since the Unix epoch.")
	fmt.Fprintln(w, "# TYPE process_start_time_seconds gauge")
	fmt.Fprintf(w, "process_start_time_seconds %s\n", formatFloat(float64(s.started.UnixNano())/1e9))
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// residentBytes reads the resident set size from /proc (Linux only).
func residentBytes() (int64, bool) {
	kb, ok := procStatusKB("VmRSS:")
	return kb * 1024, ok
}

// procStatusKB reads a "Name:  N kB" line of /proc/self/status.
func procStatusKB(field string) (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
