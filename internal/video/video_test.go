package video

import (
	"bytes"
	"context"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/indexer"
	"github.com/goclip/goclip/internal/store"
	"github.com/goclip/goclip/internal/zeroshot"
)

// loadModel loads the first fixture model stored as open_clip safetensors.
func loadModel(tb testing.TB, dir string) *clip.Model {
	tb.Helper()
	man := fixtures.ReadManifest(tb, dir)
	for _, m := range man.Models {
		if slices.Contains(m.Files, "open_clip_model.safetensors") {
			cm, err := clip.Load(filepath.Join(dir, m.Name, "open_clip_model.safetensors"), clip.WithTokenizer(filepath.Join(dir, "tokenizer")))
			if err != nil {
				tb.Fatal(err)
			}
			return cm
		}
	}
	tb.Skip("no open_clip safetensors model in the fixtures")
	return nil
}

// concatClip is a video made of still fixture images shown for segLen
// seconds each, with the stills' own embeddings.
type concatClip struct {
	path    string
	rate    int     // frames per second of the video
	segLen  float64 // seconds per still
	stills  []string
	emb     [][]float32 // normalised embeddings of the stills
	maxCos  float32     // largest cosine between two different stills
	shotThr float32     // a threshold between maxCos and 1
}

// makeConcat renders fixture images to equal-size stills, keeps up to n
// whose embeddings differ clearly, and concatenates them losslessly
// (FFV1, RGB) so every frame of a segment is exactly its still.
func makeConcat(t *testing.T, m *clip.Model, dir string, n int) *concatClip {
	t.Helper()
	needFFmpeg(t)
	man := fixtures.ReadManifest(t, dir)
	work := t.TempDir()
	c := &concatClip{rate: 5, segLen: 2}
	for _, im := range man.Images {
		if len(c.stills) == n {
			break
		}
		still := filepath.Join(work, sprintf("still%02d.png", im.Index))
		ffmpeg(t, "-i", filepath.Join(dir, im.File), "-frames:v", "1",
			"-vf", "scale=96:72:force_original_aspect_ratio=decrease,pad=96:72:(ow-iw)/2:(oh-ih)/2,format=rgb24", still)
		e, err := m.EncodeImageFiles(context.Background(), []string{still})
		if err != nil {
			t.Fatal(err)
		}
		v := clip.Normalize(e[0])
		worst := float32(-1)
		for _, o := range c.emb {
			worst = max(worst, dot(v, o))
		}
		if worst > 0.97 { // too close to a still already taken
			continue
		}
		c.stills, c.emb = append(c.stills, still), append(c.emb, v)
		c.maxCos = max(c.maxCos, worst)
	}
	if len(c.stills) < 3 {
		t.Skipf("only %d clearly different fixture images", len(c.stills))
	}
	c.shotThr = (1 + c.maxCos) / 2
	var args []string
	var labels string
	for i, s := range c.stills {
		args = append(args, "-loop", "1", "-framerate", sprintf("%d", c.rate), "-t", sprintf("%g", c.segLen), "-i", s)
		labels += sprintf("[%d:v]", i)
	}
	c.path = filepath.Join(work, "concat.mkv")
	args = append(args, "-filter_complex", sprintf("%sconcat=n=%d:v=1:a=0,format=bgr0[v]", labels, len(c.stills)),
		"-map", "[v]", "-c:v", "ffv1", c.path)
	ffmpeg(t, args...)
	return c
}

