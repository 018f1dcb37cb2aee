package main

import "fmt"

// An elementwise kernel runs a loop over whole vectors: its Go caller passes
// slices whose length is a multiple of the vector width (8 for AVX2, 16 for
// AVX-512) and does the remaining elements itself. Each op has an AVX2 and
// an AVX-512 variant in one file. Every slice holds float32 values except,
// where xsize says so, the first (x), whose narrower elements the decoding
// kernels widen: one vector of x then takes lanes×xsize bytes.
type elemOp struct {
	name    string   // base name: <name>AVX2, <name>AVX512
	file    string   // output file
	sig     string   // Go parameters and results, for the comment
	frame   int      // argument size in bytes
	loop    string   // the Go loop it computes, for the comment
	scalars []scalar // broadcast once
	ptrs    []ptr    // slice bases
	count   string   // argument with the length
	ntmp    int      // vector temporaries per unrolled step
	nacc    int      // accumulators per unrolled step (reductions)
	f64     bool     // accumulators hold float64
	results []result // reductions: where each sum (or maximum) goes
	max     bool     // results are the accumulators' largest lane, not their sum
	unroll  [2]int   // unroll for AVX2, AVX-512
	xsize   int      // bytes per element of ptrs[0] (x); 0 for 4 (float32)
	need    []string // features for the comment (AVX2, AVX-512), if not the level's
	body    func(b *elemBody)
}

// stride is how many bytes of pointer i one vector step covers.
func (op *elemOp) stride(i int, s isa) int {
	if i == 0 && op.xsize != 0 {
		return s.lanes * op.xsize
	}
	return s.vbytes()
}

type scalar struct {
	arg string // "a+0(FP)", or "" for zero
	f64 bool
}

type ptr struct{ arg, reg string }

type result struct {
	arg  string
	accs []int // accumulators summed into it
}

// elemBody emits one unrolled step u at byte offset off.
type elemBody struct {
	w    *asm
	s    isa
	op   *elemOp
	u    int // unrolled step
	off  int // byte offset of this step's vector
	half int // byte offset of its second half (the float64 converts)
}

func (b *elemBody) p(format string, args ...any) { b.w.p(format, args...) }

// t is temporary i of this step, a accumulator i, sc scalar i.
func (b *elemBody) t(i int) string { return b.s.v(b.u*b.op.ntmp + i) }
func (b *elemBody) a(i int) string {
	return b.s.v(b.s.nregs - len(b.op.scalars) - 1 - (b.u*b.op.nacc + i))
}
func (b *elemBody) sc(i int) string { return b.s.v(b.s.nregs - 1 - i) }

// reluStore stores relu of t(0) (t(1) a temporary) at this step's
// vector of DI, scalar zero being the zero vector: relu's body.
func (b *elemBody) reluStore(zero int) {
	// Predicate 0x16: not less than or equal, unordered, quiet (v > 0,
	// or v is NaN); the mask keeps v, else +0.
	if b.s.name == "avx512" {
		b.p("\tVCMPPS $0x16, %s, %s, %s", b.sc(zero), b.t(0), b.k())
		b.p("\tVMOVUPS.Z %s, %s, %s", b.t(0), b.k(), b.t(1))
		b.p("\tVMOVUPS %s, %d(DI)", b.t(1), b.off)
		return
	}
	b.p("\tVCMPPS $0x16, %s, %s, %s", b.sc(zero), b.t(0), b.t(1))
	b.p("\tVANDPS %s, %s, %s", b.t(0), b.t(1), b.t(1))
	b.p("\tVMOVUPS %s, %d(DI)", b.t(1), b.off)
}

// xoff is the byte offset of this step's vector of x (ptrs[0]).
func (b *elemBody) xoff() int { return b.u * b.op.stride(0, b.s) }

// k is this step's mask register (AVX-512).
func (b *elemBody) k() string { return fmt.Sprintf("K%d", b.u+1) }

