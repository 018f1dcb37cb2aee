package main

import "fmt"

// The transforms of Winograd's F(4×4, 3×3) (../winograd4.go), 16 tiles per
// vector (AVX-512 F), each value computed by the operations of the Go
// loops (wg4In, wg4Out) in their order, so the results are the same bit
// for bit.
func winograd4() []byte {
	var w asm
	w.header()
	p := w.p
	z := func(i int) string { return fmt.Sprintf("Z%d", i) }
	p("")
	for _, c := range []struct {
		name string
		v    uint32
	}{{"wg4Four", 0x40800000}, {"wg4Five", 0x40a00000}} {
		p("DATA %s<>+0(SB)/4, $0x%08x", c.name, c.v)
		p("GLOBL %s<>(SB), RODATA|NOPTR, $4", c.name)
	}
	// The interleaving of the low and high halves of a pair of vectors.
	indexTable(p, "wg4Lo", func(i int) int { return i/2 + 16*(i%2) })
	indexTable(p, "wg4Hi", func(i int) int { return 8 + i/2 + 16*(i%2) })
	// in is wg4In of the six vectors d into t (six others), with the
	// spare vectors s0, s1 and the constants 4 and 5 in four and five.
	in := func(d, t [6]string, s0, s1, four, five string) {
		// t0 = 4·d0 + (d4 − 5·d2), t5 = 4·d1 + (d5 − 5·d3)
		p("\tVMULPS %s, %s, %s", five, d[2], s0)
		p("\tVSUBPS %s, %s, %s", s0, d[4], s0)
		p("\tVMULPS %s, %s, %s", four, d[0], s1)
		p("\tVADDPS %s, %s, %s", s0, s1, t[0])
		p("\tVMULPS %s, %s, %s", five, d[3], s0)
		p("\tVSUBPS %s, %s, %s", s0, d[5], s0)
		p("\tVMULPS %s, %s, %s", four, d[1], s1)
		p("\tVADDPS %s, %s, %s", s0, s1, t[5])
		// a = d4 − 4·d2 (s0), b = d3 − 4·d1 (s1): t1 = a + b, t2 = a − b
		p("\tVMULPS %s, %s, %s", four, d[2], s0)
		p("\tVSUBPS %s, %s, %s", s0, d[4], s0)
		p("\tVMULPS %s, %s, %s", four, d[1], s1)
		p("\tVSUBPS %s, %s, %s", s1, d[3], s1)
		p("\tVADDPS %s, %s, %s", s1, s0, t[1])
		p("\tVSUBPS %s, %s, %s", s1, s0, t[2])
		// c = d4 − d2 (s0), e = 2·(d3 − d1) (s1): t3 = c + e, t4 = c − e
		p("\tVSUBPS %s, %s, %s", d[2], d[4], s0)
		p("\tVSUBPS %s, %s, %s", d[1], d[3], s1)
		p("\tVADDPS %s, %s, %s", s1, s1, s1)
		p("\tVADDPS %s, %s, %s", s1, s0, t[3])
		p("\tVSUBPS %s, %s, %s", s1, s0, t[4])
	}

	p(`
// func wg4InputAVX512(src []float32, wpe, pl, chunks int, dst []float32, xs, kb int)
//
// Needs AVX-512 F. Per chunk of 16 tiles: the 36 vectors of d, a row of
// six at a time from the phase planes (SI, R10–R12: row phases 0–3 at
// column phase 0; BX: rows 4 and 5; R8: a plane, R9: three planes, DX: a
// row of a plane), each row's transform to the frame, then each column's
// from the frame to its six places in dst (DI: the chunk's, R13: xs in
// bytes; R14: from the second half of a panel to the next panel; AX: the
// chunk's half of its panel).
TEXT ·wg4InputAVX512(SB), 0, $2304-88
	MOVQ src_base+0(FP), SI
	MOVQ wpe+24(FP), DX
	SHLQ $2, DX
	MOVQ pl+32(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R9
	MOVQ chunks+40(FP), CX
	MOVQ dst_base+48(FP), DI
	MOVQ xs+72(FP), R13
	SHLQ $2, R13
	MOVQ kb+80(FP), R14
	SHLQ $7, R14
	SUBQ $64, R14
	VBROADCASTSS wg4Four<>(SB), Z30
	VBROADCASTSS wg4Five<>(SB), Z31
	XORQ AX, AX
	TESTQ CX, CX
	JZ   done

loop:
	LEAQ (SI)(R8*4), R10
	LEAQ (R10)(R8*4), R11
	LEAQ (R11)(R8*4), R12`)
	cols := []string{"", "(R8*1)", "(R8*2)", "(R9*1)"}
	for i := range 6 {
		base := []string{"SI", "R10", "R11", "R12"}[i%4]
		if i >= 4 {
			p("\tLEAQ (%s)(DX*1), BX", base)
			base = "BX"
		}
		var d, t [6]string
		for j := range 6 {
			d[j], t[j] = z(j), z(6+j)
			off := 4 * (j / 4)
			p("\tVMOVUPS %d(%s)%s, %s", off, base, cols[j%4], d[j])
		}
		in(d, t, z(12), z(13), z(30), z(31))
		for j := range 6 {
			p("\tVMOVUPS %s, %d(SP)", t[j], 64*(6*i+j))
		}
	}
	for j := range 6 {
		var d, t [6]string
		for i := range 6 {
			d[i], t[i] = z(i), z(6+i)
			p("\tVMOVUPS %d(SP), %s", 64*(6*i+j), d[i])
		}
		in(d, t, z(12), z(13), z(30), z(31))
		// V_ξ, ξ = 6i + j, at DI + ξ·xs
		p("\tMOVQ R13, BX")
		p("\tIMULQ $%d, BX", j)
		p("\tADDQ DI, BX")
		for i := range 6 {
			p("\tVMOVUPS %s, (BX)", t[i])
			if i < 5 {
				p("\tLEAQ (BX)(R13*4), BX")
				p("\tLEAQ (BX)(R13*2), BX")
			}
		}
	}
	p(`	ADDQ $64, SI
	XORQ $1, AX
	JZ   second
	ADDQ $64, DI
	JMP  next
second:
	ADDQ R14, DI
next:
	DECQ CX
	JNZ  loop

done:
	VZEROUPPER
	RET`)

	p(`
// func wg4OutputAVX512(m []float32, ms, n int, y0, y1, y2, y3 []float32, q int)
//
// Needs AVX-512 F. Per 16 tiles: down each column j of M (six vectors,
// ms apart: SI, R8 = ms in bytes) into u[r][j] (Z0–Z23, r·6 + j), then
// along each row r that has a slice into four vectors, interleaved into
// 64 columns and stored under the masks of the columns left (DX).
TEXT ·wg4OutputAVX512(SB), NOSPLIT, $0-144
	MOVQ m_base+0(FP), SI
	MOVQ ms+24(FP), R8
	SHLQ $2, R8
	MOVQ n+32(FP), R11
	MOVQ q+136(FP), DX
	MOVQ y0_base+40(FP), R12
	MOVQ y1_base+64(FP), R13
	MOVQ y2_base+88(FP), R14
	MOVQ y3_base+112(FP), R9
	TESTQ R11, R11
	JLE  done

loop:`)
	u := func(r, j int) string { return z(6*r + j) }
	for j := range 6 {
		// m_i at SI + (6i + j)·ms
		p("\tMOVQ R8, BX")
		p("\tIMULQ $%d, BX", j)
		p("\tADDQ SI, BX")
		for i := range 6 {
			p("\tVMOVUPS (BX), %s", z(24+i))
			if i < 5 {
				p("\tLEAQ (BX)(R8*4), BX")
				p("\tLEAQ (BX)(R8*2), BX")
			}
		}
		out(p, [6]string{z(24), z(25), z(26), z(27), z(28), z(29)}, [4]string{u(0, j), u(1, j), u(2, j), u(3, j)}, z(30), z(31))
	}
	rows := []string{"R12", "R13", "R14", "R9"}
	lens := []int{48, 72, 96, 120}
	for r := range 4 {
		p("\tMOVQ y%d_len+%d(FP), AX", r, lens[r])
		p("\tTESTQ AX, AX")
		p("\tJZ   row%d", r+1)
		out(p, [6]string{u(r, 0), u(r, 1), u(r, 2), u(r, 3), u(r, 4), u(r, 5)}, [4]string{z(24), z(25), z(26), z(27)}, z(28), z(29))
		// interleave: P = (v0, v2) into (lo, hi), Q = (v1, v3), then
		// (P, Q) by halves into the 64 columns
		lo, hi := u(r, 0), u(r, 1)
		p("\tVMOVDQU32 wg4Lo<>(SB), %s", lo)
		p("\tVMOVDQU32 wg4Hi<>(SB), %s", hi)
		inter := func(a, b, dlo, dhi string) {
			p("\tVMOVAPS %s, %s", a, dlo)
			p("\tVPERMT2PS %s, %s, %s", b, lo, dlo)
			p("\tVMOVAPS %s, %s", a, dhi)
			p("\tVPERMT2PS %s, %s, %s", b, hi, dhi)
		}
		inter(z(24), z(26), z(28), z(29)) // P
		inter(z(25), z(27), z(30), z(31)) // Q
		inter(z(28), z(30), u(r, 2), u(r, 3))
		inter(z(29), z(31), u(r, 4), u(r, 5))
		for v := range 4 {
			// K1: the columns left past 16v, at most 16
			p("\tMOVQ DX, DI")
			if v > 0 {
				p("\tSUBQ $%d, DI", 16*v)
			} else {
				p("\tTESTQ DI, DI")
			}
			p("\tJLE  row%d", r+1)
			laneMask(p, "K1", fmt.Sprintf("r%dv%d", r, v))
			p("\tVMOVUPS %s, K1, %d(%s)", u(r, 2+v), 64*v, rows[r])
		}
		p("row%d:", r+1)
	}
	p(`	ADDQ $64, SI
	ADDQ $256, R12
	ADDQ $256, R13
	ADDQ $256, R14
	ADDQ $256, R9
	SUBQ $64, DX
	SUBQ $16, R11
	JG   loop

done:
	VZEROUPPER
	RET`)
	split4(p)
	return w.Bytes()
}

