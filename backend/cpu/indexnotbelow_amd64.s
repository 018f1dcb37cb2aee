// Hand-written (not by _generate: these kernels return an index and stop
// early, which the elementwise generator's shape does not cover).

//go:build amd64 && !noasm

#include "textflag.h"

// Both kernels compare whole vectors of x, straight from memory, with the
// broadcast floor. VCMPPS takes its memory operand second, so the test is
// floor NGT_UQ v (predicate 0x1a: not greater than, unordered, quiet),
// which is !(floor > v) = !(v < floor), true when either is NaN and for
// v = ±0 against floor = ∓0. The first set lane of the first vector with
// one is the answer; BSF finds it (the mask is never zero there, where BSF
// and TZCNT agree, and BSF needs no BMI1).

// func indexNotBelowAVX2(x []float32, floor float32) int
//
// for i, v := range x { if !(v < floor) { return i } }; return len(x)
// over len(x) a multiple of 8, 32 per iteration. Needs AVX.
TEXT ·indexNotBelowAVX2(SB), NOSPLIT, $0-40
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	VBROADCASTSS floor+24(FP), Y0
	XORQ AX, AX                   // AX: index of the current vector
	MOVQ CX, DX
	ANDQ $-32, DX                 // DX: end of the 32-value blocks
	JZ   one

loop:
	VCMPPS $0x1a, 0(SI)(AX*4), Y0, Y1
	VCMPPS $0x1a, 32(SI)(AX*4), Y0, Y2
	VCMPPS $0x1a, 64(SI)(AX*4), Y0, Y3
	VCMPPS $0x1a, 96(SI)(AX*4), Y0, Y4
	VORPS  Y1, Y2, Y5
	VORPS  Y3, Y4, Y6
	VORPS  Y5, Y6, Y5
	VMOVMSKPS Y5, BX
	TESTL  BX, BX
	JNZ    hit4
	ADDQ   $32, AX
	CMPQ   AX, DX
	JLT    loop

one:
	CMPQ AX, CX
	JGE  done

loop1:
	VCMPPS $0x1a, 0(SI)(AX*4), Y0, Y1
	VMOVMSKPS Y1, BX
	TESTL  BX, BX
	JNZ    found
	ADDQ   $8, AX
	CMPQ   AX, CX
	JLT    loop1

done:
	MOVQ AX, ret+32(FP)
	VZEROUPPER
	RET

hit4:
	VMOVMSKPS Y1, BX
	TESTL BX, BX
	JNZ   found
	ADDQ  $8, AX
	VMOVMSKPS Y2, BX
	TESTL BX, BX
	JNZ   found
	ADDQ  $8, AX
	VMOVMSKPS Y3, BX
	TESTL BX, BX
	JNZ   found
	ADDQ  $8, AX
	VMOVMSKPS Y4, BX

found:
	BSFL BX, BX
	ADDQ BX, AX
	JMP  done

// func indexNotBelowAVX512(x []float32, floor float32) int
//
// for i, v := range x { if !(v < floor) { return i } }; return len(x)
// for any len(x): 64 per iteration, then 16, then one masked compare of
// the last 1..15 (masked-off lanes are not read). Needs AVX-512 F.
TEXT ·indexNotBelowAVX512(SB), NOSPLIT, $0-40
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	VBROADCASTSS floor+24(FP), Z0
	XORQ AX, AX                   // AX: index of the current vector
	MOVQ CX, DX
	ANDQ $-64, DX                 // DX: end of the 64-value blocks
	JZ   sixteen

loop:
	VCMPPS   $0x1a, 0(SI)(AX*4), Z0, K1
	VCMPPS   $0x1a, 64(SI)(AX*4), Z0, K2
	VCMPPS   $0x1a, 128(SI)(AX*4), Z0, K3
	VCMPPS   $0x1a, 192(SI)(AX*4), Z0, K4
	KORW     K1, K2, K5
	KORW     K3, K4, K6
	KORTESTW K5, K6
	JNZ      hit4
	ADDQ     $64, AX
	CMPQ     AX, DX
	JLT      loop

sixteen:
	MOVQ CX, DX
	ANDQ $-16, DX                 // DX: end of the whole vectors
	CMPQ AX, DX
	JGE  tail

loop1:
	VCMPPS   $0x1a, 0(SI)(AX*4), Z0, K1
	KORTESTW K1, K1
	JNZ      hit1
	ADDQ     $16, AX
	CMPQ     AX, DX
	JLT      loop1

tail:
	SUBQ AX, CX                   // CX: 0..15 values left
	JZ   done
	MOVL $1, BX
	SHLL CX, BX
	DECL BX
	KMOVW    BX, K2               // K2: the low CX lanes
	VCMPPS   $0x1a, 0(SI)(AX*4), Z0, K2, K1
	KORTESTW K1, K1
	JNZ      hit1
	ADDQ     CX, AX

done:
	MOVQ AX, ret+32(FP)
	VZEROUPPER
	RET

hit1:
	KMOVW K1, BX
	JMP   found

hit4:
	KMOVW K1, BX
	TESTL BX, BX
	JNZ   found
	ADDQ  $16, AX
	KMOVW K2, BX
	TESTL BX, BX
	JNZ   found
	ADDQ  $16, AX
	KMOVW K3, BX
	TESTL BX, BX
	JNZ   found
	ADDQ  $16, AX
	KMOVW K4, BX

found:
	BSFL BX, BX
	ADDQ BX, AX
	JMP  done
