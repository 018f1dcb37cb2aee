package cpu

import (
	"fmt"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// A residual network's stem in inference, conv → batch norm → ReLU → max
// pooling, as one op (backend.ConvBNActPooler). At 224×224 the
// convolution writes 64 planes of 112×112, 3.2 MB an image, which the
// pooling then reads back and shrinks fourfold; in a batch each image's
// planes are long out of cache by then. Here each image's convolution
// output goes to a scratch buffer (one per thread; images are split over
// the threads as in Conv2dForward, and at batch 1 the convolution, its
// epilogue and the pooling each use every thread) that the pooling reads
// while it is in cache: neither it nor the pooling's argmax is written to
// memory.

// ConvBNActPoolForward implements backend.ConvBNActPooler. With relu, yMax
// is filled (the result is true) at every precision, each image's largest
// value taken from its pooled planes as they are written; false where one
// is not finite.
func (b *Backend) ConvBNActPoolForward(p backend.Conv2dParams, eps float32, x, w, gamma, beta, runMean, runVar *tensor.Tensor, relu bool, pool backend.Pool2dParams, y *tensor.Tensor, yMax []float32) bool {
	const op = "conv-bn-act-pool forward"
	np := p.Normalized()
	backend.CheckConvPool(op, np, pool, x, w, y)
	P, Q := np.P(), np.Q()
	bn := backend.BatchNormParams{N: 1, C: p.K, L: P * Q, Eps: eps}
	backend.CheckSame(op+" batch norm", p.K, gamma, beta, runMean, runVar)
	if yMax != nil && len(yMax) != p.N {
		panic(fmt.Sprintf("cpu: %s: room for %d ranges of y for %d images", op, len(yMax), p.N))
	}
	if b.ref {
		conv := tensor.Zeros(p.N, p.K, P, Q)
		b.ConvBNActForward(p, eps, x, w, gamma, beta, runMean, runVar, nil, conv, relu)
		b.MaxPool2dForward(pool, conv, y, tensor.Zeros(p.N, p.K, pool.P(), pool.Q()))
		return false
	}
	e := epilogues.get()
	defer epilogues.put(e)
	e.set(bn, gamma.HostData(), beta.HostData(), runMean.HostData(), runVar.HostData(), relu)
	k, t := b.forwardLoop(np, w.HostData(), e)
	defer t.release()
	k.p.N = 1
	k.gt = gemmThreads(b.Threads(), p.N)
	onePool := pool
	onePool.N = 1
	if !relu {
		yMax = nil
	}
	splitN(b, &convPools, p.N, convPool{conv: k, pool: onePool, x: x.HostData(), y: y.HostData(), yMax: yMax})
	return rangesReported(yMax)
}

// convPool is ConvBNActPoolForward's work on images [lo, hi): each one's
// convolution (conv, for one image, on conv.gt threads) into a scratch
// buffer, then its pooling into y.
type convPool struct {
	conv convLoop
	pool backend.Pool2dParams // one image
	x, y []float32
	yMax []float32 // nil: not wanted
}

var convPools freeList[convPool]

func (c *convPool) chunk(lo, hi int) {
	p, pool := c.conv.p, c.pool
	img, pooled := p.C*p.H*p.W, pool.C*pool.P()*pool.Q()
	out := getCol(p.K * p.P() * p.Q())
	defer colPool.put(out)
	var maxes *[]float32
	if c.yMax != nil {
		maxes = getCol(p.K)
		defer colPool.put(maxes)
	}
	for n := lo; n < hi; n++ {
		k := c.conv
		k.x, k.y = c.x[n*img:(n+1)*img], *out
		k.run(&k, 0, 1)
		pk := poolLoop{run: (*poolLoop).maxForward, p: pool, x: *out, y: c.y[n*pooled : (n+1)*pooled]}
		if maxes != nil {
			pk.planeMax = (*maxes)[:p.K]
		}
		if k.gt > 1 {
			splitWith(&poolLoops, p.K, k.gt, pk)
		} else {
			pk.chunk(0, p.K)
		}
		if maxes != nil {
			hi := pk.planeMax[0]
			for _, v := range pk.planeMax[1:] {
				hi = max(hi, v)
			}
			c.yMax[n] = hi
		}
	}
}
