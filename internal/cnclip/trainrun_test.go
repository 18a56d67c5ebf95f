package cnclip_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/cnclip"
	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/model"
	"github.com/goclip/goclip/internal/train"
	"github.com/goclip/goclip/internal/wordpiece"
)

// cnFixture is the Chinese-CLIP fixture set seen by the training tests:
// the model with a gradient batch and that batch's inputs.
type cnFixture struct {
	dir      string
	man      cnclip.GradManifest
	exp      *checkpoint.File
	toks     cnclip.TokensJSON
	texts    []string
	name     string   // model name
	files    []string // its files
	images   []string // image files of the gradient batch
	pixels   []float32
	tokens   [][]int32
	textIdx  []int
	refLoss  float64
	nPerItem int // pixel values per image
}

func readCNFixture(t *testing.T) *cnFixture {
	t.Helper()
	f := &cnFixture{dir: fixtures.CNDir(t)}
	fixtures.ReadJSON(t, filepath.Join(f.dir, "manifest.json"), &f.man)
	fixtures.ReadJSON(t, filepath.Join(f.dir, "tokens.json"), &f.toks)
	f.exp = fixtures.Expected(t, f.dir)
	f.texts = fixtures.Texts(t, f.dir)
	byName := map[string]string{}
	for _, im := range f.man.Images {
		byName[im.Name] = im.File
		byName[filepath.Base(im.File)] = im.File
	}
	for _, m := range f.man.Models {
		if m.GradBatch == nil {
			continue
		}
		f.name, f.files, f.refLoss = m.Name, m.Files, m.GradBatch.Loss
		for i, im := range m.GradBatch.Images {
			file, ok := byName[im]
			if !ok {
				t.Fatalf("gradient batch image %q is not in images[]", im)
			}
			f.images = append(f.images, filepath.Join(f.dir, file))
			p, _ := fixtures.Float32(t, f.exp, "pixels/"+filepath.Base(file))
			f.nPerItem = len(p)
			f.pixels = append(f.pixels, p...)
			ti := m.GradBatch.TextIndices[i]
			f.textIdx = append(f.textIdx, ti)
			f.tokens = append(f.tokens, f.toks.Texts[ti].TokenizeIDs)
		}
		return f
	}
	t.Skip("no model with a gradient batch in the manifest")
	return nil
}

// load returns a fresh copy of the fixture model: the cn_clip checkpoint
// when the manifest lists one, else the Hugging Face directory.
func (f *cnFixture) load(t testing.TB) *cnclip.Model {
	t.Helper()
	var m *cnclip.Model
	var err error
	switch {
	case slices.Contains(f.files, "cn_clip.pt"):
		m, err = cnclip.Load(filepath.Join(f.dir, f.name, "cn_clip.pt"), cnclip.Options{Vocab: filepath.Join(f.dir, "tokenizer", "vocab.txt")})
	case slices.Contains(f.files, "hf/config.json"):
		m, err = cnclip.Load(filepath.Join(f.dir, f.name, "hf"), cnclip.Options{})
	default:
		t.Skipf("model %s has no loadable files", f.name)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Trainable(); err != nil {
		t.Skip(err)
	}
	return m
}

// batch returns rows [lo, hi) of the gradient batch.
func (f *cnFixture) batch(lo, hi int) *train.Batch {
	return &train.Batch{N: hi - lo, Pixels: f.pixels[lo*f.nPerItem : hi*f.nPerItem], Tokens: f.tokens[lo:hi]}
}

// writeCSV writes a training CSV of (image, caption) rows and returns its
// path.
func writeCSV(t *testing.T, rows [][2]string) string {
	t.Helper()
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"filepath", "caption"})
	for _, r := range rows {
		w.Write(r[:])
	}
	w.Flush()
	p := filepath.Join(t.TempDir(), "train.csv")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func options(f *cnFixture, m *cnclip.Model, batch int) train.Options {
	return train.Options{BatchSize: batch, AccumFreq: 1, Steps: 4, LR: 1e-4, Warmup: 1,
		AdamW: train.DefaultAdamW(), GradClip: 1, EmbedDim: m.EmbedDim()}
}

