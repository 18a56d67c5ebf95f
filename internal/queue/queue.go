// Package queue spreads indexing over machines with a NATS JetStream
// work queue. `goclip index --queue nats://…` publishes one job per batch
// of files to the work-queue stream GOCLIP_JOBS; each `goclip worker`
// fetches jobs from the durable pull consumer, embeds the files, upserts
// them into the store backend and only then acknowledges the job. A
// worker killed mid-job never acks it, so JetStream redelivers it after
// the ack wait; the store upsert is keyed by file path and skips files
// whose content hash is already stored, so a redelivered job stores
// nothing twice. Workers report each finished job on the GOCLIP_EVENTS
// stream, from which Status computes a run's progress and failures.
package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/goclip/goclip/internal/backend"
)

// Stream, subject and consumer names.
const (
	JobStream    = "GOCLIP_JOBS"
	EventStream  = "GOCLIP_EVENTS"
	Consumer     = "goclip-workers"
	jobSubject   = "goclip.jobs"
	eventSubject = "goclip.events."
)

// Job is one unit of work: files of one run to embed into one store.
type Job struct {
	ID      string             `json:"id"`
	Run     string             `json:"run"`
	Store   string             `json:"store"`
	ModelID string             `json:"model_id"`
	Files   []backend.FileStat `json:"files"`
}

// Event is what a worker reports after a job: done (acked) or failed
// (given up after MaxDeliver attempts).
type Event struct {
	Job       string   `json:"job"`
	Run       string   `json:"run"`
	Worker    string   `json:"worker"`
	Files     int      `json:"files"`
	Embedded  int      `json:"embedded"`
	Unchanged int      `json:"unchanged"`
	Failed    int      `json:"failed"`
	Failures  []string `json:"failures,omitempty"` // "path: reason" of failed files
	Error     string   `json:"error,omitempty"`    // job given up: why
	Attempt   int      `json:"attempt"`
	Time      int64    `json:"time"`
}

// Options configures the streams.
type Options struct {
	// Replicas of the streams (1 for a single server, 3 for a 3-node
	// cluster; default 1).
	Replicas int
	// AckWait is how long a job may run without an ack or progress
	// heartbeat before it is redelivered (default 60s).
	AckWait time.Duration
	// MaxDeliver is how many times a job is tried (default 5).
	MaxDeliver int
}

func (o *Options) defaults() {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.AckWait <= 0 {
		o.AckWait = 60 * time.Second
	}
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = 5
	}
}

// ParseURL checks a --queue URL: nats://host:port[,host:port…]; the
// options of the streams may be given as ?replicas=N&ackwait=D&maxdeliver=N.
// It returns the server list for nats.Connect and the options.
func ParseURL(s string) (string, Options, error) {
	var o Options
	bad := func(why string) error {
		return fmt.Errorf("queue: --queue %q: %s (want nats://host:port[,host:port…])", s, why)
	}
	base, query, _ := strings.Cut(s, "?")
	if !strings.HasPrefix(base, "nats://") {
		return "", o, bad("not a nats:// URL")
	}
	var servers []string
	for _, h := range strings.Split(strings.TrimPrefix(base, "nats://"), ",") {
		h = strings.TrimSuffix(strings.TrimPrefix(h, "nats://"), "/")
		u, err := url.Parse("nats://" + h)
		if err != nil || u.Host == "" || u.Port() == "" || u.Path != "" {
			return "", o, bad(fmt.Sprintf("bad server %q", h))
		}
		servers = append(servers, "nats://"+u.Host)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", o, bad(err.Error())
	}
	for k, v := range q {
		val := v[len(v)-1]
		switch k {
		case "replicas", "maxdeliver":
			var n int
			if _, err := fmt.Sscanf(val, "%d", &n); err != nil || n < 1 || n > 100 {
				return "", o, bad(fmt.Sprintf("%s=%q", k, val))
			}
			if k == "replicas" {
				o.Replicas = n
			} else {
				o.MaxDeliver = n
			}
		case "ackwait":
			d, err := time.ParseDuration(val)
			if err != nil || d < 100*time.Millisecond {
				return "", o, bad(fmt.Sprintf("ackwait=%q", val))
			}
			o.AckWait = d
		default:
			return "", o, bad(fmt.Sprintf("unknown parameter %q", k))
		}
	}
	return strings.Join(servers, ","), o, nil
}

// Queue is a connection to the JetStream streams.
type Queue struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts Options
	jobs jetstream.Stream
}

