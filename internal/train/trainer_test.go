package train

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/model"
)

func testOptions(cfg model.Config) Options {
	return Options{BatchSize: 4, AccumFreq: 1, Steps: 40, LR: 2e-3, Warmup: 5,
		AdamW: DefaultAdamW(), GradClip: 1, EmbedDim: cfg.EmbedDim}
}

// batches loads n samples from a fresh CSV as micro-batches of size per.
func batches(t *testing.T, n, per int) []*Batch {
	t.Helper()
	dir := t.TempDir()
	d, err := ReadCSV(writeImages(t, dir, n), CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok := byteTokenizer(t)
	l := &Loader{Data: d, Tok: tok, Context: 8, Pre: imageproc.DefaultOptions(16), Seed: 1}
	var out []*Batch
	cur := Cursor{}
	for range n / per {
		b, next, err := l.Next(cur, per)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
		cur = next
	}
	return out
}

func merge(bs []*Batch) *Batch {
	m := &Batch{}
	for _, b := range bs {
		m.N += b.N
		m.Pixels = append(m.Pixels, b.Pixels...)
		m.Tokens = append(m.Tokens, b.Tokens...)
	}
	return m
}

func grads(t *testing.T, tr *Trainer, micro []*Batch) map[string][]float32 {
	t.Helper()
	if _, _, err := tr.Grad(micro); err != nil {
		t.Fatal(err)
	}
	g := map[string][]float32{}
	for _, p := range tr.Nets[0].Params() {
		g[p.Name] = append([]float32(nil), p.Grad...)
	}
	return g
}

func compareGrads(t *testing.T, what string, a, b map[string][]float32, tol float64) {
	t.Helper()
	for name, ga := range a {
		gb := b[name]
		var num, den float64
		for i := range ga {
			d := float64(ga[i] - gb[i])
			num += d * d
			den += float64(ga[i]) * float64(ga[i])
		}
		if math.Sqrt(num) > tol*math.Max(math.Sqrt(den), 1e-6) {
			t.Errorf("%s: gradient of %s differs: |Δ| = %g, |g| = %g", what, name, math.Sqrt(num), math.Sqrt(den))
		}
	}
}

// TestAccumulationIsLargeBatch checks that AccumFreq micro-batches with
// cached features give the gradient of one large batch, and that
// replicas give the same gradient as one model.
func TestAccumulationIsLargeBatch(t *testing.T) {
	micro := batches(t, 8, 2)
	big := []*Batch{merge(micro)}
	newTrainer := func(replicas int) *Trainer {
		nets, err := Replicate(tinyModel(t, 7), replicas)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := NewTrainer(testOptions(tinyConfig(0)), nets)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	ref := grads(t, newTrainer(1), big)
	compareGrads(t, "4 micro-batches", ref, grads(t, newTrainer(1), micro), 1e-4)
	compareGrads(t, "3 replicas", ref, grads(t, newTrainer(3), big), 1e-4)
	compareGrads(t, "2 replicas, 4 micro-batches", ref, grads(t, newTrainer(2), micro), 1e-4)
	if g := ref["logit_scale"][0]; g == 0 {
		t.Error("logit_scale gradient is zero")
	}
}

// TestLockImage checks that a locked tower gets no update.
func TestLockImage(t *testing.T) {
	m := tinyModel(t, 3)
	opt := testOptions(m.Config)
	opt.LockImage = true
	tr, err := NewTrainer(opt, []Net{m})
	if err != nil {
		t.Fatal(err)
	}
	before := append([]float32(nil), m.Param("visual.proj").Value...)
	textBefore := append([]float32(nil), m.Param("text_projection").Value...)
	if _, err := tr.TrainStep(batches(t, 4, 4)); err != nil {
		t.Fatal(err)
	}
	for i, v := range m.Param("visual.proj").Value {
		if v != before[i] {
			t.Fatal("locked image tower changed")
		}
	}
	changed := false
	for i, v := range m.Param("text_projection").Value {
		changed = changed || v != textBefore[i]
	}
	if !changed {
		t.Fatal("text tower did not train")
	}
	for _, p := range tr.Optim.Params {
		if IsImageParam(p.Name) {
			t.Fatalf("optimiser holds locked %s", p.Name)
		}
	}
	opt.LockText = true
	if _, err := NewTrainer(opt, []Net{m}); err == nil {
		t.Fatal("locking both towers was accepted")
	}
}

func runConfig(t *testing.T, csv, out string) RunConfig {
	d, err := ReadCSV(csv, CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := tinyModel(t, 11)
	opt := testOptions(m.Config)
	opt.Steps = 130
	opt.AccumFreq = 2
	return RunConfig{Options: opt, Data: d, Tok: byteTokenizer(t), Pre: imageproc.DefaultOptions(16),
		Augment: true, Seed: 5, Model: m, Replicas: 2, OutDir: out, SaveEvery: 10, Keep: 2}
}

// TestResumeExact kills a run after 25 steps, resumes from the step-20
// checkpoint and checks that the next 100 steps' losses equal those of an
// uninterrupted run.
func TestResumeExact(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 260 steps")
	}
	dir := t.TempDir()
	csv := writeImages(t, dir, 13)
	ctx := context.Background()

	full, err := Run(ctx, runConfig(t, csv, filepath.Join(dir, "full")))
	if err != nil {
		t.Fatal(err)
	}
	rc := runConfig(t, csv, filepath.Join(dir, "killed"))
	rc.StopAfter = 25
	if _, err := Run(ctx, rc); err != nil {
		t.Fatal(err)
	}
	saved, err := LoadCheckpoint(filepath.Join(dir, "killed", "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	if saved.State.Step != 20 {
		t.Fatalf("latest checkpoint is step %d, want 20", saved.State.Step)
	}
	rc = runConfig(t, csv, filepath.Join(dir, "killed"))
	rc.Resume = saved
	res, err := Run(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Log) != len(full.Log) {
		t.Fatalf("resumed run logged %d steps, want %d", len(res.Log), len(full.Log))
	}
	worst := 0.0
	for s := 20; s < 120; s++ {
		d := math.Abs(res.Log[s].Loss - full.Log[s].Loss)
		worst = math.Max(worst, d)
		if d > 1e-5 {
			t.Fatalf("step %d: resumed loss %v, uninterrupted %v", s, res.Log[s].Loss, full.Log[s].Loss)
		}
	}
	t.Logf("largest loss difference over steps 20..119: %g; loss %0.4f -> %0.4f", worst, full.Log[0].Loss, full.Log[len(full.Log)-1].Loss)
	if full.Log[len(full.Log)-1].Loss >= full.Log[0].Loss {
		t.Errorf("loss did not decrease: %v -> %v", full.Log[0].Loss, full.Log[len(full.Log)-1].Loss)
	}
	// The final checkpoint loads as a model.
	final, err := LoadCheckpoint(filepath.Join(dir, "full", "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := model.New(final.Config, final.Weights); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "full", "checkpoints"))
	if len(ents) != 3 { // two step dirs + latest
		t.Errorf("checkpoint dir holds %d entries, want 3 (Keep 2)", len(ents))
	}
}

// TestBadInput covers unreadable images, empty captions, an architecture
// mismatch on resume and a NaN loss.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	csv := writeImages(t, dir, 8)
	b, _ := os.ReadFile(csv)
	extra := "missing.png,a missing image\nimg00.png,\ncorrupt.png,a corrupt image\n"
	os.WriteFile(filepath.Join(dir, "corrupt.png"), []byte("\x89PNG\r\n\x1a\nnot really"), 0o644)
	os.WriteFile(csv, append(b, extra...), 0o644)

	rc := runConfig(t, csv, filepath.Join(dir, "out"))
	if rc.Data.(*CSVDataset).Empty != 1 {
		t.Errorf("empty captions counted %d, want 1", rc.Data.(*CSVDataset).Empty)
	}
	rc.Steps, rc.SaveEvery, rc.Augment = 12, 3, false
	var logged []string
	rc.Logf = func(f string, a ...any) { logged = append(logged, f) }
	var poisoned bool
	rc.Progress = func(l StepLog, _ float64) {
		if l.Step == 7 && !poisoned {
			poisoned = true
			rc.Model.Param("visual.proj").Value[0] = float32(math.NaN())
			rc.Model.AfterUpdate()
		}
	}
	res, err := Run(context.Background(), rc)
	if err == nil {
		t.Fatal("NaN weights did not stop the run")
	}
	if !strings.Contains(err.Error(), "step 8") || !strings.Contains(err.Error(), "step_000006") {
		t.Errorf("error %q should name step 8 and the last checkpoint step_000006", err)
	}
	if res.Skipped == 0 {
		t.Error("no unreadable image was counted")
	}
	if _, err := LoadCheckpoint(filepath.Join(dir, "out", "checkpoints")); err != nil {
		t.Errorf("last good checkpoint unreadable: %v", err)
	}

	// Resuming into another architecture fails clearly.
	saved, err := LoadCheckpoint(filepath.Join(dir, "out", "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig(byteTokenizer(t).VocabSize())
	cfg.Vision.Layers = 2
	other, err := model.Random(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	rc2 := runConfig(t, csv, filepath.Join(dir, "out2"))
	rc2.Model, rc2.Resume = other, saved
	_, err = Run(context.Background(), rc2)
	if err == nil || !strings.Contains(err.Error(), "not the") {
		t.Errorf("architecture mismatch: got %v", err)
	}
}
