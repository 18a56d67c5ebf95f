package store

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/goclip/goclip/internal/index"
	"github.com/goclip/goclip/internal/kernels"
)

// Result is one search hit: the file and the cosine similarity of its
// embedding with the query.
type Result struct {
	Path  string  `json:"path"`
	Score float32 `json:"score"`
}

// snapshot is the in-memory matrix of one model's embeddings at one write
// generation, rows in path order, with the graph when one is loaded.
type snapshot struct {
	gen   uint64
	dim   int
	paths []string
	vecs  []float32
	flat  *index.Flat

	mu       sync.Mutex
	graph    *index.HNSW
	building bool
}

func (sn *snapshot) hnsw() *index.HNSW {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	return sn.graph
}

// generation returns model id's write counter.
func (s *Store) generation(modelID string) (uint64, error) {
	var gen uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := s.model(tx, modelID)
		if err != nil {
			return err
		}
		gen = getU64(b.Get(keyGen))
		return nil
	})
	return gen, err
}

// load returns the current snapshot of model id, reading the embeddings
// (and a persisted graph of the same generation) when the cached one is
// stale.
func (s *Store) load(modelID string) (*snapshot, error) {
	gen, err := s.generation(modelID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sn := s.snaps[modelID]; sn != nil && sn.gen == gen {
		return sn, nil
	}
	sn := &snapshot{}
	err = s.db.View(func(tx *bolt.Tx) error {
		b, err := s.model(tx, modelID)
		if err != nil {
			return err
		}
		mi, err := readInfo(b, modelID)
		if err != nil {
			return err
		}
		sn.gen, sn.dim = getU64(b.Get(keyGen)), mi.Dim
		fb := b.Bucket(bucketFiles)
		n := fb.Stats().KeyN
		sn.paths = make([]string, 0, n)
		sn.vecs = make([]float32, 0, n*mi.Dim)
		err = fb.ForEach(func(k, v []byte) error {
			switch d := recordDim(v); d {
			case 0:
				if _, err := decodeRecord(v, true); err != nil {
					return fmt.Errorf("%w (file %s)", err, k)
				}
				return nil // a failure
			case mi.Dim:
			default:
				return fmt.Errorf("store: %s: %d-d embedding under %d-d model %s", k, d, mi.Dim, modelID)
			}
			sn.paths = append(sn.paths, string(k))
			sn.vecs = appendEmbedding(sn.vecs, v)
			return nil
		})
		if err != nil {
			return err
		}
		if gb := b.Bucket(bucketGraph); gb != nil && getU64(gb.Get(keyGen)) == sn.gen && len(sn.paths) > 0 {
			g, err := index.Load(readAllChunks(gb), sn.vecs, sn.dim)
			if err == nil {
				sn.graph = g
			} // a bad graph is rebuilt, not fatal
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sn.flat, err = index.NewFlat(sn.vecs, sn.dim)
	if err != nil {
		return nil, err
	}
	s.snaps[modelID] = sn
	return sn, nil
}

// Search returns the k files of model id whose embeddings are most
// similar to query (which it L2-normalises), best first, with the cosine
// similarity as score. Below the ANN threshold it scans every embedding;
// above it uses the HNSW graph when one is built for the current
// contents (see BuildIndex), else it scans exactly.
func (s *Store) Search(ctx context.Context, modelID string, query []float32, k int) ([]Result, error) {
	return s.search(ctx, modelID, query, k, false)
}

// Exact is Search always by brute force.
func (s *Store) Exact(ctx context.Context, modelID string, query []float32, k int) ([]Result, error) {
	return s.search(ctx, modelID, query, k, true)
}

func (s *Store) search(ctx context.Context, modelID string, query []float32, k int, exact bool) ([]Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sn, err := s.load(modelID)
	if err != nil {
		return nil, err
	}
	if len(query) != sn.dim {
		return nil, fmt.Errorf("store: %d-d query for model %s of %d-d embeddings", len(query), modelID, sn.dim)
	}
	if k <= 0 {
		return nil, nil
	}
	q := Normalize(query)
	var hits []index.Hit
	if g := sn.hnsw(); !exact && g != nil && s.useANN(len(sn.paths)) {
		hits = g.Search(q, k, max(s.opts.EfSearch, k))
	} else {
		if !exact && s.useANN(len(sn.paths)) && s.opts.BuildInBackground {
			s.buildBackground(modelID, sn)
		}
		hits = sn.flat.Search(q, k)
	}
	out := make([]Result, len(hits))
	for i, h := range hits {
		out[i] = Result{sn.paths[h.ID], h.Score}
	}
	return out, nil
}

func (s *Store) useANN(n int) bool { return s.opts.ANNThreshold > 0 && n >= s.opts.ANNThreshold }

func (s *Store) buildBackground(modelID string, sn *snapshot) {
	sn.mu.Lock()
	if sn.building || sn.graph != nil {
		sn.mu.Unlock()
		return
	}
	sn.building = true
	sn.mu.Unlock()
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		g, err := index.Build(s.bgCtx, sn.vecs, sn.dim, s.opts.HNSW, nil)
		sn.mu.Lock()
		sn.building = false
		if err == nil {
			sn.graph = g
		}
		sn.mu.Unlock()
		if err == nil && !s.opts.ReadOnly {
			s.saveGraph(modelID, sn.gen, g)
		}
	}()
}

// BuildIndex builds the HNSW graph of model id when it holds at least the
// ANN threshold of embeddings and no graph of the current contents is
// stored, and saves it in the database so later searches load it.
// progress, when not nil, gets (inserted, total) from time to time. It
// reports whether a graph was built.
func (s *Store) BuildIndex(ctx context.Context, modelID string, progress func(done, total int)) (bool, error) {
	sn, err := s.load(modelID)
	if err != nil {
		return false, err
	}
	if !s.useANN(len(sn.paths)) || sn.hnsw() != nil {
		return false, nil
	}
	n := len(sn.paths)
	var pf func(int)
	if progress != nil {
		pf = func(d int) { progress(d, n) }
	}
	g, err := index.Build(ctx, sn.vecs, sn.dim, s.opts.HNSW, pf)
	if err != nil {
		return false, err
	}
	sn.mu.Lock()
	sn.graph = g
	sn.mu.Unlock()
	if s.opts.ReadOnly {
		return true, nil
	}
	return true, s.saveGraph(modelID, sn.gen, g)
}

// saveGraph stores g as the graph of generation gen, unless the files
// changed meanwhile.
func (s *Store) saveGraph(modelID string, gen uint64, g *index.HNSW) error {
	var buf bytes.Buffer
	if _, err := g.WriteTo(&buf); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := s.model(tx, modelID)
		if err != nil {
			return err
		}
		if getU64(b.Get(keyGen)) != gen {
			return nil // stale: the next BuildIndex redoes it
		}
		if b.Bucket(bucketGraph) != nil {
			if err := b.DeleteBucket(bucketGraph); err != nil {
				return err
			}
		}
		gb, err := b.CreateBucket(bucketGraph)
		if err != nil {
			return err
		}
		const chunk = 16 << 20
		data := buf.Bytes()
		for i := 0; len(data) > 0; i++ {
			n := min(chunk, len(data))
			if err := gb.Put(fmt.Appendf(nil, "%04d", i), data[:n]); err != nil {
				return err
			}
			data = data[n:]
		}
		return gb.Put(keyGen, u64(gen))
	})
}

// Pair is two files whose embeddings' cosine similarity is Score.
type Pair struct {
	A, B  string
	Score float32
}

// Dupes returns every pair of files under model id whose cosine
// similarity is at least threshold, most similar first. Below the ANN
// threshold the comparison is exhaustive (blocked matrix products); above
// it each file's 32 nearest neighbours from the graph are checked, so a
// file with more than 32 near-copies may miss some pairs.
func (s *Store) Dupes(ctx context.Context, modelID string, threshold float32) ([]Pair, error) {
	sn, err := s.load(modelID)
	if err != nil {
		return nil, err
	}
	n, d := len(sn.paths), sn.dim
	var mu sync.Mutex
	var pairs []Pair
	add := func(i, j int, sc float32) {
		mu.Lock()
		pairs = append(pairs, Pair{sn.paths[i], sn.paths[j], sc})
		mu.Unlock()
	}
	if s.useANN(n) {
		g := sn.hnsw()
		if g == nil {
			if _, err := s.BuildIndex(ctx, modelID, nil); err != nil {
				return nil, err
			}
			if g = sn.hnsw(); g == nil {
				return nil, fmt.Errorf("store: model %s changed while looking for duplicates; retry", modelID)
			}
		}
		var cerr error
		kernels.Parallel(n, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				if i%1024 == 0 && ctx.Err() != nil {
					mu.Lock()
					cerr = ctx.Err()
					mu.Unlock()
					return
				}
				for _, h := range g.Search(sn.vecs[i*d:(i+1)*d], 32, 64) {
					if h.ID > i && h.Score >= threshold {
						add(i, h.ID, h.Score)
					}
				}
			}
		})
		if cerr != nil {
			return nil, cerr
		}
	} else {
		const blk = 256
		c := make([]float32, blk*blk)
		for i0 := 0; i0 < n; i0 += blk {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			i1 := min(i0+blk, n)
			for j0 := i0; j0 < n; j0 += blk {
				j1 := min(j0+blk, n)
				m, nn := i1-i0, j1-j0
				kernels.Sgemm(false, true, m, nn, d, 1, sn.vecs[i0*d:], d, sn.vecs[j0*d:], d, 0, c, nn)
				for i := 0; i < m; i++ {
					for j := 0; j < nn; j++ {
						if gi, gj := i0+i, j0+j; gj > gi && c[i*nn+j] >= threshold {
							// rescore exactly with the dot kernel so the
							// reported score does not depend on blocking
							if sc := index.Dot(sn.vecs[gi*d:(gi+1)*d], sn.vecs[gj*d:(gj+1)*d]); sc >= threshold {
								add(gi, gj, sc)
							}
						}
					}
				}
			}
		}
	}
	sort.Slice(pairs, func(a, b int) bool {
		if pairs[a].Score != pairs[b].Score {
			return pairs[a].Score > pairs[b].Score
		}
		if pairs[a].A != pairs[b].A {
			return pairs[a].A < pairs[b].A
		}
		return pairs[a].B < pairs[b].B
	})
	return pairs, nil
}

// Groups joins pairs into connected groups of near-duplicates, each
// sorted by path, larger groups first.
func Groups(pairs []Pair) [][]string {
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		p, ok := parent[x]
		if !ok || p == x {
			parent[x] = x
			return x
		}
		r := find(p)
		parent[x] = r
		return r
	}
	for _, p := range pairs {
		a, b := find(p.A), find(p.B)
		if a != b {
			if a < b {
				parent[b] = a
			} else {
				parent[a] = b
			}
		}
	}
	by := map[string][]string{}
	for x := range parent {
		r := find(x)
		by[r] = append(by[r], x)
	}
	var out [][]string
	for _, g := range by {
		sort.Strings(g)
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool {
		if len(out[i]) != len(out[j]) {
			return len(out[i]) > len(out[j])
		}
		return out[i][0] < out[j][0]
	})
	return out
}
