package main

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/imageproc"
	"github.com/goclip/goclip/internal/model"
	"github.com/goclip/goclip/internal/train"
)

// cnTrainModel returns the arguments that name the Chinese-CLIP fixture
// model: its cn_clip checkpoint with the fixtures' vocabulary, else its
// Hugging Face directory.
func cnTrainModel(t *testing.T, dir string) []string {
	t.Helper()
	for _, m := range fixtures.ReadManifest(t, dir).Models {
		if slices.Contains(m.Files, "cn_clip.pt") {
			return []string{"--model", filepath.Join(dir, m.Name, "cn_clip.pt"), "--tokenizer", filepath.Join(dir, "tokenizer", "vocab.txt")}
		}
	}
	return []string{"--model", fixtures.HFDir(t, dir)}
}

// cnTrainCSV writes a CSV pairing the first n fixture images with the
// fixture texts.
func cnTrainCSV(t *testing.T, dir string, n int, header string) string {
	t.Helper()
	texts := fixtures.Texts(t, dir)
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(strings.Split(header, ","))
	for i := range n {
		w.Write([]string{fixtures.ImageFile(t, dir, i), texts[i%len(texts)]})
	}
	w.Flush()
	p := filepath.Join(t.TempDir(), "train.csv")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTrainChineseCLIP fine-tunes the Chinese-CLIP fixture model for two
// steps, resumes it for a third, loads the export, and checks the errors
// for a caption file without the caption column and for resuming from a
// CLIP checkpoint.
func TestTrainChineseCLIP(t *testing.T) {
	dir := fixtures.CNDir(t)
	csvPath := cnTrainCSV(t, dir, 4, "filepath,caption")
	out := filepath.Join(t.TempDir(), "run")
	exp := filepath.Join(t.TempDir(), "export")
	common := []string{"--train-data", csvPath, "--out", out, "--batch-size", "2", "--replicas", "2",
		"--lr", "1e-4", "--warmup", "1", "--save-every", "1", "--quiet"}
	args := append(append([]string{"train"}, cnTrainModel(t, dir)...), common...)
	stdout, stderr, code := run(t, append(args, "--steps", "2", "--export", exp)...)
	if code != 0 {
		t.Fatalf("train: exit %d: %s", code, stderr)
	}
	t.Logf("stdout: %s", stdout)
	if !strings.Contains(stdout, "trained 2 steps") || !strings.Contains(stdout, "exported") {
		t.Errorf("stdout %q lacks the summary", stdout)
	}
	if !strings.Contains(stderr, "Chinese-CLIP") {
		t.Errorf("stderr %q does not describe a Chinese-CLIP model", stderr)
	}
	cm, err := clip.Load(exp)
	if err != nil {
		t.Fatal(err)
	}
	if cm.ChineseCLIP() == nil {
		t.Fatalf("the export loads as a %s model", cm.Kind())
	}
	saved, err := train.LoadCheckpoint(filepath.Join(out, "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	if saved.Kind != train.KindChineseCLIP || saved.State.Step != 2 {
		t.Fatalf("latest checkpoint: kind %q step %d", saved.Kind, saved.State.Step)
	}

	// Resume without --model: the checkpoint directory is the model.
	stdout, stderr, code = run(t, append([]string{"train", "--resume", filepath.Join(out, "checkpoints")}, append(common, "--steps", "3")...)...)
	if code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "resumed from") || !strings.Contains(stdout, "trained 3 steps") {
		t.Errorf("resume: stdout %q, stderr %q", stdout, stderr)
	}

	// A caption file without the caption column.
	bad := cnTrainCSV(t, dir, 2, "filepath,text")
	_, stderr, code = run(t, append(append([]string{"train"}, cnTrainModel(t, dir)...), "--train-data", bad, "--out", t.TempDir(), "--steps", "1", "--quiet")...)
	if code == 0 || !strings.Contains(stderr, `caption column "caption"`) {
		t.Errorf("caption file without a caption column: exit %d, %s", code, stderr)
	}

	// A CLIP checkpoint given to --resume of a Chinese-CLIP run.
	cfg := model.Config{EmbedDim: 16, LayerNormEps: 1e-5,
		Vision: model.VisionConfig{ImageSize: 16, Width: 32, Heads: 2, Layers: 1, PatchSize: 8},
		Text:   model.TextConfig{ContextLength: 8, VocabSize: 100, Width: 32, Heads: 2, Layers: 1}}
	m, err := model.Random(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := train.NewTrainer(train.Options{BatchSize: 2, Steps: 1, LR: 1e-3, EmbedDim: cfg.EmbedDim}, []train.Net{m})
	if err != nil {
		t.Fatal(err)
	}
	ck := t.TempDir()
	if _, err := train.SaveCheckpoint(ck, tr, cfg, imageproc.DefaultOptions(16), train.RunState{Step: 1, Arch: cfg.Arch()}, ""); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = run(t, append(append([]string{"train"}, cnTrainModel(t, dir)...), "--resume", ck, "--train-data", csvPath,
		"--out", t.TempDir(), "--steps", "2", "--quiet")...)
	if code == 0 || !strings.Contains(stderr, "holds a clip model") || !strings.Contains(stderr, "not the chinese-clip model") {
		t.Errorf("resuming from a CLIP checkpoint: exit %d, %s", code, stderr)
	}
}
