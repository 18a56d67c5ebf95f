package index

import "github.com/goclip/goclip/internal/kernels"

// Dot is the dot product of two embeddings (the cosine of unit vectors),
// computed by the shared SIMD kernel.
func Dot(a, b []float32) float32 { return kernels.Dot(a, b) }
