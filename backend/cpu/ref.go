package cpu

// The reference kernels: plain loops, one per op, written to be read. They
// are the oracle every fast path (here, in assembly, on the GPU) is tested
// against, and they are kept forever. They run single-threaded on host
// slices and trust their arguments (the Backend methods check shapes first).

import (
	"math"

	"github.com/dmlgo/dmlgo/backend"
)

// refGemm: c = alpha·op(a)·op(b) + beta·c, row-major, op(a) (M, K), op(b) (K, N).
func refGemm(p backend.GemmParams, a, b, c []float32) {
	for i := 0; i < p.M; i++ {
		for j := 0; j < p.N; j++ {
			var s float64
			for l := 0; l < p.K; l++ {
				var av, bv float32
				if p.TransA {
					av = a[l*p.M+i]
				} else {
					av = a[i*p.K+l]
				}
				if p.TransB {
					bv = b[j*p.K+l]
				} else {
					bv = b[l*p.N+j]
				}
				s += float64(av) * float64(bv)
			}
			v := p.Alpha * float32(s)
			if p.Beta != 0 {
				v += p.Beta * c[i*p.N+j]
			}
			c[i*p.N+j] = v
		}
	}
}

// refConvForward: x (N, C, H, W), w (K, C/G, R, S) -> y (N, K, P, Q).
func refConvForward(p backend.Conv2dParams, x, w, y []float32) {
	p = p.Normalized()
	P, Q, G := p.P(), p.Q(), p.G()
	cg, kg := p.C/G, p.K/G
	for n := 0; n < p.N; n++ {
		for k := 0; k < p.K; k++ {
			g := k / kg
			for oh := 0; oh < P; oh++ {
				for ow := 0; ow < Q; ow++ {
					var s float64
					for c := 0; c < cg; c++ {
						ci := g*cg + c
						for r := 0; r < p.R; r++ {
							ih := oh*p.StrideH - p.PadH + r*p.DilH
							if ih < 0 || ih >= p.H {
								continue
							}
							for q := 0; q < p.S; q++ {
								iw := ow*p.StrideW - p.PadW + q*p.DilW
								if iw < 0 || iw >= p.W {
									continue
								}
								s += float64(x[((n*p.C+ci)*p.H+ih)*p.W+iw]) * float64(w[((k*cg+c)*p.R+r)*p.S+q])
							}
						}
					}
					y[((n*p.K+k)*P+oh)*Q+ow] = float32(s)
				}
			}
		}
	}
}

// refConvBackwardData: dy (N, K, P, Q), w (K, C/G, R, S) -> dx (N, C, H, W).
func refConvBackwardData(p backend.Conv2dParams, dy, w, dx []float32) {
	p = p.Normalized()
	P, Q, G := p.P(), p.Q(), p.G()
	cg, kg := p.C/G, p.K/G
	acc := make([]float64, len(dx))
	for n := 0; n < p.N; n++ {
		for k := 0; k < p.K; k++ {
			g := k / kg
			for oh := 0; oh < P; oh++ {
				for ow := 0; ow < Q; ow++ {
					d := float64(dy[((n*p.K+k)*P+oh)*Q+ow])
					for c := 0; c < cg; c++ {
						ci := g*cg + c
						for r := 0; r < p.R; r++ {
							ih := oh*p.StrideH - p.PadH + r*p.DilH
							if ih < 0 || ih >= p.H {
								continue
							}
							for q := 0; q < p.S; q++ {
								iw := ow*p.StrideW - p.PadW + q*p.DilW
								if iw < 0 || iw >= p.W {
									continue
								}
								acc[((n*p.C+ci)*p.H+ih)*p.W+iw] += d * float64(w[((k*cg+c)*p.R+r)*p.S+q])
							}
						}
					}
				}
			}
		}
	}
	for i, v := range acc {
		dx[i] = float32(v)
	}
}

// refConvBackwardFilter: x (N, C, H, W), dy (N, K, P, Q) -> dw (K, C/G, R, S).
func refConvBackwardFilter(p backend.Conv2dParams, x, dy, dw []float32) {
	p = p.Normalized()
	P, Q, G := p.P(), p.Q(), p.G()
	cg, kg := p.C/G, p.K/G
	for k := 0; k < p.K; k++ {
		g := k / kg
		for c := 0; c < cg; c++ {
			ci := g*cg + c
			for r := 0; r < p.R; r++ {
				for q := 0; q < p.S; q++ {
					var s float64
					for n := 0; n < p.N; n++ {
						for oh := 0; oh < P; oh++ {
							ih := oh*p.StrideH - p.PadH + r*p.DilH
							if ih < 0 || ih >= p.H {
								continue
							}
							for ow := 0; ow < Q; ow++ {
								iw := ow*p.StrideW - p.PadW + q*p.DilW
								if iw < 0 || iw >= p.W {
									continue
								}
								s += float64(x[((n*p.C+ci)*p.H+ih)*p.W+iw]) * float64(dy[((n*p.K+k)*P+oh)*Q+ow])
							}
						}
					}
					dw[((k*cg+c)*p.R+r)*p.S+q] = float32(s)
				}
			}
		}
	}
}

