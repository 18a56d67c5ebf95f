package evaluate

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/zeroshot"
)

func TestEmbedFiles(t *testing.T) {
	paths := []string{"a", "bad", "c", "d", "bad2"}
	var calls int
	embed := func(ctx context.Context, p []string) ([][]float32, []error) {
		calls++
		emb := make([][]float32, len(p))
		errs := make([]error, len(p))
		for i, s := range p {
			if strings.HasPrefix(s, "bad") {
				errs[i] = errors.New(s + ": corrupt")
			} else {
				emb[i] = []float32{float32(len(s))}
			}
		}
		return emb, errs
	}
	var last int
	emb, skipped, err := EmbedFiles(context.Background(), embed, paths, 2, func(d, n int) { last = d })
	if err != nil {
		t.Fatal(err)
	}
	if calls != 3 || last != 5 || len(skipped) != 2 || skipped[0].Path != "bad" || skipped[1].Err != "bad2: corrupt" || emb[1] != nil || emb[2] == nil {
		t.Errorf("calls %d, progress %d, skipped %+v", calls, last, skipped)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := EmbedFiles(ctx, embed, paths, 2, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestZeroShotFixtures builds an image-folder dataset from the fixture
// images (two classes, plus one corrupt file) and checks the report
// against metrics computed by brute force from the model.
func TestZeroShotFixtures(t *testing.T) {
	dir := fixtures.Dir(t)
	man := fixtures.ReadManifest(t, dir)
	if len(man.Images) < 2 {
		t.Skip("needs two fixture images")
	}
	m, err := clip.Load(filepath.Join(dir, man.Models[0].Name, "open_clip_model.safetensors"), clip.WithTokenizer(filepath.Join(dir, "tokenizer")))
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	classes := []string{"red_thing", "blue_thing"}
	for i, im := range man.Images {
		src := filepath.Join(dir, im.File)
		dst := filepath.Join(data, classes[i%2], filepath.Base(im.File))
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := os.Symlink(src, dst); err != nil {
			t.Fatal(err)
		}
	}
	bad := filepath.Join(data, classes[0], "corrupt.jpg")
	os.WriteFile(bad, []byte("\xff\xd8\xff not a jpeg"), 0o644)
	ds, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	clf, err := zeroshot.Build(ctx, m, ds.Classes, []string{"a photo of a {}."}, zeroshot.Options{Scale: m.LogitScale()})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ZeroShot(ctx, ds, clf.Logits, m.EmbedImageFiles, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Skipped) != 1 || rep.Skipped[0].Path != bad || !strings.Contains(rep.Skipped[0].Err, "corrupt.jpg") {
		t.Errorf("skipped %+v", rep.Skipped)
	}
	if rep.Metrics.N != len(man.Images) || rep.Images.Items != len(man.Images) {
		t.Errorf("scored %d images, encoded %d, want %d", rep.Metrics.N, rep.Images.Items, len(man.Images))
	}
	// Brute force: one image at a time.
	var hit int
	perClass := make([][2]int, len(ds.Classes))
	for _, s := range ds.Samples {
		if s.Path == bad {
			continue
		}
		e, err := m.EncodeImageFiles(ctx, []string{s.Path})
		if err != nil {
			t.Fatal(err)
		}
		best, bestV := -1, math.Inf(-1)
		for c, w := range clf.Weights {
			if v := float64(clip.Similarity(e[0], w)); v > bestV {
				best, bestV = c, v
			}
		}
		perClass[s.Label][0]++
		if best == s.Label {
			hit++
			perClass[s.Label][1]++
		}
	}
	if want := float64(hit) / float64(rep.Metrics.N); math.Abs(rep.Metrics.Acc1-want) > 1e-12 {
		t.Errorf("acc1 %v, brute force %v", rep.Metrics.Acc1, want)
	}
	var mpcr float64
	for _, pc := range perClass {
		mpcr += float64(pc[1]) / float64(pc[0])
	}
	if want := mpcr / float64(len(perClass)); math.Abs(rep.Metrics.MeanPerClassRecall-want) > 1e-12 {
		t.Errorf("mean per-class recall %v, brute force %v", rep.Metrics.MeanPerClassRecall, want)
	}
	if rep.Metrics.Acc5 != 1 {
		t.Errorf("acc5 %v with two classes", rep.Metrics.Acc5)
	}
}
