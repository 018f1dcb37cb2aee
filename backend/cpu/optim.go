package cpu

import (
	"math"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// Optimizer steps, as PyTorch's SGD and AdamW: the fast path is the
// reference kernel on the elements split over the threads.

// SGDStep implements backend.Ops.
func (b *Backend) SGDStep(p backend.SGDParams, w, g, mom *tensor.Tensor) {
	backend.CheckSame("sgd step", w.Numel(), w, g, mom)
	wData, gData, momData := w.HostData(), g.HostData(), mom.HostData()
	if b.ref {
		refSGDStep(p, wData, gData, momData)
		return
	}
	splitElemsN(b, &optLoops, len(wData), optLoop{run: (*optLoop).sgdStep, sgd: p, w: wData, g: gData, m: momData})
}

// AdamWStep implements backend.Ops.
func (b *Backend) AdamWStep(p backend.AdamWParams, w, g, m, v *tensor.Tensor) {
	backend.CheckSame("adamw step", w.Numel(), w, g, m, v)
	if p.Step < 1 {
		panic("backend: adamw step: Step counts from 1")
	}
	wData, gData, mData, vData := w.HostData(), g.HostData(), m.HostData(), v.HostData()
	if b.ref {
		refAdamWStep(p, wData, gData, mData, vData)
		return
	}
	splitElemsN(b, &optLoops, len(wData), optLoop{run: (*optLoop).adamWStep, adam: p, w: wData, g: gData, m: mData, v: vData})
}

// optLoop is the optimizer steps' loop over elements: run, sgdStep or
// adamWStep, does elements [lo, hi).
type optLoop struct {
	run        func(k *optLoop, lo, hi int)
	sgd        backend.SGDParams
	adam       backend.AdamWParams
	w, g, m, v []float32
}

var optLoops freeList[optLoop]

func (k *optLoop) chunk(lo, hi int) { k.run(k, lo, hi) }

func (k *optLoop) sgdStep(lo, hi int) {
	w, g, m, p := k.w[lo:hi], k.g[lo:hi], k.m[lo:hi], k.sgd
	n := 0
	if p.Momentum != 0 && !p.Nesterov {
		// The vector loop rounds as refSGDStep does, so the split is exact.
		n = sgdMomentumVec(p.LR, p.WeightDecay, p.Momentum, 1-p.Dampening, w, g[:len(w)], m[:len(w)])
	}
	refSGDStep(p, w[n:], g[n:], m[n:])
}

func (k *optLoop) adamWStep(lo, hi int) {
	refAdamWStep(k.adam, k.w[lo:hi], k.g[lo:hi], k.m[lo:hi], k.v[lo:hi])
}

// The reference kernels.

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
