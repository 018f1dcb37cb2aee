//go:build amd64 && !noasm

#include "textflag.h"

// color.YCbCrToRGB's constants (16.16 fixed point), and the rest.
DATA yccK<>+0(SB)/4, $0x10101     // Y·0x10101: Y in 16.16, rounded
DATA yccK<>+4(SB)/4, $128
DATA yccK<>+8(SB)/4, $91881       // R: 1.402·2^16 per Cr
DATA yccK<>+12(SB)/4, $22554      // G: 0.344136·2^16 per Cb
DATA yccK<>+16(SB)/4, $46802      // G: 0.714136·2^16 per Cr
DATA yccK<>+20(SB)/4, $116130     // B: 1.772·2^16 per Cb
DATA yccK<>+24(SB)/4, $255
DATA yccK<>+28(SB)/4, $0xFF000000 // alpha
// VPERMD's order that gives each of four chroma samples to two pixels.
DATA yccK<>+32(SB)/8, $0x0000000000000000
DATA yccK<>+40(SB)/8, $0x0000000100000001
DATA yccK<>+48(SB)/8, $0x0000000200000002
DATA yccK<>+56(SB)/8, $0x0000000300000003
GLOBL yccK<>(SB), RODATA|NOPTR, $64

// func rowAVX2(dst, y, cb, cr *byte, groups int, half bool)
//
// groups×8 pixels: R = Y·0x10101 + 91881·(Cr−128), G = Y·0x10101 −
// 22554·(Cb−128) − 46802·(Cr−128), B = Y·0x10101 + 116130·(Cb−128), each
// shifted down by 16 and clamped to [0, 255] (as color.YCbCrToRGB's bit
// twiddling does), alpha 255. With half, each Cb and Cr sample serves two
// pixels. Needs AVX2.
TEXT ·rowAVX2(SB), NOSPLIT, $0-41
	MOVQ    dst+0(FP), DI
	MOVQ    y+8(FP), SI
	MOVQ    cb+16(FP), BX
	MOVQ    cr+24(FP), DX
	MOVQ    groups+32(FP), CX
	MOVBLZX half+40(FP), AX

	VPBROADCASTD yccK<>+0(SB), Y8
	VPBROADCASTD yccK<>+4(SB), Y9
	VPBROADCASTD yccK<>+8(SB), Y10
	VPBROADCASTD yccK<>+12(SB), Y11
	VPBROADCASTD yccK<>+16(SB), Y12
	VPBROADCASTD yccK<>+20(SB), Y13
	VPBROADCASTD yccK<>+24(SB), Y14
	VPBROADCASTD yccK<>+28(SB), Y6
	VMOVDQU      yccK<>+32(SB), Y7
	VPXOR        Y15, Y15, Y15

loop:
	VPMOVZXBD (SI), Y0
	TESTQ     AX, AX
	JNZ       halved
	VPMOVZXBD (BX), Y1
	VPMOVZXBD (DX), Y2
	ADDQ      $8, BX
	ADDQ      $8, DX
	JMP       convert

halved:
	VPMOVZXBD (BX), X1
	VPMOVZXBD (DX), X2
	VPERMD    Y1, Y7, Y1
	VPERMD    Y2, Y7, Y2
	ADDQ      $4, BX
	ADDQ      $4, DX

convert:
	VPMULLD Y8, Y0, Y0   // yy1
	VPSUBD  Y9, Y1, Y1   // cb1
	VPSUBD  Y9, Y2, Y2   // cr1
	VPMULLD Y10, Y2, Y3
	VPADDD  Y0, Y3, Y3   // R
	VPMULLD Y11, Y1, Y4
	VPSUBD  Y4, Y0, Y4
	VPMULLD Y12, Y2, Y5
	VPSUBD  Y5, Y4, Y4   // G
	VPMULLD Y13, Y1, Y5
	VPADDD  Y0, Y5, Y5   // B
	VPSRAD  $16, Y3, Y3
	VPSRAD  $16, Y4, Y4
	VPSRAD  $16, Y5, Y5
	VPMAXSD Y15, Y3, Y3
	VPMAXSD Y15, Y4, Y4
	VPMAXSD Y15, Y5, Y5
	VPMINSD Y14, Y3, Y3
	VPMINSD Y14, Y4, Y4
	VPMINSD Y14, Y5, Y5
	VPSLLD  $8, Y4, Y4
	VPSLLD  $16, Y5, Y5
	VPOR    Y4, Y3, Y3
	VPOR    Y5, Y3, Y3
	VPOR    Y6, Y3, Y3
	VMOVDQU Y3, (DI)
	ADDQ    $32, DI
	ADDQ    $8, SI
	DECQ    CX
	JNZ     loop

	VZEROUPPER
	RET
