//go:build !amd64

package index

// Dot returns Σ a[i]·b[i] over len(a) elements (b must be at least as
// long).
func Dot(a, b []float32) float32 {
	return dotGo(a, b[:len(a)])
}
