package main

import "fmt"

// The lanes path's 3×3 convolution kernels (AVX-512 F) for ../lanes.go: one output
// tile of 7 pixels of a row by 64 output channels (4 vectors), the
// channels in the lanes. Its 28 sums stay in Z0–Z27 over every input
// channel and tap; per tap the filter's 64 values are loaded into
// Z28–Z31 and each pixel's input value is broadcast from memory into
// the multiply-add (the embedded broadcast), so no register holds it.
//
// The input is a padded image laid out by rows (../lanes.go,
// lanesFill): padded row h of channel c at (h·C + c)·wp, so that each of
// the three rows a tile reads is one stream through the channels, wp
// values a step; tap (kh, kw) of pixel j reads row kh at column
// stride·j + kw.
const (
	lanesPixels = 7
	lanesVecs   = 4
)

func lanes() []byte {
	var w asm
	w.header()
	for _, stride := range []int{1, 2} {
		lanesKernel(&w, stride)
	}
	return w.Bytes()
}

func lanesKernel(w *asm, stride int) {
	p := w.p
	z := func(i int) string { return fmt.Sprintf("Z%d", i) }
	acc := func(j, v int) string { return z(j*lanesVecs + v) }
	wreg := func(v int) string { return z(lanesPixels*lanesVecs + v) }
	name := fmt.Sprintf("convLanes3x3S%dAVX512", stride)
	p("")
	p("// func %s(x, w, out *float32, nc, chs, row, ldo int, add bool)", name)
	p("//")
	p("// Needs AVX-512 F.")
	p("TEXT ·%s(SB), NOSPLIT, $0-57", name)
	p("\tMOVQ x+0(FP), SI")
	p("\tMOVQ w+8(FP), DX")
	p("\tMOVQ out+16(FP), DI")
	p("\tMOVQ nc+24(FP), CX")
	p("\tMOVQ chs+32(FP), R14")
	p("\tSHLQ $2, R14")
	p("\tMOVQ row+40(FP), R9")
	p("\tSHLQ $2, R9")
	p("\tMOVQ ldo+48(FP), R10")
	p("\tSHLQ $2, R10")
	p("\tMOVBLZX add+56(FP), R11")
	p("\tTESTQ R11, R11")
	p("\tJZ   clear")
	p("\tMOVQ DI, R12")
	for j := 0; j < lanesPixels; j++ {
		for v := 0; v < lanesVecs; v++ {
			p("\tVMOVUPS %d(R12), %s", 64*v, acc(j, v))
		}
		if j < lanesPixels-1 {
			p("\tADDQ R10, R12")
		}
	}
	p("\tJMP  sums")
	p("")
	p("clear:")
	for j := 0; j < lanesPixels; j++ {
		for v := 0; v < lanesVecs; v++ {
			avx512.zero(w, acc(j, v))
		}
	}
	p("")
	p("sums:")
	p("\tTESTQ CX, CX")
	p("\tJZ   store")
	rows := []string{"SI", "R12", "R13"}
	p("\tLEAQ (SI)(R9*1), R12")
	p("\tLEAQ (R12)(R9*1), R13")
	p("")
	p("channel:")
	for kh := 0; kh < 3; kh++ {
		for kw := 0; kw < 3; kw++ {
			tap := kh*3 + kw
			for v := 0; v < lanesVecs; v++ {
				p("\tVMOVUPS %d(DX), %s", 64*(tap*lanesVecs+v), wreg(v))
			}
			for j := 0; j < lanesPixels; j++ {
				for v := 0; v < lanesVecs; v++ {
					p("\tVFMADD231PS.BCST %d(%s), %s, %s", 4*(stride*j+kw), rows[kh], wreg(v), acc(j, v))
				}
			}
		}
	}
	p("\tADDQ $%d, DX", 9*lanesVecs*64)
	p("\tADDQ R14, SI")
	p("\tADDQ R14, R12")
	p("\tADDQ R14, R13")
	p("\tDECQ CX")
	p("\tJNZ  channel")
	p("")
	p("store:")
	for j := 0; j < lanesPixels; j++ {
		for v := 0; v < lanesVecs; v++ {
			p("\tVMOVUPS %s, %d(DI)", acc(j, v), 64*v)
		}
		if j < lanesPixels-1 {
			p("\tADDQ R10, DI")
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
}
