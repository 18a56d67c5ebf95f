// Package train trains and fine-tunes CLIP models: open_clip's recipe
// (AdamW, cosine schedule with warm-up, gradient clipping, logit-scale
// clamp, gradient accumulation with cached features), data loading from
// CSV lists and WebDataset shards, deterministic data parallelism over
// model replicas, and checkpoints that resume bit for bit.
package train

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/kernels"
	"github.com/goclip/goclip/internal/model"
)

// Net is the model being trained; *model.Model implements it.
type Net interface {
	Params() []*model.Param
	ZeroGrad()
	AfterUpdate()
	EncodeImage(out, pixels []float32, batch int, trace model.Tracer)
	EncodeText(out []float32, tokens [][]int32, trace model.Tracer) error
	EncodeImageTrain(pixels []float32, batch int) ([]float32, func([]float32) []float32, error)
	EncodeTextTrain(tokens [][]int32) ([]float32, func([]float32), error)
	AddLogitScaleGrad(dScale float32)
}

// Options are the training hyper-parameters.
type Options struct {
	// BatchSize is the number of samples of one forward/backward pass
	// (open_clip's --batch-size); AccumFreq micro-batches make one step
	// (--accum-freq), so a step sees BatchSize·AccumFreq samples and the
	// loss is computed over all of them.
	BatchSize, AccumFreq int
	Steps                int64   // total optimiser steps
	LR                   float64 // peak learning rate
	Warmup               int64   // linear warm-up steps
	AdamW                AdamWConfig
	GradClip             float64 // max global gradient norm; 0 = off
	// LockImage and LockText freeze a tower (LiT): its parameters are not
	// updated and its backward pass is skipped.
	LockImage, LockText bool
	EmbedDim            int
}

// StepLog records one optimiser step.
type StepLog struct {
	Step       int64   `json:"step"`
	Loss       float64 `json:"loss"`
	LR         float64 `json:"lr"`
	LogitScale float64 `json:"logit_scale"` // exp'd
	GradNorm   float64 `json:"grad_norm"`
}

// Trainer runs optimiser steps on replicas of one model. Nets[0] is the
// master whose weights the optimiser updates; the others are copies that
// process their share of every micro-batch in parallel and whose
// gradients are summed into the master's in replica order, so the result
// depends on the number of replicas but never on scheduling.
type Trainer struct {
	Opt  Options
	Nets []Net
	// Optim updates the trainable parameters of Nets[0].
	Optim *AdamW
	// Step is the number of steps done.
	Step int64

	trainable [][]*model.Param // per replica, aligned with Optim.Params
	imgLocked bool
}

// NewTrainer prepares training of nets (replicas holding identical
// weights; at least one).
func NewTrainer(opt Options, nets []Net) (*Trainer, error) {
	if len(nets) == 0 {
		return nil, errors.New("train: no model")
	}
	if opt.BatchSize <= 0 {
		return nil, fmt.Errorf("train: batch size %d must be positive", opt.BatchSize)
	}
	if opt.AccumFreq <= 0 {
		opt.AccumFreq = 1
	}
	if opt.LockImage && opt.LockText {
		return nil, errors.New("train: both towers are locked: nothing but logit_scale would train")
	}
	if len(nets) > opt.BatchSize {
		nets = nets[:opt.BatchSize]
	}
	t := &Trainer{Opt: opt, Nets: nets}
	master := nets[0].Params()
	if !slices.ContainsFunc(master, func(p *model.Param) bool { return p.Name == "logit_scale" }) {
		return nil, errors.New("train: the model has no trainable logit_scale parameter")
	}
	for ri, n := range nets {
		ps := n.Params()
		if len(ps) != len(master) {
			return nil, fmt.Errorf("train: replica %d has %d parameters, the master %d", ri, len(ps), len(master))
		}
		var tr []*model.Param
		for i, p := range ps {
			if p.Name != master[i].Name || len(p.Value) != len(master[i].Value) {
				return nil, fmt.Errorf("train: replica %d parameter %d is %s, the master's %s", ri, i, p.Name, master[i].Name)
			}
			if t.locked(p.Name) {
				continue
			}
			tr = append(tr, p)
		}
		t.trainable = append(t.trainable, tr)
	}
	t.Optim = NewAdamW(opt.AdamW, t.trainable[0])
	return t, nil
}

