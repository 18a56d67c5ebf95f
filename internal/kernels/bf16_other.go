//go:build !amd64 || purego

package kernels

// bf16To32 widens bfloat16 values of src into dst (len(dst) of them).
func bf16To32(dst []float32, src []uint16) { bf16To32Go(dst, src) }
