package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Task is work over an index range, run by the worker pool (see
// ParallelTask).
type Task interface{ RunRange(lo, hi int) }

// funcTask adapts a closure to Task.
type funcTask func(lo, hi int)

func (f funcTask) RunRange(lo, hi int) { f(lo, hi) }

// The pool's workers and the goroutine that hands them work spin for a
// short while (spinFor) before sleeping: a forward pass is a sequence of
// parallel products a few hundred microseconds to milliseconds long with
// short serial steps between them, and on a virtual machine waking a
// sleeping thread (its vCPU halted) can cost as much as a small product.
// A worker that finds nothing within spinFor parks until it is handed a
// job, so an idle pool costs nothing.

// Worker states.
const (
	wBusy     int32 = iota // running a job (or starting up)
	wSpinning              // idle, polling its state
	wParked                // idle, blocked on wake
	wClaimed               // a dispatcher is writing its job
	wReady                 // its job is written
)

// worker is one goroutine of the pool with a one-job mailbox.
type worker struct {
	state atomic.Int32
	job   job
	wake  chan struct{} // buffered: a job is ready for a parked worker
}

// job is one chunk handed to a pool worker.
type job struct {
	t      Task
	lo, hi int
	g      *group
}

// group tracks the chunks of one parallelTask call.
type group struct {
	pending atomic.Int32
	wg      sync.WaitGroup
}

// done marks one chunk finished.
func (g *group) done() {
	g.pending.Add(-1)
	g.wg.Done()
}

// wait returns when every chunk is done, spinning first.
func (g *group) wait() {
	if g.pending.Load() > 0 {
		spinUntil(func() bool { return g.pending.Load() <= 0 })
	}
	g.wg.Wait()
}

// spinFor is how long a worker or a waiter polls before sleeping.
var spinFor atomic.Int64 // a time.Duration

func init() { spinFor.Store(int64(200 * time.Microsecond)) }

// SetSpin sets how long idle pool workers, and a caller waiting for them,
// poll before sleeping (default 200µs; 0 sleeps at once), and returns the
// previous value.
func SetSpin(d time.Duration) time.Duration { return time.Duration(spinFor.Swap(int64(d))) }

// spinUntil polls cond for up to spinFor (yielding the processor now and
// then) and reports whether it became true.
func spinUntil(cond func() bool) bool {
	d := time.Duration(spinFor.Load())
	if d <= 0 {
		return cond()
	}
	deadline := time.Now().Add(d)
	for i := 1; ; i++ {
		if cond() {
			return true
		}
		if i%256 == 0 {
			if time.Now().After(deadline) {
				return false
			}
			runtime.Gosched()
		}
	}
}

var (
	poolMu    sync.Mutex
	workers   atomic.Pointer[[]*worker]
	groupPool = sync.Pool{New: func() any { return new(group) }}
)

// ensureWorkers starts pool workers until there are at least n.
func ensureWorkers(n int) {
	if ws := workers.Load(); ws != nil && len(*ws) >= n {
		return
	}
	poolMu.Lock()
	defer poolMu.Unlock()
	var ws []*worker
	if p := workers.Load(); p != nil {
		ws = append(ws, *p...)
	}
	for len(ws) < n {
		w := &worker{wake: make(chan struct{}, 1)}
		ws = append(ws, w)
		go w.run()
	}
	workers.Store(&ws)
}

// run is a worker's loop: announce idleness, spin, park, run what it is
// handed.
func (w *worker) run() {
	w.state.Store(wSpinning)
	for {
		if !spinUntil(func() bool { return w.state.Load() != wSpinning }) &&
			w.state.CompareAndSwap(wSpinning, wParked) {
			<-w.wake
		}
		// Claimed: wait for the job to be written (a few instructions).
		for w.state.Load() != wReady {
			runtime.Gosched()
		}
		j := w.job
		w.job = job{}
		w.state.Store(wBusy)
		j.t.RunRange(j.lo, j.hi)
		// Idle again before the chunk is reported done, so that the
		// caller's next parallel step finds this worker free.
		w.state.Store(wSpinning)
		j.g.done()
	}
}

// handOff gives j to an idle worker and reports whether one took it.
func handOff(j job) bool {
	ws := workers.Load()
	if ws == nil {
		return false
	}
	for _, w := range *ws {
		switch w.state.Load() {
		case wSpinning:
			if w.state.CompareAndSwap(wSpinning, wClaimed) {
				w.job = j
				w.state.Store(wReady)
				return true
			}
		case wParked:
			if w.state.CompareAndSwap(wParked, wClaimed) {
				w.job = j
				w.state.Store(wReady)
				w.wake <- struct{}{}
				return true
			}
		}
	}
	return false
}

// Workers returns how many threads a parallel step started now would
// get: GOMAXPROCS, less the pool workers busy elsewhere (a step nested in
// a worker, as in a batch split over the pool, runs on its own thread: 1).
// Products size their worker grid by it, so that one run inline does not
// pack its operands once per planned worker.
func Workers() int {
	w := runtime.GOMAXPROCS(0)
	if w <= 1 {
		return 1
	}
	ws := workers.Load()
	if ws == nil {
		return w
	}
	idle := 0
	for _, wk := range *ws {
		if st := wk.state.Load(); st == wSpinning || st == wParked {
			idle++
		}
	}
	if len(*ws) < w-1 {
		idle += w - 1 - len(*ws) // started on demand
	}
	return min(w, 1+idle)
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
func parallelTask(n int, t Task) {
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
	g := groupPool.Get().(*group)
	chunk := (n + w - 1) / w
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		g.pending.Add(1)
		g.wg.Add(1)
		// An idle worker takes the chunk; with every worker busy (a
		// Parallel nested inside a worker) it runs here.
		if !handOff(job{t: t, lo: lo, hi: hi, g: g}) {
			t.RunRange(lo, hi)
			g.done()
		}
	}
	t.RunRange(0, min(chunk, n))
	g.wait()
	groupPool.Put(g)
}
