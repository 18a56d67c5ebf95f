package hub

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

const lockName = ".goclip-pull.lock"

// lockDir takes the exclusive pull lock of the model directory dir, waiting
// (until ctx ends) while another Pull, in this process or another, holds it.
// After a while it reports the wait once through notify.
func lockDir(ctx context.Context, dir string, notify func(string)) (unlock func(), err error) {
	path := filepath.Join(dir, lockName)
	start := time.Now()
	told := false
	for {
		unlock, ok, err := tryLock(path)
		if err != nil {
			return nil, fmt.Errorf("hub: locking %s: %w", path, err)
		}
		if ok {
			return unlock, nil
		}
		if !told && time.Since(start) > 2*time.Second {
			told = true
			notify("hub: waiting for another pull of the same model to finish (it holds " + path + ")")
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("hub: waiting for another pull holding %s: %w", path, ctx.Err())
		case <-t.C:
		}
	}
}
