package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/checkpoint"
	"github.com/goclip/goclip/internal/fixtures"
)

func TestParseRefs(t *testing.T) {
	imgs := []string{"a/cat.png", "b/dog.jpg"}
	for _, tc := range []struct {
		name, data string
		want       [][]string
		err        string
	}{
		{"per pair", `[["x","y"],["z"]]`, [][]string{{"x", "y"}, {"z"}}, ""},
		{"per pair strings", `["x",["z"]]`, nil, "not a string"},
		{"shared list", `["x","y"]`, [][]string{{"x", "y"}, {"x", "y"}}, ""},
		{"by name", `{"cat":["x"],"dog.jpg":"y"}`, [][]string{{"x"}, {"y"}}, ""},
		{"by path", `{"a/cat.png":["x"],"b/dog.jpg":["y","w"]}`, [][]string{{"x"}, {"y", "w"}}, ""},
		{"missing key", `{"cat":["x"]}`, nil, `no entry for image "b/dog.jpg"`},
		{"wrong count", `[["x"]]`, nil, "1 lists for 2 pairs"},
		{"bad json", `[["x"`, nil, "invalid JSON"},
		{"lines", "one\n\n two \n", [][]string{{"one", "two"}, {"one", "two"}}, ""},
		{"empty", " \n", nil, "no captions"},
		{"number", `{"cat":1,"dog":"y"}`, nil, "not a string or a list"},
	} {
		got, err := parseRefs([]byte(tc.data), imgs)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(tc.want)
		if string(a) != string(b) {
			t.Errorf("%s: got %s, want %s", tc.name, a, b)
		}
	}
}

func FuzzParseRefs(f *testing.F) {
	for _, s := range []string{`[["x","y"],["z"]]`, `["x"]`, `{"cat":["x"],"dog":"y"}`, "a\nb", "", `[`, `{"cat":[1]}`, `[[],[]]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		imgs := []string{"cat.png", "dog.png"}
		refs, err := parseRefs([]byte(data), imgs)
		if err == nil && len(refs) != len(imgs) {
			t.Fatalf("%d reference lists for %d images", len(refs), len(imgs))
		}
	})
}

func TestScoreRerankCaptionCLI(t *testing.T) {
	dir := fixtures.Dir(t)
	model := fixtures.HFDir(t, dir)
	a := fixtures.ImageFile(t, dir, 1)
	b := fixtures.ImageFile(t, dir, 10)
	refs := filepath.Join(t.TempDir(), "refs.json")
	os.WriteFile(refs, []byte(`[["a drawing of shapes"],["static noise","grey"]]`), 0o644)
	out, stderr, code := run(t, "score", "--model", model, "--image", a, "--text", "shapes", "--image", b, "--text", "noise", "--refs", refs, "--json")
	if code != 0 {
		t.Fatalf("score: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("score: %d lines: %q", len(lines), out)
	}
	for _, l := range lines {
		var rec struct {
			Image, Text                     string
			Cosine, CLIPScore, RefCLIPScore *float64
		}
		if err := json.Unmarshal([]byte(strings.ReplaceAll(strings.ReplaceAll(l, `"clipscore"`, `"CLIPScore"`), `"refclipscore"`, `"RefCLIPScore"`)), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Cosine == nil || rec.CLIPScore == nil || rec.RefCLIPScore == nil || math.Abs(*rec.CLIPScore-2.5*math.Max(*rec.Cosine, 0)) > 1e-6 {
			t.Errorf("score record %s", l)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"score", "--model", model, "--image", a, "--text", "x", "--text", "y"}, "1 images but 2 texts"},
		{[]string{"score", "--model", model}, "no pairs"},
		{[]string{"rerank", "--model", model, a}, "no prompt"},
		{[]string{"caption", "--model", model, a}, "no candidates"},
		{[]string{"hidden", "--model", model, "--text", "x", "--layer", "7", "--out", filepath.Join(t.TempDir(), "h.safetensors")}, "valid layers are 0..1"},
		{[]string{"edit", "--model", model, "--image", a, "--prompt", "x", "--out", "o.png", "--strength", "1.5"}, "--strength 1.5 is outside [0, 1]"},
		{[]string{"heatmap", "--model", model, "--image", a, "--text", "x"}, "--out"},
	} {
		_, stderr, code := run(t, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error containing %q", tc.args, code, stderr, tc.want)
		}
	}
	out, stderr, code = run(t, "rerank", "--model", model, "--text", "noise", a, b)
	if code != 0 || !strings.Contains(out, "rank") {
		t.Errorf("rerank: exit %d, %s %s", code, out, stderr)
	}
	cands := filepath.Join(t.TempDir(), "c.txt")
	os.WriteFile(cands, []byte("shapes\nnoise\na cat\n"), 0o644)
	out, stderr, code = run(t, "caption", "--model", model, "--candidates", cands, "--k", "2", "--json", a)
	if code != 0 || !strings.Contains(out, `"captions"`) {
		t.Errorf("caption: exit %d, %s %s", code, out, stderr)
	}
}

func TestHiddenPatchesHeatmapEditCLI(t *testing.T) {
	dir := fixtures.Dir(t)
	model := fixtures.HFDir(t, dir)
	img := fixtures.ImageFile(t, dir, 1)
	tmp := t.TempDir()
	h := filepath.Join(tmp, "h.safetensors")
	if _, stderr, code := run(t, "hidden", "--model", model, "--text", "a cat", "--text", "a dog", "--layer", "-2", "--out", h); code != 0 {
		t.Fatalf("hidden: %s", stderr)
	}
	f, err := checkpoint.OpenSafetensors(h)
	if err != nil {
		t.Fatal(err)
	}
	if hs := f.Tensor("hidden_states"); hs == nil || len(hs.Shape) != 3 || hs.Shape[0] != 2 || hs.Shape[1] != 77 {
		t.Errorf("hidden_states tensor %+v", hs)
	}
	f.Close()
	p := filepath.Join(tmp, "p.safetensors")
	if _, stderr, code := run(t, "patches", "--model", model, "--image", img, "--project", "--out", p); code != 0 {
		t.Fatalf("patches: %s", stderr)
	}
	f, err = checkpoint.OpenSafetensors(p)
	if err != nil {
		t.Fatal(err)
	}
	if tp := f.Tensor("tokens_projected"); tp == nil || tp.Shape[1] != 50 {
		t.Errorf("tokens_projected tensor %+v", tp)
	}
	f.Close()
	hm := filepath.Join(tmp, "map.png")
	if out, stderr, code := run(t, "heatmap", "--model", model, "--image", img, "--text", "a circle", "--out", hm, "--size", "64"); code != 0 {
		t.Fatalf("heatmap: %s", stderr)
	} else if !strings.Contains(out, "7×7 patch similarities") {
		t.Errorf("heatmap output %q", out)
	}
	ed := filepath.Join(tmp, "e.png")
	out, stderr, code := run(t, "edit", "--model", model, "--image", img, "--prompt", "a dog", "--steps", "3", "--views", "1", "--out", ed)
	if code != 0 {
		t.Fatalf("edit: %s", stderr)
	}
	for _, f := range []string{ed, filepath.Join(tmp, "e-frames.png")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("edit did not write %s (%s)", f, out)
		}
	}
}
