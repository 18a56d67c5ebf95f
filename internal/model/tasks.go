package model

import (
	"math"
	"sync"

	"github.com/goclip/goclip/internal/kernels"
)

// The forward pass hands its parallel loops to the shared worker pool as
// pooled task structs rather than closures: a closure given to
// kernels.Parallel escapes to the heap on every call, a struct from a
// sync.Pool does not, so a warmed-up forward allocates nothing.

// attendTask is attend's per-(batch item, head) loop.
type attendTask struct {
	ctx, qkv, scores []float32
	seq, w, heads    int
	causal           bool
}

var attendPool = sync.Pool{New: func() any { return new(attendTask) }}

func (a *attendTask) RunRange(lo, hi int) {
	seq, w, heads := a.seq, a.w, a.heads
	hd := w / heads
	scale := float32(1 / math.Sqrt(float64(hd)))
	negInf := float32(math.Inf(-1))
	for t := lo; t < hi; t++ {
		b, h := t/heads, t%heads
		sc := a.scores[t*seq*seq : (t+1)*seq*seq]
		base := a.qkv[b*seq*3*w:]
		kernels.Sgemm(false, true, seq, seq, hd, scale, base[h*hd:], 3*w, base[w+h*hd:], 3*w, 0, sc, seq)
		if a.causal {
			for i := range seq {
				row := sc[i*seq : (i+1)*seq]
				for j := i + 1; j < seq; j++ {
					row[j] = negInf
				}
			}
		}
		kernels.SoftmaxRows(sc, seq, seq)
		kernels.Sgemm(false, false, seq, hd, seq, 1, sc, seq, base[2*w+h*hd:], 3*w, 0, a.ctx[b*seq*w+h*hd:], w)
	}
}

// pooledAttnTask is forwardPooled's attention of one query row per
// sequence, per (batch item, head).
type pooledAttnTask struct {
	ctx, qkv, scores, q []float32
	pos                 []int
	seq, w, heads       int
	causal              bool
}

var pooledAttnPool = sync.Pool{New: func() any { return new(pooledAttnTask) }}

func (a *pooledAttnTask) RunRange(lo, hi int) {
	seq, w, heads := a.seq, a.w, a.heads
	hd := w / heads
	scale := float32(1 / math.Sqrt(float64(hd)))
	for t := lo; t < hi; t++ {
		b, hh := t/heads, t%heads
		p := a.pos[b]
		n := seq
		if a.causal {
			n = p + 1
		}
		base := a.qkv[b*seq*3*w:]
		qs := a.q[b*w+hh*hd : b*w+hh*hd+hd]
		src := base[p*3*w+hh*hd:]
		for c := range qs {
			qs[c] = src[c] * scale
		}
		sc := a.scores[t*seq : t*seq+n]
		for j := range sc {
			sc[j] = kernels.Dot(qs, base[j*3*w+w+hh*hd:j*3*w+w+hh*hd+hd])
		}
		kernels.SoftmaxRows(sc, 1, n)
		o := a.ctx[b*w+hh*hd : b*w+hh*hd+hd]
		clear(o)
		for j, pj := range sc {
			kernels.Axpy(o, base[j*3*w+2*w+hh*hd:], pj)
		}
	}
}

// patchTask is patchify's per-patch copy.
type patchTask struct {
	patches, pixels []float32
	p, s            int
	back            bool
}

var patchPool = sync.Pool{New: func() any { return new(patchTask) }}

func (a *patchTask) RunRange(lo, hi int) {
	p, s := a.p, a.s
	g := s / p
	np := g * g
	pd := 3 * p * p
	for t := lo; t < hi; t++ {
		b, gi := t/np, t%np
		gy, gx := gi/g, gi%g
		pt := a.patches[t*pd : t*pd+pd]
		k := 0
		for c := range 3 {
			plane := a.pixels[(b*3+c)*s*s:]
			for ky := range p {
				row := plane[(gy*p+ky)*s+gx*p:]
				if a.back {
					copy(row[:p], pt[k:k+p])
				} else {
					copy(pt[k:k+p], row[:p])
				}
				k += p
			}
		}
	}
}

// runPooled hands t (a task from pool) to the worker pool over [0, n),
// then clears it (dropping its references) and returns it to pool.
func runPooled[T any, P interface {
	*T
	kernels.Task
}](pool *sync.Pool, n int, t T) {
	p := pool.Get().(P)
	*p = t
	kernels.ParallelTask(n, p)
	var zero T
	*p = zero
	pool.Put(p)
}
