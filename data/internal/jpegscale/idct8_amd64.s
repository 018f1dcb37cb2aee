//go:build amd64 && !noasm

#include "textflag.h"

// The constants of idct8 (idct8.go), one int32 each, broadcast where
// used: for each rotation k·cos θ, k·(sin θ + cos θ), k·(sin θ − cos θ).
DATA idctK<>+0(SB)/4, $70936     // rows: cos 6π/16 /√2 · 2^18
DATA idctK<>+4(SB)/4, $242190    //   (sin + cos)
DATA idctK<>+8(SB)/4, $100318    //   (sin − cos)
DATA idctK<>+12(SB)/4, $181      // rows: 2^8/√2
DATA idctK<>+16(SB)/4, $3406     // cos 3π/16 · 2^12
DATA idctK<>+20(SB)/4, $5682
DATA idctK<>+24(SB)/4, $-1130
DATA idctK<>+28(SB)/4, $4017     // cos π/16 · 2^12
DATA idctK<>+32(SB)/4, $4816
DATA idctK<>+36(SB)/4, $-3218
DATA idctK<>+40(SB)/4, $1108     // columns: cos 6π/16 /√2 · 2^12
DATA idctK<>+44(SB)/4, $3784
DATA idctK<>+48(SB)/4, $1568
DATA idctK<>+52(SB)/4, $11585    // columns: 2^14/√2
DATA idctK<>+56(SB)/4, $0x80000  // a half of the last shift (2^19)
DATA idctK<>+60(SB)/4, $0x80808080
// VPERMD's order for the packed bytes: a row's two halves side by side.
DATA idctK<>+64(SB)/8, $0x0000000400000000
DATA idctK<>+72(SB)/8, $0x0000000500000001
DATA idctK<>+80(SB)/8, $0x0000000600000002
DATA idctK<>+88(SB)/8, $0x0000000700000003
GLOBL idctK<>(SB), RODATA|NOPTR, $96

// ROT(a, b, k): a, b = k·(a·cos θ − b·sin θ), k·(a·sin θ + b·cos θ) with
// three products, as idct8's rotate: m = kc·(a+b); a = m − (ks+kc)·b;
// b = m + (ks−kc)·a. t1, t2 are clobbered.
#define ROT(a, b, off, t1, t2) \
	VPADDD       b, a, t1                 \
	VPBROADCASTD idctK<>+(off)(SB), t2    \
	VPMULLD      t2, t1, t1               \
	VPBROADCASTD idctK<>+(off+4)(SB), t2  \
	VPMULLD      t2, b, b                 \
	VPBROADCASTD idctK<>+(off+8)(SB), t2  \
	VPMULLD      t2, a, a                 \
	VPSUBD       b, t1, t2                \
	VPADDD       a, t1, b                 \
	VMOVDQU      t2, a

