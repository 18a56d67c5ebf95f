package index

import (
	"fmt"
	"slices"
	"sync"

	"github.com/goclip/goclip/internal/kernels"
)

// sortHits orders hits best first, ties by lower id.
func sortHits(h []Hit) {
	slices.SortFunc(h, func(a, b Hit) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return a.ID - b.ID
	})
}

// Flat is an exact index: every query is compared with every vector.
type Flat struct {
	dim  int
	vecs []float32
}

// NewFlat indexes the n = len(vecs)/dim rows of vecs.
func NewFlat(vecs []float32, dim int) (*Flat, error) {
	if dim <= 0 || len(vecs)%dim != 0 {
		return nil, fmt.Errorf("index: %d floats do not form rows of %d", len(vecs), dim)
	}
	return &Flat{dim: dim, vecs: vecs}, nil
}

// Len returns the number of indexed vectors.
func (f *Flat) Len() int { return len(f.vecs) / f.dim }

// Dim returns the vector size.
func (f *Flat) Dim() int { return f.dim }

// Search returns the k rows with the highest dot product with q, best
// first (ties: lower row first). It scans rows in parallel over the shared
// worker pool, each worker keeping its own top k.
func (f *Flat) Search(q []float32, k int) []Hit {
	n := f.Len()
	if k <= 0 || n == 0 || len(q) != f.dim {
		return nil
	}
	k = min(k, n)
	const minRows = 4096 // below this one goroutine is faster
	if n < minRows {
		t := newTopK(k)
		f.scan(q, 0, n, t)
		return t.sorted()
	}
	var mu sync.Mutex
	all := newTopK(k)
	kernels.Parallel(n, func(lo, hi int) {
		t := newTopK(k)
		f.scan(q, lo, hi, t)
		mu.Lock()
		for _, h := range t.h {
			all.push(h.ID, h.Score)
		}
		mu.Unlock()
	})
	return all.sorted()
}

func (f *Flat) scan(q []float32, lo, hi int, t *topK) {
	d := f.dim
	for i := lo; i < hi; i++ {
		s := Dot(q, f.vecs[i*d:(i+1)*d])
		if m, full := t.min(); full && s <= m {
			continue
		}
		t.push(i, s)
	}
}
