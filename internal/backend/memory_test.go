package backend

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// noExact hides Memory's Exact method: a backend without exhaustive
// search.
type noExact struct{ *Memory }

func (noExact) Exact() {}

func TestMemory(t *testing.T) {
	ctx := context.Background()
	b := NewMemory("mem")
	if _, err := b.Search(ctx, "m", []float32{1, 0}, 1); !errors.Is(err, ErrNoModel) {
		t.Fatalf("search of a missing model: %v", err)
	}
	if err := CheckModel(ctx, b, "m", 2); !errors.Is(err, ErrNoModel) || !strings.Contains(err.Error(), "mem") {
		t.Fatalf("CheckModel of a missing model: %v", err)
	}
	if err := b.EnsureModel(ctx, "m", 2, ""); err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureModel(ctx, "m", 3, ""); !errors.Is(err, ErrDimension) {
		t.Fatalf("dimension change: %v", err)
	}
	if err := CheckModel(ctx, b, "m", 3); !errors.Is(err, ErrDimension) {
		t.Fatalf("CheckModel of another dimension: %v", err)
	}
	recs := []Record{
		{Path: "/a", Embedding: []float32{2, 0}},
		{Path: "/b", Embedding: []float32{0, 3}},
		{Path: "/c", Embedding: []float32{1, 1}},
		{Path: "/d", Embedding: []float32{1, 1}}, // ties with /c: path order
		{Path: "/bad", Err: "corrupt"},
	}
	if err := b.Upsert(ctx, "m", recs); err != nil {
		t.Fatal(err)
	}
	if err := b.Upsert(ctx, "m", []Record{{Path: "/x", Embedding: []float32{1}}}); err == nil {
		t.Fatal("upsert of a 1-d embedding into a 2-d model succeeded")
	}
	if n, err := b.Count(ctx, "m"); err != nil || n != 4 {
		t.Fatalf("count %d %v", n, err)
	}
	for _, tc := range []struct {
		q    []float32
		k    int
		want string
	}{
		{[]float32{1, 0}, 1, "/a"},
		{[]float32{5, 5}, 3, "/c /d /a"},
		{[]float32{0, -1}, 10, "/a /c /d /b"}, // k above the count
		{[]float32{1, 1}, 0, ""},
	} {
		for _, exact := range []bool{false, true} {
			res, err := SearchVector(ctx, b, "m", tc.q, tc.k, exact)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range res {
				got = append(got, r.Path)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("search %v k=%d exact=%v: %v, want %s", tc.q, tc.k, exact, res, tc.want)
			}
		}
	}
	if _, err := b.Search(ctx, "m", []float32{1, 0, 0}, 1); err == nil {
		t.Error("3-d query of a 2-d model succeeded")
	}
	// Lookup and Get: no embeddings; failures keep their reason.
	if r, ok, err := Get(ctx, b, "m", "/bad"); err != nil || !ok || r.Err != "corrupt" || r.Embedding != nil {
		t.Errorf("Get /bad = %+v %v %v", r, ok, err)
	}
	if r, ok, err := Get(ctx, b, "m", "/a"); err != nil || !ok || r.Err != "" || r.Embedding != nil {
		t.Errorf("Get /a = %+v %v %v", r, ok, err)
	}
	if _, ok, err := Get(ctx, b, "m", "/none"); err != nil || ok {
		t.Errorf("Get /none: %v %v", ok, err)
	}
	if err := b.Delete(ctx, "m", []string{"/a", "/none"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.Count(ctx, "m"); n != 3 {
		t.Errorf("count after delete %d", n)
	}
	// A backend without Exact refuses --exact, naming itself.
	_, err := SearchVector(ctx, noExact{b}, "m", []float32{1, 0}, 1, true)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "mem") {
		t.Errorf("exact search without Exacter: %v", err)
	}
	if res, err := SearchVector(ctx, noExact{b}, "m", []float32{1, 0}, 1, false); err != nil || len(res) != 1 {
		t.Errorf("approximate search: %v %v", res, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Search(cctx, "m", []float32{1, 0}, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("search with a canceled context: %v", err)
	}
}
