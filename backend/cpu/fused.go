package cpu

import (
	"math"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// ConvBNActForward implements backend.ConvBNActer: the convolution, then
// per image, while its output is still in cache, batch norm's affine map
// (the same scale and shift, through the same kernel, as
// BatchNormForward), the residual and the ReLU, row by row.
func (b *Backend) ConvBNActForward(p backend.Conv2dParams, eps float32, x, w, gamma, beta, runMean, runVar, res, y *tensor.Tensor, relu bool) {
	const op = "conv-bn-act forward"
	backend.CheckConv(op, p, x, w, y)
	np := p.Normalized()
	bn := backend.BatchNormParams{N: p.N, C: p.K, L: np.P() * np.Q(), Eps: eps}
	backend.CheckBatchNorm(op, bn, y, y, gamma, beta, runMean, runVar)
	if res != nil {
		backend.CheckSame(op+" residual", y.Numel(), res)
	}
	if b.ref {
		b.Conv2dForward(p, x, w, y)
		b.BatchNormForward(bn, y, gamma, beta, runMean, runVar, y, nil, nil)
		if res != nil {
			b.Binary(backend.Add, y, res, y)
		}
		if relu {
			b.Unary(backend.Relu, y, y, 0, 0)
		}
		return
	}
	e := epilogues.get()
	defer epilogues.put(e)
	e.set(bn, gamma.HostData(), beta.HostData(), runMean.HostData(), runVar.HostData(), relu)
	if res != nil {
		e.res = res.HostData()
	}
	defer func() { e.res = nil }()
	X, W, Y := x.HostData(), w.HostData(), y.HostData()
	if implicitForward(np) {
		b.convImplicitForward(np, X, W, Y, e)
		return
	}
	b.Conv2dForward(p, x, w, y)
	splitN(b, &epilogueLoops, p.N, epilogueLoop{e: e, y: Y})
}

// convEpilogue is what ConvBNActForward applies to each image's output:
// per channel k, y = scale[k]·y + shift[k], then + res, then the ReLU.
type convEpilogue struct {
	scale, shift []float32
	res          []float32 // all images' residual, or nil
	relu         bool
	plane        int // values per channel and image (P·Q)
}

var epilogues freeList[convEpilogue]

// set computes the per-channel scale and shift of eval-mode batch norm
// bn, as bnForwardChannels does.
func (e *convEpilogue) set(bn backend.BatchNormParams, gamma, beta, runMean, runVar []float32, relu bool) {
	e.scale, e.shift = grow(e.scale, bn.C), grow(e.shift, bn.C)
	for c := range bn.C {
		invStd := 1 / math.Sqrt(float64(runVar[c])+float64(bn.Eps))
		e.scale[c], e.shift[c] = bnAffine(gamma[c], beta[c], float64(runMean[c]), invStd)
	}
	e.relu, e.plane = relu, bn.L
}

// apply finishes image n, whose output is y (K planes).
func (e *convEpilogue) apply(n int, y []float32) {
	l := e.plane
	var res []float32
	if e.res != nil {
		res = e.res[n*len(y) : (n+1)*len(y)]
	}
	for k := range e.scale {
		row := y[k*l : (k+1)*l]
		affine(e.scale[k], e.shift[k], row, row)
		if res != nil {
			add(row, res[k*l:(k+1)*l], row)
		}
		if e.relu {
			relu(row, row)
		}
	}
}

// epilogueLoop applies an epilogue to images [lo, hi) of y, for the
// convolution paths that finish all images first.
type epilogueLoop struct {
	e *convEpilogue
	y []float32
}

var epilogueLoops freeList[epilogueLoop]

func (k *epilogueLoop) chunk(lo, hi int) {
	per := len(k.e.scale) * k.e.plane
	for n := lo; n < hi; n++ {
		k.e.apply(n, k.y[n*per:(n+1)*per])
	}
}