// refMaxPoolForward: x (N, C, H, W) -> y, argmax (N, C, P, Q). Ties keep
// the first maximum in row-major window order; padding never wins. A NaN
// wins (the last one, if several), as in PyTorch's loop
// `if val > maxval || isnan(val)`, so that a NaN is not lost and its
// gradient goes where PyTorch sends it.
func refMaxPoolForward(p backend.Pool2dParams, x, y, argmax []float32) {
	P, Q := p.P(), p.Q()
	sh, sw := max(p.StrideH, 1), max(p.StrideW, 1)
	for nc := 0; nc < p.N*p.C; nc++ {
		plane := x[nc*p.H*p.W : (nc+1)*p.H*p.W]
		for oh := 0; oh < P; oh++ {
			for ow := 0; ow < Q; ow++ {
				best, bi := float32(math.Inf(-1)), -1
				for r := 0; r < p.R; r++ {
					ih := oh*sh - p.PadH + r
					if ih < 0 || ih >= p.H {
						continue
					}
					for s := 0; s < p.S; s++ {
						iw := ow*sw - p.PadW + s
						if iw < 0 || iw >= p.W {
							continue
						}
						v := plane[ih*p.W+iw]
						if bi < 0 || v > best || v != v {
							best, bi = v, ih*p.W+iw
						}
					}
				}
				o := (nc*P+oh)*Q + ow
				y[o], argmax[o] = best, float32(bi)
			}
		}
	}
}

// refMaxPoolBackward: dy, argmax (N, C, P, Q) -> dx (N, C, H, W).
func refMaxPoolBackward(p backend.Pool2dParams, dy, argmax, dx []float32) {
	P, Q := p.P(), p.Q()
	clear(dx)
	for nc := 0; nc < p.N*p.C; nc++ {
		for i := 0; i < P*Q; i++ {
			dx[nc*p.H*p.W+int(argmax[nc*P*Q+i])] += dy[nc*P*Q+i]
		}
	}
}

// refAvgPoolForward: x (N, C, H, W) -> y (N, C, P, Q), divisor R·S.
func refAvgPoolForward(p backend.Pool2dParams, x, y []float32) {
	P, Q := p.P(), p.Q()
	sh, sw := max(p.StrideH, 1), max(p.StrideW, 1)
	inv := 1 / float32(p.R*p.S)
	for nc := 0; nc < p.N*p.C; nc++ {
		for oh := 0; oh < P; oh++ {
			for ow := 0; ow < Q; ow++ {
				var s float32
				for r := 0; r < p.R; r++ {
					ih := oh*sh - p.PadH + r
					for q := 0; q < p.S; q++ {
						iw := ow*sw - p.PadW + q
						if ih >= 0 && ih < p.H && iw >= 0 && iw < p.W {
							s += x[(nc*p.H+ih)*p.W+iw]
						}
					}
				}
				y[(nc*P+oh)*Q+ow] = s * inv
			}
		}
	}
}

// refAvgPoolBackward: dy (N, C, P, Q) -> dx (N, C, H, W).
func refAvgPoolBackward(p backend.Pool2dParams, dy, dx []float32) {
	P, Q := p.P(), p.Q()
	sh, sw := max(p.StrideH, 1), max(p.StrideW, 1)
	inv := 1 / float32(p.R*p.S)
	clear(dx)
	for nc := 0; nc < p.N*p.C; nc++ {
		for oh := 0; oh < P; oh++ {
			for ow := 0; ow < Q; ow++ {
				d := dy[(nc*P+oh)*Q+ow] * inv
				for r := 0; r < p.R; r++ {
					ih := oh*sh - p.PadH + r
					for q := 0; q < p.S; q++ {
						iw := ow*sw - p.PadW + q
						if ih >= 0 && ih < p.H && iw >= 0 && iw < p.W {
							dx[(nc*p.H+ih)*p.W+iw] += d
						}
					}
				}
			}
		}
	}
}

// refGlobalAvgPoolForward: x (NC, L) -> y (NC).
func refGlobalAvgPoolForward(nc, l int, x, y []float32) {
	for i := 0; i < nc; i++ {
		var s float64
		for _, v := range x[i*l : (i+1)*l] {
			s += float64(v)
		}
		y[i] = float32(s / float64(l))
	}
}

// refGlobalAvgPoolBackward: dy (NC) -> dx (NC, L).
func refGlobalAvgPoolBackward(nc, l int, dy, dx []float32) {
	for i := 0; i < nc; i++ {
		d := dy[i] / float32(l)
		for j := range dx[i*l : (i+1)*l] {
			dx[i*l+j] = d
		}
	}
}

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

