//go:build amd64 && !purego

package kernels

//go:noescape
func bf16To32AVX2(dst *float32, src *uint16, n int)

// bf16To32 widens bfloat16 values of src into dst (len(dst) of them).
func bf16To32(dst []float32, src []uint16) {
	n := 0
	if useAVX2() && len(dst) >= 16 {
		n = len(dst) &^ 15
		bf16To32AVX2(&dst[0], &src[0], n)
	}
	if n < len(dst) {
		bf16To32Go(dst[n:], src[n:])
	}
}