// split4 writes split4RowsAVX512, phased.fill's column stride 4: each row
// split into its columns mod 4.
func split4(p func(string, ...any)) {
	indexTable(p, "wg4Even", func(i int) int { return 2 * i })
	indexTable(p, "wg4Odd", func(i int) int { return 2*i + 1 })
	p(`
// func split4RowsAVX512(src []float32, lds, w, rows int, d0, d1, d2, d3 []float32, ldd int)
//
// Needs AVX-512 F; w ≥ 1, rows ≥ 1. For each row r and each m < 4 with
// m < w: d_m[r·ldd + k] = src[r·lds + 4k + m] for 4k + m < w. Per 64
// columns: four loads (masked to the row), the even and odd elements of
// each pair of vectors, then of those, and each column class stored under
// the mask of its values left. SI: the row, R8–R11: d0–d3 at the row,
// R12: lds in bytes, R13: ldd in bytes, DX: w, BX: the row's 64-column
// groups' offset in bytes, CX: columns left in the row, R14: rows left.
TEXT ·split4RowsAVX512(SB), NOSPLIT, $0-152
	MOVQ src_base+0(FP), SI
	MOVQ lds+24(FP), R12
	SHLQ $2, R12
	MOVQ w+32(FP), DX
	MOVQ rows+40(FP), R14
	MOVQ d0_base+48(FP), R8
	MOVQ d1_base+72(FP), R9
	MOVQ d2_base+96(FP), R10
	MOVQ d3_base+120(FP), R11
	MOVQ ldd+144(FP), R13
	SHLQ $2, R13
	VMOVDQU32 wg4Even<>(SB), Z30
	VMOVDQU32 wg4Odd<>(SB), Z31

row:
	MOVQ DX, CX
	XORQ BX, BX

group:`)
	// K1–K4: the loads' lanes, min(max(CX − 16v, 0), 16)
	mask := func(k int, sub int, label string) {
		p("\tMOVQ CX, DI")
		if sub > 0 {
			p("\tSUBQ $%d, DI", sub)
		} else {
			p("\tTESTQ DI, DI")
		}
		p("\tJGE  %s_pos", label)
		p("\tXORQ DI, DI")
		p("%s_pos:", label)
		laneMask(p, fmt.Sprintf("K%d", k), label)
	}
	for v := range 4 {
		mask(1+v, 16*v, fmt.Sprintf("ld%d", v))
		p("\tVMOVUPS.Z %d(SI)(BX*1), K%d, Z%d", 64*v, 1+v, v)
	}
	pick := func(tab, a, b, d string) {
		p("\tVMOVAPS %s, %s", a, d)
		p("\tVPERMT2PS %s, %s, %s", b, tab, d)
	}
	pick("Z30", "Z0", "Z1", "Z4")  // E
	pick("Z31", "Z0", "Z1", "Z5")  // O
	pick("Z30", "Z2", "Z3", "Z6")  // E'
	pick("Z31", "Z2", "Z3", "Z7")  // O'
	pick("Z30", "Z4", "Z6", "Z8")  // columns 0 mod 4
	pick("Z31", "Z4", "Z6", "Z10") // 2 mod 4
	pick("Z30", "Z5", "Z7", "Z9")  // 1 mod 4
	pick("Z31", "Z5", "Z7", "Z11") // 3 mod 4
	// class m has min((CX − m + 3)/4, 16) values here (CX ≥ 1)
	for m := range 4 {
		p("\tMOVQ CX, DI")
		p("\tADDQ $%d, DI", 3-m)
		p("\tSHRQ $2, DI")
		laneMask(p, "K5", fmt.Sprintf("st%d", m))
		p("\tMOVQ BX, AX")
		p("\tSHRQ $2, AX")
		p("\tVMOVUPS Z%d, K5, (R%d)(AX*1)", 8+m, 8+m)
	}
	p(`	ADDQ $256, BX
	SUBQ $64, CX
	JG   group
	ADDQ R12, SI
	ADDQ R13, R8
	ADDQ R13, R9
	ADDQ R13, R10
	ADDQ R13, R11
	DECQ R14
	JNZ  row
	VZEROUPPER
	RET`)
}

