package index

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

func TestDot(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 3, 7, 8, 9, 31, 32, 33, 64, 100, 512, 513} {
		a, b := make([]float32, n), make([]float32, n+5)
		gauss(r, a, 1)
		gauss(r, b, 1)
		var want float64
		for i := range a {
			want += float64(a[i]) * float64(b[i])
		}
		for name, got := range map[string]float32{"Dot": Dot(a, b)} {
			if math.Abs(float64(got)-want) > 1e-4*math.Max(1, math.Sqrt(float64(n))) {
				t.Errorf("%s n=%d: %v, want %v", name, n, got, want)
			}
		}
	}
}

// naive is the reference top-k: a full sort of every score.
func naive(vecs, q []float32, dim, k int) []Hit {
	n := len(vecs) / dim
	all := make([]Hit, n)
	for i := range n {
		all[i] = Hit{i, Dot(q, vecs[i*dim:(i+1)*dim])}
	}
	sortHits(all)
	return all[:min(k, n)]
}

func TestFlat(t *testing.T) {
	for _, tc := range []struct{ n, dim, k int }{
		{0, 8, 5}, {1, 8, 5}, {10, 8, 3}, {100, 16, 100}, {5000, 32, 10}, {9000, 13, 7},
	} {
		vecs, qs := dataset(uint64(tc.n), tc.n, 5, tc.dim, 20)
		f, err := NewFlat(vecs, tc.dim)
		if err != nil {
			t.Fatal(err)
		}
		for qi := range 5 {
			q := qs[qi*tc.dim : (qi+1)*tc.dim]
			got, want := f.Search(q, tc.k), naive(vecs, q, tc.dim, tc.k)
			if len(got) != len(want) {
				t.Fatalf("n=%d: %d hits, want %d", tc.n, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("n=%d dim=%d hit %d: %+v, want %+v", tc.n, tc.dim, i, got[i], want[i])
				}
			}
		}
	}
	if _, err := NewFlat(make([]float32, 7), 2); err == nil {
		t.Error("7 floats as rows of 2: no error")
	}
	f, _ := NewFlat(make([]float32, 8), 2)
	if h := f.Search(make([]float32, 3), 2); h != nil {
		t.Errorf("wrong query size: %v", h)
	}
}

func TestHNSWRecall(t *testing.T) {
	const n, nq, dim, k = 4000, 100, 48, 10
	vecs, qs := dataset(7, n, nq, dim, 40)
	h, err := Build(context.Background(), vecs, dim, Config{M: 12, EfConstruction: 100, Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := NewFlat(vecs, dim)
	var rec float64
	for qi := range nq {
		q := qs[qi*dim : (qi+1)*dim]
		got := h.Search(q, k, 64)
		rec += recallAt(got, f.Search(q, k), k)
		for i := 1; i < len(got); i++ {
			if got[i].Score > got[i-1].Score {
				t.Fatalf("hits not best first: %v", got)
			}
		}
	}
	rec /= nq
	t.Logf("recall@%d = %.4f", k, rec)
	if rec < 0.95 {
		t.Errorf("recall@%d = %.4f < 0.95", k, rec)
	}
	// Every vector finds itself.
	for i := 0; i < n; i += 97 {
		got := h.Search(vecs[i*dim:(i+1)*dim], 1, 0)
		if len(got) != 1 || got[0].Score < 0.9999 {
			t.Fatalf("vector %d: %v", i, got)
		}
	}
}

func TestHNSWDeterministic(t *testing.T) {
	vecs, _ := dataset(3, 600, 0, 16, 10)
	var outs [][]byte
	for range 2 {
		h, err := Build(context.Background(), vecs, 16, Config{M: 8, EfConstruction: 40, Seed: 42, Workers: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if _, err := h.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, b.Bytes())
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Error("same seed, one worker: different graphs")
	}
}

func TestHNSWSmall(t *testing.T) {
	for _, n := range []int{0, 1, 2, 5} {
		vecs, qs := dataset(uint64(n), n, 1, 4, 2)
		h, err := Build(context.Background(), vecs, 4, Config{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := h.Search(qs, 10, 0)
		if len(got) != n {
			t.Errorf("n=%d: %d hits", n, len(got))
		}
	}
	if _, err := Build(context.Background(), make([]float32, 5), 2, Config{}, nil); err == nil {
		t.Error("5 floats as rows of 2: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	vecs, _ := dataset(1, 3000, 0, 8, 4)
	if _, err := Build(ctx, vecs, 8, Config{}, nil); err == nil {
		t.Error("cancelled build: no error")
	}
}

func TestSerialise(t *testing.T) {
	const dim = 24
	vecs, qs := dataset(11, 1500, 20, dim, 15)
	h, err := Build(context.Background(), vecs, dim, Config{M: 6, EfConstruction: 50, Seed: 9}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := h.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	g, err := Load(bytes.NewReader(data), vecs, dim)
	if err != nil {
		t.Fatal(err)
	}
	for qi := range 20 {
		q := qs[qi*dim : (qi+1)*dim]
		a, c := h.Search(q, 5, 30), g.Search(q, 5, 30)
		for i := range a {
			if a[i] != c[i] {
				t.Fatalf("query %d: loaded graph answers %v, built %v", qi, c, a)
			}
		}
	}
	bad := []struct {
		name string
		data []byte
		vecs []float32
		dim  int
	}{
		{"empty", nil, vecs, dim},
		{"truncated", data[:len(data)/2], vecs, dim},
		{"other dim", data, vecs, dim / 2},
		{"fewer vectors", data, vecs[:len(vecs)-dim], dim},
	}
	for _, tc := range bad {
		if _, err := Load(bytes.NewReader(tc.data), tc.vecs, tc.dim); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func FuzzLoad(f *testing.F) {
	const dim = 4
	vecs, qs := dataset(5, 40, 1, dim, 3)
	h, _ := Build(context.Background(), vecs, dim, Config{M: 3, EfConstruction: 10, Seed: 1, Workers: 1}, nil)
	var b bytes.Buffer
	h.WriteTo(&b)
	f.Add(b.Bytes())
	f.Add(b.Bytes()[:100])
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Load(bytes.NewReader(data), vecs, dim)
		if err != nil {
			return
		}
		g.Search(qs, 5, 10) // must not panic
	})
}
