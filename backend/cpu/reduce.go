package cpu

import (
	"math"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// Reductions: sum, mean or max over the middle axis of (Outer, Len,
// Inner), the fast path the reference kernel on the outer rows split over
// the threads; and sum64, the SIMD sum in float64 that batch norm's
// statistics and the convolution's finiteness check use.

// Reduce implements backend.Ops.
func (b *Backend) Reduce(p backend.ReduceParams, x, y *tensor.Tensor) {
	backend.CheckReduce(p, x, y)
	xData, yData := x.HostData(), y.HostData()
	if b.ref || p.Outer == 1 {
		refReduce(p, xData, yData)
		return
	}
	splitN(b, &reduceLoops, p.Outer, reduceLoop{p, xData, yData})
}

// reduceLoop is Reduce's loop over the outer dimension.
type reduceLoop struct {
	p    backend.ReduceParams
	x, y []float32
}

var reduceLoops freeList[reduceLoop]

func (k *reduceLoop) chunk(lo, hi int) {
	q := k.p
	q.Outer = hi - lo
	refReduce(q, k.x[lo*q.Len*q.Inner:hi*q.Len*q.Inner], k.y[lo*q.Inner:hi*q.Inner])
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

// The reference kernel.

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
