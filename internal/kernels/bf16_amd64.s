//go:build amd64 && !purego

#include "textflag.h"

// func bf16To32AVX2(dst *float32, src *uint16, n int)
// dst[i] = float32 with the bits src[i]<<16, for i < n (n a multiple of 16).
TEXT ·bf16To32AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	JEQ  done

loop:
	VPMOVZXWD (SI), Y0
	VPMOVZXWD 16(SI), Y1
	VPSLLD    $16, Y0, Y0
	VPSLLD    $16, Y1, Y1
	VMOVUPS   Y0, (DI)
	VMOVUPS   Y1, 32(DI)
	ADDQ      $32, SI
	ADDQ      $64, DI
	DECQ      CX
	JNE       loop

done:
	VZEROUPPER
	RET
