package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func randVec(r *rand.Rand, d int) []float32 {
	v := make([]float32, d)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func open(t *testing.T, path string, o *Options) *Store {
	t.Helper()
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// bruteForce ranks vecs by cosine with q in float64, best first.
func bruteForce(paths []string, vecs [][]float32, q []float32) []Result {
	out := make([]Result, len(paths))
	for i := range paths {
		out[i] = Result{paths[i], cos(vecs[i], q)}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Score > out[b].Score })
	return out
}

func cos(a, b []float32) float32 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return float32(ab / math.Sqrt(aa*bb))
}

func TestStoreSearch(t *testing.T) {
	for _, tc := range []struct {
		name      string
		n, thresh int
	}{{"flat", 300, 0}, {"hnsw", 3000, 1000}} {
		t.Run(tc.name, func(t *testing.T) {
			const d = 32
			path := filepath.Join(t.TempDir(), "sub", "index.db")
			s := open(t, path, &Options{ANNThreshold: tc.thresh})
			if err := s.EnsureModel("m1", d, "/models/m1"); err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(uint64(tc.n), 1))
			var paths []string
			var vecs [][]float32
			var batch []Entry
			for i := range tc.n {
				p := fmt.Sprintf("/photos/%05d.jpg", i)
				v := randVec(r, d)
				paths, vecs = append(paths, p), append(vecs, v)
				batch = append(batch, Entry{p, Record{Size: int64(i), ModTime: 7, Embedding: v}})
				if len(batch) == 100 {
					if err := s.Apply("m1", batch, nil); err != nil {
						t.Fatal(err)
					}
					batch = nil
				}
			}
			if err := s.Apply("m1", batch, nil); err != nil {
				t.Fatal(err)
			}
			if built, err := s.BuildIndex(context.Background(), "m1", nil); err != nil || built != (tc.thresh > 0) {
				t.Fatalf("BuildIndex: %v %v", built, err)
			}
			s.Close()
			s = open(t, path, &Options{ReadOnly: true, ANNThreshold: tc.thresh})
			if n, err := s.Count("m1"); err != nil || n != tc.n {
				t.Fatalf("Count = %d, %v", n, err)
			}
			var recall float64
			const k, nq = 10, 20
			for range nq {
				q := randVec(r, d)
				got, err := s.Search(context.Background(), "m1", q, k)
				if err != nil {
					t.Fatal(err)
				}
				want := bruteForce(paths, vecs, q)[:k]
				exact, _ := s.Exact(context.Background(), "m1", q, k)
				for i := range want {
					if exact[i].Path != want[i].Path || math.Abs(float64(exact[i].Score-want[i].Score)) > 1e-5 {
						t.Fatalf("exact hit %d: %+v, want %+v", i, exact[i], want[i])
					}
				}
				in := map[string]bool{}
				for _, w := range want {
					in[w.Path] = true
				}
				for _, g := range got {
					if in[g.Path] {
						recall++
					}
				}
			}
			recall /= k * nq
			if recall < 0.9 {
				t.Errorf("recall@%d = %.3f", k, recall)
			}
		})
	}
}