// Connect connects to the NATS servers of a --queue URL and creates (or
// updates) the streams and the workers' consumer. An unreachable NATS is
// an error naming the servers, after a bounded number of retries.
func Connect(ctx context.Context, queueURL string) (*Queue, error) {
	servers, opts, err := ParseURL(queueURL)
	if err != nil {
		return nil, err
	}
	return ConnectOpts(ctx, servers, opts)
}

// ConnectOpts is Connect with the server list and options given.
func ConnectOpts(ctx context.Context, servers string, opts Options) (*Queue, error) {
	opts.defaults()
	nc, err := nats.Connect(servers,
		nats.Name("goclip"),
		nats.Timeout(5*time.Second),
		nats.RetryOnFailedConnect(false),
		nats.MaxReconnects(60),
		nats.ReconnectWait(500*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("queue: NATS at %s unreachable: %w", servers, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("queue: JetStream at %s: %w", servers, err)
	}
	q := &Queue{nc: nc, js: js, opts: opts}
	if err := q.setup(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("queue: JetStream at %s: %w", servers, err)
	}
	return q, nil
}

func (q *Queue) setup(ctx context.Context) error {
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		q.jobs, err = q.js.CreateOrUpdateStream(sctx, jetstream.StreamConfig{
			Name: JobStream, Subjects: []string{jobSubject}, Retention: jetstream.WorkQueuePolicy,
			Storage: jetstream.FileStorage, Replicas: q.opts.Replicas, Duplicates: 10 * time.Minute,
		})
		if err == nil {
			_, err = q.js.CreateOrUpdateStream(sctx, jetstream.StreamConfig{
				Name: EventStream, Subjects: []string{eventSubject + ">"}, Retention: jetstream.LimitsPolicy,
				Storage: jetstream.FileStorage, Replicas: q.opts.Replicas, MaxAge: 7 * 24 * time.Hour,
			})
		}
		if err == nil {
			_, err = q.jobs.CreateOrUpdateConsumer(sctx, jetstream.ConsumerConfig{
				Durable: Consumer, AckPolicy: jetstream.AckExplicitPolicy,
				AckWait: q.opts.AckWait, MaxDeliver: q.opts.MaxDeliver, MaxAckPending: 1000,
			})
		}
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		// A cluster still electing its meta leader answers with errors
		// for a few seconds: back off and retry.
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(200*(1<<min(attempt, 4))) * time.Millisecond):
		}
	}
	return err
}

// Close closes the connection.
func (q *Queue) Close() { q.nc.Close() }

// NewRun returns a fresh run id.
func NewRun() string {
	var b [8]byte
	t := time.Now().UnixNano()
	for i := range b {
		b[i] = byte(t >> (8 * i))
	}
	h := sha256.Sum256(b[:])
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(h[:4])
}

// jobID identifies a job by its run and files, so a republished job
// (a retried publish) is dropped by JetStream's duplicate window.
func jobID(run string, files []backend.FileStat) string {
	d := sha256.New()
	d.Write([]byte(run))
	for _, f := range files {
		fmt.Fprintf(d, "\x00%s\x00%d\x00%d", f.Path, f.Size, f.ModTime)
	}
	return hex.EncodeToString(d.Sum(nil)[:16])
}

// PublishSummary is what Publish did.
type PublishSummary struct {
	Run   string
	Jobs  int
	Files int
}

// Publish walks roots and publishes one job per batch files (default 32)
// for storeSpec and modelID under run (NewRun when empty). It records the
// run's totals as a "published" event so Status can tell progress.
func (q *Queue) Publish(ctx context.Context, run, storeSpec, modelID string, roots []string, batch int) (PublishSummary, error) {
	if batch <= 0 {
		batch = 32
	}
	if run == "" {
		run = NewRun()
	}
	sum := PublishSummary{Run: run}
	var pending []backend.FileStat
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		j := Job{Run: run, Store: storeSpec, ModelID: modelID, Files: pending}
		j.ID = jobID(run, pending)
		data, err := json.Marshal(j)
		if err != nil {
			return err
		}
		if err := q.publish(ctx, jobSubject, data, j.ID); err != nil {
			return fmt.Errorf("queue: publishing job %s: %w", j.ID, err)
		}
		sum.Jobs++
		sum.Files += len(pending)
		pending = nil
		return nil
	}
	err := backend.Walk(ctx, roots, func(f backend.FileStat) error {
		pending = append(pending, f)
		if len(pending) >= batch {
			return flush()
		}
		return nil
	}, nil)
	if err == nil {
		err = flush()
	}
	if err != nil {
		return sum, err
	}
	ev := Event{Job: "published", Run: run, Files: sum.Files, Attempt: sum.Jobs, Time: time.Now().UnixNano()}
	data, _ := json.Marshal(ev)
	return sum, q.publish(ctx, eventSubject+run, data, "published-"+run)
}

