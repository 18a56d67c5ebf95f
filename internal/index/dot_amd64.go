package index

import "golang.org/x/sys/cpu"

//go:noescape
func dotAVX2(a, b *float32, n int) float32

var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// Dot returns Σ a[i]·b[i] over len(a) elements (b must be at least as
// long). On amd64 with AVX2 and FMA it runs a vectorised kernel.
func Dot(a, b []float32) float32 {
	if len(a) == 0 {
		return 0
	}
	b = b[:len(a)]
	if useAVX2 {
		return dotAVX2(&a[0], &b[0], len(a))
	}
	return dotGo(a, b)
}