var elementwiseOps = []elemOp{
	{
		name: "axpy", file: "axpy_amd64.s", sig: "(a float32, x, y []float32)", frame: 56,
		loop:    "for i, v := range x { y[i] += a * v }",
		scalars: []scalar{{arg: "a+0(FP)"}},
		ptrs:    []ptr{{"x_base+8(FP)", "SI"}, {"y_base+32(FP)", "DI"}},
		count:   "x_len+16(FP)", ntmp: 1, unroll: [2]int{4, 4},
		body: func(b *elemBody) {
			b.p("\tVMOVUPS %d(SI), %s", b.off, b.t(0))
			b.p("\tVFMADD213PS %d(DI), %s, %s", b.off, b.sc(0), b.t(0))
			b.p("\tVMOVUPS %s, %d(DI)", b.t(0), b.off)
		},
	},
	{
		name: "scale", file: "scale_amd64.s", sig: "(a float32, x, y []float32)", frame: 56,
		loop:    "for i, v := range x { y[i] = a * v }",
		scalars: []scalar{{arg: "a+0(FP)"}},
		ptrs:    []ptr{{"x_base+8(FP)", "SI"}, {"y_base+32(FP)", "DI"}},
		count:   "x_len+16(FP)", ntmp: 1, unroll: [2]int{4, 4},
		body: func(b *elemBody) {
			b.p("\tVMULPS %d(SI), %s, %s", b.off, b.sc(0), b.t(0))
			b.p("\tVMOVUPS %s, %d(DI)", b.t(0), b.off)
		},
	},
	{
		name: "affine", file: "affine_amd64.s", sig: "(a, c float32, x, y []float32)", frame: 56,
		loop:    "for i, v := range x { y[i] = a*v + c } (one rounding: a fused multiply-add)",
		scalars: []scalar{{arg: "a+0(FP)"}, {arg: "c+4(FP)"}},
		ptrs:    []ptr{{"x_base+8(FP)", "SI"}, {"y_base+32(FP)", "DI"}},
		count:   "x_len+16(FP)", ntmp: 1, unroll: [2]int{4, 4},
		body: func(b *elemBody) {
			b.p("\tVMOVUPS %d(SI), %s", b.off, b.t(0))
			b.p("\tVFMADD213PS %s, %s, %s", b.sc(1), b.sc(0), b.t(0))
			b.p("\tVMOVUPS %s, %d(DI)", b.t(0), b.off)
		},
	},
	{
		name: "affineRelu", file: "affinerelu_amd64.s", sig: "(a, c float32, x, y []float32) (hi float32)", frame: 60,
		loop: "for i, v := range x { y[i] = max(a*v+c, 0); hi = max(hi, y[i]) } (affine's fused multiply-add, then relu's max)\n" +
			"// (hi from 0; a NaN in y may or may not reach it)",
		scalars: []scalar{{arg: "a+0(FP)"}, {arg: "c+4(FP)"}, {}},
		ptrs:    []ptr{{"x_base+8(FP)", "SI"}, {"y_base+32(FP)", "DI"}},
		count:   "x_len+16(FP)", ntmp: 2, nacc: 1, unroll: [2]int{4, 4},
		results: []result{{"hi+56(FP)", []int{0}}}, max: true,
		body: func(b *elemBody) {
			b.p("\tVMOVUPS %d(SI), %s", b.off, b.t(0))
			b.p("\tVFMADD213PS %s, %s, %s", b.sc(1), b.sc(0), b.t(0))
			b.reluStore(2)
			b.p("\tVMAXPS %s, %s, %s", b.t(1), b.a(0), b.a(0))
		},
	},
	{
		name: "affineAddRelu", file: "affineaddrelu_amd64.s", sig: "(a, c float32, x, z, y []float32) (hi float32)", frame: 84,
		loop: "for i, v := range x { y[i] = max((a*v+c)+z[i], 0); hi = max(hi, y[i]) } (affine's fused multiply-add, add's sum, relu's max)\n" +
			"// (hi from 0; a NaN in y may or may not reach it)",
		scalars: []scalar{{arg: "a+0(FP)"}, {arg: "c+4(FP)"}, {}},
		ptrs:    []ptr{{"x_base+8(FP)", "SI"}, {"z_base+32(FP)", "BX"}, {"y_base+56(FP)", "DI"}},
		count:   "x_len+16(FP)", ntmp: 2, nacc: 1, unroll: [2]int{4, 4},
		results: []result{{"hi+80(FP)", []int{0}}}, max: true,
		body: func(b *elemBody) {
			b.p("\tVMOVUPS %d(SI), %s", b.off, b.t(0))
			b.p("\tVFMADD213PS %s, %s, %s", b.sc(1), b.sc(0), b.t(0))
			b.p("\tVADDPS %d(BX), %s, %s", b.off, b.t(0), b.t(0))
			b.reluStore(2)
			b.p("\tVMAXPS %s, %s, %s", b.t(1), b.a(0), b.a(0))
		},
	},
	{
		name: "sgdMomentum", file: "sgdmomentum_amd64.s", sig: "(lr, wd, mu, c float32, w, g, m []float32)", frame: 88,
		loop: "for i := range w { d := g[i] + wd*w[i]; m[i] = mu*m[i] + c*d; w[i] -= lr * m[i] }\n" +
			"// (every product and sum rounded on its own, as Go computes it: no fused multiply-add)",
		scalars: []scalar{{arg: "lr+0(FP)"}, {arg: "wd+4(FP)"}, {arg: "mu+8(FP)"}, {arg: "c+12(FP)"}},
		ptrs:    []ptr{{"w_base+16(FP)", "SI"}, {"g_base+40(FP)", "BX"}, {"m_base+64(FP)", "DI"}},
		count:   "w_len+24(FP)", ntmp: 3, unroll: [2]int{4, 4},
		body: func(b *elemBody) {
			b.p("\tVMOVUPS %d(SI), %s", b.off, b.t(0))
			b.p("\tVMULPS %s, %s, %s", b.sc(1), b.t(0), b.t(1))
			b.p("\tVADDPS %d(BX), %s, %s", b.off, b.t(1), b.t(1))
			b.p("\tVMULPS %s, %s, %s", b.sc(3), b.t(1), b.t(1))
			b.p("\tVMULPS %d(DI), %s, %s", b.off, b.sc(2), b.t(2))
			b.p("\tVADDPS %s, %s, %s", b.t(1), b.t(2), b.t(2))
			b.p("\tVMOVUPS %s, %d(DI)", b.t(2), b.off)
			b.p("\tVMULPS %s, %s, %s", b.sc(0), b.t(2), b.t(2))
			b.p("\tVSUBPS %s, %s, %s", b.t(2), b.t(0), b.t(0))
			b.p("\tVMOVUPS %s, %d(SI)", b.t(0), b.off)
		},
	},
	{
		name: "add", file: "add_amd64.s", sig: "(x, z, y []float32)", frame: 72,
		loop:  "for i, v := range x { y[i] = v + z[i] }",
		ptrs:  []ptr{{"x_base+0(FP)", "SI"}, {"z_base+24(FP)", "BX"}, {"y_base+48(FP)", "DI"}},
		count: "x_len+8(FP)", ntmp: 1, unroll: [2]int{4, 4},
		body: func(b *elemBody) {
			b.p("\tVMOVUPS %d(SI), %s", b.off, b.t(0))
			b.p("\tVADDPS %d(BX), %s, %s", b.off, b.t(0), b.t(0))
			b.p("\tVMOVUPS %s, %d(DI)", b.t(0), b.off)
		},
	},
	{
		name: "mul", file: "mul_amd64.s", sig: "(x, z, y []float32)", frame: 72,
		loop:  "for i, v := range x { y[i] = v * z[i] }",
		ptrs:  []ptr{{"x_base+0(FP)", "SI"}, {"z_base+24(FP)", "BX"}, {"y_base+48(FP)", "DI"}},
		count: "x_len+8(FP)", ntmp: 1, unroll: [2]int{4, 4},
		body: func(b *elemBody) {
			b.p("\tVMOVUPS %d(SI), %s", b.off, b.t(0))
			b.p("\tVMULPS %d(BX), %s, %s", b.off, b.t(0), b.t(0))
			b.p("\tVMOVUPS %s, %d(DI)", b.t(0), b.off)
		},
	},
	{
		name: "relu", file: "relu_amd64.s", sig: "(x, y []float32)", frame: 48,
		loop: "for i, v := range x { if v > 0 || v != v { y[i] = v } else { y[i] = 0 } }\n" +
			"// (NaN stays NaN, -0 becomes +0: Go's max(v, 0). Not MAXPS, which returns\n" +
			"// its second source for a NaN and for two zeros: one operand order drops\n" +
			"// the NaN, the other keeps -0.)",
		scalars: []scalar{{}},
		ptrs:    []ptr{{"x_base+0(FP)", "SI"}, {"y_base+24(FP)", "DI"}},
		count:   "x_len+8(FP)", ntmp: 2, unroll: [2]int{4, 4},
		body: func(b *elemBody) {
			b.p("\tVMOVUPS %d(SI), %s", b.off, b.t(0))
			b.reluStore(0)
		},
	},
	{
		name: "reluBackward", file: "relubackward_amd64.s", sig: "(x, z, y []float32)", frame: 72,
		loop:    "for i, v := range x { if v > 0 { y[i] = z[i] } else { y[i] = 0 } }",
		scalars: []scalar{{}},
		ptrs:    []ptr{{"x_base+0(FP)", "SI"}, {"z_base+24(FP)", "BX"}, {"y_base+48(FP)", "DI"}},
		count:   "x_len+8(FP)", ntmp: 2, unroll: [2]int{4, 4},
		body: func(b *elemBody) {
			b.p("\tVMOVUPS %d(SI), %s", b.off, b.t(0))
			// Predicate 0x1e: greater than, ordered, quiet (false for NaN).
			if b.s.name == "avx512" {
				b.p("\tVCMPPS $0x1e, %s, %s, %s", b.sc(0), b.t(0), b.k())
				b.p("\tVMOVUPS.Z %d(BX), %s, %s", b.off, b.k(), b.t(1))
				b.p("\tVMOVUPS %s, %d(DI)", b.t(1), b.off)
				return
			}
			b.p("\tVCMPPS $0x1e, %s, %s, %s", b.sc(0), b.t(0), b.t(0))
			b.p("\tVANDPS %d(BX), %s, %s", b.off, b.t(0), b.t(0))
			b.p("\tVMOVUPS %s, %d(DI)", b.t(0), b.off)
		},
	},
	{
		name: "bnDx", file: "bndx_amd64.s", sig: "(p, q, r, m float32, d, x, y []float32)", frame: 88,
		loop:    "for i, v := range d { y[i] = p*v + (q*(x[i]-m) + r) } (fused multiply-adds)",
		scalars: []scalar{{arg: "p+0(FP)"}, {arg: "q+4(FP)"}, {arg: "r+8(FP)"}, {arg: "m+12(FP)"}},
		ptrs:    []ptr{{"d_base+16(FP)", "SI"}, {"x_base+40(FP)", "BX"}, {"y_base+64(FP)", "DI"}},
		count:   "d_len+24(FP)", ntmp: 1, unroll: [2]int{4, 4},
		body: func(b *elemBody) {
			b.p("\tVMOVUPS %d(BX), %s", b.off, b.t(0))
			b.p("\tVSUBPS %s, %s, %s", b.sc(3), b.t(0), b.t(0))
			b.p("\tVFMADD213PS %s, %s, %s", b.sc(2), b.sc(1), b.t(0))
			b.p("\tVFMADD231PS %d(SI), %s, %s", b.off, b.sc(0), b.t(0))
			b.p("\tVMOVUPS %s, %d(DI)", b.t(0), b.off)
		},
	},
	{
		name: "bnSums", file: "bnsums_amd64.s", sig: "(m float32, d, x []float32) (sd, sdx float32)", frame: 64,
		loop:    "for i, v := range d { sd += v; sdx += v * (x[i] - m) } (in another order)",
		scalars: []scalar{{arg: "m+0(FP)"}},
		ptrs:    []ptr{{"d_base+8(FP)", "SI"}, {"x_base+32(FP)", "BX"}},
		count:   "d_len+16(FP)", ntmp: 2, nacc: 2, unroll: [2]int{3, 4},
		results: []result{{"sd+56(FP)", []int{0}}, {"sdx+60(FP)", []int{1}}},
		body: func(b *elemBody) {
			b.p("\tVMOVUPS %d(SI), %s", b.off, b.t(0))
			b.p("\tVADDPS %s, %s, %s", b.t(0), b.a(0), b.a(0))
			b.p("\tVMOVUPS %d(BX), %s", b.off, b.t(1))
			b.p("\tVSUBPS %s, %s, %s", b.sc(0), b.t(1), b.t(1))
			b.p("\tVFMADD231PS %s, %s, %s", b.t(1), b.t(0), b.a(1))
		},
	},
	{
		name: "sum64", file: "sum64_amd64.s", sig: "(x []float32) float64", frame: 32,
		loop:  "for _, v := range x { s += float64(v) } (in another order)",
		ptrs:  []ptr{{"x_base+0(FP)", "SI"}},
		count: "x_len+8(FP)", ntmp: 2, nacc: 2, f64: true, unroll: [2]int{3, 4},
		results: []result{{"ret+24(FP)", []int{0, 1}}},
		body: func(b *elemBody) {
			b.p("\tVCVTPS2PD %d(SI), %s", b.off, b.t(0))
			b.p("\tVADDPD %s, %s, %s", b.t(0), b.a(0), b.a(0))
			b.p("\tVCVTPS2PD %d(SI), %s", b.off+b.half, b.t(1))
			b.p("\tVADDPD %s, %s, %s", b.t(1), b.a(1), b.a(1))
		},
	},
	{
		name: "sumSqDev64", file: "sumsqdev64_amd64.s", sig: "(m float64, x []float32) float64", frame: 40,
		loop:    "for _, v := range x { d := float64(v) - m; s += d * d } (in another order)",
		scalars: []scalar{{arg: "m+0(FP)", f64: true}},
		ptrs:    []ptr{{"x_base+8(FP)", "SI"}},
		count:   "x_len+16(FP)", ntmp: 2, nacc: 2, f64: true, unroll: [2]int{3, 4},
		results: []result{{"ret+32(FP)", []int{0, 1}}},
		body: func(b *elemBody) {
			b.p("\tVCVTPS2PD %d(SI), %s", b.off, b.t(0))
			b.p("\tVSUBPD %s, %s, %s", b.sc(0), b.t(0), b.t(0))
			b.p("\tVFMADD231PD %s, %s, %s", b.t(0), b.t(0), b.a(0))
			b.p("\tVCVTPS2PD %d(SI), %s", b.off+b.half, b.t(1))
			b.p("\tVSUBPD %s, %s, %s", b.sc(0), b.t(1), b.t(1))
			b.p("\tVFMADD231PD %s, %s, %s", b.t(1), b.t(1), b.a(1))
		},
	},
	{
		// VCVTPH2PS is exact; like every x86 conversion it returns a
		// signalling NaN quiet (sets mantissa bit 22).
		name: "decodeF16", file: "decodef16_amd64.s", sig: "(x []uint16, y []float32)", frame: 48,
		loop:  "for i, v := range x { y[i] = f16ToF32(v) } (exact)",
		ptrs:  []ptr{{"x_base+0(FP)", "SI"}, {"y_base+24(FP)", "DI"}},
		count: "x_len+8(FP)", ntmp: 1, unroll: [2]int{4, 4}, xsize: 2,
		need: []string{"AVX and F16C", ""},
		body: func(b *elemBody) {
			b.p("\tVCVTPH2PS %d(SI), %s", b.xoff(), b.t(0))
			b.p("\tVMOVUPS %s, %d(DI)", b.t(0), b.off)
		},
	},
	{
		name: "decodeI8", file: "decodei8_amd64.s", sig: "(a float32, x []int8, y []float32)", frame: 56,
		loop:    "for i, v := range x { y[i] = float32(v) * a }",
		scalars: []scalar{{arg: "a+0(FP)"}},
		ptrs:    []ptr{{"x_base+8(FP)", "SI"}, {"y_base+32(FP)", "DI"}},
		count:   "x_len+16(FP)", ntmp: 1, unroll: [2]int{4, 4}, xsize: 1,
		need: []string{"AVX2", ""},
		body: func(b *elemBody) {
			b.p("\tVPMOVSXBD %d(SI), %s", b.xoff(), b.t(0))
			b.p("\tVCVTDQ2PS %s, %s", b.t(0), b.t(0))
			b.p("\tVMULPS %s, %s, %s", b.sc(0), b.t(0), b.t(0))
			b.p("\tVMOVUPS %s, %d(DI)", b.t(0), b.off)
		},
	},
}