// func idct8AVX2(t *[64]int32, dst *byte, stride int)
//
// idct8Go: the pass along the rows on eight rows at once (lanes: the
// vertical frequency u), a transpose, the pass down the columns on eight
// columns at once (lanes: x), then the rows of pixels packed with
// saturation (the clamp) and level-shifted. Needs AVX2.
TEXT ·idct8AVX2(SB), NOSPLIT, $0-24
	MOVQ t+0(FP), SI
	MOVQ dst+8(FP), DI
	MOVQ stride+16(FP), BX

	// Rows, even half: e0, e1 = F0·2^17 ± F4·2^17; e2, e3 = rotated F2, F6.
	VMOVDQU 0(SI), Y0
	VMOVDQU 128(SI), Y1
	VPSLLD  $17, Y0, Y0
	VPSLLD  $17, Y1, Y1
	VPSUBD  Y1, Y0, Y3
	VPADDD  Y1, Y0, Y0
	VMOVDQU 64(SI), Y2
	VMOVDQU 192(SI), Y1
	ROT(Y2, Y1, 0, Y14, Y15)
	VPSUBD  Y2, Y3, Y4                 // e2 = e1 − e2
	VPADDD  Y2, Y3, Y3                 // e1 = e1 + e2
	VPSUBD  Y1, Y0, Y5                 // e3 = e0 − e3
	VPADDD  Y1, Y0, Y0                 // e0 = e0 + e3

	// Rows, odd half: o7, o4 = F1·2^7 ± F7·2^7; o6, o5 = F5, F3 · 2^8/√2.
	VMOVDQU      32(SI), Y6
	VMOVDQU      224(SI), Y7
	VPSLLD       $7, Y6, Y6
	VPSLLD       $7, Y7, Y7
	VPSUBD       Y7, Y6, Y8            // o4
	VPADDD       Y7, Y6, Y6            // o7
	VPBROADCASTD idctK<>+12(SB), Y15
	VPMULLD      160(SI), Y15, Y7      // o6
	VPMULLD      96(SI), Y15, Y9       // o5
	VPSUBD       Y9, Y6, Y10           // o5 = o7 − o5
	VPADDD       Y9, Y6, Y6            // o7 = o7 + o5
	VPSUBD       Y7, Y8, Y11           // o6 = o4 − o6
	VPADDD       Y7, Y8, Y8            // o4 = o4 + o6
	VPSRAD       $2, Y8, Y8
	VPSRAD       $2, Y6, Y6
	ROT(Y8, Y6, 16, Y14, Y15)          // o4, o7
	VPSRAD       $2, Y10, Y10
	VPSRAD       $2, Y11, Y11
	ROT(Y10, Y11, 28, Y14, Y15)        // o5, o6

	// The rows' outputs, one vector per column x (lanes u), in Y0..Y7.
	VPSUBD  Y6, Y0, Y7
	VPADDD  Y6, Y0, Y0
	VPSUBD  Y11, Y3, Y6
	VPADDD  Y11, Y3, Y1
	VPSUBD  Y10, Y4, Y9
	VPADDD  Y10, Y4, Y2
	VPSUBD  Y8, Y5, Y4
	VPADDD  Y8, Y5, Y3
	VMOVDQU Y9, Y5

	// Transpose: Y8+u holds the values of frequency u along x.
	VPUNPCKLDQ  Y1, Y0, Y8
	VPUNPCKHDQ  Y1, Y0, Y9
	VPUNPCKLDQ  Y3, Y2, Y10
	VPUNPCKHDQ  Y3, Y2, Y11
	VPUNPCKLDQ  Y5, Y4, Y12
	VPUNPCKHDQ  Y5, Y4, Y13
	VPUNPCKLDQ  Y7, Y6, Y14
	VPUNPCKHDQ  Y7, Y6, Y15
	VPUNPCKLQDQ Y10, Y8, Y0
	VPUNPCKHQDQ Y10, Y8, Y1
	VPUNPCKLQDQ Y11, Y9, Y2
	VPUNPCKHQDQ Y11, Y9, Y3
	VPUNPCKLQDQ Y14, Y12, Y4
	VPUNPCKHQDQ Y14, Y12, Y5
	VPUNPCKLQDQ Y15, Y13, Y6
	VPUNPCKHQDQ Y15, Y13, Y7
	VPERM2I128  $0x20, Y4, Y0, Y8
	VPERM2I128  $0x31, Y4, Y0, Y12
	VPERM2I128  $0x20, Y5, Y1, Y9
	VPERM2I128  $0x31, Y5, Y1, Y13
	VPERM2I128  $0x20, Y6, Y2, Y10
	VPERM2I128  $0x31, Y6, Y2, Y14
	VPERM2I128  $0x20, Y7, Y3, Y11
	VPERM2I128  $0x31, Y7, Y3, Y15

	// Columns, even half.
	VPBROADCASTD idctK<>+56(SB), Y0
	VPADDD       Y0, Y8, Y8
	VPADDD       Y12, Y8, Y0
	VPSUBD       Y12, Y8, Y1
	VPSRAD       $2, Y0, Y0            // e0
	VPSRAD       $2, Y1, Y1            // e1
	VPSRAD       $13, Y10, Y10
	VPSRAD       $13, Y14, Y14
	ROT(Y10, Y14, 40, Y8, Y12)         // e2, e3
	VPSUBD       Y10, Y1, Y2           // e2 = e1 − e2
	VPADDD       Y10, Y1, Y1           // e1 = e1 + e2
	VPSUBD       Y14, Y0, Y3           // e3 = e0 − e3
	VPADDD       Y14, Y0, Y0           // e0 = e0 + e3

	// Columns, odd half.
	VPSUBD       Y15, Y9, Y4           // o4
	VPADDD       Y15, Y9, Y9           // o7
	VPSRAD       $13, Y13, Y13
	VPSRAD       $13, Y11, Y11
	VPBROADCASTD idctK<>+52(SB), Y15
	VPMULLD      Y15, Y13, Y13         // o6
	VPMULLD      Y15, Y11, Y11         // o5
	VPSUBD       Y11, Y9, Y5           // o5 = o7 − o5
	VPADDD       Y11, Y9, Y9           // o7 = o7 + o5
	VPSUBD       Y13, Y4, Y6           // o6 = o4 − o6
	VPADDD       Y13, Y4, Y4           // o4 = o4 + o6
	VPSRAD       $14, Y4, Y4
	VPSRAD       $14, Y9, Y9
	ROT(Y4, Y9, 16, Y14, Y15)          // o4, o7
	VPSRAD       $14, Y5, Y5
	VPSRAD       $14, Y6, Y6
	ROT(Y5, Y6, 28, Y14, Y15)          // o5, o6

	// The eight rows of pixels, shifted down.
	VPADDD Y9, Y0, Y7                  // row 0
	VPSUBD Y9, Y0, Y8                  // row 7
	VPADDD Y6, Y1, Y10                 // row 1
	VPSUBD Y6, Y1, Y11                 // row 6
	VPADDD Y5, Y2, Y12                 // row 2
	VPSUBD Y5, Y2, Y13                 // row 5
	VPADDD Y4, Y3, Y14                 // row 3
	VPSUBD Y4, Y3, Y15                 // row 4
	VPSRAD $18, Y7, Y7
	VPSRAD $18, Y8, Y8
	VPSRAD $18, Y10, Y10
	VPSRAD $18, Y11, Y11
	VPSRAD $18, Y12, Y12
	VPSRAD $18, Y13, Y13
	VPSRAD $18, Y14, Y14
	VPSRAD $18, Y15, Y15

	// Saturated to int16, then to [−128, 127] (the clamp), plus 128.
	VPACKSSDW    Y10, Y7, Y0
	VPACKSSDW    Y14, Y12, Y1
	VPACKSSWB    Y1, Y0, Y0
	VPACKSSDW    Y13, Y15, Y2
	VPACKSSDW    Y8, Y11, Y3
	VPACKSSWB    Y3, Y2, Y2
	VPBROADCASTD idctK<>+60(SB), Y4
	VPXOR        Y4, Y0, Y0
	VPXOR        Y4, Y2, Y2
	VMOVDQU      idctK<>+64(SB), Y5
	VPERMD       Y0, Y5, Y0
	VPERMD       Y2, Y5, Y2

	VMOVQ        X0, (DI)
	VPEXTRQ      $1, X0, (DI)(BX*1)
	VEXTRACTI128 $1, Y0, X1
	LEAQ         (DI)(BX*2), DX
	VMOVQ        X1, (DX)
	VPEXTRQ      $1, X1, (DX)(BX*1)
	LEAQ         (DX)(BX*2), DX
	VMOVQ        X2, (DX)
	VPEXTRQ      $1, X2, (DX)(BX*1)
	VEXTRACTI128 $1, Y2, X3
	LEAQ         (DX)(BX*2), DX
	VMOVQ        X3, (DX)
	VPEXTRQ      $1, X3, (DX)(BX*1)
	VZEROUPPER
	RET
