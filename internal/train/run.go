package train

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/model"
	"github.com/goclip/goclip/internal/tokenizer"
)

// RunConfig describes a training run.
type RunConfig struct {
	Options
	Data Dataset
	// Net is the network to train, the starting point (fresh or
	// pretrained); with Resume it must have the checkpoint's kind and
	// architecture and its weights are replaced. Captions tokenizes the
	// captions for it.
	Net      Network
	Captions TokenizeFunc
	// Model and Tok are shorthands for a CLIP run: when Net is nil, Net is
	// CLIP(Model); when Captions is nil, Captions is BPECaptions(Tok) at
	// the model's context length.
	Model   *model.Model
	Tok     *tokenizer.Tokenizer
	TokPath string // copied into every checkpoint when set
	// Pre is the image preprocessing (default: Net.Preprocessing()).
	Pre      imageproc.Options
	Augment  bool
	Seed     uint64
	Resume   *Saved
	Replicas int // model copies working on shards of each batch (≥1)
	// OutDir receives checkpoints/ and the loss curve; SaveEvery is the
	// checkpoint interval in steps (the last step is always saved); Keep
	// bounds how many step directories are kept (0 = all).
	OutDir    string
	SaveEvery int64
	Keep      int
	// StopAfter, when > 0, ends the run after that many steps of this
	// invocation (as if killed; for tests), without a final checkpoint.
	StopAfter int64
	// Progress is called after every step; may be nil.
	Progress func(l StepLog, samplesPerSec float64)
	Logf     func(format string, a ...any)
}

// Result summarises a finished run.
type Result struct {
	Log           []StepLog
	Checkpoint    string // last step directory written
	Skipped       int    // unreadable images skipped
	Truncated     int    // captions cut to the context length
	SamplesPerSec float64
	Elapsed       time.Duration
}