func elementwiseFile(op elemOp) []byte {
	var w asm
	w.header()
	for i, s := range []isa{avx2, avx512} {
		elementwiseFunc(&w, &op, s, op.unroll[i])
	}
	return w.Bytes()
}

func elementwiseFunc(w *asm, op *elemOp, s isa, unroll int) {
	name := op.name + map[string]string{"avx2": "AVX2", "avx512": "AVX512"}[s.name]
	need := map[string]string{"avx2": "AVX2 and FMA", "avx512": "AVX-512 F"}[s.name]
	if i := map[string]int{"avx2": 0, "avx512": 1}[s.name]; i < len(op.need) && op.need[i] != "" {
		need = op.need[i]
	}
	if unroll*(op.ntmp+op.nacc)+len(op.scalars) > s.nregs {
		panic(name + ": too many registers")
	}
	vb := s.vbytes()
	w.p("")
	w.p("// func %s%s", name, op.sig)
	w.p("//")
	w.p("// %s", op.loop)
	w.p("// over len(x) a multiple of %d. Needs %s.", s.lanes, need)
	w.p("TEXT ·%s(SB), NOSPLIT, $0-%d", name, op.frame)
	w.p("\tMOVQ %s, CX", op.count)
	w.p("\tSHRQ $%d, CX", log2(s.lanes))
	for _, p := range op.ptrs {
		w.p("\tMOVQ %s, %s", p.arg, p.reg)
	}
	b := &elemBody{w: w, s: s, op: op, half: vb / 2}
	for i, sc := range op.scalars {
		switch {
		case sc.arg == "":
			s.zero(w, b.sc(i))
		case sc.f64:
			w.p("\tVBROADCASTSD %s, %s", sc.arg, b.sc(i))
		default:
			w.p("\tVBROADCASTSS %s, %s", sc.arg, b.sc(i))
		}
	}
	for u := 0; u < unroll; u++ {
		b.u = u
		for i := 0; i < op.nacc; i++ {
			s.zero(w, b.a(i))
		}
	}
	w.p("\tCMPQ CX, $%d", unroll)
	w.p("\tJLT  one")
	w.p("")
	w.p("loop:")
	for u := 0; u < unroll; u++ {
		b.u, b.off = u, u*vb
		op.body(b)
	}
	for i, p := range op.ptrs {
		w.p("\tADDQ $%d, %s", unroll*op.stride(i, s), p.reg)
	}
	w.p("\tSUBQ $%d, CX", unroll)
	w.p("\tCMPQ CX, $%d", unroll)
	w.p("\tJGE  loop")
	w.p("")
	w.p("one:")
	w.p("\tTESTQ CX, CX")
	w.p("\tJZ   done")
	w.p("")
	w.p("loop1:")
	b.u, b.off = 0, 0
	op.body(b)
	for i, p := range op.ptrs {
		w.p("\tADDQ $%d, %s", op.stride(i, s), p.reg)
	}
	w.p("\tDECQ CX")
	w.p("\tJNZ  loop1")
	w.p("")
	w.p("done:")
	for ri, r := range op.results {
		reduce(w, op, s, unroll, ri, r)
	}
	w.p("\tVZEROUPPER")
	w.p("\tRET")
}

