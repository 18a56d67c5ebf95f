//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"os"
)

//go:generate sh -c "go run gen/int8.go > int8_amd64.s"

//go:noescape
func qgemmAVX2R1(kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int)

//go:noescape
func qgemmAVX2R2(kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int)

//go:noescape
func qgemmAVX2R3(kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int)

//go:noescape
func qgemmAVX2R4(kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int)

//go:noescape
func qgemmAVX2R5(kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int)

//go:noescape
func qgemmAVX2R6(kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int)

//go:noescape
func qgemmVNNIR1(kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int)

//go:noescape
func qgemmVNNIR2(kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int)

//go:noescape
func qgemmVNNIR3(kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int)

//go:noescape
func qgemmVNNIR4(kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int)

//go:noescape
func qgemmVNNIR5(kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int)

//go:noescape
func qgemmVNNIR6(kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int)

//go:noescape
func qWidenAVX2(dst *int16, src *int8, n int)

//go:noescape
func qAbsMaxAVX2(src *float32, n int) uint32

//go:noescape
func qRoundAVX2(dst *int16, src *float32, n int, inv float32)

//go:noescape
func qPanelAbsMaxAVX2(bits *uint32, src *float32, stride, rows int)

//go:noescape
func qPanelPackAVX2(dst *int16, src *float32, stride, pairs int, inv *float32)

var (
	hasAVX2, _ = cpuFeatures()
	// vnniOK: the CPU has AVX512_VNNI and AVX512VL, and the VPDPWSSD
	// kernels passed their check; useVNNI: the int8 products use them
	// (tests clear it to compare the two).
	vnniOK  = hasVNNI() && vnniChecked()
	useVNNI = vnniOK
)

// vnniChecked runs the VPDPWSSD kernels against the portable ones once
// (see checkQKernel), and reports whether they agree; they are not used
// (and goclip says so) if not.
func vnniChecked() bool {
	if err := checkQKernel("vnni", qgemmVNNI); err != nil {
		fmt.Fprintf(os.Stderr, "goclip: %v: not using it (please report this CPU)\n", err)
		return false
	}
	return true
}

// qAsm reports whether the int8 products run in assembly: on CPUs with
// AVX2, unless the portable kernel was chosen (SetKernel("go")).
func qAsm() bool { return hasAVX2 && current.Load() != goKernel }

// int8Kernel names the int8 microkernels in use.
func int8Kernel() string {
	switch {
	case !qAsm():
		return "go"
	case useVNNI:
		return "vnni"
	}
	return "avx2"
}

// setVNNI selects the VPDPWSSD kernels (where the CPU has them) or the
// VPMADDWD ones, and returns the previous setting.
func setVNNI(on bool) bool {
	old := useVNNI
	useVNNI = on && vnniOK
	return old
}

func qgemmAsm(r, kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int) {
	if useVNNI {
		qgemmVNNI(r, kp, a, lda, b, c, ldc, sa, sw, bias, accum)
		return
	}
	qgemmAVX2(r, kp, a, lda, b, c, ldc, sa, sw, bias, accum)
}

// qgemmVNNI runs the VPDPWSSD microkernel of r rows. (A switch like
// qgemmAVX2's, not a table of func values: direct calls keep the
// kernels' go:noescape, so tiles on the caller's stack stay there.)
func qgemmVNNI(r, kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int) {
	switch r {
	case 6:
		qgemmVNNIR6(kp, a, lda, b, c, ldc, sa, sw, bias, accum)
	case 5:
		qgemmVNNIR5(kp, a, lda, b, c, ldc, sa, sw, bias, accum)
	case 4:
		qgemmVNNIR4(kp, a, lda, b, c, ldc, sa, sw, bias, accum)
	case 3:
		qgemmVNNIR3(kp, a, lda, b, c, ldc, sa, sw, bias, accum)
	case 2:
		qgemmVNNIR2(kp, a, lda, b, c, ldc, sa, sw, bias, accum)
	default:
		qgemmVNNIR1(kp, a, lda, b, c, ldc, sa, sw, bias, accum)
	}
}

// qgemmAVX2 runs the VPMADDWD microkernel of r rows.
func qgemmAVX2(r, kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int) {
	switch r {
	case 6:
		qgemmAVX2R6(kp, a, lda, b, c, ldc, sa, sw, bias, accum)
	case 5:
		qgemmAVX2R5(kp, a, lda, b, c, ldc, sa, sw, bias, accum)
	case 4:
		qgemmAVX2R4(kp, a, lda, b, c, ldc, sa, sw, bias, accum)
	case 3:
		qgemmAVX2R3(kp, a, lda, b, c, ldc, sa, sw, bias, accum)
	case 2:
		qgemmAVX2R2(kp, a, lda, b, c, ldc, sa, sw, bias, accum)
	default:
		qgemmAVX2R1(kp, a, lda, b, c, ldc, sa, sw, bias, accum)
	}
}

// widenAsm widens len(dst) int8 values (a multiple of 32).
func widenAsm(dst []int16, src []int8) {
	if len(dst) == 0 {
		return
	}
	_ = src[len(dst)-1]
	qWidenAVX2(&dst[0], &src[0], len(dst))
}

// absMaxBits is absMaxBitsGo, vectorised where the CPU has AVX2 (and
// useAsm: the portable int8 path keeps to Go).
func absMaxBits(useAsm bool, src []float32) uint32 {
	n := 0
	var m uint32
	if useAsm && hasAVX2 && len(src) >= 8 {
		n = len(src) &^ 7
		m = qAbsMaxAVX2(&src[0], n)
	}
	return max(m, absMaxBitsGo(src[n:]))
}

// roundRow is roundRowGo, vectorised where the CPU has AVX2 (and useAsm).
func roundRow(useAsm bool, dst []int16, src []float32, inv float32) {
	n := 0
	if useAsm && hasAVX2 && len(src) >= 16 {
		n = len(src) &^ 15
		_ = dst[n-1]
		qRoundAVX2(&dst[0], &src[0], n, inv)
	}
	roundRowGo(dst[n:], src[n:], inv)
}

// panelAbsMax is panelAbsMaxGo, in assembly when useAsm (see qAsm).
func panelAbsMax(useAsm bool, bits *[qnr]uint32, src []float32, stride, rows int) {
	if !useAsm || rows == 0 {
		panelAbsMaxGo(bits, src, stride, rows)
		return
	}
	_ = src[(rows-1)*stride+qnr-1]
	qPanelAbsMaxAVX2(&bits[0], &src[0], stride, rows)
}

// panelPack is panelPackGo, in assembly when useAsm (see qAsm).
func panelPack(useAsm bool, dst []int16, src []float32, stride, pairs int, inv *[qnr]float32) {
	if !useAsm || pairs == 0 {
		panelPackGo(dst, src, stride, pairs, inv)
		return
	}
	_ = src[(2*pairs-1)*stride+qnr-1]
	_ = dst[pairs*2*qnr-1]
	qPanelPackAVX2(&dst[0], &src[0], stride, pairs, &inv[0])
}
