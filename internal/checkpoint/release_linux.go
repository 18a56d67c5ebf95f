package checkpoint

import (
	"os"
	"syscall"
)

// releaseAlign is the granularity releasePages rounds to: 2 MiB, the
// largest page-cache folio on common systems. A page fault on a mapped
// file maps the whole folio around the faulting page, so touching the
// first bytes of one tensor maps back the tail of the tensor before it;
// releasing whole aligned folios takes those pages out again.
var releaseAlign = max(2<<20, os.Getpagesize())

// releasePages drops the pages of mapping m that hold bytes [lo, hi),
// rounded out to releaseAlign, from the resident set. m starts at offset 0
// of its file, so rounding offsets into m rounds file offsets, the way
// folios are aligned. Errors are ignored: the call is only a hint.
func releasePages(m []byte, lo, hi int) {
	lo &^= releaseAlign - 1
	hi = min(len(m), (hi+releaseAlign-1)&^(releaseAlign-1))
	if lo >= hi {
		return
	}
	syscall.Madvise(m[lo:hi], syscall.MADV_DONTNEED)
}
