package cpu

import (
	"math"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/klauspost/cpuid/v2"
)

// Fast paths of the elementwise and per-channel ops. They compute what the
// reference kernels compute, on ranges that the Backend spreads over threads.
// Each hands the longest whole-vector prefix of its slices to the active
// level's assembly kernel (the *Vec functions of kernels_amd64.go; none in
// a noasm build) and finishes the rest with the Go loop it documents.

// axpy is: for i, v := range x { y[i] += a*v }
func axpy(a float32, x, y []float32) {
	y = y[:len(x)]
	for i := axpyVec(a, x, y); i < len(x); i++ {
		y[i] += a * x[i]
	}
}

// scale is: for i, v := range x { y[i] = a*v }
func scale(a float32, x, y []float32) {
	y = y[:len(x)]
	for i := scaleVec(a, x, y); i < len(x); i++ {
		y[i] = a * x[i]
	}
}

// affine is: for i, v := range x { y[i] = a*v + c }, with a fused
// multiply-add where the SIMD kernel runs (one rounding instead of two).
func affine(a, c float32, x, y []float32) {
	y = y[:len(x)]
	for i := affineVec(a, c, x, y); i < len(x); i++ {
		y[i] = a*x[i] + c
	}
}

// relu is: for i, v := range x { if v > 0 || v != v { y[i] = v } else { y[i] = 0 } }
// (NaN stays NaN, −0 becomes +0: Go's max(v, 0)).
func relu(x, y []float32) {
	y = y[:len(x)]
	for i := reluVec(x, y); i < len(x); i++ {
		if v := x[i]; v > 0 || v != v {
			y[i] = v
		} else {
			y[i] = 0
		}
	}
}

// reluBackward is: for i, v := range x { if v > 0 { y[i] = z[i] } else { y[i] = 0 } }
func reluBackward(x, z, y []float32) {
	z, y = z[:len(x)], y[:len(x)]
	for i := reluBackwardVec(x, z, y); i < len(x); i++ {
		if x[i] > 0 {
			y[i] = z[i]
		} else {
			y[i] = 0
		}
	}
}

// add is: for i, v := range x { y[i] = v + z[i] }
func add(x, z, y []float32) {
	z, y = z[:len(x)], y[:len(x)]
	for i := addVec(x, z, y); i < len(x); i++ {
		y[i] = x[i] + z[i]
	}
}

// mul is: for i, v := range x { y[i] = v * z[i] }
func mul(x, z, y []float32) {
	z, y = z[:len(x)], y[:len(x)]
	for i := mulVec(x, z, y); i < len(x); i++ {
		y[i] = x[i] * z[i]
	}
}

// sum64 is: for _, v := range x { s += float64(v) }; return s
// (in another order where the SIMD kernel runs).
func sum64(x []float32) float64 {
	i, s := sum64Vec(x)
	for ; i < len(x); i++ {
		s += float64(x[i])
	}
	return s
}

// sumSqDev64 is: for _, v := range x { d := float64(v) - m; s += d*d }; return s
// (in another order where the SIMD kernel runs).
func sumSqDev64(m float64, x []float32) float64 {
	i, s := sumSqDev64Vec(m, x)
	for ; i < len(x); i++ {
		d := float64(x[i]) - m
		s += d * d
	}
	return s
}

// bnSums is: for i, v := range d { sd += v; sdx += v*(x[i]-m) }
// (in float32, in another order where the SIMD kernel runs).
func bnSums(m float32, d, x []float32) (sd, sdx float32) {
	x = x[:len(d)]
	i, sd, sdx := bnSumsVec(m, d, x)
	for ; i < len(d); i++ {
		sd += d[i]
		sdx += d[i] * (x[i] - m)
	}
	return sd, sdx
}

