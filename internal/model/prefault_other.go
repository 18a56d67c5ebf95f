//go:build !linux

package model

// prefault does nothing where goclip has no way to map pages ahead of use.
func prefault(v []float32) {}
