package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/zeroshot"
)

// zsFixture returns the first fixture model's file, the tokenizer folder
// and the fixture image paths.
func zsFixture(t *testing.T) (modelPath, tok string, images []string) {
	t.Helper()
	dir := fixtures.Dir(t)
	man := fixtures.ReadManifest(t, dir)
	for _, m := range man.Models {
		for _, f := range m.Files {
			if f == "open_clip_model.safetensors" && modelPath == "" {
				modelPath = filepath.Join(dir, m.Name, f)
			}
		}
	}
	if modelPath == "" {
		t.Skip("no open_clip safetensors fixture model")
	}
	for _, im := range man.Images {
		images = append(images, filepath.Join(dir, im.File))
	}
	return modelPath, filepath.Join(dir, "tokenizer"), images
}

func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestClassifyJSON(t *testing.T) {
	mp, tok, images := zsFixture(t)
	t.Setenv("GOCLIP_CACHE", t.TempDir())
	images = images[:min(4, len(images))]
	labels := []string{"cat", "dog", "red car", "tree"}
	args := append([]string{"classify", "--model", mp, "--tokenizer", tok, "--labels", strings.Join(labels, ","),
		"--templates", "cifar10", "--top", "3", "--json", "--quiet"}, images...)
	code, out, errs := runMain(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// Reference: the classifier built directly.
	m, err := clip.Load(mp, clip.WithTokenizer(tok))
	if err != nil {
		t.Fatal(err)
	}
	tpl, _ := zeroshot.BuiltinTemplates("cifar10")
	clf, err := zeroshot.Build(context.Background(), m, labels, tpl, zeroshot.Options{Scale: m.LogitScale()})
	if err != nil {
		t.Fatal(err)
	}
	emb, err := m.EncodeImageFiles(context.Background(), images)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(images) {
		t.Fatalf("%d JSON lines for %d images", len(lines), len(images))
	}
	for i, line := range lines {
		var got struct {
			Image  string `json:"image"`
			Labels []struct {
				Label string  `json:"label"`
				Prob  float32 `json:"prob"`
			} `json:"labels"`
		}
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if got.Image != images[i] {
			t.Errorf("line %d is for %s, want %s (input order)", i, got.Image, images[i])
		}
		want := clf.TopK(emb[i], 3)
		if len(got.Labels) != 3 {
			t.Fatalf("line %d: %d labels", i, len(got.Labels))
		}
		for k, w := range want {
			if got.Labels[k].Label != w.Label || math.Abs(float64(got.Labels[k].Prob-w.Prob)) > 1e-6 {
				t.Errorf("image %d rank %d: %+v, want %s %v", i, k, got.Labels[k], w.Label, w.Prob)
			}
			if k > 0 && got.Labels[k].Prob > got.Labels[k-1].Prob {
				t.Errorf("image %d: not sorted by probability", i)
			}
		}
	}
	// Second run: served from the cache, same output.
	code, out2, _ := runMain(t, args...)
	if code != 0 || out2 != out {
		t.Errorf("cached run differs (exit %d)", code)
	}
	// Another precision has class weights of its own, not the fp32 ones.
	entries := func() int {
		es, err := os.ReadDir(filepath.Join(os.Getenv("GOCLIP_CACHE"), "classifiers"))
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	n := entries()
	if code, _, errs := runMain(t, append([]string{args[0], "--precision", "int8"}, args[1:]...)...); code != 0 {
		t.Fatalf("--precision int8: exit %d: %s", code, errs)
	}
	if got := entries(); got != n+1 {
		t.Errorf("--precision int8 left %d cache entries, want %d (its own beside fp32's)", got, n+1)
	}
}

func TestClassifyModes(t *testing.T) {
	mp, tok, images := zsFixture(t)
	dir := t.TempDir()
	base := []string{"classify", "--model", mp, "--tokenizer", tok, "--no-cache", "--quiet"}
	// --template "{}": the label itself is the prompt.
	code, out, errs := runMain(t, append(base, "--labels", "cat,dog", "--template", "{}", images[0])...)
	if code != 0 || !strings.Contains(out, images[0]) || !strings.Contains(out, "cat") {
		t.Errorf("--template {}: exit %d, %q %q", code, out, errs)
	}
	// Multi-label with a fixed bias: everything passes a 0 threshold.
	code, out, errs = runMain(t, append(base, "--labels", "a,b,c", "--multi-label", "--bias", "-1000", "--threshold", "0", "--json", images[0])...)
	if code != 0 || strings.Count(out, `"label"`) != 3 {
		t.Errorf("multi-label threshold 0: exit %d, %q %q", code, out, errs)
	}
	code, out, _ = runMain(t, append(base, "--labels", "a,b,c", "--multi-label", "--bias", "-1000", "--json", images[0])...)
	if code != 0 || !strings.Contains(out, `"labels":[]`) && !strings.Contains(out, `"labels":null`) {
		t.Errorf("multi-label bias -1000: exit %d, %q", code, out)
	}
	// Label file with blanks and duplicates: deduplicated with a warning.
	lf := filepath.Join(dir, "labels.txt")
	os.WriteFile(lf, []byte("cat\n\ndog\ncat\n"), 0o644)
	code, out, errs = runMain(t, append(base, "--labels-file", lf, "--json", images[0])...)
	if code != 0 || !strings.Contains(errs, `duplicate label "cat"`) || !strings.Contains(errs, "blank") || strings.Count(out, `"label"`) != 2 {
		t.Errorf("label file: exit %d, out %q, stderr %q", code, out, errs)
	}
	// A missing image: reported in the output, exit 1, the others still classified.
	code, out, errs = runMain(t, append(base, "--labels", "cat,dog", "--json", images[0], filepath.Join(dir, "missing.jpg"))...)
	if code != 1 || !strings.Contains(out, `"error"`) || strings.Count(out, "\n") != 2 || !strings.Contains(errs, "1 of 2") {
		t.Errorf("missing image: exit %d, out %q, stderr %q", code, out, errs)
	}
}

func TestClassifyBadInput(t *testing.T) {
	mp, tok, images := zsFixture(t)
	base := []string{"classify", "--model", mp, "--tokenizer", tok, "--no-cache", "--quiet"}
	for name, tc := range map[string]struct {
		args []string
		code int
		msg  string
	}{
		"unknown template set": {[]string{"--labels", "a", "--templates", "nope", images[0]}, 2, "imagenet"},
		"template without {}":  {[]string{"--labels", "a", "--template", "a photo", images[0]}, 2, "placeholder"},
		"both template flags":  {[]string{"--labels", "a", "--template", "{}", "--templates", "simple", images[0]}, 2, "not both"},
		"no labels":            {[]string{images[0]}, 2, "no labels"},
		"empty labels":         {[]string{"--labels", " , ", images[0]}, 2, "no labels"},
		"both label flags":     {[]string{"--labels", "a", "--labels-file", "x", images[0]}, 2, "not both"},
		"no images":            {[]string{"--labels", "a"}, 2, "no images"},
		"bad bias":             {[]string{"--labels", "a", "--bias", "x", images[0]}, 2, "--bias"},
		"missing label file":   {[]string{"--labels-file", "/nonexistent/labels.txt", images[0]}, 1, "labels.txt"},
	} {
		code, _, errs := runMain(t, append(append([]string{}, base...), tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d mentioning %q", name, code, errs, tc.code, tc.msg)
		}
	}
}

func TestClassifyCancelled(t *testing.T) {
	mp, tok, images := zsFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code := Main(ctx, []string{"classify", "--model", mp, "--tokenizer", tok, "--no-cache", "--quiet", "--labels", "a,b", images[0]}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "context canceled") {
		t.Errorf("cancelled: exit %d, %q", code, errb.String())
	}
}