// reduce sums the accumulators of result r over the unrolled steps and
// lanes (or takes their largest, op.max) into register ri, using register
// len(results) as scratch, and stores the result.
func reduce(w *asm, op *elemOp, s isa, unroll, ri int, r result) {
	add, hadd, mov := "VADDPS", "VHADDPS", "VMOVSS"
	if op.f64 {
		add, hadd, mov = "VADDPD", "VHADDPD", "VMOVSD"
	}
	if op.max {
		add = "VMAXPS"
	}
	b := &elemBody{s: s, op: op}
	dst, tmp := s.v(ri), s.v(len(op.results))
	first := true
	for _, ai := range r.accs {
		for u := 0; u < unroll; u++ {
			b.u = u
			if first {
				w.p("\tVMOVUPS %s, %s", b.a(ai), dst)
				first = false
				continue
			}
			w.p("\t%s %s, %s, %s", add, b.a(ai), dst, dst)
		}
	}
	y := func(r string) string { return "Y" + r[1:] }
	x := func(r string) string { return "X" + r[1:] }
	if s.name == "avx512" {
		w.p("\tVEXTRACTF64X4 $1, %s, %s", dst, y(tmp))
		w.p("\t%s %s, %s, %s", add, y(tmp), y(dst), y(dst))
	}
	w.p("\tVEXTRACTF128 $1, %s, %s", y(dst), x(tmp))
	w.p("\t%s %s, %s, %s", add, x(tmp), x(dst), x(dst))
	if op.max {
		// No horizontal maximum: the lanes swapped in pairs, twice.
		for _, perm := range []string{"$0x4e", "$0xb1"} {
			w.p("\tVPERMILPS %s, %s, %s", perm, x(dst), x(tmp))
			w.p("\tVMAXPS %s, %s, %s", x(tmp), x(dst), x(dst))
		}
		w.p("\t%s %s, %s", mov, x(dst), r.arg)
		return
	}
	w.p("\t%s %s, %s, %s", hadd, x(dst), x(dst), x(dst))
	if !op.f64 {
		w.p("\t%s %s, %s, %s", hadd, x(dst), x(dst), x(dst))
	}
	w.p("\t%s %s, %s", mov, x(dst), r.arg)
}
