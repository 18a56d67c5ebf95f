//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"os"
)

//go:noescape
func bgemmR1(kp int, a *uint16, lda int, b *uint16, c *float32, ldc int, bias *float32, accum int)

//go:noescape
func bgemmR2(kp int, a *uint16, lda int, b *uint16, c *float32, ldc int, bias *float32, accum int)

//go:noescape
func bgemmR3(kp int, a *uint16, lda int, b *uint16, c *float32, ldc int, bias *float32, accum int)

//go:noescape
func bgemmR4(kp int, a *uint16, lda int, b *uint16, c *float32, ldc int, bias *float32, accum int)

//go:noescape
func bgemmR5(kp int, a *uint16, lda int, b *uint16, c *float32, ldc int, bias *float32, accum int)

//go:noescape
func bgemmR6(kp int, a *uint16, lda int, b *uint16, c *float32, ldc int, bias *float32, accum int)

//go:noescape
func bCvtAVX512(dst *uint16, src *float32, n int)

// hasBF16 reports whether the CPU and OS support VDPBF16PS and
// VCVTNEPS2BF16 on 512-bit registers: AVX-512 state enabled by the OS,
// AVX512_BF16 (CPUID leaf 7, sub-leaf 1, EAX bit 5).
func hasBF16() bool {
	if _, avx512 := cpuFeatures(); !avx512 {
		return false
	}
	maxSub, _, _, _ := cpuid(7, 0)
	if maxSub < 1 {
		return false
	}
	eax71, _, _, _ := cpuid(7, 1)
	return eax71&(1<<5) != 0
}

// bf16OK: the CPU has AVX512_BF16 and the VDPBF16PS kernels and the
// conversion passed their check at start-up.
var bf16OK = hasBF16() && bf16Checked()

// bf16Checked runs the native bf16 kernels against the portable ones once
// and reports whether they agree; they are not used (and goclip says so)
// if not.
func bf16Checked() bool {
	err := checkBKernel("avx512bf16", bgemmAVX512)
	if err == nil {
		err = checkBConvert(func(dst []uint16, src []float32) { bCvtAVX512(&dst[0], &src[0], len(src)) })
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "goclip: %v: not using it (please report this CPU)\n", err)
		return false
	}
	return true
}

// bAsm reports whether the native bf16 products run in assembly: on CPUs
// with AVX512_BF16, unless the portable kernel was chosen
// (SetKernel("go")).
func bAsm() bool { return bf16OK && current.Load() != goKernel }

func bgemmAsm(r, kp int, a *uint16, lda int, b *uint16, c *float32, ldc int, bias *float32, accum int) {
	bgemmAVX512(r, kp, a, lda, b, c, ldc, bias, accum)
}

// bgemmAVX512 runs the VDPBF16PS microkernel of r rows.
func bgemmAVX512(r, kp int, a *uint16, lda int, b *uint16, c *float32, ldc int, bias *float32, accum int) {
	switch r {
	case 6:
		bgemmR6(kp, a, lda, b, c, ldc, bias, accum)
	case 5:
		bgemmR5(kp, a, lda, b, c, ldc, bias, accum)
	case 4:
		bgemmR4(kp, a, lda, b, c, ldc, bias, accum)
	case 3:
		bgemmR3(kp, a, lda, b, c, ldc, bias, accum)
	case 2:
		bgemmR2(kp, a, lda, b, c, ldc, bias, accum)
	default:
		bgemmR1(kp, a, lda, b, c, ldc, bias, accum)
	}
}

// roundBF16 is roundBF16Go, with VCVTNEPS2BF16 where useAsm (see bAsm).
func roundBF16(useAsm bool, dst []uint16, src []float32) {
	n := 0
	if useAsm && len(src) >= 16 {
		n = len(src) &^ 15
		_ = dst[n-1]
		bCvtAVX512(&dst[0], &src[0], n)
	}
	roundBF16Go(dst[n:], src[n:])
}
