package imageproc

import (
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
)

// Scratch memory. Everything that does not escape a call (resampling rows,
// the resized region, the crop, accumulators) comes from size-classed free
// lists that, unlike sync.Pool, survive garbage collections, so a warmed-up
// pipeline allocates nothing proportional to the image. Each class keeps at
// most maxFree buffers and buffers above maxPooled bytes are never kept, so
// the memory retained is bounded.

const (
	maxFree   = 8        // buffers kept per size class
	maxPooled = 64 << 20 // larger buffers are left to the garbage collector
)

// freeList hands out *[]T of capacity 2^k ≥ n, k the size class.
type freeList[T any] struct {
	mu      sync.Mutex
	classes [48][]*[]T
}

func sizeClass(n int) int {
	if n <= 64 {
		return 6
	}
	return bits.Len(uint(n - 1))
}

// get returns a buffer of length n (contents undefined).
func (f *freeList[T]) get(n int) *[]T {
	c := sizeClass(n)
	f.mu.Lock()
	if l := f.classes[c]; len(l) > 0 {
		p := l[len(l)-1]
		l[len(l)-1] = nil
		f.classes[c] = l[:len(l)-1]
		f.mu.Unlock()
		*p = (*p)[:n]
		return p
	}
	f.mu.Unlock()
	s := make([]T, n, 1<<c)
	return &s
}

// put returns a buffer obtained from get.
func (f *freeList[T]) put(p *[]T, elemSize int) {
	if p == nil || cap(*p)*elemSize > maxPooled {
		return
	}
	c := sizeClass(cap(*p))
	if 1<<c != cap(*p) {
		return // not ours
	}
	f.mu.Lock()
	if len(f.classes[c]) < maxFree {
		f.classes[c] = append(f.classes[c], p)
	}
	f.mu.Unlock()
}

var (
	bytesFree freeList[uint8]
	int32Free freeList[int32]
)

func getBytes(n int) *[]uint8  { return bytesFree.get(n) }
func putBytes(p *[]uint8)      { bytesFree.put(p, 1) }
func getInt32s(n int) *[]int32 { return int32Free.get(n) }
func putInt32s(p *[]int32)     { int32Free.put(p, 4) }

// rowTask is work split over rows [0, n): run(phase, lo, hi) does rows
// [lo, hi) of the given phase.
type rowTask interface {
	run(phase, lo, hi int)
}

// chunkJob shares one phase of a rowTask between the caller and idle
// workers, chunk by chunk.
type chunkJob struct {
	t         rowTask
	phase     int
	n, chunks int
	next      atomic.Int64
	wg        sync.WaitGroup
}

func (j *chunkJob) drain() {
	for {
		c := int(j.next.Add(1) - 1)
		if c >= j.chunks {
			return
		}
		j.t.run(j.phase, j.n*c/j.chunks, j.n*(c+1)/j.chunks)
	}
}

var (
	workCh      = make(chan *chunkJob) // unbuffered: a send succeeds only to an idle worker
	workersOnce sync.Once
	jobFree     = sync.Pool{New: func() any { return new(chunkJob) }}
)

func startWorkers() {
	n := max(runtime.NumCPU(), runtime.GOMAXPROCS(0)) - 1
	for i := 0; i < n; i++ {
		go func() {
			for j := range workCh {
				j.drain()
				j.wg.Done()
			}
		}()
	}
}

// parallelRows runs t.run(phase, ...) over [0, n): shared with idle pool
// workers (up to GOMAXPROCS in all) when parallel is set and the work (an
// estimate of inner-loop steps) is large enough, otherwise inline. Workers
// that are busy (e.g. preprocessing other images) are not waited for: the
// caller does the chunks nobody took.
func parallelRows(parallel bool, n, work int, t rowTask, phase int) {
	p := runtime.GOMAXPROCS(0)
	if !parallel || p < 2 || n < 2 || work < 1<<20 {
		t.run(phase, 0, n)
		return
	}
	workersOnce.Do(startWorkers)
	j := jobFree.Get().(*chunkJob)
	j.t, j.phase, j.n = t, phase, n
	j.chunks = min(n, 4*p)
	j.next.Store(0)
	for i := 1; i < p; i++ {
		j.wg.Add(1)
		sent := false
		select {
		case workCh <- j:
			sent = true
		default:
		}
		if !sent {
			j.wg.Done()
			break
		}
	}
	j.drain()
	j.wg.Wait()
	j.t = nil
	jobFree.Put(j)
}
