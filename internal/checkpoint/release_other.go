//go:build !linux

package checkpoint

// releasePages is a no-op where goclip does not use madvise.
func releasePages(m []byte, lo, hi int) {}
