// Package index finds the nearest neighbours of L2-normalised float32
// vectors by cosine similarity (the dot product of unit vectors).
//
// Flat is the exact brute-force baseline: a blocked scan of the whole
// matrix with a vectorised dot product, split over the shared worker pool.
// HNSW is an approximate hierarchical navigable small-world graph
// (Malkov & Yashunin, 2016) written for this project: deterministic level
// draws from a seed, M/efConstruction/efSearch parameters, the neighbour
// selection heuristic, parallel construction and a compact binary
// serialisation that does not repeat the vectors.
//
// Both index a row-major matrix of n vectors of dim float32s that the
// caller owns and must not modify while the index is in use.
package index

// Hit is one search result: the row of the vector and its similarity to
// the query.
type Hit struct {
	ID    int
	Score float32
}

// topK keeps the k highest-scoring hits seen so far in a min-heap.
type topK struct {
	k int
	h []Hit
}

func newTopK(k int) *topK { return &topK{k: k, h: make([]Hit, 0, k)} }

// push offers a hit; it reports nothing and keeps at most k.
func (t *topK) push(id int, s float32) {
	if len(t.h) < t.k {
		t.h = append(t.h, Hit{id, s})
		t.up(len(t.h) - 1)
		return
	}
	if s <= t.h[0].Score {
		return
	}
	t.h[0] = Hit{id, s}
	t.down(0)
}

// min returns the lowest kept score, or -Inf semantics via ok=false when
// fewer than k are kept.
func (t *topK) min() (float32, bool) {
	if len(t.h) < t.k {
		return 0, false
	}
	return t.h[0].Score, true
}

func less(a, b Hit) bool {
	if a.Score != b.Score {
		return a.Score < b.Score
	}
	return a.ID > b.ID // ties: the lower id ranks higher
}

func (t *topK) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !less(t.h[i], t.h[p]) {
			break
		}
		t.h[i], t.h[p] = t.h[p], t.h[i]
		i = p
	}
}

func (t *topK) down(i int) {
	n := len(t.h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && less(t.h[r], t.h[l]) {
			m = r
		}
		if !less(t.h[m], t.h[i]) {
			return
		}
		t.h[i], t.h[m] = t.h[m], t.h[i]
		i = m
	}
}

// sorted returns the kept hits best first (ties by lower id).
func (t *topK) sorted() []Hit {
	out := make([]Hit, len(t.h))
	copy(out, t.h)
	sortHits(out)
	return out
}
