//go:build amd64 && !purego

#include "textflag.h"

// AVX2+FMA helpers: Dot, max, scale, and a vectorised e^x for the softmax
// and QuickGELU, the same algorithm as expf in ops.go: clamp to [-87.3, 88],
// n = floor(x·log2e+½), r = x - n·ln2 (two parts), e^r by a degree-7
// polynomial, scale by 2^n.

// Each constant is stored 8 times (one YMM vector).
DATA expconst<>+0(SB)/4, $0xc2aeac4f
DATA expconst<>+4(SB)/4, $0xc2aeac4f
DATA expconst<>+8(SB)/4, $0xc2aeac4f
DATA expconst<>+12(SB)/4, $0xc2aeac4f
DATA expconst<>+16(SB)/4, $0xc2aeac4f
DATA expconst<>+20(SB)/4, $0xc2aeac4f
DATA expconst<>+24(SB)/4, $0xc2aeac4f
DATA expconst<>+28(SB)/4, $0xc2aeac4f
DATA expconst<>+32(SB)/4, $0x42b00000
DATA expconst<>+36(SB)/4, $0x42b00000
DATA expconst<>+40(SB)/4, $0x42b00000
DATA expconst<>+44(SB)/4, $0x42b00000
DATA expconst<>+48(SB)/4, $0x42b00000
DATA expconst<>+52(SB)/4, $0x42b00000
DATA expconst<>+56(SB)/4, $0x42b00000
DATA expconst<>+60(SB)/4, $0x42b00000
DATA expconst<>+64(SB)/4, $0x3fb8aa3b
DATA expconst<>+68(SB)/4, $0x3fb8aa3b
DATA expconst<>+72(SB)/4, $0x3fb8aa3b
DATA expconst<>+76(SB)/4, $0x3fb8aa3b
DATA expconst<>+80(SB)/4, $0x3fb8aa3b
DATA expconst<>+84(SB)/4, $0x3fb8aa3b
DATA expconst<>+88(SB)/4, $0x3fb8aa3b
DATA expconst<>+92(SB)/4, $0x3fb8aa3b
DATA expconst<>+96(SB)/4, $0x3f000000
DATA expconst<>+100(SB)/4, $0x3f000000
DATA expconst<>+104(SB)/4, $0x3f000000
DATA expconst<>+108(SB)/4, $0x3f000000
DATA expconst<>+112(SB)/4, $0x3f000000
DATA expconst<>+116(SB)/4, $0x3f000000
DATA expconst<>+120(SB)/4, $0x3f000000
DATA expconst<>+124(SB)/4, $0x3f000000
DATA expconst<>+128(SB)/4, $0x3f318000
DATA expconst<>+132(SB)/4, $0x3f318000
DATA expconst<>+136(SB)/4, $0x3f318000
DATA expconst<>+140(SB)/4, $0x3f318000
DATA expconst<>+144(SB)/4, $0x3f318000
DATA expconst<>+148(SB)/4, $0x3f318000
DATA expconst<>+152(SB)/4, $0x3f318000
DATA expconst<>+156(SB)/4, $0x3f318000
DATA expconst<>+160(SB)/4, $0xb95e8083
DATA expconst<>+164(SB)/4, $0xb95e8083
DATA expconst<>+168(SB)/4, $0xb95e8083
DATA expconst<>+172(SB)/4, $0xb95e8083
DATA expconst<>+176(SB)/4, $0xb95e8083
DATA expconst<>+180(SB)/4, $0xb95e8083
DATA expconst<>+184(SB)/4, $0xb95e8083
DATA expconst<>+188(SB)/4, $0xb95e8083
DATA expconst<>+192(SB)/4, $0x39506967
DATA expconst<>+196(SB)/4, $0x39506967
DATA expconst<>+200(SB)/4, $0x39506967
DATA expconst<>+204(SB)/4, $0x39506967
DATA expconst<>+208(SB)/4, $0x39506967
DATA expconst<>+212(SB)/4, $0x39506967
DATA expconst<>+216(SB)/4, $0x39506967
DATA expconst<>+220(SB)/4, $0x39506967
DATA expconst<>+224(SB)/4, $0x3ab743ce
DATA expconst<>+228(SB)/4, $0x3ab743ce
DATA expconst<>+232(SB)/4, $0x3ab743ce
DATA expconst<>+236(SB)/4, $0x3ab743ce
DATA expconst<>+240(SB)/4, $0x3ab743ce
DATA expconst<>+244(SB)/4, $0x3ab743ce
DATA expconst<>+248(SB)/4, $0x3ab743ce
DATA expconst<>+252(SB)/4, $0x3ab743ce
DATA expconst<>+256(SB)/4, $0x3c088908
DATA expconst<>+260(SB)/4, $0x3c088908
DATA expconst<>+264(SB)/4, $0x3c088908
DATA expconst<>+268(SB)/4, $0x3c088908
DATA expconst<>+272(SB)/4, $0x3c088908
DATA expconst<>+276(SB)/4, $0x3c088908
DATA expconst<>+280(SB)/4, $0x3c088908
DATA expconst<>+284(SB)/4, $0x3c088908
DATA expconst<>+288(SB)/4, $0x3d2aa9c1
DATA expconst<>+292(SB)/4, $0x3d2aa9c1
DATA expconst<>+296(SB)/4, $0x3d2aa9c1
DATA expconst<>+300(SB)/4, $0x3d2aa9c1
DATA expconst<>+304(SB)/4, $0x3d2aa9c1
DATA expconst<>+308(SB)/4, $0x3d2aa9c1
DATA expconst<>+312(SB)/4, $0x3d2aa9c1
DATA expconst<>+316(SB)/4, $0x3d2aa9c1
DATA expconst<>+320(SB)/4, $0x3e2aaaaa
DATA expconst<>+324(SB)/4, $0x3e2aaaaa
DATA expconst<>+328(SB)/4, $0x3e2aaaaa
DATA expconst<>+332(SB)/4, $0x3e2aaaaa
DATA expconst<>+336(SB)/4, $0x3e2aaaaa
DATA expconst<>+340(SB)/4, $0x3e2aaaaa
DATA expconst<>+344(SB)/4, $0x3e2aaaaa
DATA expconst<>+348(SB)/4, $0x3e2aaaaa
DATA expconst<>+352(SB)/4, $0x3f000000
DATA expconst<>+356(SB)/4, $0x3f000000
DATA expconst<>+360(SB)/4, $0x3f000000
DATA expconst<>+364(SB)/4, $0x3f000000
DATA expconst<>+368(SB)/4, $0x3f000000
DATA expconst<>+372(SB)/4, $0x3f000000
DATA expconst<>+376(SB)/4, $0x3f000000
DATA expconst<>+380(SB)/4, $0x3f000000
DATA expconst<>+384(SB)/4, $0x3f800000
DATA expconst<>+388(SB)/4, $0x3f800000
DATA expconst<>+392(SB)/4, $0x3f800000
DATA expconst<>+396(SB)/4, $0x3f800000
DATA expconst<>+400(SB)/4, $0x3f800000
DATA expconst<>+404(SB)/4, $0x3f800000
DATA expconst<>+408(SB)/4, $0x3f800000
DATA expconst<>+412(SB)/4, $0x3f800000
DATA expconst<>+416(SB)/4, $0xbfd9db23
DATA expconst<>+420(SB)/4, $0xbfd9db23
DATA expconst<>+424(SB)/4, $0xbfd9db23
DATA expconst<>+428(SB)/4, $0xbfd9db23
DATA expconst<>+432(SB)/4, $0xbfd9db23
DATA expconst<>+436(SB)/4, $0xbfd9db23
DATA expconst<>+440(SB)/4, $0xbfd9db23
DATA expconst<>+444(SB)/4, $0xbfd9db23
DATA expconst<>+448(SB)/4, $0x0000007f
DATA expconst<>+452(SB)/4, $0x0000007f
DATA expconst<>+456(SB)/4, $0x0000007f
DATA expconst<>+460(SB)/4, $0x0000007f
DATA expconst<>+464(SB)/4, $0x0000007f
DATA expconst<>+468(SB)/4, $0x0000007f
DATA expconst<>+472(SB)/4, $0x0000007f
DATA expconst<>+476(SB)/4, $0x0000007f
GLOBL expconst<>(SB), RODATA|NOPTR, $480