func TestStoreModels(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	s := open(t, path, nil)
	if _, err := s.Search(context.Background(), "nope", []float32{1}, 3); !errors.Is(err, ErrNoModel) {
		t.Fatalf("empty db: %v", err)
	}
	s.EnsureModel("modelA", 4, "a")
	s.EnsureModel("modelB", 2, "b")
	if err := s.EnsureModel("modelA", 8, "a"); err == nil {
		t.Error("dimension change accepted")
	}
	if err := s.Apply("modelA", []Entry{{"/x.png", Record{Embedding: []float32{1, 0, 0}}}}, nil); err == nil {
		t.Error("3-d embedding into a 4-d model accepted")
	}
	s.Apply("modelA", []Entry{
		{"/x.png", Record{Embedding: []float32{3, 0, 0, 4}}},
		{"/bad.png", Record{Err: "corrupt"}},
	}, nil)
	s.Apply("modelB", []Entry{{"/x.png", Record{Embedding: []float32{0, 1}}}}, nil)
	_, err := s.Search(context.Background(), "modelC", []float32{1, 0}, 3)
	if !errors.Is(err, ErrNoModel) || !strings.Contains(err.Error(), "modelA") || !strings.Contains(err.Error(), "modelC") {
		t.Errorf("unknown model error should name both ids: %v", err)
	}
	if _, err := s.Search(context.Background(), "modelB", []float32{1, 0, 0}, 3); err == nil {
		t.Error("query of the wrong size accepted")
	}
	res, err := s.Search(context.Background(), "modelA", []float32{0, 0, 0, 1}, 5)
	if err != nil || len(res) != 1 || res[0].Path != "/x.png" || math.Abs(float64(res[0].Score)-0.8) > 1e-6 {
		t.Errorf("search = %v, %v", res, err)
	}
	r, ok, err := s.Get("modelA", "/x.png")
	if err != nil || !ok || r.Embedding[0] != 0.6 {
		t.Errorf("Get = %+v %v %v (embedding should be stored normalised)", r, ok, err)
	}
	ms, err := s.Models()
	if err != nil || len(ms) != 2 || ms[0].Count != 1 || ms[0].Failed != 1 || ms[0].Dim != 4 {
		t.Errorf("Models = %+v, %v", ms, err)
	}
	s.Apply("modelA", nil, []string{"/x.png"})
	if n, _ := s.Count("modelA"); n != 0 {
		t.Errorf("after delete Count = %d", n)
	}
	// A second writer is refused quickly while the first holds the file.
	if _, err := Open(path, &Options{Timeout: 100e6}); !errors.Is(err, ErrLocked) {
		t.Errorf("second writer: %v", err)
	}
}

func TestDupes(t *testing.T) {
	for _, thresh := range []int{0, 200} {
		s := open(t, filepath.Join(t.TempDir(), "index.db"), &Options{ANNThreshold: thresh})
		const d = 16
		s.EnsureModel("m", d, "")
		r := rand.New(rand.NewPCG(3, 4))
		var put []Entry
		for i := range 600 {
			put = append(put, Entry{fmt.Sprintf("/p/%04d", i), Record{Embedding: randVec(r, d)}})
		}
		// near-copies: 10 ≈ 11 ≈ 12, and 500 ≈ 501
		for _, c := range [][2]int{{10, 11}, {10, 12}, {500, 501}} {
			v := append([]float32(nil), put[c[0]].Embedding...)
			v[0] += 0.01
			put[c[1]].Embedding = v
		}
		s.Apply("m", put, nil)
		pairs, err := s.Dupes(context.Background(), "m", 0.99)
		if err != nil {
			t.Fatal(err)
		}
		if len(pairs) != 4 { // 10-11, 10-12, 11-12, 500-501
			t.Fatalf("threshold %d: pairs %v", thresh, pairs)
		}
		g := Groups(pairs)
		if len(g) != 2 || len(g[0]) != 3 || g[1][0] != "/p/0500" {
			t.Errorf("groups %v", g)
		}
	}
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("GOCLIP_DB", "/tmp/x.db")
	if p, _ := DefaultPath(); p != "/tmp/x.db" {
		t.Errorf("GOCLIP_DB: %s", p)
	}
	t.Setenv("GOCLIP_DB", "")
	t.Setenv("XDG_DATA_HOME", "/data")
	if p, _ := DefaultPath(); p != filepath.Join("/data", "goclip", "index.db") {
		t.Errorf("XDG_DATA_HOME: %s", p)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []Record{
		{Size: 5, ModTime: -1, Hash: [32]byte{1, 2}, Embedding: []float32{0.5, -0.25}},
		{Size: 1 << 40, Err: "imageproc: x.jpg: unexpected EOF"},
	} {
		got, err := decodeRecord(encodeRecord(&r), false)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(r) {
			t.Errorf("round trip %+v → %+v", r, got)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(&Record{Size: 3, Embedding: []float32{1, 2, 3}}))
	f.Add(encodeRecord(&Record{Err: "bad"}))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b, false)
		if err != nil {
			return
		}
		again, err := decodeRecord(encodeRecord(&r), false)
		if err != nil || fmt.Sprint(again) != fmt.Sprint(r) {
			t.Fatalf("re-encoding %+v: %+v %v", r, again, err)
		}
		if d := recordDim(b); (d > 0) != (r.Embedding != nil) {
			t.Fatalf("recordDim %d for %+v", d, r)
		}
	})
}