// IsImageParam reports whether a reference parameter name belongs to the
// image tower.
func IsImageParam(name string) bool { return strings.HasPrefix(name, "visual.") }

func (t *Trainer) locked(name string) bool {
	if name == "logit_scale" {
		return false
	}
	if IsImageParam(name) {
		return t.Opt.LockImage
	}
	return t.Opt.LockText
}

// Schedule returns the learning-rate schedule of the run.
func (t *Trainer) Schedule() Schedule {
	return Schedule{Base: t.Opt.LR, Warmup: t.Opt.Warmup, Total: t.Opt.Steps}
}

// features holds one micro-batch's features.
type features struct{ img, txt []float32 }

// TrainStep runs one optimiser step over the micro-batches (AccumFreq of
// them, usually) and returns its log. When AccumFreq > 1 it follows
// open_clip's --accum-freq: the features of every micro-batch are first
// computed without gradients and cached; then each micro-batch is run
// again with gradients, its features replace its cached rows, and the
// loss over the whole accumulated batch is backpropagated through that
// micro-batch only. The sum of those gradients is the exact gradient of
// the large-batch loss (d/d logit_scale is taken once: open_clip adds it
// AccumFreq times). A non-finite loss or gradient returns an error naming
// the step and leaves the weights untouched.
func (t *Trainer) TrainStep(micro []*Batch) (StepLog, error) {
	step := t.Step
	loss, scale, err := t.Grad(micro)
	log := StepLog{Step: step, Loss: loss, LR: t.Schedule().LR(step), LogitScale: float64(scale)}
	if err != nil {
		return log, fmt.Errorf("step %d: %w", step, err)
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return log, fmt.Errorf("step %d: loss is %v", step, loss)
	}
	if err := checkFinite(t.trainable[0]); err != nil {
		return log, fmt.Errorf("step %d: %w", step, err)
	}
	log.GradNorm = ClipGradNorm(t.trainable[0], t.Opt.GradClip)
	t.Optim.Update(log.LR)
	clampLogitScale(t.trainable[0])
	t.Nets[0].AfterUpdate()
	t.syncReplicas()
	t.Step++
	return log, nil
}

// Grad computes the loss of one step's micro-batches and leaves the
// gradient of every trainable parameter in the master's Param.Grad
// (replicas reduced). It returns the loss and the logit scale used.
func (t *Trainer) Grad(micro []*Batch) (float64, float32, error) {
	dim := t.Opt.EmbedDim
	total := 0
	for _, b := range micro {
		total += b.N
	}
	if total == 0 {
		return 0, 0, errors.New("empty batch")
	}
	master := t.Nets[0]
	for _, n := range t.Nets {
		n.ZeroGrad()
	}
	scale := float32(math.Exp(float64(t.logitScale().Value[0])))

	// Cached features of the whole step (forward-only passes).
	allImg := make([]float32, total*dim)
	allTxt := make([]float32, total*dim)
	offs := make([]int, len(micro)+1)
	for j, b := range micro {
		offs[j+1] = offs[j] + b.N
	}
	if len(micro) > 1 || t.Opt.LockImage || t.Opt.LockText {
		for j, b := range micro {
			lo, hi := offs[j]*dim, offs[j+1]*dim
			var wg sync.WaitGroup
			var terr error
			if len(micro) > 1 || t.Opt.LockImage {
				wg.Add(1)
				go func() { defer wg.Done(); master.EncodeImage(allImg[lo:hi], b.Pixels, b.N, nil) }()
			}
			if len(micro) > 1 || t.Opt.LockText {
				terr = master.EncodeText(allTxt[lo:hi], b.Tokens, nil)
			}
			wg.Wait()
			if terr != nil {
				return 0, scale, terr
			}
		}
	}

	var loss float64
	for j, b := range micro {
		l, dScale, err := t.microStep(b, allImg, allTxt, offs[j], total, scale)
		if err != nil {
			return 0, scale, err
		}
		if j == 0 {
			loss = float64(l)
			master.AddLogitScaleGrad(dScale)
		}
	}
	t.reduceGrads()
	return loss, scale, nil
}