#define K_LO expconst<>+0(SB)
#define K_HI expconst<>+32(SB)
#define K_LOG2E expconst<>+64(SB)
#define K_HALF expconst<>+96(SB)
#define K_C1 expconst<>+128(SB)
#define K_C2 expconst<>+160(SB)
#define K_P0 expconst<>+192(SB)
#define K_P1 expconst<>+224(SB)
#define K_P2 expconst<>+256(SB)
#define K_P3 expconst<>+288(SB)
#define K_P4 expconst<>+320(SB)
#define K_P5 expconst<>+352(SB)
#define K_ONE expconst<>+384(SB)
#define K_MQ expconst<>+416(SB)
#define K_BIAS expconst<>+448(SB)

// EXP sets Y0 = e^Y0, clobbering Y1-Y3 and Y7; inputs below the clamp
// (-Inf included) give 0.
#define EXP \
	VCMPPS       $0x1d, K_LO, Y0, Y7; \
	VMAXPS       K_LO, Y0, Y0; \
	VMINPS       K_HI, Y0, Y0; \
	VMOVUPS      K_LOG2E, Y1; \
	VFMADD213PS  K_HALF, Y0, Y1; \
	VROUNDPS     $1, Y1, Y1; \
	VFNMADD231PS K_C1, Y1, Y0; \
	VFNMADD231PS K_C2, Y1, Y0; \
	VMOVUPS      K_P0, Y2; \
	VFMADD213PS  K_P1, Y0, Y2; \
	VFMADD213PS  K_P2, Y0, Y2; \
	VFMADD213PS  K_P3, Y0, Y2; \
	VFMADD213PS  K_P4, Y0, Y2; \
	VFMADD213PS  K_P5, Y0, Y2; \
	VMULPS       Y0, Y0, Y3; \
	VFMADD213PS  Y0, Y3, Y2; \
	VADDPS       K_ONE, Y2, Y2; \
	VCVTPS2DQ    Y1, Y1; \
	VPADDD       K_BIAS, Y1, Y1; \
	VPSLLD       $23, Y1, Y1; \
	VMULPS       Y1, Y2, Y0; \
	VANDPS       Y7, Y0, Y0

