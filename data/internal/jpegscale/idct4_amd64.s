//go:build amd64 && !noasm

#include "textflag.h"

// ROW4(o, k) computes o = k[0]·X0 + k[1]·X1 + k[2]·X2 + k[3]·X3 (k: four
// vectors of one broadcast constant each, at offset k of R8), adding
// left to right as idct4 does. X15 is clobbered.
#define ROW4(o, k) \
	VMULPS (k)(R8), X0, o        \
	VMULPS (k+16)(R8), X1, X15   \
	VADDPS X15, o, o             \
	VMULPS (k+32)(R8), X2, X15   \
	VADDPS X15, o, o             \
	VMULPS (k+48)(R8), X3, X15   \
	VADDPS X15, o, o

// func idct4AVX(blk *[64]int32, dst *byte, stride int, k *[18][4]float32)
//
// idct4: the four frequencies F(u, 0..3) of each u turned into t(u, x)
// (lanes u, one vector per x), transposed, then the columns into the
// pixels (lanes x, one vector per row), each float32 product and sum as
// idct4 rounds it; then pixel's +128.5, clamp and truncation. k holds
// idct4c[i][j] at 4i+j, 128.5 at 16 and 255 at 17, each four times.
TEXT ·idct4AVX(SB), NOSPLIT, $0-32
	MOVQ blk+0(FP), SI
	MOVQ dst+8(FP), DI
	MOVQ stride+16(FP), BX
	MOVQ k+24(FP), R8

	VCVTDQ2PS 0(SI), X0
	VCVTDQ2PS 32(SI), X1
	VCVTDQ2PS 64(SI), X2
	VCVTDQ2PS 96(SI), X3
	ROW4(X4, 0)
	ROW4(X5, 64)
	ROW4(X6, 128)
	ROW4(X7, 192)

	// Transpose: X0..X3 = t(u, ·) for u = 0..3.
	VUNPCKLPS X5, X4, X8
	VUNPCKHPS X5, X4, X9
	VUNPCKLPS X7, X6, X10
	VUNPCKHPS X7, X6, X11
	VMOVLHPS  X10, X8, X0
	VMOVHLPS  X8, X10, X1
	VMOVLHPS  X11, X9, X2
	VMOVHLPS  X9, X11, X3

	ROW4(X4, 0)
	ROW4(X5, 64)
	ROW4(X6, 128)
	ROW4(X7, 192)

	// pixel: +128.5, clamped to [0, 255], truncated.
	VXORPS    X14, X14, X14
	VMOVUPS   256(R8), X12
	VMOVUPS   272(R8), X13
	VADDPS    X12, X4, X4
	VADDPS    X12, X5, X5
	VADDPS    X12, X6, X6
	VADDPS    X12, X7, X7
	VMAXPS    X14, X4, X4
	VMAXPS    X14, X5, X5
	VMAXPS    X14, X6, X6
	VMAXPS    X14, X7, X7
	VMINPS    X13, X4, X4
	VMINPS    X13, X5, X5
	VMINPS    X13, X6, X6
	VMINPS    X13, X7, X7
	VCVTTPS2DQ X4, X4
	VCVTTPS2DQ X5, X5
	VCVTTPS2DQ X6, X6
	VCVTTPS2DQ X7, X7
	VPACKSSDW X5, X4, X4
	VPACKSSDW X7, X6, X6
	VPACKUSWB X6, X4, X4

	VMOVD   X4, (DI)
	VPEXTRD $1, X4, (DI)(BX*1)
	LEAQ    (DI)(BX*2), DX
	VPEXTRD $2, X4, (DX)
	VPEXTRD $3, X4, (DX)(BX*1)
	RET
