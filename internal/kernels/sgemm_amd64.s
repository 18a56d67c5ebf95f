//go:build amd64 && !purego

#include "textflag.h"

// Microkernels for the packed SGEMM (see sgemm.go). Each computes one
// MR×NR tile of C from a packed A micro-panel (k steps of MR values) and a
// packed B micro-panel (k steps of NR values):
//
//	acc[i][j] = Σ_p a[p*MR+i] · b[p*NR+j]
//	C[i*ldc+j] = acc[i][j]            (accum == 0)
//	C[i*ldc+j] += acc[i][j]           (accum != 0)
//
// k must be at least 1.

// The AVX2+FMA kernels (1 to 6 rows, NR=16) are generated into
// sgemm_rows_amd64.s by gen/avx2rows.go.

// AVX-512F, MR=6, NR=32: the schedule of the 6-row AVX2 kernel with ZMM
// registers (twelve accumulators Z4-Z15).
#define STEP5(aoff, b0, b1) \
	VMOVUPS b0(DI), Z0; \
	VMOVUPS b1(DI), Z1; \
	VBROADCASTSS aoff+0(SI), Z2; \
	VBROADCASTSS aoff+4(SI), Z3; \
	VFMADD231PS Z0, Z2, Z4; \
	VFMADD231PS Z1, Z2, Z5; \
	VFMADD231PS Z0, Z3, Z6; \
	VFMADD231PS Z1, Z3, Z7; \
	VBROADCASTSS aoff+8(SI), Z2; \
	VBROADCASTSS aoff+12(SI), Z3; \
	VFMADD231PS Z0, Z2, Z8; \
	VFMADD231PS Z1, Z2, Z9; \
	VFMADD231PS Z0, Z3, Z10; \
	VFMADD231PS Z1, Z3, Z11; \
	VBROADCASTSS aoff+16(SI), Z2; \
	VBROADCASTSS aoff+20(SI), Z3; \
	VFMADD231PS Z0, Z2, Z12; \
	VFMADD231PS Z1, Z2, Z13; \
	VFMADD231PS Z0, Z3, Z14; \
	VFMADD231PS Z1, Z3, Z15

#define ADDROW5(r0, r1) \
	VADDPS (DX), r0, r0; \
	VADDPS 64(DX), r1, r1; \
	VMOVUPS r0, (DX); \
	VMOVUPS r1, 64(DX); \
	ADDQ R8, DX

#define SETROW5(r0, r1) \
	VMOVUPS r0, (DX); \
	VMOVUPS r1, 64(DX); \
	ADDQ R8, DX

// func sgemmKernelAVX512(k int, a, b, c *float32, ldc int, accum int)
TEXT ·sgemmKernelAVX512(SB), NOSPLIT, $0-48
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	// Prefetch the C tile (6 rows of 128 bytes) while the k loop runs.
	MOVQ       DX, AX
	PREFETCHT0 (AX)
	PREFETCHT0 127(AX)
	ADDQ       R8, AX
	PREFETCHT0 (AX)
	PREFETCHT0 127(AX)
	ADDQ       R8, AX
	PREFETCHT0 (AX)
	PREFETCHT0 127(AX)
	ADDQ       R8, AX
	PREFETCHT0 (AX)
	PREFETCHT0 127(AX)
	ADDQ       R8, AX
	PREFETCHT0 (AX)
	PREFETCHT0 127(AX)
	ADDQ       R8, AX
	PREFETCHT0 (AX)
	PREFETCHT0 127(AX)

	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15

loop4:
	CMPQ CX, $4
	JLT  tail
	STEP5(0, 0, 64)
	STEP5(24, 128, 192)
	STEP5(48, 256, 320)
	STEP5(72, 384, 448)
	ADDQ $96, SI
	ADDQ $512, DI
	SUBQ $4, CX
	JMP  loop4

tail:
	TESTQ CX, CX
	JEQ   done
	STEP5(0, 0, 64)
	ADDQ  $24, SI
	ADDQ  $128, DI
	DECQ  CX
	JMP   tail

done:
	MOVQ  accum+40(FP), AX
	TESTQ AX, AX
	JEQ   set
	ADDROW5(Z4, Z5)
	ADDROW5(Z6, Z7)
	ADDROW5(Z8, Z9)
	ADDROW5(Z10, Z11)
	ADDROW5(Z12, Z13)
	ADDROW5(Z14, Z15)
	VZEROUPPER
	RET

set:
	SETROW5(Z4, Z5)
	SETROW5(Z6, Z7)
	SETROW5(Z8, Z9)
	SETROW5(Z10, Z11)
	SETROW5(Z12, Z13)
	SETROW5(Z14, Z15)
	VZEROUPPER
	RET