// func quickGELUAVX2(x *float32, n int)
// x[i] = x[i] / (1 + e^(-1.702·x[i])) for the first n&^7 elements.
TEXT ·quickGELUAVX2(SB), NOSPLIT, $0-16
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	SHRQ $3, CX
	JEQ  qdone

qloop:
	VMOVUPS (DI), Y4
	VMULPS  K_MQ, Y4, Y0
	EXP
	VADDPS  K_ONE, Y0, Y0
	VDIVPS  Y0, Y4, Y4
	VMOVUPS Y4, (DI)
	ADDQ    $32, DI
	DECQ    CX
	JNE     qloop

qdone:
	VZEROUPPER
	RET

// func expShiftSumAVX2(x *float32, n int, shift float32) (sum float32)
// x[i] = e^(x[i]-shift) for the first n&^7 elements; returns their sum.
TEXT ·expShiftSumAVX2(SB), NOSPLIT, $0-28
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS shift+16(FP), Y5
	VXORPS       Y6, Y6, Y6
	SHRQ         $3, CX
	JEQ          edone

eloop:
	VMOVUPS (DI), Y0
	VSUBPS  Y5, Y0, Y0
	EXP
	VMOVUPS Y0, (DI)
	VADDPS  Y0, Y6, Y6
	ADDQ    $32, DI
	DECQ    CX
	JNE     eloop

edone:
	VEXTRACTF128 $1, Y6, X7
	VADDPS       X7, X6, X6
	VHADDPS      X6, X6, X6
	VHADDPS      X6, X6, X6
	VMOVSS       X6, sum+24(FP)
	VZEROUPPER
	RET

// func maxAVX2(x *float32, n int) float32
// Returns the largest of the first n elements; n is a positive multiple of 8.
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ    x+0(FP), DI
	MOVQ    n+8(FP), CX
	SHRQ    $3, CX
	VMOVUPS (DI), Y0
	ADDQ    $32, DI
	DECQ    CX
	JEQ     mreduce

