package model

import (
	"syscall"
	"unsafe"

	"github.com/goclip/goclip/internal/kernels"
)

// madvPopulateWrite is Linux's MADV_POPULATE_WRITE (5.14 and later).
const madvPopulateWrite = 23

// prefaultChunk is the span one worker populates at a time.
const prefaultChunk = 2 << 20

// prefault maps the pages of a fresh allocation before it is first written,
// a few system calls on the worker pool instead of a page fault per 4 KiB:
// loading ViT-B/32 writes 600 MB of new weights, and taking those faults
// one by one was most of the load's CPU time. Only whole pages inside v are
// touched; a kernel without MADV_POPULATE_WRITE refuses and the pages
// fault in as usual.
func prefault(v []float32) {
	const page = 4096
	if len(v) < 2*page/4 {
		return
	}
	base := unsafe.Pointer(unsafe.SliceData(v))
	p := uintptr(base)
	lo := (p + page - 1) &^ (page - 1)
	hi := (p + 4*uintptr(len(v))) &^ (page - 1)
	if hi <= lo {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(base, lo-p)), hi-lo)
	if len(b) <= prefaultChunk {
		syscall.Madvise(b, madvPopulateWrite)
		return
	}
	kernels.Parallel((len(b)+prefaultChunk-1)/prefaultChunk, func(c0, c1 int) {
		syscall.Madvise(b[c0*prefaultChunk:min(c1*prefaultChunk, len(b))], madvPopulateWrite)
	})
}
