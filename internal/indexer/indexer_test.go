package indexer

import (
	"bufio"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclip/goclip/clip"
	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/store"
)

// loadModel loads the first fixture model shipped as an open_clip
// safetensors file.
func loadModel(tb testing.TB) (*clip.Model, string) {
	tb.Helper()
	dir := fixtures.Dir(tb)
	man := fixtures.ReadManifest(tb, dir)
	for _, m := range man.Models {
		if slices.Contains(m.Files, "open_clip_model.safetensors") {
			p := filepath.Join(dir, m.Name, "open_clip_model.safetensors")
			model, err := clip.Load(p, clip.WithTokenizer(filepath.Join(dir, "tokenizer")), clip.WithBatchSize(8))
			if err != nil {
				tb.Fatal(err)
			}
			return model, dir
		}
	}
	tb.Skip("no open_clip safetensors model in the fixtures")
	return nil, ""
}

// photoDir copies the manifest's fixture images into a fresh folder tree
// (half of them in a subfolder) and returns it with the copied paths.
func photoDir(tb testing.TB, fixDir string) (string, []string) {
	tb.Helper()
	root := tb.TempDir()
	man := fixtures.ReadManifest(tb, fixDir)
	var paths []string
	for i, im := range man.Images {
		data, err := os.ReadFile(filepath.Join(fixDir, im.File))
		if err != nil {
			tb.Fatal(err)
		}
		dst := filepath.Join(root, filepath.Base(im.File))
		if i%2 == 1 {
			dst = filepath.Join(root, "sub", "deeper", filepath.Base(im.File))
		}
		writeFile(tb, dst, data)
		paths = append(paths, dst)
	}
	return root, paths
}

func writeFile(tb testing.TB, p string, data []byte) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// randomPNG writes a small random image (distinct content per seed).
func randomPNG(tb testing.TB, p string, seed uint64) {
	tb.Helper()
	r := rand.New(rand.NewPCG(seed, 9))
	img := image.NewRGBA(image.Rect(0, 0, 40+r.IntN(40), 30+r.IntN(40)))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	img.Set(0, 0, color.RGBA{1, 2, 3, 255})
	var b strings.Builder
	if err := png.Encode(&b, img); err != nil {
		tb.Fatal(err)
	}
	writeFile(tb, p, []byte(b.String()))
}