mloop:
	VMAXPS (DI), Y0, Y0
	ADDQ   $32, DI
	DECQ   CX
	JNE    mloop

mreduce:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0
	VMOVSS       X0, ret+16(FP)
	VZEROUPPER
	RET

// func scaleAVX2(x *float32, n int, s float32)
// x[i] *= s for the first n&^7 elements.
TEXT ·scaleAVX2(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS s+16(FP), Y1
	SHRQ         $3, CX
	JEQ          sdone

sloop:
	VMULPS  (DI), Y1, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	DECQ    CX
	JNE     sloop

sdone:
	VZEROUPPER
	RET

// func dotAVX2(a, b *float32, n int) float32
// Returns Σ a[i]·b[i] over the first n&^7 elements (four accumulators).
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ   a+0(FP), SI
	MOVQ   b+8(FP), DI
	MOVQ   n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

dloop32:
	CMPQ        CX, $32
	JLT         dloop8
	VMOVUPS     (SI), Y4
	VMOVUPS     32(SI), Y5
	VMOVUPS     64(SI), Y6
	VMOVUPS     96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ        $128, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JMP         dloop32

dloop8:
	CMPQ        CX, $8
	JLT         dreduce
	VMOVUPS     (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ        $32, SI
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         dloop8

dreduce:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VMOVSS       X0, ret+24(FP)
	VZEROUPPER
	RET

// func lnStatsAVX2(x *float32, n int) (sum, sumsq float64)
// Σx and Σx² in float64 over the first n&^7 elements.
TEXT ·lnStatsAVX2(SB), NOSPLIT, $0-32
	MOVQ   x+0(FP), SI
	MOVQ   n+8(FP), CX
	SHRQ   $3, CX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	TESTQ  CX, CX
	JEQ    lsreduce

lsloop:
	VCVTPS2PD   (SI), Y4
	VCVTPS2PD   16(SI), Y5
	VADDPD      Y4, Y0, Y0
	VADDPD      Y5, Y1, Y1
	VFMADD231PD Y4, Y4, Y2
	VFMADD231PD Y5, Y5, Y3
	ADDQ        $32, SI
	DECQ        CX
	JNE         lsloop

lsreduce:
	VADDPD       Y1, Y0, Y0
	VADDPD       Y3, Y2, Y2
	VEXTRACTF128 $1, Y0, X1
	VADDPD       X1, X0, X0
	VHADDPD      X0, X0, X0
	VMOVSD       X0, sum+16(FP)
	VEXTRACTF128 $1, Y2, X3
	VADDPD       X3, X2, X2
	VHADDPD      X2, X2, X2
	VMOVSD       X2, sumsq+24(FP)
	VZEROUPPER
	RET

// func lnApplyAVX2(y, x, gamma, beta *float32, n int, mean, rstd float32)
// y[i] = (x[i]-mean)·rstd·gamma[i] + beta[i] over the first n&^7 elements.
TEXT ·lnApplyAVX2(SB), NOSPLIT, $0-48
	MOVQ         y+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         gamma+16(FP), R8
	MOVQ         beta+24(FP), R9
	MOVQ         n+32(FP), CX
	VBROADCASTSS mean+40(FP), Y6
	VBROADCASTSS rstd+44(FP), Y7
	SHRQ         $3, CX
	JEQ          ladone

laloop:
	VMOVUPS     (SI), Y0
	VSUBPS      Y6, Y0, Y0
	VMULPS      Y7, Y0, Y0
	VMOVUPS     (R9), Y1
	VFMADD231PS (R8), Y0, Y1
	VMOVUPS     Y1, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DI
	ADDQ        $32, R8
	ADDQ        $32, R9
	DECQ        CX
	JNE         laloop

ladone:
	VZEROUPPER
	RET

// func transpose8AVX2(dst *float32, stride int, src *float32, ld int, blocks int, rows int)
// For p < 8·blocks and r < 8: dst[p*stride+r] = src[r*ld+p] for r < rows
// (5 to 8) and 0 for rows ≤ r < 8, by 8×8 in-register transposes (strides
// in elements). Rows past rows are not read.
TEXT ·transpose8AVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ stride+8(FP), DX
	SHLQ $2, DX
	MOVQ src+16(FP), SI
	MOVQ ld+24(FP), R8
	SHLQ $2, R8
	MOVQ blocks+32(FP), CX
	MOVQ rows+40(FP), BX
	LEAQ (R8)(R8*2), R9
	LEAQ (SI)(R8*4), R10
	LEAQ (DX)(DX*2), R11
	TESTQ CX, CX
	JEQ  tdone

tloop:
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(R8*1), Y1
	VMOVUPS (SI)(R8*2), Y2
	VMOVUPS (SI)(R9*1), Y3
	VMOVUPS (R10), Y4
	CMPQ    BX, $8
	JLT     tpart
	VMOVUPS (R10)(R8*1), Y5
	VMOVUPS (R10)(R8*2), Y6
	VMOVUPS (R10)(R9*1), Y7
	JMP     ttrans

tpart:
	// Fewer than 8 rows: the missing ones are zero.
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	CMPQ   BX, $6
	JLT    ttrans
	VMOVUPS (R10)(R8*1), Y5
	CMPQ   BX, $7
	JLT    ttrans
	VMOVUPS (R10)(R8*2), Y6

ttrans:

	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15

	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xee, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xee, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xee, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xee, Y15, Y13, Y7

	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15

	// Column q goes to dst row p+q.
	VMOVUPS Y8, (DI)
	VMOVUPS Y9, (DI)(DX*1)
	VMOVUPS Y10, (DI)(DX*2)
	VMOVUPS Y11, (DI)(R11*1)
	LEAQ    (DI)(DX*4), AX
	VMOVUPS Y12, (AX)
	VMOVUPS Y13, (AX)(DX*1)
	VMOVUPS Y14, (AX)(DX*2)
	VMOVUPS Y15, (AX)(R11*1)
	LEAQ    (AX)(DX*4), DI

	ADDQ $32, SI
	ADDQ $32, R10
	DECQ CX
	JNE  tloop

tdone:
	VZEROUPPER
	RET

// Constants of geluAVX2 (see geluGo in ops.go), eight lanes each.
DATA geluconst<>+0(SB)/4, $0x7fffffff
DATA geluconst<>+4(SB)/4, $0x7fffffff
DATA geluconst<>+8(SB)/4, $0x7fffffff
DATA geluconst<>+12(SB)/4, $0x7fffffff
DATA geluconst<>+16(SB)/4, $0x7fffffff
DATA geluconst<>+20(SB)/4, $0x7fffffff
DATA geluconst<>+24(SB)/4, $0x7fffffff
DATA geluconst<>+28(SB)/4, $0x7fffffff
DATA geluconst<>+32(SB)/4, $0x80000000
DATA geluconst<>+36(SB)/4, $0x80000000
DATA geluconst<>+40(SB)/4, $0x80000000
DATA geluconst<>+44(SB)/4, $0x80000000
DATA geluconst<>+48(SB)/4, $0x80000000
DATA geluconst<>+52(SB)/4, $0x80000000
DATA geluconst<>+56(SB)/4, $0x80000000
DATA geluconst<>+60(SB)/4, $0x80000000
DATA geluconst<>+64(SB)/4, $0x3f3504f3
DATA geluconst<>+68(SB)/4, $0x3f3504f3
DATA geluconst<>+72(SB)/4, $0x3f3504f3
DATA geluconst<>+76(SB)/4, $0x3f3504f3
DATA geluconst<>+80(SB)/4, $0x3f3504f3
DATA geluconst<>+84(SB)/4, $0x3f3504f3
DATA geluconst<>+88(SB)/4, $0x3f3504f3
DATA geluconst<>+92(SB)/4, $0x3f3504f3
DATA geluconst<>+96(SB)/4, $0x3f200000
DATA geluconst<>+100(SB)/4, $0x3f200000
DATA geluconst<>+104(SB)/4, $0x3f200000
DATA geluconst<>+108(SB)/4, $0x3f200000
DATA geluconst<>+112(SB)/4, $0x3f200000
DATA geluconst<>+116(SB)/4, $0x3f200000
DATA geluconst<>+120(SB)/4, $0x3f200000
DATA geluconst<>+124(SB)/4, $0x3f200000
DATA geluconst<>+128(SB)/4, $0x3f906ebb
DATA geluconst<>+132(SB)/4, $0x3f906ebb
DATA geluconst<>+136(SB)/4, $0x3f906ebb
DATA geluconst<>+140(SB)/4, $0x3f906ebb
DATA geluconst<>+144(SB)/4, $0x3f906ebb
DATA geluconst<>+148(SB)/4, $0x3f906ebb
DATA geluconst<>+152(SB)/4, $0x3f906ebb
DATA geluconst<>+156(SB)/4, $0x3f906ebb
DATA geluconst<>+160(SB)/4, $0xbec093a2
DATA geluconst<>+164(SB)/4, $0xbec093a2
DATA geluconst<>+168(SB)/4, $0xbec093a2
DATA geluconst<>+172(SB)/4, $0xbec093a2
DATA geluconst<>+176(SB)/4, $0xbec093a2
DATA geluconst<>+180(SB)/4, $0xbec093a2
DATA geluconst<>+184(SB)/4, $0xbec093a2
DATA geluconst<>+188(SB)/4, $0xbec093a2
DATA geluconst<>+192(SB)/4, $0x3de7171c
DATA geluconst<>+196(SB)/4, $0x3de7171c
DATA geluconst<>+200(SB)/4, $0x3de7171c
DATA geluconst<>+204(SB)/4, $0x3de7171c
DATA geluconst<>+208(SB)/4, $0x3de7171c
DATA geluconst<>+212(SB)/4, $0x3de7171c
DATA geluconst<>+216(SB)/4, $0x3de7171c
DATA geluconst<>+220(SB)/4, $0x3de7171c
DATA geluconst<>+224(SB)/4, $0xbcdc011e
DATA geluconst<>+228(SB)/4, $0xbcdc011e
DATA geluconst<>+232(SB)/4, $0xbcdc011e
DATA geluconst<>+236(SB)/4, $0xbcdc011e
DATA geluconst<>+240(SB)/4, $0xbcdc011e
DATA geluconst<>+244(SB)/4, $0xbcdc011e
DATA geluconst<>+248(SB)/4, $0xbcdc011e
DATA geluconst<>+252(SB)/4, $0xbcdc011e
DATA geluconst<>+256(SB)/4, $0x3ba9729c
DATA geluconst<>+260(SB)/4, $0x3ba9729c
DATA geluconst<>+264(SB)/4, $0x3ba9729c
DATA geluconst<>+268(SB)/4, $0x3ba9729c
DATA geluconst<>+272(SB)/4, $0x3ba9729c
DATA geluconst<>+276(SB)/4, $0x3ba9729c
DATA geluconst<>+280(SB)/4, $0x3ba9729c
DATA geluconst<>+284(SB)/4, $0x3ba9729c
DATA geluconst<>+288(SB)/4, $0xba3ecaf1
DATA geluconst<>+292(SB)/4, $0xba3ecaf1
DATA geluconst<>+296(SB)/4, $0xba3ecaf1
DATA geluconst<>+300(SB)/4, $0xba3ecaf1
DATA geluconst<>+304(SB)/4, $0xba3ecaf1
DATA geluconst<>+308(SB)/4, $0xba3ecaf1
DATA geluconst<>+312(SB)/4, $0xba3ecaf1
DATA geluconst<>+316(SB)/4, $0xba3ecaf1
DATA geluconst<>+320(SB)/4, $0x371ac799
DATA geluconst<>+324(SB)/4, $0x371ac799
DATA geluconst<>+328(SB)/4, $0x371ac799
DATA geluconst<>+332(SB)/4, $0x371ac799
DATA geluconst<>+336(SB)/4, $0x371ac799
DATA geluconst<>+340(SB)/4, $0x371ac799
DATA geluconst<>+344(SB)/4, $0x371ac799
DATA geluconst<>+348(SB)/4, $0x371ac799
DATA geluconst<>+352(SB)/4, $0x3f10547b
DATA geluconst<>+356(SB)/4, $0x3f10547b
DATA geluconst<>+360(SB)/4, $0x3f10547b
DATA geluconst<>+364(SB)/4, $0x3f10547b
DATA geluconst<>+368(SB)/4, $0x3f10547b
DATA geluconst<>+372(SB)/4, $0x3f10547b
DATA geluconst<>+376(SB)/4, $0x3f10547b
DATA geluconst<>+380(SB)/4, $0x3f10547b
DATA geluconst<>+384(SB)/4, $0x3f1252be
DATA geluconst<>+388(SB)/4, $0x3f1252be
DATA geluconst<>+392(SB)/4, $0x3f1252be
DATA geluconst<>+396(SB)/4, $0x3f1252be
DATA geluconst<>+400(SB)/4, $0x3f1252be
DATA geluconst<>+404(SB)/4, $0x3f1252be
DATA geluconst<>+408(SB)/4, $0x3f1252be
DATA geluconst<>+412(SB)/4, $0x3f1252be
DATA geluconst<>+416(SB)/4, $0x3e534def
DATA geluconst<>+420(SB)/4, $0x3e534def
DATA geluconst<>+424(SB)/4, $0x3e534def
DATA geluconst<>+428(SB)/4, $0x3e534def
DATA geluconst<>+432(SB)/4, $0x3e534def
DATA geluconst<>+436(SB)/4, $0x3e534def
DATA geluconst<>+440(SB)/4, $0x3e534def
DATA geluconst<>+444(SB)/4, $0x3e534def
DATA geluconst<>+448(SB)/4, $0x3e440e6a
DATA geluconst<>+452(SB)/4, $0x3e440e6a
DATA geluconst<>+456(SB)/4, $0x3e440e6a
DATA geluconst<>+460(SB)/4, $0x3e440e6a
DATA geluconst<>+464(SB)/4, $0x3e440e6a
DATA geluconst<>+468(SB)/4, $0x3e440e6a
DATA geluconst<>+472(SB)/4, $0x3e440e6a
DATA geluconst<>+476(SB)/4, $0x3e440e6a
DATA geluconst<>+480(SB)/4, $0xc0231010
DATA geluconst<>+484(SB)/4, $0xc0231010
DATA geluconst<>+488(SB)/4, $0xc0231010
DATA geluconst<>+492(SB)/4, $0xc0231010
DATA geluconst<>+496(SB)/4, $0xc0231010
DATA geluconst<>+500(SB)/4, $0xc0231010
DATA geluconst<>+504(SB)/4, $0xc0231010
DATA geluconst<>+508(SB)/4, $0xc0231010
DATA geluconst<>+512(SB)/4, $0x40834c0b
DATA geluconst<>+516(SB)/4, $0x40834c0b
DATA geluconst<>+520(SB)/4, $0x40834c0b
DATA geluconst<>+524(SB)/4, $0x40834c0b
DATA geluconst<>+528(SB)/4, $0x40834c0b
DATA geluconst<>+532(SB)/4, $0x40834c0b
DATA geluconst<>+536(SB)/4, $0x40834c0b
DATA geluconst<>+540(SB)/4, $0x40834c0b
DATA geluconst<>+544(SB)/4, $0xc039866a
DATA geluconst<>+548(SB)/4, $0xc039866a
DATA geluconst<>+552(SB)/4, $0xc039866a
DATA geluconst<>+556(SB)/4, $0xc039866a
DATA geluconst<>+560(SB)/4, $0xc039866a
DATA geluconst<>+564(SB)/4, $0xc039866a
DATA geluconst<>+568(SB)/4, $0xc039866a
DATA geluconst<>+572(SB)/4, $0xc039866a
DATA geluconst<>+576(SB)/4, $0x3f50a0f6
DATA geluconst<>+580(SB)/4, $0x3f50a0f6
DATA geluconst<>+584(SB)/4, $0x3f50a0f6
DATA geluconst<>+588(SB)/4, $0x3f50a0f6
DATA geluconst<>+592(SB)/4, $0x3f50a0f6
DATA geluconst<>+596(SB)/4, $0x3f50a0f6
DATA geluconst<>+600(SB)/4, $0x3f50a0f6
DATA geluconst<>+604(SB)/4, $0x3f50a0f6
GLOBL geluconst<>(SB), RODATA|NOPTR, $608

#define GK_ABS geluconst<>+0(SB)
#define GK_SIGN geluconst<>+32(SB)
#define GK_RS2 geluconst<>+64(SB)
#define GK_SPLIT geluconst<>+96(SB)
#define GK_G1_0 geluconst<>+128(SB)
#define GK_G1_1 geluconst<>+160(SB)
#define GK_G1_2 geluconst<>+192(SB)
#define GK_G1_3 geluconst<>+224(SB)
#define GK_G1_4 geluconst<>+256(SB)
#define GK_G1_5 geluconst<>+288(SB)
#define GK_G2_0 geluconst<>+320(SB)
#define GK_G2_1 geluconst<>+352(SB)
#define GK_G2_2 geluconst<>+384(SB)
#define GK_G2_3 geluconst<>+416(SB)
#define GK_G2_4 geluconst<>+448(SB)
#define GK_G2_5 geluconst<>+480(SB)
#define GK_G2_6 geluconst<>+512(SB)
#define GK_G2_7 geluconst<>+544(SB)
#define GK_G2_8 geluconst<>+576(SB)

// func geluAVX2(x *float32, n int)
// The exact GELU of the first n&^7 elements in place, as geluGo.
TEXT ·geluAVX2(SB), NOSPLIT, $0-16
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	SHRQ $3, CX
	JEQ  gdone

gloop:
	VMOVUPS (DI), Y4
	VANDPS  GK_ABS, Y4, Y5
	VMULPS  GK_RS2, Y5, Y5

	// Small branch: e = a·P1(a²) in Y8.
	VMULPS      Y5, Y5, Y6
	VMOVUPS     GK_G1_5, Y8
	VFMADD213PS GK_G1_4, Y6, Y8
	VFMADD213PS GK_G1_3, Y6, Y8
	VFMADD213PS GK_G1_2, Y6, Y8
	VFMADD213PS GK_G1_1, Y6, Y8
	VFMADD213PS GK_G1_0, Y6, Y8
	VMULPS      Y5, Y8, Y8

	// Large branch: c = e^(-a²)·P2(1/(1+a)) in Y9, with a² = x²/2 as
	// sh + sl (sl the FMA residual): e^(-a²) ≈ e^(-sh)·(1 - sl).
	VADDPS      K_ONE, Y5, Y9
	VMOVUPS     K_ONE, Y10
	VDIVPS      Y9, Y10, Y9
	VMOVUPS     GK_G2_8, Y10
	VFMADD213PS GK_G2_7, Y9, Y10
	VFMADD213PS GK_G2_6, Y9, Y10
	VFMADD213PS GK_G2_5, Y9, Y10
	VFMADD213PS GK_G2_4, Y9, Y10
	VFMADD213PS GK_G2_3, Y9, Y10
	VFMADD213PS GK_G2_2, Y9, Y10
	VFMADD213PS GK_G2_1, Y9, Y10
	VFMADD213PS GK_G2_0, Y9, Y10
	VMULPS      K_HALF, Y4, Y11
	VMULPS      Y4, Y11, Y12
	VFMSUB213PS Y12, Y4, Y11
	VMOVUPS     K_ONE, Y13
	VSUBPS      Y11, Y13, Y13
	VMULPS      Y13, Y10, Y10
	VXORPS      GK_SIGN, Y12, Y0
	EXP
	VMULPS      Y10, Y0, Y9
	VXORPS      Y11, Y11, Y11
	VMAXPS      Y11, Y9, Y9

	// u = erf(a): small ? e : 1-c; then 1 + sign(x)·u, except c itself
	// where x < 0 on the large branch.
	VMOVUPS   K_ONE, Y10
	VSUBPS    Y9, Y10, Y10
	VCMPPS    $1, GK_SPLIT, Y5, Y11
	VBLENDVPS Y11, Y8, Y10, Y10
	VANDPS    GK_SIGN, Y4, Y12
	VXORPS    Y12, Y10, Y10
	VADDPS    K_ONE, Y10, Y10
	VANDNPS   Y4, Y11, Y12
	VBLENDVPS Y12, Y9, Y10, Y10
	VMULPS    K_HALF, Y4, Y4
	VMULPS    Y10, Y4, Y4
	VMOVUPS   Y4, (DI)
	ADDQ      $32, DI
	DECQ      CX
	JNE       gloop

gdone:
	VZEROUPPER
	RET
