package cpu

import (
	"math"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/klauspost/cpuid/v2"
)

// Fast paths of the elementwise and per-channel ops. They compute what the
// reference kernels compute, on ranges that the Backend spreads over threads;
// the SIMD issue replaces the hottest loops with assembly.

// axpy is: for i, v := range x { y[i] += a*v }
func axpy(a float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += a * v
	}
}

// unaryFast: y = f(x) with the common ops unrolled out of the switch.
func unaryFast(op backend.UnaryOp, x, y []float32, a, b float32) {
	y = y[:len(x)]
	switch op {
	case backend.Copy:
		copy(y, x)
	case backend.Scale:
		for i, v := range x {
			y[i] = a * v
		}
	case backend.Relu:
		for i, v := range x {
			if v > 0 {
				y[i] = v
			} else {
				y[i] = 0
			}
		}
	default:
		refUnary(op, x, y, a, b)
	}
}

// binaryFast: y = x ∘ z, same lengths.
func binaryFast(op backend.BinaryOp, x, z, y []float32) {
	z, y = z[:len(x)], y[:len(x)]
	switch op {
	case backend.Add:
		for i, v := range x {
			y[i] = v + z[i]
		}
	case backend.Mul:
		for i, v := range x {
			y[i] = v * z[i]
		}
	case backend.ReluBackward:
		for i, v := range x {
			if v > 0 {
				y[i] = z[i]
			} else {
				y[i] = 0
			}
		}
	default:
		refBinary(op, x, z, y)
	}
}

// bnForwardChannels is refBatchNormForward for channels [c0, c1), with the
// sums in float64 and the per-element work as one fused multiply-add.
func bnForwardChannels(p backend.BatchNormParams, c0, c1 int, x, gamma, beta, runMean, runVar, y, saveMean, saveInvStd []float32) {
	m := p.N * p.L
	for c := c0; c < c1; c++ {
		var mean, invStd float64
		if p.Training {
			var s, ss float64
			for n := 0; n < p.N; n++ {
				var s32 float64
				for _, v := range x[(n*p.C+c)*p.L : (n*p.C+c+1)*p.L] {
					s32 += float64(v)
				}
				s += s32
			}
			mean = s / float64(m)
			for n := 0; n < p.N; n++ {
				for _, v := range x[(n*p.C+c)*p.L : (n*p.C+c+1)*p.L] {
					d := float64(v) - mean
					ss += d * d
				}
			}
			invStd = 1 / math.Sqrt(ss/float64(m)+float64(p.Eps))
			saveMean[c], saveInvStd[c] = float32(mean), float32(invStd)
			mom := float64(p.Momentum)
			runMean[c] = float32((1-mom)*float64(runMean[c]) + mom*mean)
			runVar[c] = float32((1-mom)*float64(runVar[c]) + mom*ss/float64(m-1))
		} else {
			mean = float64(runMean[c])
			invStd = 1 / math.Sqrt(float64(runVar[c])+float64(p.Eps))
		}
		scale := float32(float64(gamma[c]) * invStd)
		shift := float32(float64(beta[c]) - mean*float64(gamma[c])*invStd)
		for n := 0; n < p.N; n++ {
			o := (n*p.C + c) * p.L
			xs, ys := x[o:o+p.L], y[o:o+p.L]
			for i, v := range xs {
				ys[i] = v*scale + shift
			}
		}
	}
}

// bnBackwardChannels is refBatchNormBackward for channels [c0, c1).
func bnBackwardChannels(p backend.BatchNormParams, c0, c1 int, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta []float32) {
	m := float64(p.N * p.L)
	for c := c0; c < c1; c++ {
		mean, inv := saveMean[c], saveInvStd[c]
		var sdy, sdyx float64
		for n := 0; n < p.N; n++ {
			o := (n*p.C + c) * p.L
			xs, ds := x[o:o+p.L], dy[o:o+p.L]
			var a, b float32
			for i, d := range ds {
				a += d
				b += d * (xs[i] - mean)
			}
			sdy += float64(a)
			sdyx += float64(b)
		}
		sdyx *= float64(inv)
		dbeta[c] += float32(sdy)
		dgamma[c] += float32(sdyx)
		// dx = k·dy − k/M·Σdy − k/M·x̂·Σdy·x̂, with x̂ = (x−μ)·inv, k = γ·inv
		k := float64(gamma[c]) * float64(inv)
		c1k := float32(k)
		c2 := float32(k * sdy / m)
		c3 := float32(k * sdyx / m * float64(inv))
		for n := 0; n < p.N; n++ {
			o := (n*p.C + c) * p.L
			xs, ds, out := x[o:o+p.L], dy[o:o+p.L], dx[o:o+p.L]
			for i, d := range ds {
				out[i] = c1k*d - c2 - c3*(xs[i]-mean)
			}
		}
	}
}

// cpuName is the processor's brand string.
func cpuName() string {
	if n := cpuid.CPU.BrandName; n != "" {
		return n
	}
	return "unknown CPU"
}

// initBlocking sizes the GEMM blocks from the cache sizes: a kc×NR panel of
// B in half of L1, an mc×kc block of A in half of L2.
func initBlocking() {
	l1, l2 := cpuid.CPU.Cache.L1D, cpuid.CPU.Cache.L2
	if l1 <= 0 {
		l1 = 32 << 10
	}
	if l2 <= 0 {
		l2 = 512 << 10
	}
	kc := 256
	if l1 >= 48<<10 {
		kc = 384
	}
	mc := (l2 / 2) / (4 * kc)
	mc = max(48, min(mc, 480)) / 48 * 48
	blk.kc, blk.mc = kc, mc
}
