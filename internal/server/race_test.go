//go:build race

package server

// raceEnabled reports a -race build: the model then runs far slower, so
// the throughput test is skipped (the batcher's concurrency is covered by
// TestBatcherConcurrent and TestConcurrentMixed).
const raceEnabled = true
