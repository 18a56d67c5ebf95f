//go:build unix

package checkpoint

import (
	"os"
	"syscall"
)

// mapFile maps the whole of f into memory, private and copy-on-write, so an
// accidental write through a tensor's Data never reaches the file. It
// returns nil, nil for an empty file or where mapping is not possible (the
// caller then reads the file into memory).
func mapFile(f *os.File, size int64) ([]byte, error) {
	if size <= 0 || int64(int(size)) != size {
		return nil, nil
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil
	}
	return b, nil
}

// unmapFile releases a mapping made by mapFile.
func unmapFile(b []byte) error { return syscall.Munmap(b) }