func (t *Trainer) logitScale() *model.Param {
	for _, p := range t.trainable[0] {
		if p.Name == "logit_scale" {
			return p
		}
	}
	panic("train: model has no logit_scale parameter")
}

// microStep runs the training passes of one micro-batch whose rows start
// at off in the step's features, sharded over the replicas, computes the
// loss over all total rows and backpropagates it.
func (t *Trainer) microStep(b *Batch, allImg, allTxt []float32, off, total int, scale float32) (float32, float32, error) {
	dim := t.Opt.EmbedDim
	r := min(len(t.Nets), b.N)
	size := len(b.Pixels) / max(b.N, 1)
	type shard struct {
		lo, hi  int
		backImg func([]float32) []float32
		backTxt func([]float32)
		err     error
	}
	shards := make([]shard, r)
	for i := range shards {
		shards[i].lo, shards[i].hi = i*b.N/r, (i+1)*b.N/r
	}
	// Forward passes with tapes, each replica on its shard; the two towers
	// of a replica run at the same time (separate activations, disjoint
	// parameters).
	parallel(r, func(i int) {
		s := &shards[i]
		n := t.Nets[i]
		var wg sync.WaitGroup
		var ierr error
		if !t.Opt.LockImage {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var f []float32
				f, s.backImg, ierr = n.EncodeImageTrain(b.Pixels[s.lo*size:s.hi*size], s.hi-s.lo)
				if ierr == nil {
					copy(allImg[(off+s.lo)*dim:], f)
				}
			}()
		}
		if !t.Opt.LockText {
			var f []float32
			f, s.backTxt, s.err = n.EncodeTextTrain(b.Tokens[s.lo:s.hi])
			if s.err == nil {
				copy(allTxt[(off+s.lo)*dim:], f)
			}
		}
		wg.Wait()
		if s.err == nil {
			s.err = ierr
		}
	})
	for _, s := range shards {
		if s.err != nil {
			return 0, 0, s.err
		}
	}
	loss, dImg, dTxt, dScale := ClipLoss(allImg, allTxt, total, dim, scale)
	parallel(r, func(i int) {
		s := &shards[i]
		lo, hi := (off+s.lo)*dim, (off+s.hi)*dim
		var wg sync.WaitGroup
		if s.backImg != nil {
			wg.Add(1)
			go func() { defer wg.Done(); s.backImg(dImg[lo:hi]) }()
		}
		if s.backTxt != nil {
			s.backTxt(dTxt[lo:hi])
		}
		wg.Wait()
	})
	return loss, dScale, nil
}

// reduceGrads adds the replicas' gradients into the master's, replica by
// replica in order (a fixed summation order per element).
func (t *Trainer) reduceGrads() {
	for pi, p := range t.trainable[0] {
		g := p.Grad
		kernels.Parallel(len(g), func(lo, hi int) {
			for r := 1; r < len(t.Nets); r++ {
				src := t.trainable[r][pi].Grad[lo:hi]
				dst := g[lo:hi]
				for k := range dst {
					dst[k] += src[k]
				}
			}
		})
	}
}

// syncReplicas copies the master's trainable weights into the replicas.
func (t *Trainer) syncReplicas() {
	for r := 1; r < len(t.Nets); r++ {
		for pi, p := range t.trainable[0] {
			copy(t.trainable[r][pi].Value, p.Value)
		}
		t.Nets[r].AfterUpdate()
	}
}

// parallel runs fn(0..n-1) on n goroutines and waits.
func parallel(n int, fn func(i int)) {
	if n == 1 {
		fn(0)
		return
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); fn(i) }()
	}
	wg.Wait()
}

// Replicate returns n models holding m's weights: m itself first, then
// n-1 copies built from its state dict.
func Replicate(m *model.Model, n int) ([]Net, error) {
	nets := []Net{m}
	if n <= 1 {
		return nets, nil
	}
	f := checkpoint.NewFile("replica of "+m.Config.Arch(), m.StateDict())
	for range n - 1 {
		c, err := model.New(m.Config, f)
		if err != nil {
			return nil, err
		}
		nets = append(nets, c)
	}
	return nets, nil
}
