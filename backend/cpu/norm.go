package cpu

import (
	"math"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// Normalisation: batch norm (per channel of (N, C, L) tensors) and L2
// normalisation (per row of (N, D) tensors). Batch norm's fast path sums
// the statistics with the SIMD kernels (bnForwardChannels,
// bnBackwardChannels); L2 normalisation's runs the reference kernels on
// the rows split over the threads.

// BatchNormForward implements backend.Ops.
func (b *Backend) BatchNormForward(p backend.BatchNormParams, x, gamma, beta, runMean, runVar, y, saveMean, saveInvStd *tensor.Tensor) {
	backend.CheckBatchNorm("batchnorm forward", p, x, y, gamma, beta, runMean, runVar, saveMean, saveInvStd)
	if p.Training && (saveMean == nil || saveInvStd == nil) {
		panic("backend: batchnorm forward: training needs saveMean and saveInvStd")
	}
	xData, yData := x.HostData(), y.HostData()
	gammaData, betaData, runMeanData, runVarData := gamma.HostData(), beta.HostData(), runMean.HostData(), runVar.HostData()
	var saveMeanData, saveInvStdData []float32
	if p.Training {
		saveMeanData, saveInvStdData = saveMean.HostData(), saveInvStd.HostData()
	}
	if b.ref {
		refBatchNormForward(p, xData, gammaData, betaData, runMeanData, runVarData, yData, saveMeanData, saveInvStdData)
		return
	}
	splitN(b, &bnLoops, p.C, bnLoop{run: (*bnLoop).forward, p: p, x: xData, g: gammaData, beta: betaData, rm: runMeanData, rv: runVarData, y: yData, sm: saveMeanData, si: saveInvStdData})
}

// BatchNormBackward implements backend.Ops.
func (b *Backend) BatchNormBackward(p backend.BatchNormParams, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta *tensor.Tensor) {
	backend.CheckBatchNorm("batchnorm backward", p, x, dx, gamma, saveMean, saveInvStd, dgamma, dbeta)
	backend.CheckSame("batchnorm backward", x.Numel(), dy)
	xData, dyData, gammaData, saveMeanData, saveInvStdData := x.HostData(), dy.HostData(), gamma.HostData(), saveMean.HostData(), saveInvStd.HostData()
	dxData, dgammaData, dbetaData := dx.HostData(), dgamma.HostData(), dbeta.HostData()
	if b.ref {
		refBatchNormBackward(p, xData, dyData, gammaData, saveMeanData, saveInvStdData, dxData, dgammaData, dbetaData)
		return
	}
	splitN(b, &bnLoops, p.C, bnLoop{run: (*bnLoop).backward, p: p, x: xData, dy: dyData, g: gammaData, sm: saveMeanData, si: saveInvStdData, dx: dxData, dg: dgammaData, db: dbetaData})
}

// bnLoop is batch norm's loop over channels: run, forward or backward,
// does channels [lo, hi).
type bnLoop struct {
	run                   func(k *bnLoop, lo, hi int)
	p                     backend.BatchNormParams
	x, g, beta, rm, rv, y []float32
	sm, si                []float32
	dy, dx, dg, db        []float32
}

var bnLoops freeList[bnLoop]

func (k *bnLoop) chunk(lo, hi int) { k.run(k, lo, hi) }

func (k *bnLoop) forward(lo, hi int) {
	bnForwardChannels(k.p, lo, hi, k.x, k.g, k.beta, k.rm, k.rv, k.y, k.sm, k.si)
}

func (k *bnLoop) backward(lo, hi int) {
	bnBackwardChannels(k.p, lo, hi, k.x, k.dy, k.g, k.sm, k.si, k.dx, k.dg, k.db)
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

// L2NormalizeForward implements backend.Ops.
func (b *Backend) L2NormalizeForward(eps float32, x, y, norms *tensor.Tensor) {
	backend.CheckRows("l2normalize forward", x, []*tensor.Tensor{y}, []*tensor.Tensor{norms})
	n, d := x.Dim(0), x.Dim(1)
	splitN(b, &l2Loops, n, l2Loop{run: (*l2Loop).forward, eps: eps, d: d, x: x.HostData(), y: y.HostData(), norms: norms.HostData()})
}

// L2NormalizeBackward implements backend.Ops. The eps must match the
// forward's; it is recovered from the norms (a clamped norm equals eps).
func (b *Backend) L2NormalizeBackward(y, norms, dy, dx *tensor.Tensor, accumulate bool) {
	backend.CheckRows("l2normalize backward", y, []*tensor.Tensor{dy, dx}, []*tensor.Tensor{norms})
	n, d := y.Dim(0), y.Dim(1)
	splitN(b, &l2Loops, n, l2Loop{run: (*l2Loop).backward, accumulate: accumulate, d: d, y: y.HostData(), norms: norms.HostData(), dy: dy.HostData(), dx: dx.HostData()})
}

// l2Loop is L2 normalisation's loop over rows of d values: run, forward
// or backward, does rows [lo, hi).
type l2Loop struct {
	run                 func(k *l2Loop, lo, hi int)
	accumulate          bool
	eps                 float32
	d                   int
	x, y, norms, dy, dx []float32
}

var l2Loops freeList[l2Loop]

func (k *l2Loop) chunk(lo, hi int) { k.run(k, lo, hi) }

func (k *l2Loop) forward(lo, hi int) {
	d := k.d
	refL2NormalizeForward(k.eps, hi-lo, d, k.x[lo*d:hi*d], k.y[lo*d:hi*d], k.norms[lo:hi])
}

func (k *l2Loop) backward(lo, hi int) {
	d := k.d
	refL2NormalizeBackward(0, hi-lo, d, k.y[lo*d:hi*d], k.norms[lo:hi], k.dy[lo*d:hi*d], k.dx[lo*d:hi*d], k.accumulate)
}

// The reference kernels.

// refBatchNormForward: x (N, C, L) -> y, per-channel gamma, beta, running
// statistics; saveMean, saveInvStd (C) in training.
func refBatchNormForward(p backend.BatchNormParams, x, gamma, beta, runMean, runVar, y, saveMean, saveInvStd []float32) {
	m := p.N * p.L
	for c := 0; c < p.C; c++ {
		var mean, invStd float64
		if p.Training {
			var s float64
			for n := 0; n < p.N; n++ {
				for _, v := range x[(n*p.C+c)*p.L : (n*p.C+c+1)*p.L] {
					s += float64(v)
				}
			}
			mean = s / float64(m)
			var ss float64
			for n := 0; n < p.N; n++ {
				for _, v := range x[(n*p.C+c)*p.L : (n*p.C+c+1)*p.L] {
					d := float64(v) - mean
					ss += d * d
				}
			}
			variance := ss / float64(m)
			invStd = 1 / math.Sqrt(variance+float64(p.Eps))
			saveMean[c], saveInvStd[c] = float32(mean), float32(invStd)
			updateRunning(p.Momentum, mean, ss, m, &runMean[c], &runVar[c])
		} else {
			mean = float64(runMean[c])
			invStd = 1 / math.Sqrt(float64(runVar[c])+float64(p.Eps))
		}
		g, b := float64(gamma[c]), float64(beta[c])
		for n := 0; n < p.N; n++ {
			o := (n*p.C + c) * p.L
			for i := 0; i < p.L; i++ {
				y[o+i] = float32((float64(x[o+i])-mean)*invStd*g + b)
			}
		}
	}
}

// refBatchNormBackward: training-mode gradient. With x̂ = (x−μ)·σ⁻¹ and M = N·L:
// dβ += Σ dy, dγ += Σ dy·x̂, dx = γσ⁻¹/M · (M·dy − Σdy − x̂·Σ dy·x̂).
func refBatchNormBackward(p backend.BatchNormParams, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta []float32) {
	m := float64(p.N * p.L)
	for c := 0; c < p.C; c++ {
		mean, inv := float64(saveMean[c]), float64(saveInvStd[c])
		var sdy, sdyx float64
		for n := 0; n < p.N; n++ {
			o := (n*p.C + c) * p.L
			for i := 0; i < p.L; i++ {
				d := float64(dy[o+i])
				sdy += d
				sdyx += d * (float64(x[o+i]) - mean) * inv
			}
		}
		dbeta[c] += float32(sdy)
		dgamma[c] += float32(sdyx)
		k := float64(gamma[c]) * inv / m
		for n := 0; n < p.N; n++ {
			o := (n*p.C + c) * p.L
			for i := 0; i < p.L; i++ {
				xh := (float64(x[o+i]) - mean) * inv
				dx[o+i] = float32(k * (m*float64(dy[o+i]) - sdy - xh*sdyx))
			}
		}
	}
}

// updateRunning moves a channel's running statistics towards its batch
// mean and unbiased variance (sum of squared deviations ss over m values),
// as PyTorch: r = (1 − momentum)·r + momentum·batch.
func updateRunning(momentum float32, mean, ss float64, m int, runMean, runVar *float32) {
	mom := float64(momentum)
	*runMean = float32((1-mom)*float64(*runMean) + mom*mean)
	*runVar = float32((1-mom)*float64(*runVar) + mom*ss/float64(m-1))
}

// refL2NormalizeForward: x (N, D) -> y = x/max(|x|, eps), norms (N).
func refL2NormalizeForward(eps float32, n, d int, x, y, norms []float32) {
	for i := 0; i < n; i++ {
		var ss float64
		for _, v := range x[i*d : (i+1)*d] {
			ss += float64(v) * float64(v)
		}
		norm := float32(math.Max(math.Sqrt(ss), float64(eps)))
		norms[i] = norm
		for j := 0; j < d; j++ {
			y[i*d+j] = x[i*d+j] / norm
		}
	}
}

// refL2NormalizeBackward: dx = (dy − y·<y, dy>)/norm (dy/eps where the norm
// was clamped to eps).
func refL2NormalizeBackward(eps float32, n, d int, y, norms, dy, dx []float32, accumulate bool) {
	for i := 0; i < n; i++ {
		var dot float64
		clamped := norms[i] <= eps
		if !clamped {
			for j := 0; j < d; j++ {
				dot += float64(y[i*d+j]) * float64(dy[i*d+j])
			}
		}
		for j := 0; j < d; j++ {
			g := float32((float64(dy[i*d+j]) - float64(y[i*d+j])*dot) / float64(norms[i]))
			if accumulate {
				dx[i*d+j] += g
			} else {
				dx[i*d+j] = g
			}
		}
	}
}
