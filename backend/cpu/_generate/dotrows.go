package main

import "fmt"

// dotRows writes dotRowsAVX512, the kernel of the products with a few rows
// of A and B transposed (a query against a gallery's rows): 16 of B's
// rows at a time, 16 k steps of them loaded and transposed in registers,
// so that lane j of the l-th vector is B's row j at step l; then a fused
// multiply-add per k step and row of A, in k's order, as the
// micro-kernels sum.
//
// The transpose is four rounds of two-source permutes: in the round of
// width w, rows i and i+w (i&w = 0) become, lane by lane, [row i's lane j
// where j&w = 0, else row i+w's lane j−w] and [row i's lane j+w where
// j&w = 0, else row i+w's lane j]. After widths 8, 4, 2 and 1, lane j of
// vector l is element l of row j (checked against the Go loop by
// TestGemmRowsMatchesBlocked).
func dotRows() []byte {
	var w asm
	w.header()
	w.p("")
	widths := []int{8, 4, 2, 1}
	for _, wd := range widths {
		// lane j of the round's two results: row i's j, else row
		// i+w's j−w; row i's j+w, else row i+w's j (16 + lane: the
		// second vector's)
		indexTable(w.p, fmt.Sprintf("dotRowsLo%d", wd), func(j int) int {
			if j&wd == 0 {
				return j
			}
			return 16 + j - wd
		})
		indexTable(w.p, fmt.Sprintf("dotRowsHi%d", wd), func(j int) int {
			if j&wd == 0 {
				return j + wd
			}
			return 16 + j
		})
	}
	w.p(`
// func dotRowsAVX512(kb int, a []float32, lda, m int, b []float32, ldb int, c []float32, ldc, n int, alpha float32, set bool)
//
// Needs AVX-512 F; kb a positive multiple of 16, 1 ≤ m ≤ 4, 16 rows of b
// (each kb values from row j·ldb), 1 ≤ n ≤ 16 columns of c stored. For
// i < m, j < n:
//
//	acc := float32(0)
//	for l := range kb { acc = fma(a[i·lda+l], b[j·ldb+l], acc) }
//	c[i·ldc+j] = fma(alpha, acc, c[i·ldc+j])    (set: fma(alpha, acc, 0))
//
// SI: a at the chunk, R8: lda in bytes, BX: b at the chunk, R9: ldb in
// bytes, R11: the row loaded, R12: 16·ldb in bytes, CX: chunks of 16 steps left, DX: m; Z16–Z23:
// the permutes' indices, Z24: the spare, Z25–Z28: the sums.
TEXT ·dotRowsAVX512(SB), NOSPLIT, $0-125
	MOVQ kb+0(FP), CX
	SHRQ $4, CX
	MOVQ a_base+8(FP), SI
	MOVQ lda+32(FP), R8
	SHLQ $2, R8
	MOVQ m+40(FP), DX
	MOVQ b_base+48(FP), BX
	MOVQ ldb+72(FP), R9
	SHLQ $2, R9
	// R12: 16 rows of b, where the next group's values are asked for
	MOVQ R9, R12
	SHLQ $4, R12`)
	for s, wd := range widths {
		w.p("\tVMOVUPS dotRowsLo%d<>(SB), Z%d", wd, 16+2*s)
		w.p("\tVMOVUPS dotRowsHi%d<>(SB), Z%d", wd, 17+2*s)
	}
	for i := range 4 {
		w.p("\tVPXORD Z%d, Z%d, Z%d", 25+i, 25+i, 25+i)
	}
	w.p("\nchunk:")
	w.p("\tMOVQ BX, R11")
	reg := make([]int, 16)
	for j := range reg {
		reg[j] = j
		w.p("\tVMOVUPS (R11), Z%d", j)
		w.p("\tPREFETCHT0 (R11)(R12*1)")
		if j < 15 {
			w.p("\tADDQ R9, R11")
		}
	}
	spare := 24
	for s, wd := range widths {
		for i := range 16 {
			if i&wd != 0 {
				continue
			}
			p := i + wd
			w.p("\tVMOVAPS Z%d, Z%d", reg[i], spare)
			w.p("\tVPERMT2PS Z%d, Z%d, Z%d", reg[p], 16+2*s, reg[i])
			w.p("\tVPERMT2PS Z%d, Z%d, Z%d", reg[p], 17+2*s, spare)
			reg[p], spare = spare, reg[p]
		}
	}
	for i := range 4 {
		if i > 0 {
			w.p("\tCMPQ DX, $%d", i+1)
			w.p("\tJLT  next")
			w.p("\tADDQ R8, SI")
		}
		for l := range 16 {
			w.p("\tVFMADD231PS.BCST %d(SI), Z%d, Z%d", 4*l, reg[l], 25+i)
		}
	}
	w.p(`
next:
	// SI back to row 0 of A, 16 steps on
	MOVQ DX, AX
	DECQ AX
	IMULQ R8, AX
	SUBQ AX, SI
	ADDQ $64, SI
	ADDQ $64, BX
	DECQ CX
	JNZ  chunk

	MOVQ c_base+80(FP), DI
	MOVQ ldc+104(FP), R10
	SHLQ $2, R10
	MOVQ n+112(FP), CX
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	VBROADCASTSS alpha+120(FP), Z29
	MOVBLZX set+124(FP), R11`)
	for i := range 4 {
		if i > 0 {
			w.p("\tCMPQ DX, $%d", i+1)
			w.p("\tJLT  done")
			w.p("\tADDQ R10, DI")
		}
		w.p("\tVPXORD Z30, Z30, Z30")
		w.p("\tTESTL R11, R11")
		w.p("\tJNZ  set%d", i)
		w.p("\tVMOVUPS.Z (DI), K1, Z30")
		w.p("set%d:", i)
		w.p("\tVFMADD213PS Z30, Z29, Z%d", 25+i)
		w.p("\tVMOVUPS Z%d, K1, (DI)", 25+i)
	}
	w.p(`
done:
	VZEROUPPER
	RET`)
	return w.Bytes()
}
