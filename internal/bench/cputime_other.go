//go:build !unix

package bench

import "time"

// ProcessCPU is unknown here: CPU figures are reported as 0.
func ProcessCPU() time.Duration { return 0 }
