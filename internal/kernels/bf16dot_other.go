//go:build !amd64 || purego

package kernels

// bAsm reports whether the native bf16 products run in assembly: never in
// this build.
func bAsm() bool { return false }

func bgemmAsm(r, kp int, a *uint16, lda int, b *uint16, c *float32, ldc int, bias *float32, accum int) {
	bgemmGo(r, kp, a, lda, b, c, ldc, bias, accum)
}

func roundBF16(useAsm bool, dst []uint16, src []float32) { roundBF16Go(dst, src) }
