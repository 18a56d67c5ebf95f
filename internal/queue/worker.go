package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/backend"
)

// WorkerOptions configures Work.
type WorkerOptions struct {
	Name    string // reported in events (default "worker")
	Model   *clip.Model
	ModelID string
	Store   backend.Backend
	// Idle, when positive, makes Work return after that long without a
	// job; zero waits for jobs until ctx is done.
	Idle time.Duration
	// Logf, when not nil, is told about each job.
	Logf func(format string, a ...any)
	// beforeAck, for tests, runs after a job is stored and before it is
	// acked; an error makes the worker stop as if killed (no ack, no nak).
	beforeAck func(j *Job) error
}

// WorkerStats counts what Work did.
type WorkerStats struct {
	Jobs, Files, Embedded, Unchanged, Failed, Retried, GivenUp int
}

// errKilled is returned by a test hook to simulate a killed worker.
var errKilled = errors.New("queue: worker killed")

// Work fetches jobs from the workers' consumer and processes them one at
// a time: embed and upsert the job's files, report the result on the
// events stream, then acknowledge the job. A job whose processing fails
// is negatively acknowledged with a delay and retried until MaxDeliver,
// then reported as failed and terminated. While a job runs the worker
// sends progress heartbeats so a slow job is not redelivered.
func (q *Queue) Work(ctx context.Context, o WorkerOptions) (WorkerStats, error) {
	var ws WorkerStats
	if o.Model == nil || o.Store == nil || o.ModelID == "" {
		return ws, errors.New("queue: worker needs Model, ModelID and Store")
	}
	if o.Name == "" {
		o.Name = "worker"
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := o.Store.EnsureModel(ctx, o.ModelID, o.Model.EmbedDim(), o.Model.Path()); err != nil {
		return ws, err
	}
	cons, err := call(ctx, func(c context.Context) (jetstream.Consumer, error) { return q.jobs.Consumer(c, Consumer) })
	if err != nil {
		return ws, fmt.Errorf("queue: consumer %s: %w", Consumer, err)
	}
	lastJob := time.Now()
	for ctx.Err() == nil {
		if o.Idle > 0 && time.Since(lastJob) > o.Idle {
			return ws, nil
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			// The cluster may be electing a leader: wait and retry.
			logf("%s: fetch: %v", o.Name, err)
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		for msg := range batch.Messages() {
			lastJob = time.Now()
			err := q.handle(ctx, msg, &o, &ws, logf)
			lastJob = time.Now() // idle counts from the end of the last job
			if err != nil {
				return ws, err
			}
		}
	}
	return ws, nil
}

func (q *Queue) handle(ctx context.Context, msg jetstream.Msg, o *WorkerOptions, ws *WorkerStats, logf func(string, ...any)) error {
	md, err := msg.Metadata()
	attempt := 1
	if err == nil {
		attempt = int(md.NumDelivered)
	}
	var j Job
	if err := json.Unmarshal(msg.Data(), &j); err != nil || j.ID == "" {
		q.report(ctx, Event{Job: fmt.Sprintf("bad-%d", md.Sequence.Stream), Run: "unknown", Worker: o.Name, Error: fmt.Sprintf("undecodable job: %v", err)})
		return msg.Term()
	}
	if j.ModelID != "" && j.ModelID != o.ModelID {
		// Another worker (with the right model) may take it.
		logf("%s: job %s is for model %s, this worker runs %s", o.Name, j.ID, j.ModelID, o.ModelID)
		return msg.NakWithDelay(2 * time.Second)
	}
	// Heartbeats keep a long job from being redelivered.
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	go func() {
		t := time.NewTicker(q.opts.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	res, err := backend.IndexFiles(ctx, o.Store, o.Model, o.ModelID, j.Files)
	stopHB()
	if ctx.Err() != nil {
		return nil // shutting down: the job is redelivered
	}
	if err != nil {
		if attempt >= q.opts.MaxDeliver {
			ws.GivenUp++
			logf("%s: job %s given up after %d attempts: %v", o.Name, j.ID, attempt, err)
			q.report(ctx, Event{Job: j.ID, Run: j.Run, Worker: o.Name, Files: len(j.Files), Error: err.Error(), Attempt: attempt})
			return msg.Term()
		}
		ws.Retried++
		logf("%s: job %s attempt %d failed, retrying: %v", o.Name, j.ID, attempt, err)
		return msg.NakWithDelay(time.Duration(attempt) * time.Second)
	}
	if o.beforeAck != nil {
		if err := o.beforeAck(&j); err != nil {
			return err
		}
	}
	q.report(ctx, Event{Job: j.ID, Run: j.Run, Worker: o.Name, Files: len(j.Files), Embedded: res.Embedded,
		Unchanged: res.Unchanged, Failed: res.Failed, Failures: res.Failures, Attempt: attempt})
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil {
		// Not acked: it will be redelivered and found unchanged.
		logf("%s: ack of job %s: %v", o.Name, j.ID, err)
	}
	ws.Jobs++
	ws.Files += len(j.Files)
	ws.Embedded += res.Embedded
	ws.Unchanged += res.Unchanged
	ws.Failed += res.Failed
	logf("%s: job %s: %d files, %d embedded, %d unchanged, %d failed", o.Name, j.ID, len(j.Files), res.Embedded, res.Unchanged, res.Failed)
	return nil
}

func (q *Queue) report(ctx context.Context, ev Event) {
	ev.Time = time.Now().UnixNano()
	data, _ := json.Marshal(ev)
	id := fmt.Sprintf("ev-%s-%t", ev.Job, ev.Error != "")
	_ = q.publish(ctx, eventSubject+ev.Run, data, id)
}