// Run trains until Options.Steps, checkpointing as it goes. On a
// non-finite loss it stops with an error naming the step; the last good
// checkpoint stays in place.
func Run(ctx context.Context, rc RunConfig) (*Result, error) {
	logf := rc.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	net := rc.Net
	if net == nil && rc.Model != nil {
		net = CLIP(rc.Model)
	}
	captions := rc.Captions
	if captions == nil && rc.Tok != nil && net != nil {
		captions = BPECaptions(rc.Tok, net.ContextLength())
	}
	if net == nil || rc.Data == nil || captions == nil {
		return nil, errors.New("train: Run needs a model, data and a tokenizer")
	}
	rc.EmbedDim = net.EmbedDim()
	if rc.Pre.Size == 0 {
		rc.Pre = net.Preprocessing()
	}
	if rc.Pre.Size != net.ImageSize() {
		return nil, fmt.Errorf("train: preprocessing size %d differs from the model's image size %d", rc.Pre.Size, net.ImageSize())
	}
	st := RunState{Seed: rc.Seed, Replicas: max(rc.Replicas, 1), Arch: net.Arch(), Options: rc.Options}
	if rc.Resume != nil {
		if err := rc.Resume.Check(net); err != nil {
			return nil, err
		}
		prev := rc.Resume.State
		if prev.Replicas != st.Replicas {
			logf("note: the checkpoint was trained with %d replicas, this run uses %d: losses will differ in the last bits", prev.Replicas, st.Replicas)
		}
		st.Step, st.Cursor, st.Skipped, st.Truncated, st.Log, st.Seed = prev.Step, prev.Cursor, prev.Skipped, prev.Truncated, prev.Log, prev.Seed
		if err := net.LoadWeights(rc.Resume.Weights); err != nil {
			return nil, fmt.Errorf("resume: %s: %w", rc.Resume.Dir, err)
		}
	}
	nets, err := replicate(net, st.Replicas)
	if err != nil {
		return nil, err
	}
	tr, err := NewTrainer(rc.Options, nets)
	if err != nil {
		return nil, err
	}
	if rc.Resume != nil {
		if err := rc.Resume.Restore(tr); err != nil {
			return nil, err
		}
		logf("resumed from %s at step %d", rc.Resume.Dir, tr.Step)
	}
	ckDir := filepath.Join(rc.OutDir, "checkpoints")
	if err := os.MkdirAll(ckDir, 0o755); err != nil {
		return nil, err
	}
	loader := &Loader{Data: rc.Data, Captions: captions, Pre: rc.Pre, Augment: rc.Augment, Seed: st.Seed}
	accum := max(rc.AccumFreq, 1)

	// Prefetch the next steps' batches while the current one trains; at
	// most two steps of data are held.
	type item struct {
		micro []*Batch
		cur   Cursor
		err   error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan item, 1)
	go func() {
		defer close(ch)
		cur := st.Cursor
		for s := tr.Step; s < rc.Steps; s++ {
			var it item
			for range accum {
				var b *Batch
				b, cur, it.err = loader.Next(cur, rc.BatchSize)
				if it.err != nil {
					break
				}
				it.micro = append(it.micro, b)
			}
			it.cur = cur
			select {
			case ch <- it:
			case <-ctx.Done():
				return
			}
			if it.err != nil {
				return
			}
		}
	}()

	res := &Result{}
	start := time.Now()
	samples := 0
	lastSaved := ""
	save := func() error {
		d, err := saveCheckpoint(ckDir, tr, func(dir string) error { return net.WriteModel(dir, rc.Pre, false) }, st, rc.TokPath)
		if err != nil {
			return fmt.Errorf("saving checkpoint at step %d: %w", st.Step, err)
		}
		lastSaved = d
		if err := writeLossCSV(filepath.Join(rc.OutDir, "loss.csv"), st.Log); err != nil {
			return err
		}
		return PruneCheckpoints(ckDir, rc.Keep)
	}
	done := int64(0)
	for tr.Step < rc.Steps {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		it, ok := <-ch
		if !ok {
			break
		}
		if it.err != nil {
			return res, fmt.Errorf("step %d: %w", tr.Step, it.err)
		}
		for _, b := range it.micro {
			for _, e := range b.Skipped {
				logf("skipped: %v", e)
			}
			st.Skipped += len(b.Skipped)
			for _, k := range b.Truncated {
				if st.Truncated == 0 {
					logf("note: the caption of %s is longer than %d tokens and was truncated (further truncations are only counted)", k, net.ContextLength())
				}
				st.Truncated++
			}
		}
		res.Skipped, res.Truncated = st.Skipped, st.Truncated
		l, err := tr.TrainStep(it.micro)
		if err != nil {
			msg := "no checkpoint was saved yet"
			if lastSaved != "" {
				msg = "the last good checkpoint is " + lastSaved
			} else if rc.Resume != nil {
				msg = "the last good checkpoint is " + rc.Resume.Dir
			}
			return res, fmt.Errorf("%w; stopping (%s)", err, msg)
		}
		st.Step, st.Cursor = tr.Step, it.cur
		st.Log = append(st.Log, l)
		res.Log = st.Log
		for _, b := range it.micro {
			samples += b.N
		}
		sps := float64(samples) / time.Since(start).Seconds()
		if rc.Progress != nil {
			rc.Progress(l, sps)
		}
		done++
		if rc.StopAfter > 0 && done >= rc.StopAfter {
			break
		}
		if (rc.SaveEvery > 0 && tr.Step%rc.SaveEvery == 0) || tr.Step == rc.Steps {
			if err := save(); err != nil {
				return res, err
			}
		}
	}
	res.Log, res.Checkpoint, res.Skipped, res.Truncated = st.Log, lastSaved, st.Skipped, st.Truncated
	res.Elapsed = time.Since(start)
	if s := res.Elapsed.Seconds(); s > 0 {
		res.SamplesPerSec = float64(samples) / s
	}
	return res, nil
}

func writeLossCSV(path string, log []StepLog) error {
	var b strings.Builder
	b.WriteString("step,loss,lr,logit_scale,grad_norm\n")
	for _, l := range log {
		b.WriteString(strconv.FormatInt(l.Step, 10) + "," + strconv.FormatFloat(l.Loss, 'g', 8, 64) + "," +
			strconv.FormatFloat(l.LR, 'g', 6, 64) + "," + strconv.FormatFloat(l.LogitScale, 'g', 6, 64) + "," +
			strconv.FormatFloat(l.GradNorm, 'g', 6, 64) + "\n")
	}
	return WriteFileAtomic(path, []byte(b.String()))
}

// PeakRSS returns the process's peak resident set size in bytes (VmHWM
// from /proc/self/status), or 0 where unavailable.
func PeakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