// TestTrainLoopGradient checks that the first step's gradient through the
// training loop (Trainer.Grad with replicas and accumulated micro-batches)
// equals the reference gradients of the fixtures, and that the data loader
// turns the gradient batch's files and captions into the reference inputs.
func TestTrainLoopGradient(t *testing.T) {
	f := readCNFixture(t)
	n := len(f.images)
	for _, c := range []struct{ replicas, micro int }{{1, 1}, {2, 1}, {2, 2}} {
		if n%c.micro != 0 {
			continue
		}
		m := f.load(t)
		nets := []train.Net{m}
		for range c.replicas - 1 {
			r, err := m.Replica()
			if err != nil {
				t.Fatal(err)
			}
			nets = append(nets, r)
		}
		opt := options(f, m, n/c.micro)
		opt.AccumFreq = c.micro
		tr, err := train.NewTrainer(opt, nets)
		if err != nil {
			t.Fatal(err)
		}
		var micro []*train.Batch
		for j := range c.micro {
			micro = append(micro, f.batch(j*n/c.micro, (j+1)*n/c.micro))
		}
		loss, _, err := tr.Grad(micro)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d replicas, %d micro-batches: loss %.9g, reference %.9g", c.replicas, c.micro, loss, f.refLoss)
		if math.Abs(loss-f.refLoss) > 1e-6 {
			t.Errorf("%d replicas, %d micro-batches: loss %.9g, want %.9g", c.replicas, c.micro, loss, f.refLoss)
		}
		cnclip.CheckParamGrads(t, f.exp, f.man.Expected, m.Params())
	}

	// The loader: files and captions to the reference pixels and tokens.
	m := f.load(t)
	var rows [][2]string
	for i, im := range f.images {
		rows = append(rows, [2]string{im, f.texts[f.textIdx[i]]})
	}
	d, err := train.ReadCSV(writeCSV(t, rows), train.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := &train.Loader{Data: d, Captions: m.Captions(), Pre: m.Preprocessing(), Seed: 1}
	b, _, err := l.Next(train.Cursor{}, n)
	if err != nil {
		t.Fatal(err)
	}
	for k, key := range b.Keys {
		i := slices.Index(f.images, key)
		if i < 0 {
			t.Fatalf("batch key %q is not a gradient batch image", key)
		}
		got, want := b.Pixels[k*f.nPerItem:(k+1)*f.nPerItem], f.pixels[i*f.nPerItem:(i+1)*f.nPerItem]
		var worst float64
		for j := range want {
			worst = max(worst, math.Abs(float64(got[j]-want[j])))
		}
		if worst > 1e-6 {
			t.Errorf("%s: loader pixels differ from the reference by %g", key, worst)
		}
		text := f.texts[f.textIdx[i]]
		want32, _, err := m.Tokenizer.EncodeRow(wordpiece.PreprocessText(text), m.ContextLength())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(b.Tokens[k], want32) {
			t.Errorf("%s: loader tokens %v, want %v", key, b.Tokens[k], want32)
		}
		if wordpiece.PreprocessText(text) == text && !slices.Equal(b.Tokens[k], f.tokens[i]) {
			t.Errorf("%s: loader tokens %v, reference %v", key, b.Tokens[k], f.tokens[i])
		}
	}
}

// TestTrainStepsLowerLoss trains a few steps on the repeated gradient
// batch: the loss falls; locked towers and the logit-scale clamp hold.
func TestTrainStepsLowerLoss(t *testing.T) {
	f := readCNFixture(t)
	n := len(f.images)
	for _, lock := range []string{"", "image", "text"} {
		m := f.load(t)
		opt := options(f, m, n)
		opt.LockImage, opt.LockText = lock == "image", lock == "text"
		opt.Steps = 4
		tr, err := train.NewTrainer(opt, []train.Net{m})
		if err != nil {
			t.Fatal(err)
		}
		before := map[string][]float32{}
		for _, p := range m.Params() {
			before[p.Name] = slices.Clone(p.Value)
		}
		var losses []float64
		for range opt.Steps {
			l, err := tr.TrainStep([]*train.Batch{f.batch(0, n)})
			if err != nil {
				t.Fatal(err)
			}
			losses = append(losses, l.Loss)
		}
		t.Logf("lock %q: losses %.6g", lock, losses)
		if losses[len(losses)-1] >= losses[0] {
			t.Errorf("lock %q: loss did not fall: %v", lock, losses)
		}
		if lock == "" {
			// One more step from a logit scale above the clamp.
			m.Param("logit_scale").Value[0] = train.MaxLogitScale + 0.5
			if _, err := tr.TrainStep([]*train.Batch{f.batch(0, n)}); err != nil {
				t.Fatal(err)
			}
			if v := m.Param("logit_scale").Value[0]; v > train.MaxLogitScale {
				t.Errorf("logit_scale %v not clamped to %v", v, train.MaxLogitScale)
			}
		}
		for _, p := range m.Params() {
			changed := !slices.Equal(before[p.Name], p.Value)
			frozen := (lock == "image" && train.IsImageParam(p.Name)) || (lock == "text" && !train.IsImageParam(p.Name) && p.Name != "logit_scale")
			if frozen && changed {
				t.Errorf("lock %q: locked %s changed", lock, p.Name)
			}
			if !frozen && !changed && (p.Name == "visual.proj" || p.Name == "text_projection" || strings.HasSuffix(p.Name, "query.weight")) {
				t.Errorf("lock %q: %s did not train", lock, p.Name)
			}
		}
	}
}

// runConfig is a short Chinese-CLIP run over every fixture image, one
// caption deliberately longer than the context.
func runConfig(t *testing.T, f *cnFixture, csvPath, out string) train.RunConfig {
	t.Helper()
	d, err := train.ReadCSV(csvPath, train.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := f.load(t)
	opt := options(f, m, 2)
	opt.AccumFreq = 2
	return train.RunConfig{Options: opt, Data: d, Net: m, Captions: m.Captions(), Pre: m.Preprocessing(),
		Seed: 3, Replicas: 2, OutDir: out, SaveEvery: 2}
}

func allImagesCSV(t *testing.T, f *cnFixture, m *cnclip.Model) string {
	t.Helper()
	var rows [][2]string
	for i, im := range f.man.Images {
		rows = append(rows, [2]string{filepath.Join(f.dir, im.File), f.texts[i%len(f.texts)]})
	}
	rows[0][1] = strings.Repeat("一只猫", m.ContextLength()) // truncated
	return writeCSV(t, rows)
}

// TestRunResumeAndReload kills a short run after 3 steps, resumes it from
// its step-2 checkpoint and checks that the losses equal those of an
// uninterrupted run; the final checkpoint and an export reload with
// clip.Load as Chinese-CLIP models with the trained model's features.
func TestRunResumeAndReload(t *testing.T) {
	f := readCNFixture(t)
	dir := t.TempDir()
	csvPath := allImagesCSV(t, f, f.load(t))
	ctx := context.Background()

	rcFull := runConfig(t, f, csvPath, filepath.Join(dir, "full"))
	full, err := train.Run(ctx, rcFull)
	if err != nil {
		t.Fatal(err)
	}
	if full.Truncated == 0 {
		t.Error("the over-long caption was not counted as truncated")
	}
	rc := runConfig(t, f, csvPath, filepath.Join(dir, "killed"))
	rc.StopAfter = 3
	if _, err := train.Run(ctx, rc); err != nil {
		t.Fatal(err)
	}
	saved, err := train.LoadCheckpoint(filepath.Join(dir, "killed", "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	if saved.Kind != train.KindChineseCLIP || saved.State.Step != 2 {
		t.Fatalf("latest checkpoint: kind %q step %d, want %q step 2", saved.Kind, saved.State.Step, train.KindChineseCLIP)
	}
	rc = runConfig(t, f, csvPath, filepath.Join(dir, "killed"))
	rc.Resume = saved
	res, err := train.Run(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Log) != len(full.Log) {
		t.Fatalf("resumed run logged %d steps, want %d", len(res.Log), len(full.Log))
	}
	for s := range full.Log {
		t.Logf("step %d: loss %.9g, resumed %.9g", s, full.Log[s].Loss, res.Log[s].Loss)
		if res.Log[s].Loss != full.Log[s].Loss {
			t.Errorf("step %d: resumed loss %.9g, uninterrupted %.9g", s, res.Log[s].Loss, full.Log[s].Loss)
		}
	}

	// The final checkpoint and an export load as Chinese-CLIP with the
	// trained weights.
	trained := rcFull.Net.(*cnclip.Model)
	n := len(f.images)
	wantImg := make([]float32, n*trained.EmbedDim())
	wantTxt := make([]float32, n*trained.EmbedDim())
	trained.EncodeImage(wantImg, f.pixels, n, nil)
	if err := trained.EncodeText(wantTxt, f.tokens, nil); err != nil {
		t.Fatal(err)
	}
	exp16 := filepath.Join(dir, "export16")
	if err := os.MkdirAll(exp16, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := train.ExportNetwork(exp16, trained, trained.Preprocessing(), "", true); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		tol  float64
	}{{full.Checkpoint, 0}, {exp16, 2e-2}} {
		cm, err := clip.Load(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if cm.Kind() != train.KindChineseCLIP || cm.ChineseCLIP() == nil {
			t.Fatalf("%s loads as a %s model", c.path, cm.Kind())
		}
		back := cm.ChineseCLIP()
		if back.ContextLength() != trained.ContextLength() {
			t.Errorf("%s: context length %d, want %d", c.path, back.ContextLength(), trained.ContextLength())
		}
		img := make([]float32, len(wantImg))
		txt := make([]float32, len(wantTxt))
		back.EncodeImage(img, f.pixels, n, nil)
		if err := back.EncodeText(txt, f.tokens, nil); err != nil {
			t.Fatal(err)
		}
		for _, x := range []struct {
			what      string
			got, want []float32
		}{{"image", img, wantImg}, {"text", txt, wantTxt}} {
			var diff, ref float64
			for i := range x.want {
				diff = max(diff, math.Abs(float64(x.got[i]-x.want[i])))
				ref = max(ref, math.Abs(float64(x.want[i])))
			}
			t.Logf("%s: %s features max|Δ| %.3g of max|ref| %.3g", filepath.Base(c.path), x.what, diff, ref)
			if diff > c.tol*ref {
				t.Errorf("%s: %s features differ from the trained model's by %g (max %g)", c.path, x.what, diff, ref)
			}
		}
		rows, _, err := back.Tokenize(f.texts[:1])
		if err != nil {
			t.Fatal(err)
		}
		want, _, _ := trained.Tokenize(f.texts[:1])
		if !slices.Equal(rows[0], want[0]) {
			t.Errorf("%s: tokenizer gives %v, the trained model's %v", c.path, rows[0], want[0])
		}
	}
}

// TestHFLayoutMatchesReference writes the fixture model with WriteHF and
// compares it with the fixture's own Hugging Face directory: the same
// tensor names, shapes and values, the same configuration and vocabulary.
func TestHFLayoutMatchesReference(t *testing.T) {
	f := readCNFixture(t)
	if !slices.Contains(f.files, "hf/model.safetensors") || !slices.Contains(f.files, "cn_clip.pt") {
		t.Skip("the fixture model lacks a cn_clip checkpoint or a Hugging Face directory")
	}
	m := f.load(t)
	out := t.TempDir()
	if err := m.WriteHF(out, m.Preprocessing(), false); err != nil {
		t.Fatal(err)
	}
	refDir := filepath.Join(f.dir, f.name, "hf")
	got, err := checkpoint.OpenSafetensors(filepath.Join(out, cnclip.HFWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	ref, err := checkpoint.OpenSafetensors(filepath.Join(refDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	a, b := slices.Sorted(slices.Values(got.Names)), slices.Sorted(slices.Values(ref.Names))
	if !slices.Equal(a, b) {
		t.Fatalf("tensor names differ:\n got %v\nwant %v", a, b)
	}
	for _, name := range ref.Names {
		g, r := got.Tensor(name), ref.Tensor(name)
		if !slices.Equal(g.Shape, r.Shape) {
			t.Errorf("%s: shape %v, reference %v", name, g.Shape, r.Shape)
			continue
		}
		gv, err1 := g.Float32()
		rv, err2 := r.Float32()
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if !slices.Equal(gv, rv) {
			t.Errorf("%s: values differ from the reference", name)
		}
	}
	c1, err := cnclip.ReadHFConfig(filepath.Join(out, cnclip.HFConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := cnclip.ReadHFConfig(filepath.Join(refDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if c1 != c2 {
		t.Errorf("config.json gives %+v, the reference's %+v", c1, c2)
	}
	v1, _ := os.ReadFile(filepath.Join(out, cnclip.HFVocabFile))
	v2, _ := os.ReadFile(filepath.Join(refDir, "vocab.txt"))
	if !bytes.Equal(v1, v2) {
		t.Error("vocab.txt differs from the reference's")
	}
	_, n1, err := wordpiece.LoadHF(out)
	if err != nil {
		t.Fatal(err)
	}
	_, n2, err := wordpiece.LoadHF(refDir)
	if err != nil {
		t.Fatal(err)
	}
	if n1 != n2 {
		t.Errorf("tokenizer model_max_length %d, reference %d", n1, n2)
	}
	p1, err := imageproc.LoadHFConfig(filepath.Join(out, cnclip.HFPreprocessConfig))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := imageproc.LoadHFConfig(filepath.Join(refDir, "preprocessor_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 {
		t.Errorf("preprocessor_config.json gives %+v, the reference's %+v", p1, p2)
	}
}

// TestResumeBadInput: a CLIP checkpoint, or a Chinese-CLIP state dict that
// lacks a tensor, is refused with an error that says why.
func TestResumeBadInput(t *testing.T) {
	f := readCNFixture(t)
	m := f.load(t)

	// A CLIP training checkpoint.
	cfg := model.Config{EmbedDim: 16, LayerNormEps: 1e-5,
		Vision: model.VisionConfig{ImageSize: 16, Width: 32, Heads: 2, Layers: 1, PatchSize: 8},
		Text:   model.TextConfig{ContextLength: 8, VocabSize: 100, Width: 32, Heads: 2, Layers: 1}}
	cm, err := model.Random(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := train.NewTrainer(train.Options{BatchSize: 2, Steps: 1, LR: 1e-3, EmbedDim: 16}, []train.Net{cm})
	if err != nil {
		t.Fatal(err)
	}
	ck := t.TempDir()
	if _, err := train.SaveCheckpoint(ck, tr, cfg, imageproc.DefaultOptions(16), train.RunState{Step: 1, Arch: cfg.Arch()}, ""); err != nil {
		t.Fatal(err)
	}
	saved, err := train.LoadCheckpoint(ck)
	if err != nil {
		t.Fatal(err)
	}
	rc := runConfig(t, f, allImagesCSV(t, f, m), t.TempDir())
	rc.Resume = saved
	_, err = train.Run(context.Background(), rc)
	if err == nil || !strings.Contains(err.Error(), "holds a clip model") || !strings.Contains(err.Error(), "not the chinese-clip model") {
		t.Errorf("resuming a Chinese-CLIP run from a CLIP checkpoint: got %v", err)
	}
	if err := saved.CheckArch(cfg); err != nil {
		t.Errorf("the CLIP checkpoint does not fit its own architecture: %v", err)
	}

	// A state dict without text_projection, and one with a mis-shaped
	// tensor.
	sd := m.StateDict()
	mk := func(drop string, reshape string) *checkpoint.File {
		g := &checkpoint.File{Path: "edited", Tensors: map[string]*checkpoint.Tensor{}}
		for _, ts := range sd {
			if ts.Name == drop {
				continue
			}
			c := *ts
			if ts.Name == reshape {
				c.Shape = []int{len(ts.Data) / 4}
			}
			g.Tensors[c.Name] = &c
			g.Names = append(g.Names, c.Name)
		}
		return g
	}
	for _, c := range []struct{ drop, reshape, want string }{
		{"text_projection", "", "text_projection"},
		{"", "bert.encoder.layer.0.attention.self.query.weight", "bert.encoder.layer.0.attention.self.query.weight"},
	} {
		err := m.LoadWeights(mk(c.drop, c.reshape))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("drop %q reshape %q: got %v, want an error naming %s", c.drop, c.reshape, err, c.want)
		}
	}
	// A bad caption tokenizer stops the run with the caption named.
	rc = runConfig(t, f, allImagesCSV(t, f, m), t.TempDir())
	rc.Captions = func(string) ([]int32, bool, error) { return nil, false, os.ErrInvalid }
	if _, err := train.Run(context.Background(), rc); err == nil || !strings.Contains(err.Error(), "caption") {
		t.Errorf("a failing caption tokenizer: got %v", err)
	}
}