// unaryFn is the scalar form of each unary op (a, b its parameters).
func unaryFn(op backend.UnaryOp, v, a, b float32) float32 {
	x := float64(v)
	switch op {
	case backend.Copy:
		return v
	case backend.Neg:
		return -v
	case backend.Scale:
		return a * v
	case backend.AddScalar:
		return v + a
	case backend.Affine:
		return a*v + b
	case backend.Relu:
		// Go's max(v, 0): NaN stays NaN (as in PyTorch, so that a
		// divergence shows), −0 becomes +0.
		if v > 0 || v != v {
			return v
		}
		return 0
	case backend.Exp:
		return float32(math.Exp(x))
	case backend.Log:
		return float32(math.Log(x))
	case backend.Sqrt:
		return float32(math.Sqrt(x))
	case backend.Rsqrt:
		return float32(1 / math.Sqrt(x))
	case backend.Square:
		return v * v
	case backend.Abs:
		return float32(math.Abs(x))
	case backend.Clamp:
		return min(max(v, a), b)
	case backend.Sigmoid:
		return float32(1 / (1 + math.Exp(-x)))
	case backend.Tanh:
		return float32(math.Tanh(x))
	case backend.Softplus:
		// ln(1+eˣ) = max(x, 0) + ln(1+e^−|x|)
		return float32(math.Max(x, 0) + math.Log1p(math.Exp(-math.Abs(x))))
	case backend.PowScalar:
		return float32(math.Pow(x, float64(a)))
	}
	panic("cpu: unknown unary op " + op.String())
}

// refUnary: y[i] = f(x[i]).
func refUnary(op backend.UnaryOp, x, y []float32, a, b float32) {
	for i, v := range x {
		y[i] = unaryFn(op, v, a, b)
	}
}

// binaryFn is the scalar form of each binary op.
func binaryFn(op backend.BinaryOp, x, z float32) float32 {
	switch op {
	case backend.Add:
		return x + z
	case backend.Sub:
		return x - z
	case backend.Mul:
		return x * z
	case backend.Div:
		return x / z
	case backend.Max:
		return max(x, z)
	case backend.Min:
		return min(x, z)
	case backend.ReluBackward:
		// z where x > 0: nothing passes where x is NaN or ±0.
		if x > 0 {
			return z
		}
		return 0
	}
	panic("cpu: unknown binary op " + op.String())
}

// refBinary: y[i] = x[i] ∘ z[i mod len(z)].
func refBinary(op backend.BinaryOp, x, z, y []float32) {
	for i, v := range x {
		y[i] = binaryFn(op, v, z[i%len(z)])
	}
}

// refReduce: x (Outer, Len, Inner) -> y (Outer, Inner).
func refReduce(p backend.ReduceParams, x, y []float32) {
	for o := 0; o < p.Outer; o++ {
		for in := 0; in < p.Inner; in++ {
			var s float64
			m := float32(math.Inf(-1))
			for l := 0; l < p.Len; l++ {
				v := x[(o*p.Len+l)*p.Inner+in]
				s += float64(v)
				if v > m || v != v {
					m = v
				}
			}
			var r float32
			switch p.Op {
			case backend.Sum:
				r = float32(s)
			case backend.Mean:
				r = float32(s / float64(p.Len))
			case backend.MaxReduce:
				r = m
			default:
				panic("cpu: unknown reduction " + p.Op.String())
			}
			if p.Accumulate {
				y[o*p.Inner+in] += r
			} else {
				y[o*p.Inner+in] = r
			}
		}
	}
}

// refL2NormalizeForward: x (N, D) -> y = x/max(|x|, eps), norms (N).
func refL2NormalizeForward(eps float32, n, d int, x, y, norms []float32) {
	for i := 0; i < n; i++ {
		var ss float64
		for _, v := range x[i*d : (i+1)*d] {
			ss += float64(v) * float64(v)
		}
		nrm := float32(math.Max(math.Sqrt(ss), float64(eps)))
		norms[i] = nrm
		for j := 0; j < d; j++ {
			y[i*d+j] = x[i*d+j] / nrm
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

// refSGDStep is PyTorch's SGD for one parameter group.
func refSGDStep(p backend.SGDParams, w, g, mom []float32) {
	for i := range w {
		d := g[i] + p.WeightDecay*w[i]
		step := d
		if p.Momentum != 0 {
			mom[i] = p.Momentum*mom[i] + (1-p.Dampening)*d
			if p.Nesterov {
				step = d + p.Momentum*mom[i]
			} else {
				step = mom[i]
			}
		}
		w[i] -= p.LR * step
	}
}

// refAdamWStep is PyTorch's AdamW (decoupled weight decay).
func refAdamWStep(p backend.AdamWParams, w, g, m, v []float32) {
	bc1 := 1 - math.Pow(float64(p.Beta1), float64(p.Step))
	bc2 := 1 - math.Pow(float64(p.Beta2), float64(p.Step))
	for i := range w {
		w[i] -= p.LR * p.WeightDecay * w[i]
		m[i] = p.Beta1*m[i] + (1-p.Beta1)*g[i]
		v[i] = p.Beta2*v[i] + (1-p.Beta2)*g[i]*g[i]
		mh := float64(m[i]) / bc1
		vh := float64(v[i]) / bc2
		w[i] -= float32(float64(p.LR) * mh / (math.Sqrt(vh) + float64(p.Eps)))
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
