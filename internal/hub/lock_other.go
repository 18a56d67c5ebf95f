//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package hub

import (
	"errors"
	"io/fs"
	"os"
	"time"
)

// Without flock, the lock is a file created exclusively. Its holder touches
// it every heartbeat; a lock file left untouched for staleAfter belongs to a
// pull that died and is taken over.
const (
	heartbeat  = 10 * time.Second
	staleAfter = 2 * time.Minute
)

func tryLock(path string) (unlock func(), ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		if st, serr := os.Stat(path); serr == nil && time.Since(st.ModTime()) > staleAfter {
			os.Remove(path)
		}
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	f.Close()
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				os.Chtimes(path, now, now)
			}
		}
	}()
	return func() {
		close(done)
		os.Remove(path)
	}, true, nil
}