func TestConcatShotsMomentsClassify(t *testing.T) {
	dir := fixtures.Dir(t)
	m := loadModel(t, dir)
	c := makeConcat(t, m, dir, 4)
	ctx := context.Background()
	perSeg := int(c.segLen * float64(c.rate))
	t.Logf("%d stills, largest cosine between them %.4f, shot threshold %.4f", len(c.stills), c.maxCos, c.shotThr)

	for _, fps := range []float64{float64(c.rate), 1} {
		e, err := Embed(ctx, m, c.path, Options{FPS: fps}, 7)
		if err != nil {
			t.Fatal(err)
		}
		per := int(c.segLen * fps)
		if len(e.Times) != per*len(c.stills) {
			t.Fatalf("fps %g: %d frames, want %d", fps, len(e.Times), per*len(c.stills))
		}
		for i, tm := range e.Times {
			if tm != float64(i)/fps {
				t.Errorf("fps %g: frame %d at %v, want %v", fps, i, tm, float64(i)/fps)
			}
			if got := dot(e.Embeddings[i], c.emb[i/per]); got < 0.9999 {
				t.Errorf("fps %g: frame %d has cosine %.6f with its still", fps, i, got)
			}
		}
		var want []int
		for k := 1; k < len(c.stills); k++ {
			want = append(want, k*per)
		}
		if got := ShotStarts(e.Embeddings, c.shotThr); !slices.Equal(got, want) {
			t.Errorf("fps %g: shots start at frames %v, want %v (the concatenation points)", fps, got, want)
		}
		if e.Duration != c.segLen*float64(len(c.stills)) || e.Step != 1/fps {
			t.Errorf("fps %g: duration %v step %v", fps, e.Duration, e.Step)
		}
		if e.Stats.Frames != len(e.Times) {
			t.Errorf("stats count %d frames", e.Stats.Frames)
		}
	}

	// Index the clip and search with each segment's own frame embedding:
	// the moment is exactly that segment.
	db := filepath.Join(t.TempDir(), "index.db")
	st, err := store.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id, err := indexer.ModelID(st, m)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Index(ctx, []string{filepath.Dir(c.path)}, IndexOptions{Encoder: m, ModelID: id, Store: st, Sampling: Options{FPS: float64(c.rate)}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Found != 1 || sum.Added != 1 || sum.Frames != perSeg*len(c.stills) || len(sum.Failed) != 0 {
		t.Fatalf("index summary %+v", sum)
	}
	rec, ok, err := st.GetVideo(id, c.path)
	if err != nil || !ok {
		t.Fatalf("video not stored: %v", err)
	}
	lib := NewLibrary(st, id, nil)
	for k := range c.stills {
		q := rec.Embeddings[k*perSeg+perSeg/2]
		ms, err := lib.Search(ctx, q, 3, MomentOptions{ShotThreshold: c.shotThr})
		if err != nil {
			t.Fatal(err)
		}
		start, end := float64(k)*c.segLen, float64(k+1)*c.segLen
		if len(ms) == 0 || ms[0].Video != c.path || float64(ms[0].Start) != start || float64(ms[0].End) != end || ms[0].Score < 0.9999 {
			t.Errorf("segment %d: moments %+v, want the first to be [%v, %v]", k, ms, start, end)
		}
		for _, o := range ms[1:] {
			if o.Start < ms[0].End && o.End > ms[0].Start {
				t.Errorf("segment %d: moments overlap: %+v", k, ms)
			}
		}
		// Without shot splitting and with a huge margin, everything merges.
		ms, _ = lib.Search(ctx, q, 1, MomentOptions{NoShots: true, Margin: 3})
		if float64(ms[0].Start) != 0 || float64(ms[0].End) != c.segLen*float64(len(c.stills)) {
			t.Errorf("unsplit moment %+v", ms[0])
		}
	}
	shots, err := lib.Shots(c.path, c.shotThr)
	if err != nil || len(shots) != len(c.stills) {
		t.Errorf("Shots = %v, %v", shots, err)
	}
	// A rerun skips the unchanged video.
	sum, err = Index(ctx, []string{filepath.Dir(c.path)}, IndexOptions{Encoder: m, ModelID: id, Store: st, Sampling: Options{FPS: float64(c.rate)}})
	if err != nil || sum.Unchanged != 1 || sum.Added+sum.Updated != 0 {
		t.Errorf("rerun: %+v, %v", sum, err)
	}

	// Classification: the clip from the mean of all frames, each 2 s
	// window from its still, against a brute-force computation.
	texts := fixtures.Texts(t, dir)
	labels := texts[:min(4, len(texts))]
	clf, err := zeroshot.Build(ctx, m, labels, []string{"a photo of a {}."}, zeroshot.Options{Scale: m.LogitScale()})
	if err != nil {
		t.Fatal(err)
	}
	e, err := Embed(ctx, m, c.path, Options{FPS: float64(c.rate)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	res := Classify(e, clf, c.segLen, 0, len(labels))
	brute := func(stills [][]float32) []float32 {
		mean := make([]float32, len(stills[0]))
		for _, s := range stills {
			for i, v := range s {
				mean[i] += v / float32(len(stills))
			}
		}
		mean = clip.Normalize(mean)
		lg := make([]float32, len(labels))
		for j := range labels {
			lg[j] = m.LogitScale() * dot(mean, clf.Weights[j])
		}
		return clip.Softmax(lg)
	}
	check := func(what string, got []LabelProb, want []float32) {
		t.Helper()
		if len(got) != len(labels) {
			t.Fatalf("%s: %d labels", what, len(got))
		}
		for i, g := range got {
			j := slices.Index(labels, g.Label)
			if math.Abs(float64(g.Prob-want[j])) > 1e-4 {
				t.Errorf("%s: %q prob %.6f, brute force %.6f", what, g.Label, g.Prob, want[j])
			}
			if i > 0 && g.Prob > got[i-1].Prob {
				t.Errorf("%s: labels not sorted: %+v", what, got)
			}
		}
	}
	check("clip", res.Labels, brute(c.emb))
	if len(res.Segments) != len(c.stills) {
		t.Fatalf("%d segments, want %d", len(res.Segments), len(c.stills))
	}
	for k, s := range res.Segments {
		if float64(s.Start) != float64(k)*c.segLen || float64(s.End) != float64(k+1)*c.segLen || s.Frames != perSeg {
			t.Errorf("segment %d: %v..%v, %d frames", k, s.Start, s.End, s.Frames)
		}
		check(sprintf("segment %d", k), s.Labels, brute(c.emb[k:k+1]))
	}
	// Overlapping windows: 2 s every second.
	if res := Classify(e, clf, c.segLen, 1, 1); len(res.Segments) != 2*len(c.stills) || res.Segments[1].Start != 1 {
		t.Errorf("sliding windows: %d segments %+v", len(res.Segments), res.Segments)
	}

	// Thumbnails of indexed videos only.
	jp, err := lib.Thumbnail(ctx, c.path, 2.5, 48)
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(jp))
	if err != nil || img.Bounds().Dx() != 48 || img.Bounds().Dy() != 36 {
		t.Errorf("thumbnail: %v, %v", img.Bounds(), err)
	}
	if _, err := lib.Thumbnail(ctx, c.stills[0], 0, 48); !errorsIsNotExist(err) {
		t.Errorf("thumbnail of an unindexed file: %v", err)
	}

	// A deleted video's record goes on the next run.
	if err := os.Remove(c.path); err != nil {
		t.Fatal(err)
	}
	sum, err = Index(ctx, []string{filepath.Dir(c.path)}, IndexOptions{Encoder: m, ModelID: id, Store: st})
	if err != nil || sum.Removed != 1 {
		t.Errorf("after deleting: %+v, %v", sum, err)
	}
}

func errorsIsNotExist(err error) bool {
	return err != nil && strings.Contains(err.Error(), "not indexed")
}

func TestIndexBadVideos(t *testing.T) {
	dir := fixtures.Dir(t)
	m := loadModel(t, dir)
	needFFmpeg(t)
	work := t.TempDir()
	good := testsrc(t, work, "good.mp4", 64, 48, 10, 2)
	data, _ := os.ReadFile(good)
	os.WriteFile(filepath.Join(work, "cut.mp4"), data[:len(data)*6/10], 0o644)
	os.WriteFile(filepath.Join(work, "text.mkv"), []byte("not a video"), 0o644)
	os.WriteFile(filepath.Join(work, "notes.txt"), []byte("ignored"), 0o644)
	st, err := store.Open(filepath.Join(t.TempDir(), "i.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sum, err := Index(context.Background(), []string{work}, IndexOptions{Encoder: m, ModelID: "m", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Found != 3 || sum.Added != 2 || len(sum.Failed) != 1 || len(sum.Truncated) != 1 {
		t.Fatalf("summary %+v", sum)
	}
	if !strings.Contains(sum.Failed[0].Err, "text.mkv") || !strings.Contains(sum.Truncated[0].Err, "after") {
		t.Errorf("failures %+v, truncated %+v", sum.Failed, sum.Truncated)
	}
	r, _, _ := st.GetVideo("m", filepath.Join(work, "cut.mp4"))
	if len(r.Times) == 0 || r.Warning == "" {
		t.Errorf("truncated video record: %d frames, warning %q", len(r.Times), r.Warning)
	}
	// A query made of one frame's own embedding finds that frame's span.
	g, _, _ := st.GetVideo("m", good)
	lib := NewLibrary(st, "m", nil)
	for j := range g.Times {
		// (cut.mp4 starts with the same frames: it may tie.)
		ms, err := lib.Search(context.Background(), g.Embeddings[j], 3, MomentOptions{Margin: -1})
		if err != nil || len(ms) == 0 {
			t.Fatal(err)
		}
		i := slices.IndexFunc(ms, func(m Moment) bool { return m.Video == good })
		if i < 0 || ms[i].Score != ms[0].Score || float64(ms[i].Start) != g.Times[j] || float64(ms[i].End) != g.Times[j]+1 {
			t.Errorf("frame %d at %v: moments %+v", j, g.Times[j], ms)
		}
	}
	sum, err = Index(context.Background(), []string{work}, IndexOptions{Encoder: m, ModelID: "m", Store: st})
	if err != nil || sum.Unchanged != 2 || sum.PrevFailed != 1 {
		t.Errorf("rerun %+v %v", sum, err)
	}
}