// publish publishes with a message id, retrying while the cluster has no
// leader (bounded).
func (q *Queue) publish(ctx context.Context, subj string, data []byte, id string) error {
	var err error
	for attempt := 0; attempt < 8; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = q.js.Publish(pctx, subj, data, jetstream.WithMsgID(id))
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(100*(1<<attempt)) * time.Millisecond):
		}
	}
	return err
}

// call runs one JetStream API request with its own timeout, retrying
// (bounded) while the cluster answers with errors or not at all, as it
// does while it elects a leader: a request lost then would otherwise wait
// for the caller's whole deadline.
func call[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	return callTimeout(ctx, 10*time.Second, f)
}

func callTimeout[T any](ctx context.Context, each time.Duration, f func(context.Context) (T, error)) (T, error) {
	var v T
	var err error
	for attempt := 0; attempt < 8; attempt++ {
		actx, cancel := context.WithTimeout(ctx, each)
		v, err = f(actx)
		cancel()
		if err == nil || ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgNotFound) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(each / 50 * time.Duration(1<<min(attempt, 4))): // 0.2 s to 3.2 s
		}
	}
	return v, err
}

// RunStatus is the progress of one run.
type RunStatus struct {
	Run       string   `json:"run"`
	Files     int      `json:"files"` // published
	Jobs      int      `json:"jobs"`  // published
	JobsDone  int      `json:"jobs_done"`
	JobsLost  int      `json:"jobs_failed"` // given up after MaxDeliver
	Embedded  int      `json:"embedded"`
	Unchanged int      `json:"unchanged"`
	Failed    int      `json:"failed"`
	Failures  []string `json:"failures,omitempty"`
	Errors    []string `json:"errors,omitempty"`
}

// Status is the state of the queue and of every run in the events stream.
type Status struct {
	Pending     uint64      `json:"pending"`     // jobs not yet delivered
	InProgress  int         `json:"in_progress"` // delivered, not yet acked
	Redelivered int         `json:"redelivered"`
	Runs        []RunStatus `json:"runs"`
}

// Status reads the consumer's state and replays the events stream.
func (q *Queue) Status(ctx context.Context) (*Status, error) {
	st := &Status{}
	cons, err := call(ctx, func(c context.Context) (jetstream.Consumer, error) { return q.jobs.Consumer(c, Consumer) })
	if err != nil {
		return nil, fmt.Errorf("queue: consumer %s: %w", Consumer, err)
	}
	ci, err := call(ctx, cons.Info)
	if err != nil {
		return nil, fmt.Errorf("queue: consumer %s: %w", Consumer, err)
	}
	st.Pending, st.InProgress, st.Redelivered = ci.NumPending, ci.NumAckPending, ci.NumRedelivered
	es, err := call(ctx, func(c context.Context) (jetstream.Stream, error) { return q.js.Stream(c, EventStream) })
	if err != nil {
		return nil, fmt.Errorf("queue: stream %s: %w", EventStream, err)
	}
	info, err := call(ctx, func(c context.Context) (*jetstream.StreamInfo, error) { return es.Info(c) })
	if err != nil {
		return nil, fmt.Errorf("queue: stream %s: %w", EventStream, err)
	}
	if info.State.Msgs == 0 {
		return st, nil
	}
	runs := map[string]*RunStatus{}
	var order []string
	seen := map[string]bool{}
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := call(ctx, func(c context.Context) (*jetstream.RawStreamMsg, error) { return es.GetMsg(c, seq) })
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("queue: reading %s message %d: %w", EventStream, seq, err)
		}
		var ev Event
		if json.Unmarshal(raw.Data, &ev) != nil || ev.Run == "" {
			continue
		}
		r := runs[ev.Run]
		if r == nil {
			r = &RunStatus{Run: ev.Run}
			runs[ev.Run] = r
			order = append(order, ev.Run)
		}
		switch {
		case ev.Job == "published":
			r.Files, r.Jobs = ev.Files, ev.Attempt
		case seen[ev.Job]: // a redelivered job reported twice
		default:
			seen[ev.Job] = true
			if ev.Error != "" {
				r.JobsLost++
				r.Errors = append(r.Errors, fmt.Sprintf("job %s (%d files): %s", ev.Job, ev.Files, ev.Error))
			} else {
				r.JobsDone++
				r.Embedded += ev.Embedded
				r.Unchanged += ev.Unchanged
				r.Failed += ev.Failed
				r.Failures = append(r.Failures, ev.Failures...)
			}
		}
	}
	for _, id := range order {
		st.Runs = append(st.Runs, *runs[id])
	}
	return st, nil
}