func openStore(tb testing.TB, p string) *store.Store {
	tb.Helper()
	s, err := store.Open(p, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func run(tb testing.TB, s *store.Store, m *clip.Model, id string, roots ...string) *Summary {
	tb.Helper()
	sum, err := Run(context.Background(), roots, Options{Model: m, ModelID: id, Store: s, Batch: 4})
	if err != nil {
		tb.Fatal(err)
	}
	return sum
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

func TestIndexAndSearch(t *testing.T) {
	m, fixDir := loadModel(t)
	root, paths := photoDir(t, fixDir)
	// Bad input next to the good files.
	corrupt := filepath.Join(root, "sub", "corrupt.jpg")
	writeFile(t, corrupt, []byte("\xff\xd8\xff\xe0 this is not really a jpeg"))
	truncated := filepath.Join(root, "truncated.png")
	good, _ := os.ReadFile(paths[0])
	writeFile(t, truncated, good[:len(good)/3])
	heic := filepath.Join(root, "phone.heic")
	writeFile(t, heic, []byte("\x00\x00\x00\x18ftypheic"))
	writeFile(t, filepath.Join(root, "notes.txt"), []byte("not an image"))
	missing := filepath.Join(root, "does-not-exist")

	s := openStore(t, filepath.Join(t.TempDir(), "index.db"))
	id, err := ModelID(s, m)
	if err != nil {
		t.Fatal(err)
	}
	if id2, _ := ModelID(s, m); id2 != id {
		t.Fatalf("ModelID not stable: %s, %s", id, id2)
	}
	sum := run(t, s, m, id, root, missing)
	t.Logf("summary: %+v", sum)
	if sum.Found != len(paths)+3 || sum.Added != len(paths) || len(sum.Failed) != 3 || sum.Ignored != 1 || len(sum.DirErrors) != 1 {
		t.Errorf("first run: %+v", sum)
	}
	kinds := map[string]string{}
	for _, f := range sum.Failed {
		kinds[f.Path] = f.Kind
	}
	if kinds[corrupt] != "corrupt" || kinds[truncated] != "corrupt" || kinds[heic] != "unsupported" {
		t.Errorf("failure kinds: %v", kinds)
	}

	// The stored embeddings are the normalised EncodeImageFiles output.
	want, err := m.EncodeImageFiles(context.Background(), paths)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range paths {
		r, ok, err := s.Get(id, p)
		if err != nil || !ok {
			t.Fatalf("%s: %v %v", p, ok, err)
		}
		if c := cosine(r.Embedding, want[i]); c < 1-1e-5 {
			t.Errorf("%s: cosine with EncodeImageFiles %.7f", p, c)
		}
	}

	// Text and image search rank like brute force over EncodeTexts /
	// EncodeImageFiles.
	texts := fixtures.Texts(t, fixDir)
	queries, err := m.EncodeTexts(context.Background(), texts[:min(5, len(texts))])
	if err != nil {
		t.Fatal(err)
	}
	queries = append(queries, want[0], want[len(want)-1])
	for qi, q := range queries {
		got, err := s.Search(context.Background(), id, q, len(paths))
		if err != nil {
			t.Fatal(err)
		}
		type ps struct {
			p string
			s float64
		}
		ref := make([]ps, len(paths))
		for i := range paths {
			ref[i] = ps{paths[i], cosine(q, want[i])}
		}
		sort.SliceStable(ref, func(a, b int) bool { return ref[a].s > ref[b].s })
		if len(got) != len(ref) {
			t.Fatalf("query %d: %d results, want %d", qi, len(got), len(ref))
		}
		for i := range got {
			if math.Abs(float64(got[i].Score)-ref[i].s) > 1e-5 {
				t.Errorf("query %d rank %d: %s %.6f, brute force %s %.6f", qi, i, got[i].Path, got[i].Score, ref[i].p, ref[i].s)
			}
			// equal scores (identical images) may swap; distinct ones may not
			if got[i].Path != ref[i].p && math.Abs(cosine(q, emb(t, s, id, got[i].Path))-ref[i].s) > 1e-5 {
				t.Errorf("query %d rank %d: %s, want %s", qi, i, got[i].Path, ref[i].p)
			}
		}
	}

	// Rerun: nothing to do; failures are remembered, not retried.
	sum = run(t, s, m, id, root)
	if sum.Unchanged != len(paths) || sum.PrevFailed != 3 || sum.Added+sum.Updated+len(sum.Failed)+sum.Removed != 0 {
		t.Errorf("second run: %+v", sum)
	}

	// Changes: one file rewritten, one touched, one deleted, one copied,
	// one new; the corrupt file fixed.
	changed, touched, deleted := paths[1], paths[2], paths[3]
	randomPNG(t, changed, 77)
	later := time.Now().Add(time.Hour)
	os.Chtimes(touched, later, later)
	os.Remove(deleted)
	copied := filepath.Join(root, "copy-of-"+filepath.Base(paths[4]))
	data, _ := os.ReadFile(paths[4])
	writeFile(t, copied, data)
	newFile := filepath.Join(root, "sub", "new.png")
	randomPNG(t, newFile, 78)
	os.Remove(corrupt)
	randomPNG(t, corrupt, 79) // PNG bytes behind a .jpg name decode fine
	sum = run(t, s, m, id, root)
	t.Logf("third run: %+v", sum)
	if sum.Updated != 2 || sum.Touched != 1 || sum.Removed != 1 || sum.Copied != 1 || sum.Added != 1 || sum.PrevFailed != 2 {
		t.Errorf("third run: %+v", sum)
	}
	fresh, err := m.EncodeImageFiles(context.Background(), []string{changed, copied, newFile})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range []string{changed, copied, newFile} {
		if c := cosine(emb(t, s, id, p), fresh[i]); c < 1-1e-5 {
			t.Errorf("%s: stale embedding (cosine %.6f)", p, c)
		}
	}
	if _, ok, _ := s.Get(id, deleted); ok {
		t.Errorf("%s: record kept after deletion", deleted)
	}
	if n, _ := s.Count(id); n != len(paths)+2 {
		t.Errorf("count %d, want %d", n, len(paths)+2)
	}

	// A database searched with another model id names both.
	if _, err := s.Search(context.Background(), "other-0123456789abcdef", queries[0], 3); err == nil ||
		!strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), "other-0123456789abcdef") {
		t.Errorf("other model: %v", err)
	}
}

func emb(tb testing.TB, s *store.Store, id, p string) []float32 {
	tb.Helper()
	r, ok, err := s.Get(id, p)
	if err != nil || !ok || r.Failed() {
		tb.Fatalf("%s: no embedding (%v)", p, err)
	}
	return r.Embedding
}

func TestUnreadableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every directory")
	}
	m, fixDir := loadModel(t)
	root, paths := photoDir(t, fixDir)
	s := openStore(t, filepath.Join(t.TempDir(), "index.db"))
	id, _ := ModelID(s, m)
	run(t, s, m, id, root)
	sub := filepath.Join(root, "sub")
	os.Chmod(sub, 0)
	defer os.Chmod(sub, 0o755)
	sum := run(t, s, m, id, root)
	if len(sum.DirErrors) != 1 || sum.Removed != 0 {
		t.Errorf("unreadable dir: %+v", sum)
	}
	if n, _ := s.Count(id); n != len(paths) {
		t.Errorf("records under the unreadable dir dropped: %d of %d left", n, len(paths))
	}
}