// indexTable writes the 16 lanes' indexes at(i) of a permute, as name<>.
func indexTable(p func(string, ...any), name string, at func(i int) int) {
	for i := 0; i < 8; i++ {
		p("DATA %s<>+%d(SB)/8, $0x%08x%08x", name, 8*i, at(2*i+1), at(2*i))
	}
	p("GLOBL %s<>(SB), RODATA|NOPTR, $64", name)
}

// laneMask sets the mask register k to the min(DI, 16) low lanes (DI ≥ 0;
// DI and AX clobbered, CX kept), with labels from label.
func laneMask(p func(string, ...any), k, label string) {
	p("\tCMPQ DI, $16")
	p("\tJLE  %s_ok", label)
	p("\tMOVQ $16, DI")
	p("%s_ok:", label)
	p("\tMOVQ CX, AX")
	p("\tMOVQ DI, CX")
	p("\tMOVL $1, DI")
	p("\tSHLL CX, DI")
	p("\tDECL DI")
	p("\tMOVQ AX, CX")
	p("\tKMOVW DI, %s", k)
}

// out is wg4Out of the six vectors m into y (four others), with the spare
// vectors s0 and s1; m1 to m4 are overwritten.
func out(p func(string, ...any), m [6]string, y [4]string, s0, s1 string) {
	// s12 = m1 + m2 (s0), d12 = m1 − m2 (s1), s34 = m3 + m4 (m1),
	// d34 = m3 − m4 (m2)
	p("\tVADDPS %s, %s, %s", m[2], m[1], s0)
	p("\tVSUBPS %s, %s, %s", m[2], m[1], s1)
	p("\tVADDPS %s, %s, %s", m[4], m[3], m[1])
	p("\tVSUBPS %s, %s, %s", m[4], m[3], m[2])
	// y0 = (m0 + s12) + s34
	p("\tVADDPS %s, %s, %s", s0, m[0], y[0])
	p("\tVADDPS %s, %s, %s", m[1], y[0], y[0])
	// y1 = d12 + 2·d34
	p("\tVADDPS %s, %s, %s", m[2], m[2], m[3])
	p("\tVADDPS %s, %s, %s", m[3], s1, y[1])
	// y2 = s12 + 4·s34
	p("\tVADDPS %s, %s, %s", m[1], m[1], m[4])
	p("\tVADDPS %s, %s, %s", m[4], m[4], m[4])
	p("\tVADDPS %s, %s, %s", m[4], s0, y[2])
	// y3 = (d12 + 8·d34) + m5
	p("\tVADDPS %s, %s, %s", m[3], m[3], m[4])
	p("\tVADDPS %s, %s, %s", m[4], m[4], m[4])
	p("\tVADDPS %s, %s, %s", m[4], s1, y[3])
	p("\tVADDPS %s, %s, %s", m[5], y[3], y[3])
}
