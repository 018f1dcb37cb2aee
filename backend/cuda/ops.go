//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// The ops: each checks its arguments at the edge (the shared backend.Check
// functions, as the CPU backend), then queues kernels on the stream. The
// kernels' formulas mirror the CPU reference kernels (the ref* functions
// of backend/cpu, one file per op family, as here); kernels/*.cu say how.

// maxElems bounds a tensor's size: the kernels index elements with 64-bit
// integers but take sizes and shapes as 32-bit ints.
const maxElems = math.MaxInt32

func checkSize(op string, n int) {
	if n > maxElems {
		panic(fmt.Sprintf("backend: %s: %d elements exceed the cuda backend's limit of %d", op, n, maxElems))
	}
}

// gemmDesc is one launch of the generic GEMM kernel (kernels/gemm.cu).
type gemmDesc struct {
	m, n, k, kseg          int
	a, b, c                uintptr
	aS1, aS0, aM, aK, aSeg int
	bS1, bS0, bK, bN, bSeg int
	cS1, cS0, ldc          int
	batch, zdiv            int
	alpha, beta            float32
}

// gemm queues d, choosing the tile shape: 128×128 when the product has
// enough large tiles to fill the device twice, else 64×64. With TF32 on,
// the 128×128 products run on the tensor cores (gemm_tf32_128).
func (b *Backend) gemm(d *gemmDesc) {
	if d.m == 0 || d.n == 0 || d.batch == 0 {
		return
	}
	if d.kseg <= 0 {
		d.kseg = max(d.k, 1)
	}
	if d.zdiv <= 0 {
		d.zdiv = 1
	}
	k, bm := kGemm64, 64
	if d.m > 64 && d.n > 64 && ceilDiv(d.m, 128)*ceilDiv(d.n, 128)*d.batch >= 2*b.info.sms {
		k, bm = kGemm128, 128
		if b.tf32 {
			k = kGemmTF32
		}
	}
	if b.forceGemm >= 0 {
		k, bm = b.forceGemm, 128
		if k == kGemm64 {
			bm = 64
		}
	}
	gx, gy := ceilDiv(d.n, bm), ceilDiv(d.m, bm)
	if gy > b.info.maxGrid[1] {
		panic(fmt.Sprintf("backend: gemm: M = %d needs %d row tiles, more than the device's grid allows (%d)", d.m, gy, b.info.maxGrid[1]))
	}
	for z0 := 0; z0 < d.batch; z0 += b.info.maxGrid[2] {
		gz := min(d.batch-z0, b.info.maxGrid[2])
		b.args.reset().ptr(d.a).ptr(d.b).ptr(d.c).i32(d.m).i32(d.n).i32(d.k).i32(d.kseg).
			i64(d.aS1).i64(d.aS0).i64(d.aM).i64(d.aK).i64(d.aSeg).
			i64(d.bS1).i64(d.bS0).i64(d.bK).i64(d.bN).i64(d.bSeg).
			i64(d.cS1).i64(d.cS0).i64(d.ldc).i32(d.zdiv).i32(z0).f32(d.alpha).f32(d.beta)
		b.launch(k, gx, gy, gz, gemmThreads)
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// Gemm implements backend.Ops.
func (b *Backend) Gemm(p backend.GemmParams, a, bm, c *tensor.Tensor) {
	b.GemmBatched(p, 1, a, bm, c)
}

// GemmBatched implements backend.Ops.
func (b *Backend) GemmBatched(p backend.GemmParams, batch int, a, bm, c *tensor.Tensor) {
	backend.CheckGemm(p, batch, a, bm, c)
	checkSize("gemm", max(a.Numel(), bm.Numel(), c.Numel()))
	b.queue(func() {
		d := gemmDesc{m: p.M, n: p.N, k: p.K, a: b.ptr(a), b: b.ptr(bm), c: b.ptr(c),
			aS1: p.M * p.K, bS1: p.K * p.N, cS1: p.M * p.N, ldc: p.N, batch: batch, alpha: p.Alpha, beta: p.Beta}
		if p.TransA { // A is (K, M)
			d.aM, d.aK = 1, p.M
		} else {
			d.aM, d.aK = p.K, 1
		}
		if p.TransB { // B is (N, K)
			d.bK, d.bN = 1, p.K
		} else {
			d.bK, d.bN = p.N, 1
		}
		b.gemm(&d)
	})
}

// Convolution through GEMM. Per chunk of nb images (so that the column
// buffer stays under colLimit elements):
//
//	col (nb, C·R·S, P·Q)            = im2col(x)
//	y[n, g] (K/G, P·Q)              = w[g] (K/G, C/G·R·S) · col[n, g]
//	dcol[n, g] (C/G·R·S, P·Q)       = w[g]ᵀ · dy[n, g];   dx = col2im(dcol)
//	dw[g] (K/G, C/G·R·S)           += Σ_n dy[n, g] · col[n, g]ᵀ
//
// The weight gradient is one GEMM per chunk and group whose reduction runs
// over the chunk's images and output positions (segments of P·Q). A 1×1
// convolution with stride 1 and no padding uses x (or dx) as col.

// colLimit bounds the column buffer (elements): 64 Mi floats, 256 MiB.
// A variable so that tests can force several chunks.
var colLimit = 64 << 20

func isPointwise(p backend.Conv2dParams) bool {
	return p.R == 1 && p.S == 1 && p.StrideH == 1 && p.StrideW == 1 && p.PadH == 0 && p.PadW == 0
}

// convChunk is how many images share one column buffer.
func convChunk(p backend.Conv2dParams) int {
	per := p.C * p.R * p.S * p.P() * p.Q()
	return max(1, min(p.N, colLimit/max(per, 1)))
}

// convArgs appends the geometry shared by im2col and col2im.
func (b *Backend) convArgs(p backend.Conv2dParams, nb int) {
	b.args.i32(nb).i32(p.C).i32(p.H).i32(p.W).i32(p.P()).i32(p.Q()).i32(p.R).i32(p.S).
		i32(p.StrideH).i32(p.StrideW).i32(p.PadH).i32(p.PadW).i32(p.DilH).i32(p.DilW)
}

// Conv2dForward implements backend.Ops.
func (b *Backend) Conv2dForward(p backend.Conv2dParams, x, w, y *tensor.Tensor) {
	backend.CheckConv("conv2d forward", p, x, w, y)
	p = p.Normalized()
	checkSize("conv2d forward", max(x.Numel(), y.Numel(), p.C*p.R*p.S*p.P()*p.Q()))
	b.queue(func() {
		X, Wt, Y := b.ptr(x), b.ptr(w), b.ptr(y)
		G, PQ := p.G(), p.P()*p.Q()
		cg, kg := p.C/G, p.K/G
		crs, crsg := p.C*p.R*p.S, cg*p.R*p.S
		nb := p.N
		if !isPointwise(p) {
			nb = convChunk(p)
		}
		for n0 := 0; n0 < p.N; n0 += nb {
			cnt := min(nb, p.N-n0)
			col := X + uintptr(n0*p.C*p.H*p.W)*4
			if !isPointwise(p) {
				col = b.scratchPtr(scratchCol, cnt*crs*PQ)
				b.args.reset().ptr(X + uintptr(n0*p.C*p.H*p.W)*4).ptr(col)
				b.convArgs(p, cnt)
				blocks, threads := b.elemGrid(kIm2col, cnt*crs*PQ)
				b.launch(kIm2col, blocks, 1, 1, threads)
			}
			// z = n·G + g: A = w[g], B = col[n, g], C = y[n0+n, g].
			b.gemm(&gemmDesc{m: kg, n: PQ, k: crsg,
				a: Wt, aS0: kg * crsg, aM: crsg, aK: 1,
				b: col, bS1: crs * PQ, bS0: crsg * PQ, bK: PQ, bN: 1,
				c: Y + uintptr(n0*p.K*PQ)*4, cS1: p.K * PQ, cS0: kg * PQ, ldc: PQ,
				batch: cnt * G, zdiv: G, alpha: 1})
		}
	})
}

// Conv2dBackwardData implements backend.Ops.
func (b *Backend) Conv2dBackwardData(p backend.Conv2dParams, dy, w, dx *tensor.Tensor) {
	backend.CheckConv("conv2d backward data", p, dx, w, dy)
	p = p.Normalized()
	checkSize("conv2d backward data", max(dx.Numel(), dy.Numel(), p.C*p.R*p.S*p.P()*p.Q()))
	b.queue(func() {
		DY, Wt, DX := b.ptr(dy), b.ptr(w), b.ptr(dx)
		G, PQ := p.G(), p.P()*p.Q()
		cg, kg := p.C/G, p.K/G
		crs, crsg := p.C*p.R*p.S, cg*p.R*p.S
		pointwise := isPointwise(p)
		nb := p.N
		if !pointwise {
			nb = convChunk(p)
		}
		for n0 := 0; n0 < p.N; n0 += nb {
			cnt := min(nb, p.N-n0)
			dcol := DX + uintptr(n0*p.C*p.H*p.W)*4
			if !pointwise {
				dcol = b.scratchPtr(scratchCol, cnt*crs*PQ)
			}
			// dcol[n, g] = w[g]ᵀ · dy[n, g]: A(m, l) = w[g][l, m].
			b.gemm(&gemmDesc{m: crsg, n: PQ, k: kg,
				a: Wt, aS0: kg * crsg, aM: 1, aK: crsg,
				b: DY + uintptr(n0*p.K*PQ)*4, bS1: p.K * PQ, bS0: kg * PQ, bK: PQ, bN: 1,
				c: dcol, cS1: crs * PQ, cS0: crsg * PQ, ldc: PQ,
				batch: cnt * G, zdiv: G, alpha: 1})
			if !pointwise {
				b.args.reset().ptr(dcol).ptr(DX + uintptr(n0*p.C*p.H*p.W)*4)
				b.convArgs(p, cnt)
				blocks, threads := b.elemGrid(kCol2im, cnt*p.C*p.H*p.W)
				b.launch(kCol2im, blocks, 1, 1, threads)
			}
		}
	})
}

// Conv2dBackwardFilter implements backend.Ops.
func (b *Backend) Conv2dBackwardFilter(p backend.Conv2dParams, x, dy, dw *tensor.Tensor) {
	backend.CheckConv("conv2d backward filter", p, x, dw, dy)
	p = p.Normalized()
	checkSize("conv2d backward filter", max(x.Numel(), dy.Numel(), p.C*p.R*p.S*p.P()*p.Q()))
	b.queue(func() {
		X, DY, DW := b.ptr(x), b.ptr(dy), b.ptr(dw)
		G, PQ := p.G(), p.P()*p.Q()
		cg, kg := p.C/G, p.K/G
		crs, crsg := p.C*p.R*p.S, cg*p.R*p.S
		pointwise := isPointwise(p)
		nb := p.N
		if !pointwise {
			nb = convChunk(p)
		}
		for n0 := 0; n0 < p.N; n0 += nb {
			cnt := min(nb, p.N-n0)
			col := X + uintptr(n0*p.C*p.H*p.W)*4
			if !pointwise {
				col = b.scratchPtr(scratchCol, cnt*crs*PQ)
				b.args.reset().ptr(X + uintptr(n0*p.C*p.H*p.W)*4).ptr(col)
				b.convArgs(p, cnt)
				blocks, threads := b.elemGrid(kIm2col, cnt*crs*PQ)
				b.launch(kIm2col, blocks, 1, 1, threads)
			}
			// dw[g] (kg, crsg) += Σ over l = (n, pq): dy[n, g·kg + m, pq] · col[n, g·crsg + j, pq].
			dy0 := DY + uintptr(n0*p.K*PQ)*4
			splits := filterSplits(kg, crsg, G, cnt, b.info.sms)
			if splits == 1 {
				beta := float32(1)
				if n0 == 0 {
					beta = 0
				}
				b.gemm(&gemmDesc{m: kg, n: crsg, k: cnt * PQ, kseg: PQ,
					a: dy0, aS0: kg * PQ, aM: PQ, aK: 1, aSeg: p.K * PQ,
					b: col, bS0: crsg * PQ, bK: 1, bN: PQ, bSeg: crs * PQ,
					c: DW, cS0: kg * crsg, ldc: crsg,
					batch: G, zdiv: G, alpha: 1, beta: beta})
				continue
			}
			// Split-K: few output tiles and a long reduction (the images). Each
			// split of `per` images writes its partial dw into a workspace slot,
			// the images left over a last slot; then dw (+)= the ordered sum of
			// the slots.
			per := cnt / splits
			rem := cnt - per*splits
			slots := splits
			if rem > 0 {
				slots++
			}
			dwn := p.K * crsg
			ws := b.scratchPtr(scratchSplitK, slots*dwn)
			b.gemm(&gemmDesc{m: kg, n: crsg, k: per * PQ, kseg: PQ,
				a: dy0, aS1: per * p.K * PQ, aS0: kg * PQ, aM: PQ, aK: 1, aSeg: p.K * PQ,
				b: col, bS1: per * crs * PQ, bS0: crsg * PQ, bK: 1, bN: PQ, bSeg: crs * PQ,
				c: ws, cS1: dwn, cS0: kg * crsg, ldc: crsg,
				batch: splits * G, zdiv: G, alpha: 1})
			if rem > 0 {
				b.gemm(&gemmDesc{m: kg, n: crsg, k: rem * PQ, kseg: PQ,
					a: dy0 + uintptr(per*splits*p.K*PQ)*4, aS0: kg * PQ, aM: PQ, aK: 1, aSeg: p.K * PQ,
					b: col + uintptr(per*splits*crs*PQ)*4, bS0: crsg * PQ, bK: 1, bN: PQ, bSeg: crs * PQ,
					c: ws + uintptr(splits*dwn)*4, cS0: kg * crsg, ldc: crsg,
					batch: G, zdiv: G, alpha: 1})
			}
			// ws viewed as (outer 1, len slots, inner dwn), summed over the slots.
			b.args.reset().ptr(ws).ptr(DW).i32(1).i32(slots).i32(dwn).i32(int(backend.Sum)).flag(n0 > 0)
			blocks, threads := b.elemGrid(kReduceInner, dwn)
			b.launch(kReduceInner, blocks, 1, 1, threads)
		}
	})
}

// filterSplits is how many parts the images of a weight-gradient GEMM are
// split into: enough (64×64) tiles to give the device two blocks per SM,
// at most one part per image.
func filterSplits(kg, crsg, groups, images, sms int) int {
	tiles := ceilDiv(kg, 64) * ceilDiv(crsg, 64) * groups
	return max(1, min(images, ceilDiv(2*sms, tiles)))
}

// poolArgs appends a pooling geometry.
func (b *Backend) poolArgs(p backend.Pool2dParams) {
	b.args.i32(p.N * p.C).i32(p.H).i32(p.W).i32(p.P()).i32(p.Q()).i32(p.R).i32(p.S).
		i32(max(p.StrideH, 1)).i32(max(p.StrideW, 1)).i32(p.PadH).i32(p.PadW)
}

// MaxPool2dForward implements backend.Ops.
func (b *Backend) MaxPool2dForward(p backend.Pool2dParams, x, y, argmax *tensor.Tensor) {
	backend.CheckPool("maxpool2d forward", p, x, y, argmax)
	checkSize("maxpool2d forward", x.Numel())
	b.queue(func() {
		b.args.reset().ptr(b.ptr(x)).ptr(b.ptr(y)).ptr(b.ptr(argmax))
		b.poolArgs(p)
		blocks, threads := b.elemGrid(kMaxPoolForward, y.Numel())
		b.launch(kMaxPoolForward, blocks, 1, 1, threads)
	})
}

// MaxPool2dBackward implements backend.Ops. argmax must come from
// MaxPool2dForward with the same parameters (the kernel gathers from the
// outputs whose windows cover each input).
func (b *Backend) MaxPool2dBackward(p backend.Pool2dParams, dy, argmax, dx *tensor.Tensor) {
	backend.CheckPool("maxpool2d backward", p, dx, dy, argmax)
	checkSize("maxpool2d backward", dx.Numel())
	b.queue(func() {
		b.args.reset().ptr(b.ptr(dy)).ptr(b.ptr(argmax)).ptr(b.ptr(dx))
		b.poolArgs(p)
		blocks, threads := b.elemGrid(kMaxPoolBackward, dx.Numel())
		b.launch(kMaxPoolBackward, blocks, 1, 1, threads)
	})
}

// AvgPool2dForward implements backend.Ops.
func (b *Backend) AvgPool2dForward(p backend.Pool2dParams, x, y *tensor.Tensor) {
	backend.CheckPool("avgpool2d forward", p, x, y)
	checkSize("avgpool2d forward", x.Numel())
	b.queue(func() {
		b.args.reset().ptr(b.ptr(x)).ptr(b.ptr(y))
		b.poolArgs(p)
		blocks, threads := b.elemGrid(kAvgPoolForward, y.Numel())
		b.launch(kAvgPoolForward, blocks, 1, 1, threads)
	})
}

// AvgPool2dBackward implements backend.Ops.
func (b *Backend) AvgPool2dBackward(p backend.Pool2dParams, dy, dx *tensor.Tensor) {
	backend.CheckPool("avgpool2d backward", p, dx, dy)
	checkSize("avgpool2d backward", dx.Numel())
	b.queue(func() {
		b.args.reset().ptr(b.ptr(dy)).ptr(b.ptr(dx))
		b.poolArgs(p)
		blocks, threads := b.elemGrid(kAvgPoolBackward, dx.Numel())
		b.launch(kAvgPoolBackward, blocks, 1, 1, threads)
	})
}

func checkGAP(op string, x, y *tensor.Tensor) (nc, l int) {
	if x == nil || y == nil || x.Rank() != 4 || y.Numel() != x.Dim(0)*x.Dim(1) || !x.Contiguous() || !y.Contiguous() {
		panic(fmt.Sprintf("backend: %s: x must be (N, C, H, W) and y (N, C), contiguous", op))
	}
	return x.Dim(0) * x.Dim(1), x.Dim(2) * x.Dim(3)
}

// GlobalAvgPoolForward implements backend.Ops: a row mean (the reference's
// float64 sum divided by H·W).
func (b *Backend) GlobalAvgPoolForward(x, y *tensor.Tensor) {
	nc, l := checkGAP("global avgpool forward", x, y)
	checkSize("global avgpool forward", x.Numel())
	b.queue(func() {
		if nc == 0 {
			return
		}
		b.args.reset().ptr(b.ptr(x)).ptr(b.ptr(y)).i32(nc).i32(l).i32(int(backend.Mean)).flag(false) // accumulate: no
		b.launch(kReduceRows, b.rowGrid(nc), 1, 1, redThreads)
	})
}

// GlobalAvgPoolBackward implements backend.Ops.
func (b *Backend) GlobalAvgPoolBackward(dy, dx *tensor.Tensor) {
	nc, l := checkGAP("global avgpool backward", dx, dy)
	checkSize("global avgpool backward", dx.Numel())
	b.queue(func() {
		if nc*l == 0 {
			return
		}
		b.args.reset().ptr(b.ptr(dy)).ptr(b.ptr(dx)).i64(nc).i32(l)
		blocks, threads := b.elemGrid(kGAPBackward, nc*l)
		b.launch(kGAPBackward, blocks, 1, 1, threads)
	})
}

// bnChunk is how many of a channel's N·L values one block of bn_partials sums.
const bnChunk = 16 * redThreads

// bnPhase is the mode argument of bn_partials and bn_finish: the mean, the
// variance about it, the backward sums, or the running statistics (eval).
// kernels/bn.cu names the same values (BN_MEAN …).
type bnPhase int

const (
	bnMean     bnPhase = 0
	bnVar      bnPhase = 1
	bnBackward bnPhase = 2
	bnEval     bnPhase = 3
)

// BatchNormForward implements backend.Ops.
func (b *Backend) BatchNormForward(p backend.BatchNormParams, x, gamma, beta, runMean, runVar, y, saveMean, saveInvStd *tensor.Tensor) {
	backend.CheckBatchNorm("batchnorm forward", p, x, y, gamma, beta, runMean, runVar, saveMean, saveInvStd)
	if p.Training && (saveMean == nil || saveInvStd == nil) {
		panic("backend: batchnorm forward: training needs saveMean and saveInvStd")
	}
	checkSize("batchnorm forward", x.Numel())
	b.queue(func() {
		X, Y, G, B := b.ptr(x), b.ptr(y), b.ptr(gamma), b.ptr(beta)
		RM, RV, SM, SI := b.ptr(runMean), b.ptr(runVar), b.optPtr(saveMean), b.optPtr(saveInvStd)
		m := p.N * p.L
		chunks := ceilDiv(m, bnChunk)
		stats := b.scratchPtr(scratchStats, 4*p.C) // C × (2 doubles)
		finish := func(mode bnPhase, parts uintptr) {
			b.args.reset().ptr(parts).ptr(stats).i32(p.C).i32(chunks).i32(int(mode)).f64(float64(m)).f32(p.Momentum).f32(p.Eps).
				ptr(SM).ptr(SI).ptr(RM).ptr(RV).ptr(0).ptr(0)
			blocks, threads := b.elemGrid(kBNFinish, p.C)
			b.launch(kBNFinish, blocks, 1, 1, threads)
		}
		if p.Training {
			parts := b.scratchPtr(scratchParts, 4*p.C*chunks)
			for _, mode := range [...]bnPhase{bnMean, bnVar} {
				// No dy, saveMean or saveInvStd in these phases.
				b.args.reset().ptr(X).ptr(0).ptr(stats).ptr(0).ptr(0).ptr(parts).i32(p.N).i32(p.C).i32(p.L).i32(bnChunk).i32(chunks).i32(int(mode))
				b.launch(kBNPartials, chunks, p.C, 1, redThreads)
				finish(mode, parts)
			}
		} else {
			finish(bnEval, 0)
		}
		b.args.reset().ptr(X).ptr(Y).ptr(stats).ptr(G).ptr(B).i32(p.N).i32(p.C).i32(p.L)
		blocks, threads := b.elemGrid(kBNApply, x.Numel())
		b.launch(kBNApply, blocks, 1, 1, threads)
	})
}

// BatchNormBackward implements backend.Ops.
func (b *Backend) BatchNormBackward(p backend.BatchNormParams, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta *tensor.Tensor) {
	backend.CheckBatchNorm("batchnorm backward", p, x, dx, gamma, saveMean, saveInvStd, dgamma, dbeta)
	backend.CheckSame("batchnorm backward", x.Numel(), dy)
	checkSize("batchnorm backward", x.Numel())
	b.queue(func() {
		X, DY, G, SM, SI := b.ptr(x), b.ptr(dy), b.ptr(gamma), b.ptr(saveMean), b.ptr(saveInvStd)
		DX, DG, DB := b.ptr(dx), b.ptr(dgamma), b.ptr(dbeta)
		m := p.N * p.L
		chunks := ceilDiv(m, bnChunk)
		stats := b.scratchPtr(scratchStats, 4*p.C)
		parts := b.scratchPtr(scratchParts, 4*p.C*chunks)
		b.args.reset().ptr(X).ptr(DY).ptr(0).ptr(SM).ptr(SI).ptr(parts).i32(p.N).i32(p.C).i32(p.L).i32(bnChunk).i32(chunks).i32(int(bnBackward))
		b.launch(kBNPartials, chunks, p.C, 1, redThreads)
		// The backward phase uses neither momentum and eps nor the saved and running statistics.
		b.args.reset().ptr(parts).ptr(stats).i32(p.C).i32(chunks).i32(int(bnBackward)).f64(float64(m)).f32(0).f32(0).ptr(0).ptr(0).ptr(0).ptr(0).ptr(DG).ptr(DB)
		blocks, threads := b.elemGrid(kBNFinish, p.C)
		b.launch(kBNFinish, blocks, 1, 1, threads)
		b.args.reset().ptr(X).ptr(DY).ptr(stats).ptr(G).ptr(SM).ptr(SI).ptr(DX).i32(p.N).i32(p.C).i32(p.L)
		blocks, threads = b.elemGrid(kBNBackwardDx, x.Numel())
		b.launch(kBNBackwardDx, blocks, 1, 1, threads)
	})
}

// Unary implements backend.Ops.
func (b *Backend) Unary(op backend.UnaryOp, x, y *tensor.Tensor, a, c float32) {
	backend.CheckUnary(op, x, y)
	if op < 0 || op >= backend.NumUnaryOps {
		panic("cuda: unknown unary op " + op.String())
	}
	b.elementwise(kUnary, x.Numel(), func() { b.args.ptr(b.ptr(x)).ptr(b.ptr(y)).i64(x.Numel()).i32(int(op)).f32(a).f32(c) })
}

// Binary implements backend.Ops.
func (b *Backend) Binary(op backend.BinaryOp, x, z, y *tensor.Tensor) {
	backend.CheckBinary(op, x, z, y)
	if op < 0 || op >= backend.NumBinaryOps {
		panic("cuda: unknown binary op " + op.String())
	}
	b.elementwise(kBinary, x.Numel(), func() { b.args.ptr(b.ptr(x)).ptr(b.ptr(z)).ptr(b.ptr(y)).i64(x.Numel()).i64(z.Numel()).i32(int(op)) })
}

// Axpy implements backend.Ops.
func (b *Backend) Axpy(alpha float32, x, y *tensor.Tensor) {
	backend.CheckSame("axpy", x.Numel(), x, y)
	b.elementwise(kAxpy, x.Numel(), func() { b.args.f32(alpha).ptr(b.ptr(x)).ptr(b.ptr(y)).i64(x.Numel()) })
}

// elementwise queues a grid-stride kernel over n elements whose arguments
// push appends (it runs with the backend entered).
func (b *Backend) elementwise(k kernel, n int, push func()) {
	b.queue(func() {
		if n == 0 {
			return
		}
		b.args.reset()
		push()
		blocks, threads := b.elemGrid(k, n)
		b.launch(k, blocks, 1, 1, threads)
	})
}

// Fill implements backend.Ops (cuMemsetD32Async with the value's bits).
func (b *Backend) Fill(y *tensor.Tensor, v float32) {
	backend.CheckSame("fill", y.Numel(), y)
	b.queue(func() {
		if y.Numel() == 0 {
			return
		}
		if res := b.hot(b.drv.fn.memsetD32Async, b.ptr(y), uintptr(math.Float32bits(v)), uintptr(y.Numel()), b.stream); res != cudaSuccess {
			b.fail(b.drv.errorFor(res, "cuMemsetD32Async"))
		}
	})
}

// Reduce implements backend.Ops.
func (b *Backend) Reduce(p backend.ReduceParams, x, y *tensor.Tensor) {
	backend.CheckReduce(p, x, y)
	if p.Op < 0 || p.Op >= backend.NumReduceOps {
		panic("cuda: unknown reduction " + p.Op.String())
	}
	checkSize("reduce", x.Numel())
	b.queue(func() {
		if p.Inner == 1 {
			b.args.reset().ptr(b.ptr(x)).ptr(b.ptr(y)).i32(p.Outer).i32(p.Len).i32(int(p.Op)).flag(p.Accumulate)
			b.launch(kReduceRows, b.rowGrid(p.Outer), 1, 1, redThreads)
			return
		}
		b.args.reset().ptr(b.ptr(x)).ptr(b.ptr(y)).i32(p.Outer).i32(p.Len).i32(p.Inner).i32(int(p.Op)).flag(p.Accumulate)
		blocks, threads := b.elemGrid(kReduceInner, p.Outer*p.Inner)
		b.launch(kReduceInner, blocks, 1, 1, threads)
	})
}

// L2NormalizeForward implements backend.Ops.
func (b *Backend) L2NormalizeForward(eps float32, x, y, norms *tensor.Tensor) {
	backend.CheckRows("l2normalize forward", x, []*tensor.Tensor{y}, []*tensor.Tensor{norms})
	checkSize("l2normalize forward", x.Numel())
	n, d := x.Dim(0), x.Dim(1)
	b.queue(func() {
		if n == 0 {
			return
		}
		b.args.reset().ptr(b.ptr(x)).ptr(b.ptr(y)).ptr(b.ptr(norms)).i32(n).i32(d).f32(eps)
		b.launch(kL2Forward, b.rowGrid(n), 1, 1, redThreads)
	})
}

// L2NormalizeBackward implements backend.Ops (the CPU backend's formula:
// dx = (dy − y·<y, dy>)/norm for every row).
func (b *Backend) L2NormalizeBackward(y, norms, dy, dx *tensor.Tensor, accumulate bool) {
	backend.CheckRows("l2normalize backward", y, []*tensor.Tensor{dy, dx}, []*tensor.Tensor{norms})
	checkSize("l2normalize backward", y.Numel())
	n, d := y.Dim(0), y.Dim(1)
	b.queue(func() {
		if n == 0 {
			return
		}
		b.args.reset().ptr(b.ptr(y)).ptr(b.ptr(norms)).ptr(b.ptr(dy)).ptr(b.ptr(dx)).i32(n).i32(d).flag(accumulate)
		b.launch(kL2Backward, b.rowGrid(n), 1, 1, redThreads)
	})
}

// MarginSoftmaxCE implements backend.Ops: the fused head, one block per
// row, then the margin gradients as ordered column and row sums.
func (b *Backend) MarginSoftmaxCE(p backend.MarginParams, cos *tensor.Tensor, labels []int32, loss, dcos *tensor.Tensor, g backend.MarginGrads) {
	backend.CheckMargin(p, cos, labels, loss, dcos, g)
	checkSize("margin softmax", cos.Numel())
	b.queue(func() {
		lab := b.scratchPtr(scratchLabels, p.N) // int32 labels, one float slot each
		b.uploadBytes(lab, unsafe.Pointer(&labels[0]), 4*p.N)
		var cm uintptr
		if p.Kind == backend.MarginDMLClass {
			cm = b.ptr(p.ClassMargins)
		}
		var gs, mprow uintptr
		if g.ClassMargins != nil {
			gs = b.scratchPtr(scratchMarginG, p.N*p.C)
		}
		if g.MP != nil {
			mprow = b.scratchPtr(scratchMarginMP, 2*p.N) // N doubles
		}
		b.args.reset().ptr(b.ptr(cos)).ptr(lab).ptr(cm).ptr(b.ptr(loss)).ptr(b.optPtr(dcos)).ptr(gs).ptr(mprow).ptr(b.optPtr(p.MPFrom)).
			i32(p.N).i32(p.C).i32(int(p.Kind)).f32(p.S).f32(p.M).f32(p.M1).f32(p.M2).f32(p.M3).f32(p.MP).f32(p.MN).f32(p.Lambda).f32(p.Eps).flag(p.EasyMargin)
		b.launch(kMarginCE, b.rowGrid(p.N), 1, 1, redThreads)
		if gs != 0 {
			b.args.reset().ptr(gs).ptr(b.ptr(g.ClassMargins)).i32(p.N).i32(p.C)
			blocks, threads := b.elemGrid(kMarginClassGrads, p.C)
			b.launch(kMarginClassGrads, blocks, 1, 1, threads)
		}
		if mprow != 0 {
			b.args.reset().ptr(mprow).ptr(b.ptr(g.MP)).i32(p.N)
			b.launch(kMarginMPGrad, 1, 1, 1, redThreads)
		}
	})
}

// ProjectMargins implements backend.Backend: one thread per class.
func (b *Backend) ProjectMargins(p backend.ProjectParams, mp, rho *tensor.Tensor) {
	backend.CheckProject(p, mp, rho)
	checkSize("project margins", rho.Numel())
	b.elementwise(kProjectMargins, rho.Numel(), func() {
		b.args.ptr(b.optPtr(mp)).ptr(b.ptr(rho)).i32(rho.Numel()).f64(p.MP).f32(p.MaxMP).f64(p.MaxMargin).f64(p.Delta).f64(p.Gap)
	})
}

// SGDStep implements backend.Ops.
func (b *Backend) SGDStep(p backend.SGDParams, w, g, mom *tensor.Tensor) {
	backend.CheckSame("sgd step", w.Numel(), w, g, mom)
	b.elementwise(kSGD, w.Numel(), func() {
		b.args.ptr(b.ptr(w)).ptr(b.ptr(g)).ptr(b.ptr(mom)).i64(w.Numel()).f32(p.LR).f32(p.Momentum).f32(p.WeightDecay).f32(p.Dampening).flag(p.Nesterov)
	})
}

// AdamWStep implements backend.Ops.
func (b *Backend) AdamWStep(p backend.AdamWParams, w, g, m, v *tensor.Tensor) {
	backend.CheckSame("adamw step", w.Numel(), w, g, m, v)
	if p.Step < 1 {
		panic("backend: adamw step: Step counts from 1")
	}
	bc1 := 1 - math.Pow(float64(p.Beta1), float64(p.Step))
	bc2 := 1 - math.Pow(float64(p.Beta2), float64(p.Step))
	b.elementwise(kAdamW, w.Numel(), func() {
		b.args.ptr(b.ptr(w)).ptr(b.ptr(g)).ptr(b.ptr(m)).ptr(b.ptr(v)).i64(w.Numel()).
			f32(p.LR).f32(p.Beta1).f32(p.Beta2).f32(p.Eps).f32(p.WeightDecay).f64(bc1).f64(bc2)
	})
}