// TestMain lets the test binary act as a child indexer for TestKill.
func TestMain(m *testing.M) {
	if os.Getenv("GOCLIP_INDEXER_CHILD") == "1" {
		childIndex()
		return
	}
	os.Exit(m.Run())
}

func childIndex() {
	model, err := clip.Load(os.Getenv("GOCLIP_CHILD_MODEL"), clip.WithTokenizer(os.Getenv("GOCLIP_CHILD_TOKENIZER")))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	s, err := store.Open(os.Getenv("GOCLIP_CHILD_DB"), nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	id, _ := ModelID(s, model)
	_, err = Run(context.Background(), []string{os.Getenv("GOCLIP_CHILD_DIR")}, Options{
		Model: model, ModelID: id, Store: s, Batch: 2,
		Progress: func(done, found int, walkDone bool) {
			fmt.Println("committed", done)
			time.Sleep(20 * time.Millisecond)
		},
	})
	fmt.Println("finished", err)
	os.Exit(0)
}

// TestKill SIGKILLs an indexing child process after a few committed
// batches, reruns, and checks that every file has exactly one record with
// the same embedding as an uninterrupted run.
func TestKill(t *testing.T) {
	m, fixDir := loadModel(t)
	root, paths := photoDir(t, fixDir)
	for i := range 24 {
		p := filepath.Join(root, "gen", fmt.Sprintf("r%02d.png", i))
		randomPNG(t, p, uint64(i))
		paths = append(paths, p)
	}
	tmp := t.TempDir()
	killedDB := filepath.Join(tmp, "killed.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GOCLIP_INDEXER_CHILD=1",
		"GOCLIP_CHILD_MODEL="+m.Path(), "GOCLIP_CHILD_TOKENIZER="+filepath.Join(fixDir, "tokenizer"),
		"GOCLIP_CHILD_DB="+killedDB, "GOCLIP_CHILD_DIR="+root)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	commits := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "committed") {
			commits++
			if commits == 3 {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		} else {
			t.Fatalf("child: %s", line)
		}
	}
	io.Copy(io.Discard, out)
	cmd.Wait()
	if commits < 3 {
		t.Fatalf("child finished after %d commits, before the kill", commits)
	}

	s := openStore(t, killedDB)
	id, _ := ModelID(s, m)
	partial, _ := s.Count(id)
	t.Logf("killed after %d commits with %d of %d files stored", commits, partial, len(paths))
	if partial == 0 || partial >= len(paths) {
		t.Errorf("kill did not land mid-run: %d of %d stored", partial, len(paths))
	}
	sum := run(t, s, m, id, root)
	if sum.Unchanged != partial || sum.Added != len(paths)-partial {
		t.Errorf("rerun: %+v", sum)
	}

	clean := openStore(t, filepath.Join(tmp, "clean.db"))
	run(t, clean, m, id, root)
	rows := map[string][]float32{}
	err = s.Scan(id, false, func(p string, r store.Record) error {
		if _, dup := rows[p]; dup {
			t.Errorf("%s: two records", p)
		}
		rows[p] = r.Embedding
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(paths) {
		t.Errorf("%d records for %d files", len(rows), len(paths))
	}
	maxDiff := 0.0
	for _, p := range paths {
		a, b := rows[p], emb(t, clean, id, p)
		if a == nil {
			t.Fatalf("%s: missing after rerun", p)
		}
		for i := range a {
			maxDiff = max(maxDiff, math.Abs(float64(a[i]-b[i])))
		}
	}
	t.Logf("max |Δ| between resumed and clean embeddings: %g", maxDiff)
	if maxDiff > 1e-6 {
		t.Errorf("resumed embeddings differ from a clean run by %g", maxDiff)
	}
}
