package main

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// zsDataset links the fixture images into two class folders and adds one
// corrupt image; it returns the folder and the number of good images.
func zsDataset(t *testing.T, images []string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	for i, p := range images {
		cls := []string{"red_thing", "blue_thing"}[i%2]
		os.MkdirAll(filepath.Join(dir, cls), 0o755)
		if err := os.Symlink(p, filepath.Join(dir, cls, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "red_thing", "corrupt.png"), []byte("\x89PNG\r\n\x1a\nbroken"), 0o644)
	return dir, len(images)
}

func TestEvalZeroShot(t *testing.T) {
	mp, tok, images := zsFixture(t)
	data, n := zsDataset(t, images)
	plot := filepath.Join(t.TempDir(), "conf.png")
	code, out, errs := runMain(t, "eval", "zeroshot", "--model", mp, "--tokenizer", tok, "--no-cache", "--quiet",
		"--data", data, "--templates", "simple", "--json", "--pretrained", "fixture", "--plot", plot)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		Dataset, Model, Pretrained, Task, Language string
		Metrics                                    map[string]float64
		Goclip                                     struct {
			Images  int
			Skipped []struct{ Path, Error string }
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r.Task != "zeroshot_classification" || r.Language != "en" || r.Pretrained != "fixture" || r.Model != mp || r.Dataset != filepath.Base(data) {
		t.Errorf("result header %+v", r)
	}
	for _, k := range []string{"acc1", "acc5", "mean_per_class_recall"} {
		if v, ok := r.Metrics[k]; !ok || v < 0 || v > 1 {
			t.Errorf("metric %s = %v (present %v)", k, v, ok)
		}
	}
	if r.Goclip.Images != n || len(r.Goclip.Skipped) != 1 || !strings.Contains(r.Goclip.Skipped[0].Path, "corrupt.png") {
		t.Errorf("images %d (want %d), skipped %+v", r.Goclip.Images, n, r.Goclip.Skipped)
	}
	f, err := os.Open(plot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("confusion PNG: %v", err)
	}
	// Text report.
	code, out, errs = runMain(t, "eval", "zeroshot", "--model", mp, "--tokenizer", tok, "--no-cache", "--quiet", "--data", data, "--template", "a photo of a {}.")
	if code != 0 || !strings.Contains(out, "acc@1") || !strings.Contains(out, "red thing") || !strings.Contains(out, "skipped:") || !strings.Contains(out, "img/s") {
		t.Errorf("text report: exit %d\n%s%s", code, out, errs)
	}
}

func TestEvalBadInput(t *testing.T) {
	mp, tok, _ := zsFixture(t)
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "set.csv")
	os.WriteFile(csvPath, []byte("path,label\na.jpg,cat\nb.jpg\n"), 0o644)
	base := []string{"--model", mp, "--tokenizer", tok, "--no-cache", "--quiet"}
	for name, tc := range map[string]struct {
		args []string
		code int
		msg  string
	}{
		"csv missing column": {append([]string{"eval", "zeroshot", "--data", csvPath}, base...), 1, "set.csv:3: missing label column"},
		"unknown templates":  {append([]string{"eval", "zeroshot", "--data", csvPath, "--templates", "bogus"}, base...), 2, "cifar10"},
		"no data":            {append([]string{"eval", "zeroshot"}, base...), 2, "--data"},
		"no subcommand":      {[]string{"eval"}, 2, "missing subcommand"},
		"bad subcommand":     {[]string{"eval", "nope"}, 2, "unknown eval subcommand"},
		"bad k":              {[]string{"eval", "retrieval", "--captions", csvPath, "--k", "0"}, 2, "--k"},
		"probe without test": {[]string{"eval", "linear-probe", "--train", dir}, 2, "--test"},
	} {
		code, _, errs := runMain(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d mentioning %q", name, code, errs, tc.code, tc.msg)
		}
	}
}

func TestEvalRetrieval(t *testing.T) {
	mp, tok, images := zsFixture(t)
	if len(images) < 2 {
		t.Skip("needs two images")
	}
	dir := t.TempDir()
	caps := filepath.Join(dir, "caps.tsv")
	var b strings.Builder
	for i := range 5 {
		b.WriteString(images[0] + "\tcaption number " + string(rune('a'+i)) + "\n")
	}
	b.WriteString(images[1] + "\tthe other image\n")
	b.WriteString(filepath.Join(dir, "missing.png") + "\tnever seen\n")
	os.WriteFile(caps, []byte(b.String()), 0o644)
	code, out, errs := runMain(t, "eval", "retrieval", "--model", mp, "--tokenizer", tok, "--quiet", "--captions", caps, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		Task    string
		Metrics map[string]float64
		Goclip  struct {
			Images, Captions int
			Skipped          []any
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Task != "zeroshot_retrieval" || r.Goclip.Images != 2 || r.Goclip.Captions != 6 || len(r.Goclip.Skipped) != 1 {
		t.Errorf("%+v", r)
	}
	// Two images: recall@5 and @10 are 1 in both directions for text→image;
	// image→text with six captions: any caption in the top 5 hits.
	for _, k := range []string{"image_retrieval_recall@5", "image_retrieval_recall@10", "text_retrieval_recall@10"} {
		if r.Metrics[k] != 1 {
			t.Errorf("%s = %v", k, r.Metrics[k])
		}
	}
}

func TestEvalLinearProbe(t *testing.T) {
	mp, tok, images := zsFixture(t)
	data, _ := zsDataset(t, images)
	code, out, errs := runMain(t, "eval", "linear-probe", "--model", mp, "--tokenizer", tok, "--quiet", "--train", data, "--test", data, "--lambda", "0.01", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		Task    string
		Metrics map[string]float64
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Task != "linear_probe" || r.Metrics["lp_acc1"] <= 0 || r.Metrics["lp_acc1"] > 1 {
		t.Errorf("%+v", r)
	}
}
