package index

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// Config holds the HNSW parameters. Zero fields take the defaults.
type Config struct {
	// M is the number of neighbours a node keeps on the upper layers;
	// layer 0 keeps up to 2·M. Default 16.
	M int
	// EfConstruction is the candidate list size while inserting.
	// Default 200.
	EfConstruction int
	// EfSearch is the default candidate list size of a query (raised to k
	// when smaller). Default 100.
	EfSearch int
	// Seed drives the level draws: the same seed, vectors and Workers = 1
	// give the same graph.
	Seed uint64
	// Workers is the number of goroutines inserting in parallel during
	// Build (default GOMAXPROCS). With more than one the graph depends on
	// scheduling; the level of each node does not.
	Workers int
}

func (c Config) withDefaults() Config {
	if c.M <= 0 {
		c.M = 16
	}
	if c.EfConstruction <= 0 {
		c.EfConstruction = 200
	}
	if c.EfSearch <= 0 {
		c.EfSearch = 100
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	return c
}

const maxLevel = 16

// HNSW is an approximate nearest-neighbour graph over a vector matrix.
// Search is safe for concurrent use once Build (or Load) has returned.
type HNSW struct {
	cfg  Config
	dim  int
	n    int
	vecs []float32

	levels []uint8
	// l0 holds layer-0 adjacency: node i owns l0[i*(m0+1):(i+1)*(m0+1)],
	// the first element being the neighbour count.
	l0 []uint32
	// upper[i] holds node i's adjacency on layers 1..levels[i], each block
	// M+1 long with the count first.
	upper [][]uint32

	entry    uint32
	topLevel int

	// construction state
	locks    []sync.Mutex
	entryMu  sync.RWMutex
	building bool

	visitPool sync.Pool
}

func (h *HNSW) m0() int { return 2 * h.cfg.M }

func (h *HNSW) vec(i uint32) []float32 {
	return h.vecs[int(i)*h.dim : (int(i)+1)*h.dim]
}

// neighbours returns the adjacency block of node i on layer lc (the count
// followed by the ids, with room for the maximum).
func (h *HNSW) block(i uint32, lc int) []uint32 {
	if lc == 0 {
		w := h.m0() + 1
		return h.l0[int(i)*w : (int(i)+1)*w]
	}
	w := h.cfg.M + 1
	return h.upper[i][(lc-1)*w : lc*w]
}

// drawLevel returns node i's level: floor(-ln(u)·mL) with u uniform in
// (0, 1] drawn from a splitmix64 hash of the seed and i.
func drawLevel(seed uint64, i int, m int) int {
	z := seed + uint64(i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	u := (float64(z>>11) + 1) / (1 << 53)
	l := int(-math.Log(u) / math.Log(float64(m)))
	return min(l, maxLevel)
}

// Build constructs the graph over the n = len(vecs)/dim rows of vecs,
// which must be L2-normalised. progress, when not nil, is called with the
// number of inserted nodes from time to time. A cancelled ctx stops the
// build with ctx.Err().
func Build(ctx context.Context, vecs []float32, dim int, cfg Config, progress func(done int)) (*HNSW, error) {
	if dim <= 0 || len(vecs)%dim != 0 {
		return nil, fmt.Errorf("index: %d floats do not form rows of %d", len(vecs), dim)
	}
	cfg = cfg.withDefaults()
	if cfg.M < 2 || cfg.M > 255 {
		return nil, fmt.Errorf("index: M = %d outside 2..255", cfg.M)
	}
	n := len(vecs) / dim
	if uint64(n) >= math.MaxUint32 {
		return nil, fmt.Errorf("index: %d vectors is too many", n)
	}
	h := &HNSW{cfg: cfg, dim: dim, n: n, vecs: vecs}
	h.levels = make([]uint8, n)
	h.upper = make([][]uint32, n)
	for i := range n {
		l := drawLevel(cfg.Seed, i, cfg.M)
		h.levels[i] = uint8(l)
		if l > 0 {
			h.upper[i] = make([]uint32, l*(cfg.M+1))
		}
	}
	h.l0 = make([]uint32, n*(h.m0()+1))
	if n == 0 {
		return h, nil
	}
	h.locks = make([]sync.Mutex, n)
	h.building = true
	h.entry = 0
	h.topLevel = int(h.levels[0])

	var next atomic.Int64
	next.Store(1)
	var done atomic.Int64
	done.Store(1)
	var wg sync.WaitGroup
	errc := make(chan error, cfg.Workers)
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := h.newSearcher()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if i%1024 == 0 {
					if err := ctx.Err(); err != nil {
						errc <- err
						return
					}
				}
				h.insert(s, uint32(i))
				if d := done.Add(1); progress != nil && d%4096 == 0 {
					progress(int(d))
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	h.building = false
	h.locks = nil
	if progress != nil {
		progress(n)
	}
	return h, nil
}

// Len returns the number of indexed vectors.
func (h *HNSW) Len() int { return h.n }

// Dim returns the vector size.
func (h *HNSW) Dim() int { return h.dim }

// Config returns the parameters the graph was built with.
func (h *HNSW) Config() Config { return h.cfg }

// cand is a node with its similarity to the query.
type cand struct {
	sim float32
	id  uint32
}

// searcher is per-goroutine scratch: a visited set stamped by generation
// and the two heaps of the layer search.
type searcher struct {
	visited []uint32
	gen     uint32
	cands   []cand // max-heap by sim: nodes to expand
	res     []cand // min-heap by sim: the ef best so far
	nbuf    []uint32
}

func (h *HNSW) newSearcher() *searcher {
	return &searcher{visited: make([]uint32, h.n), nbuf: make([]uint32, h.m0()+1)}
}

func (s *searcher) reset() {
	s.gen++
	if s.gen == 0 {
		clear(s.visited)
		s.gen = 1
	}
	s.cands = s.cands[:0]
	s.res = s.res[:0]
}

// heap helpers: maxHeap (cands) and minHeap (res) over cand.
func pushMax(hp []cand, c cand) []cand {
	hp = append(hp, c)
	i := len(hp) - 1
	for i > 0 {
		p := (i - 1) / 2
		if hp[p].sim >= hp[i].sim {
			break
		}
		hp[p], hp[i] = hp[i], hp[p]
		i = p
	}
	return hp
}

func popMax(hp []cand) (cand, []cand) {
	top := hp[0]
	n := len(hp) - 1
	hp[0] = hp[n]
	hp = hp[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && hp[r].sim > hp[l].sim {
			m = r
		}
		if hp[i].sim >= hp[m].sim {
			break
		}
		hp[i], hp[m] = hp[m], hp[i]
		i = m
	}
	return top, hp
}

func pushMin(hp []cand, c cand) []cand {
	hp = append(hp, c)
	i := len(hp) - 1
	for i > 0 {
		p := (i - 1) / 2
		if hp[p].sim <= hp[i].sim {
			break
		}
		hp[p], hp[i] = hp[i], hp[p]
		i = p
	}
	return hp
}

func popMin(hp []cand) (cand, []cand) {
	top := hp[0]
	n := len(hp) - 1
	hp[0] = hp[n]
	hp = hp[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && hp[r].sim < hp[l].sim {
			m = r
		}
		if hp[i].sim <= hp[m].sim {
			break
		}
		hp[i], hp[m] = hp[m], hp[i]
		i = m
	}
	return top, hp
}

// readNeighbours copies node i's layer-lc neighbours into s.nbuf, under
// the node's lock while the graph is being built.
func (h *HNSW) readNeighbours(s *searcher, i uint32, lc int) []uint32 {
	if h.building {
		h.locks[i].Lock()
	}
	b := h.block(i, lc)
	c := int(b[0])
	nb := s.nbuf[:c]
	copy(nb, b[1:1+c])
	if h.building {
		h.locks[i].Unlock()
	}
	return nb
}

// greedy walks layer lc from ep towards q, returning the closest node
// found and its similarity.
func (h *HNSW) greedy(s *searcher, q []float32, ep uint32, epSim float32, lc int) (uint32, float32) {
	for changed := true; changed; {
		changed = false
		for _, nb := range h.readNeighbours(s, ep, lc) {
			if sim := Dot(q, h.vec(nb)); sim > epSim {
				ep, epSim, changed = nb, sim, true
			}
		}
	}
	return ep, epSim
}

// searchLayer runs the ef-bounded best-first search of layer lc from the
// entry points eps and leaves the ef best in s.res (a min-heap).
func (h *HNSW) searchLayer(s *searcher, q []float32, eps []cand, ef, lc int) {
	s.reset()
	for _, e := range eps {
		s.visited[e.id] = s.gen
		s.cands = pushMax(s.cands, e)
		s.res = pushMin(s.res, e)
	}
	for len(s.res) > ef {
		_, s.res = popMin(s.res)
	}
	for len(s.cands) > 0 {
		var c cand
		c, s.cands = popMax(s.cands)
		if len(s.res) >= ef && c.sim < s.res[0].sim {
			break
		}
		for _, nb := range h.readNeighbours(s, c.id, lc) {
			if s.visited[nb] == s.gen {
				continue
			}
			s.visited[nb] = s.gen
			sim := Dot(q, h.vec(nb))
			if len(s.res) < ef || sim > s.res[0].sim {
				s.cands = pushMax(s.cands, cand{sim, nb})
				s.res = pushMin(s.res, cand{sim, nb})
				if len(s.res) > ef {
					_, s.res = popMin(s.res)
				}
			}
		}
	}
}

// sortedRes empties s.res into a slice ordered best first.
func sortedRes(s *searcher) []cand {
	out := make([]cand, len(s.res))
	for i := len(out) - 1; i >= 0; i-- {
		out[i], s.res = popMin(s.res)
	}
	return out
}

// selectNeighbours applies the HNSW heuristic: walking the candidates best
// first, keep one only if it is more similar to the base than to every
// kept neighbour, up to m.
func (h *HNSW) selectNeighbours(cands []cand, m int) []cand {
	if len(cands) <= m {
		return cands
	}
	out := make([]cand, 0, m)
	for _, c := range cands {
		if len(out) >= m {
			break
		}
		good := true
		cv := h.vec(c.id)
		for _, r := range out {
			if Dot(cv, h.vec(r.id)) > c.sim {
				good = false
				break
			}
		}
		if good {
			out = append(out, c)
		}
	}
	return out
}

func (h *HNSW) insert(s *searcher, i uint32) {
	q := h.vec(i)
	level := int(h.levels[i])
	h.entryMu.RLock()
	ep, top := h.entry, h.topLevel
	h.entryMu.RUnlock()
	epSim := Dot(q, h.vec(ep))
	for lc := top; lc > level; lc-- {
		ep, epSim = h.greedy(s, q, ep, epSim, lc)
	}
	eps := []cand{{epSim, ep}}
	for lc := min(level, top); lc >= 0; lc-- {
		h.searchLayer(s, q, eps, h.cfg.EfConstruction, lc)
		found := sortedRes(s)
		nbs := h.selectNeighbours(found, h.cfg.M)
		h.locks[i].Lock()
		b := h.block(i, lc)
		b[0] = uint32(len(nbs))
		for j, c := range nbs {
			b[1+j] = c.id
		}
		h.locks[i].Unlock()
		for _, c := range nbs {
			h.link(c.id, i, c.sim, lc)
		}
		eps = found
	}
	if level > top {
		h.entryMu.Lock()
		if level > h.topLevel {
			h.entry, h.topLevel = i, level
		}
		h.entryMu.Unlock()
	}
}

// link adds i to e's layer-lc neighbours, shrinking the list with the
// selection heuristic when it overflows.
func (h *HNSW) link(e, i uint32, sim float32, lc int) {
	h.locks[e].Lock()
	defer h.locks[e].Unlock()
	b := h.block(e, lc)
	c := int(b[0])
	maxc := len(b) - 1
	if c < maxc {
		b[1+c] = i
		b[0]++
		return
	}
	ev := h.vec(e)
	cands := make([]cand, 0, c+1)
	cands = append(cands, cand{sim, i})
	for _, nb := range b[1 : 1+c] {
		cands = append(cands, cand{Dot(ev, h.vec(nb)), nb})
	}
	sortCands(cands)
	keep := h.selectNeighbours(cands, maxc)
	b[0] = uint32(len(keep))
	for j, k := range keep {
		b[1+j] = k.id
	}
}

func sortCands(c []cand) {
	// insertion sort: lists are at most 2M+1 long
	for i := 1; i < len(c); i++ {
		x := c[i]
		j := i
		for j > 0 && (c[j-1].sim < x.sim || (c[j-1].sim == x.sim && c[j-1].id > x.id)) {
			c[j] = c[j-1]
			j--
		}
		c[j] = x
	}
}

// Search returns approximately the k rows most similar to q, best first,
// exploring ef candidates (0: the configured EfSearch; raised to k). The
// scores are exact dot products.
func (h *HNSW) Search(q []float32, k, ef int) []Hit {
	if k <= 0 || h.n == 0 || len(q) != h.dim {
		return nil
	}
	if ef <= 0 {
		ef = h.cfg.EfSearch
	}
	ef = max(ef, k)
	s, _ := h.visitPool.Get().(*searcher)
	if s == nil {
		s = h.newSearcher()
	}
	defer h.visitPool.Put(s)
	ep := h.entry
	epSim := Dot(q, h.vec(ep))
	for lc := h.topLevel; lc > 0; lc-- {
		ep, epSim = h.greedy(s, q, ep, epSim, lc)
	}
	h.searchLayer(s, q, []cand{{epSim, ep}}, ef, 0)
	found := sortedRes(s)
	out := make([]Hit, 0, min(k, len(found)))
	for _, c := range found {
		out = append(out, Hit{int(c.id), c.sim})
	}
	sortHits(out)
	if len(out) > k {
		out = out[:k]
	}
	return out
}
