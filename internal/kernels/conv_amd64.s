//go:build amd64 && !purego

#include "textflag.h"

// func reluAVX2(x *float32, n int)
// x[i] = max(x[i], 0) for the first n&^7 elements. VMAXPS returns its
// second source (x) when either is NaN, so NaN stays NaN as in PyTorch.
TEXT ·reluAVX2(SB), NOSPLIT, $0-16
	MOVQ   x+0(FP), DI
	MOVQ   n+8(FP), CX
	VXORPS Y1, Y1, Y1
	SHRQ   $3, CX
	JEQ    rdone

rloop:
	VMAXPS  (DI), Y1, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	DECQ    CX
	JNE     rloop

rdone:
	VZEROUPPER
	RET
