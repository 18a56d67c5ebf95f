//go:build !amd64 || purego

package kernels

// qAsm reports whether the int8 products run in assembly: never in this
// build.
func qAsm() bool { return false }

// int8Kernel names the int8 microkernels in use.
func int8Kernel() string { return "go" }

func setVNNI(on bool) bool { return false }

func qgemmAsm(r, kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int) {
	qgemmGo(r, kp, a, lda, b, c, ldc, sa, sw, bias, accum)
}

func widenAsm(dst []int16, src []int8) { widenGo(dst, src) }

func absMaxBits(useAsm bool, src []float32) uint32 { return absMaxBitsGo(src) }

func roundRow(useAsm bool, dst []int16, src []float32, inv float32) { roundRowGo(dst, src, inv) }

func panelAbsMax(useAsm bool, bits *[qnr]uint32, src []float32, stride, rows int) {
	panelAbsMaxGo(bits, src, stride, rows)
}

func panelPack(useAsm bool, dst []int16, src []float32, stride, pairs int, inv *[qnr]float32) {
	panelPackGo(dst, src, stride, pairs, inv)
}
