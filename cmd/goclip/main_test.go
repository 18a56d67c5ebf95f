package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/kernels"
)

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestEmbedJSONLines(t *testing.T) {
	dir := fixtures.Dir(t)
	model := fixtures.HFDir(t, dir)
	img := fixtures.ImageFile(t, dir, 1)
	long := strings.Repeat("many words ", 100)
	out, stderr, code := run(t, "embed", "--model", model, "--text", "a cat", "--image", img, "--text", long)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "truncated") {
		t.Errorf("no truncation warning on stderr: %q", stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	wantKinds := []string{"text", "image", "text"}
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3", len(lines))
	}
	for i, l := range lines {
		var rec struct {
			Type      string    `json:"type"`
			Input     string    `json:"input"`
			Embedding []float64 `json:"embedding"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Type != wantKinds[i] || len(rec.Embedding) == 0 {
			t.Errorf("line %d: type %q, %d values", i, rec.Type, len(rec.Embedding))
		}
		var n float64
		for _, v := range rec.Embedding {
			n += v * v
		}
		if math.Abs(n-1) > 1e-4 {
			t.Errorf("line %d: norm² %.6f, want 1", i, n)
		}
	}
}

func TestTokenizeAndSimilarity(t *testing.T) {
	dir := fixtures.Dir(t)
	model := fixtures.HFDir(t, dir)
	out, stderr, code := run(t, "tokenize", "--model", model, "a photo of a cat.")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var ids []int
	if err := json.Unmarshal([]byte(out), &ids); err != nil || len(ids) != 77 || ids[0] != 49406 {
		t.Fatalf("tokenize output %q (%v)", out, err)
	}
	img := fixtures.ImageFile(t, dir, 4)
	out, stderr, code = run(t, "similarity", "--model", model, "--image", img, "--text", "cat", "--text", "dog", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rec struct {
		Probs []float64 `json:"probs"`
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil || len(rec.Probs) != 2 || math.Abs(rec.Probs[0]+rec.Probs[1]-1) > 1e-5 {
		t.Fatalf("similarity output %q (%v)", out, err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"nonsense"},
		{"embed", "--model", "x"},
		{"embed", "--bogus-flag"},
		{"tokenize", "--model", "x"},
	} {
		if _, _, code := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if _, stderr, code := run(t, "embed", "--model", "/nonexistent/model.safetensors", "--text", "x"); code != 1 || !strings.Contains(stderr, "/nonexistent/model.safetensors") {
		t.Errorf("missing model: exit %d, %q", code, stderr)
	}
}

// TestEmbedInt8Warning: --precision int8 says so where it cannot be fast
// (the portable kernel, forced here), and stays quiet where it is.
func TestEmbedInt8Warning(t *testing.T) {
	dir := fixtures.Dir(t)
	model := fixtures.HFDir(t, dir)
	old := kernels.Kernel()
	defer kernels.SetKernel(old)
	for _, name := range []string{"go", old} {
		if err := kernels.SetKernel(name); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := run(t, "embed", "--model", model, "--precision", "int8", "--text", "a cat")
		if code != 0 {
			t.Fatalf("kernel %s: exit %d: %s", name, code, stderr)
		}
		warned := strings.Contains(stderr, "portable Go")
		if want := !kernels.Int8Accelerated(); warned != want {
			t.Errorf("kernel %s: warned %v, want %v (stderr %q)", name, warned, want, stderr)
		}
	}
}
