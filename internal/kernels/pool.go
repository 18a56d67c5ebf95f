package kernels

import (
	"runtime"
	"sync"
)

// Task is work over an index range, run by the worker pool (see
// ParallelTask).
type Task interface{ RunRange(lo, hi int) }

// rangeTask is the pool's name for Task.
type rangeTask = Task

// funcTask adapts a closure to rangeTask.
type funcTask func(lo, hi int)

func (f funcTask) RunRange(lo, hi int) { f(lo, hi) }

// job is one chunk handed to a pool worker.
type job struct {
	t      rangeTask
	lo, hi int
	wg     *sync.WaitGroup
}

var (
	poolMu   sync.Mutex
	nWorkers int
	// jobs is unbuffered: a send succeeds only when a worker is idle, so a
	// Parallel nested inside a worker (all workers busy) runs its chunks
	// inline instead of waiting on a queue nobody drains.
	jobs   = make(chan job)
	wgPool = sync.Pool{New: func() any { return new(sync.WaitGroup) }}
)

// ensureWorkers starts pool workers until there are at least n.
func ensureWorkers(n int) {
	poolMu.Lock()
	for nWorkers < n {
		nWorkers++
		go func() {
			for j := range jobs {
				j.t.RunRange(j.lo, j.hi)
				j.wg.Done()
			}
		}()
	}
	poolMu.Unlock()
}

// Parallel runs fn over [0, n) split into contiguous chunks, one per worker
// of the shared pool (GOMAXPROCS workers), and waits for all of them. Small
// n runs inline.
func Parallel(n int, fn func(lo, hi int)) { parallelTask(n, funcTask(fn)) }

// ParallelTask is Parallel for a Task. A closure handed to Parallel
// escapes to the heap (the pool's workers hold it); handing ParallelTask a
// pointer to a reused struct (kept in a sync.Pool, or in the caller's
// scratch) allocates nothing, which keeps a warmed-up forward pass free of
// garbage.
func ParallelTask(n int, t Task) { parallelTask(n, t) }

// parallelTask runs t over [0, n) on the pool and waits for it.
func parallelTask(n int, t rangeTask) {
	w := runtime.GOMAXPROCS(0)
	if w > n {
		w = n
	}
	if w <= 1 {
		if n > 0 {
			t.RunRange(0, n)
		}
		return
	}
	ensureWorkers(w - 1)
	wg := wgPool.Get().(*sync.WaitGroup)
	chunk := (n + w - 1) / w
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		select {
		case jobs <- job{t: t, lo: lo, hi: hi, wg: wg}:
		default: // queue full: do it here
			t.RunRange(lo, hi)
			wg.Done()
		}
	}
	t.RunRange(0, min(chunk, n))
	for {
		select {
		case j := <-jobs:
			j.t.RunRange(j.lo, j.hi)
			j.wg.Done()
			continue
		default:
		}
		break
	}
	wg.Wait()
	wgPool.Put(wg)
}
