//go:build amd64 && !purego

#include "textflag.h"

// func biasAVX2(x *float32, n int, b float32)
// x[i] += b for the first n&^7 elements.
TEXT ·biasAVX2(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS b+16(FP), Y1
	SHRQ         $3, CX
	JEQ          bdone

bloop:
	VADDPS  (DI), Y1, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	DECQ    CX
	JNE     bloop

bdone:
	VZEROUPPER
	RET

// func biasReLUAVX2(x *float32, n int, b float32)
// x[i] = max(x[i] + b, 0) for the first n&^7 elements. VMAXPS returns its
// second source (the sum) when either is NaN, so NaN stays NaN as in
// PyTorch.
TEXT ·biasReLUAVX2(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS b+16(FP), Y1
	VXORPS       Y2, Y2, Y2
	SHRQ         $3, CX
	JEQ          rdone

rloop:
	VADDPS  (DI), Y1, Y0
	VMAXPS  Y0, Y2, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	DECQ    CX
	JNE     rloop

rdone:
	VZEROUPPER
	RET
