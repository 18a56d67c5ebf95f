//go:build !unix

package checkpoint

import "os"

// mapFile is unavailable on this platform: files are read into memory.
func mapFile(f *os.File, size int64) ([]byte, error) { return nil, nil }

// unmapFile is never called on this platform.
func unmapFile(b []byte) error { return nil }