// bnDx is: for i, v := range d { y[i] = p*v + (q*(x[i]-m) + r) }
// (with fused multiply-adds where the SIMD kernel runs).
func bnDx(p, q, r, m float32, d, x, y []float32) {
	x, y = x[:len(d)], y[:len(d)]
	for i := bnDxVec(p, q, r, m, d, x, y); i < len(d); i++ {
		y[i] = p*d[i] + (q*(x[i]-m) + r)
	}
}

// unaryFast: y = f(x) with the common ops out of the switch.
func unaryFast(op backend.UnaryOp, x, y []float32, a, b float32) {
	switch op {
	case backend.Copy:
		copy(y[:len(x)], x)
	case backend.Scale:
		scale(a, x, y)
	case backend.Relu:
		relu(x, y)
	default:
		refUnary(op, x, y, a, b)
	}
}

// binaryFast: y = x ∘ z, same lengths.
func binaryFast(op backend.BinaryOp, x, z, y []float32) {
	switch op {
	case backend.Add:
		add(x, z, y)
	case backend.Mul:
		mul(x, z, y)
	case backend.ReluBackward:
		reluBackward(x, z, y)
	default:
		refBinary(op, x, z, y)
	}
}

// bnAffine is batch norm's y = scale·x + shift for one channel of mean and
// 1/σ invStd.
func bnAffine(gamma, beta float32, mean, invStd float64) (scale, shift float32) {
	return float32(float64(gamma) * invStd), float32(float64(beta) - mean*float64(gamma)*invStd)
}

// bnForwardChannels is refBatchNormForward for channels [c0, c1): the
// statistics summed in float64, the per-element work one fused
// multiply-add y = x·scale + shift.
func bnForwardChannels(p backend.BatchNormParams, c0, c1 int, x, gamma, beta, runMean, runVar, y, saveMean, saveInvStd []float32) {
	m := p.N * p.L
	for c := c0; c < c1; c++ {
		var mean, invStd float64
		if p.Training {
			var s, ss float64
			for n := 0; n < p.N; n++ {
				s += sum64(x[(n*p.C+c)*p.L : (n*p.C+c+1)*p.L])
			}
			mean = s / float64(m)
			for n := 0; n < p.N; n++ {
				ss += sumSqDev64(mean, x[(n*p.C+c)*p.L:(n*p.C+c+1)*p.L])
			}
			invStd = 1 / math.Sqrt(ss/float64(m)+float64(p.Eps))
			saveMean[c], saveInvStd[c] = float32(mean), float32(invStd)
			updateRunning(p.Momentum, mean, ss, m, &runMean[c], &runVar[c])
		} else {
			mean = float64(runMean[c])
			invStd = 1 / math.Sqrt(float64(runVar[c])+float64(p.Eps))
		}
		scale, shift := bnAffine(gamma[c], beta[c], mean, invStd)
		for n := 0; n < p.N; n++ {
			o := (n*p.C + c) * p.L
			affine(scale, shift, x[o:o+p.L], y[o:o+p.L])
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
			a, b := bnSums(mean, dy[o:o+p.L], x[o:o+p.L])
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
			bnDx(c1k, -c3, -c2, mean, dy[o:o+p.L], x[o:o+p.L], dx[o:o+p.L])
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

// initBlocking sizes the GEMM blocks from the cache sizes. kc = 256 keeps
// an A panel (MR·kc values, 8 KiB for MR = 8) in L1 with room for the B
// panels streaming through; the kc×nc block of B takes half of the core's
// L2 (1 MiB L2: nc = 512). mc only bounds the packed A block (1 MiB).
// Measured on Zen 5 (48 KiB L1D, 1 MiB L2): kc from 192 to 384 and nc from
// 384 to 768 are within a few percent of this choice.
func initBlocking() {
	l2 := cpuid.CPU.Cache.L2
	if l2 <= 0 {
		l2 = 512 << 10
	}
	kc := 256
	nc := (l2 / 2) / (4 * kc)
	blk.kc, blk.nc, blk.mc = kc, max(128, min(nc, 4096)), 1024
}
