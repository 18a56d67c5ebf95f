//go:build amd64 && !purego

package kernels

// cpuid executes CPUID with the given leaf (EAX) and sub-leaf (ECX).
func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

// xgetbv reads extended control register XCR0.
func xgetbv() (eax, edx uint32)

// cpuFeatures reports which SIMD paths this CPU and OS support: the
// instruction-set bits from CPUID and, through XCR0, whether the OS saves
// the YMM (bits 1-2) and ZMM/opmask (bits 5-7) register state.
func cpuFeatures() (avx2FMA, avx512 bool) {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return false, false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const (
		fmaBit     = 1 << 12
		osxsaveBit = 1 << 27
		avxBit     = 1 << 28
	)
	if ecx1&osxsaveBit == 0 || ecx1&avxBit == 0 {
		return false, false
	}
	xcr0, _ := xgetbv()
	osYMM := xcr0&0x6 == 0x6
	osZMM := xcr0&0xe6 == 0xe6
	_, ebx7, _, _ := cpuid(7, 0)
	const (
		avx2Bit    = 1 << 5
		avx512FBit = 1 << 16
	)
	avx2FMA = osYMM && ecx1&fmaBit != 0 && ebx7&avx2Bit != 0
	avx512 = avx2FMA && osZMM && ebx7&avx512FBit != 0
	return avx2FMA, avx512
}

// hasVNNI reports whether the CPU and OS support the EVEX-encoded
// VPDPWSSD on 256-bit registers: AVX-512 state enabled by the OS,
// AVX512_VNNI and AVX512VL.
func hasVNNI() bool {
	if _, avx512 := cpuFeatures(); !avx512 {
		return false
	}
	_, ebx7, ecx7, _ := cpuid(7, 0)
	const (
		avx512VLBit   = 1 << 31 // EBX
		avx512VNNIBit = 1 << 11 // ECX
	)
	return ebx7&avx512VLBit != 0 && ecx7&avx512VNNIBit != 0
}
