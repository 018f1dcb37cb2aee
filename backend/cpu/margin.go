package cpu

import (
	"math"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// The fused margin-softmax cross-entropy, one sample (row) at a time. Each
// kind maps a cosine c_j to a logit z_j; the loss is the cross-entropy of
// softmax(z) at the label y, computed in float64 with a stable log-sum-exp.
// Package dml documents the formulas and derives each gradient.

// MarginSoftmaxCE implements backend.Ops.
func (b *Backend) MarginSoftmaxCE(p backend.MarginParams, cos *tensor.Tensor, labels []int32, loss, dcos *tensor.Tensor, g backend.MarginGrads) {
	backend.CheckMargin(p, cos, labels, loss, dcos, g)
	if p.MPFrom != nil {
		p.MP = p.MPFrom.HostData()[0]
	}
	cosData, lossData := cos.HostData(), loss.HostData()
	var dcosData, classMargins, classMarginGrad []float32
	if dcos != nil {
		dcosData = dcos.HostData()
	}
	if p.ClassMargins != nil {
		classMargins = p.ClassMargins.HostData()
	}
	threads := b.Threads()
	if b.ref {
		threads = 1
	}
	k := marginLoops.get()
	defer marginLoops.put(k)
	k.p, k.cos, k.labels, k.cm, k.loss, k.dcos = p, cosData, labels, classMargins, lossData, dcosData
	k.parts = splitRangeInto(k.parts[:0], p.N, threads, 1)
	k.mp = grow(k.mp, len(k.parts))
	k.gcm = nil
	if g.ClassMargins != nil {
		classMarginGrad = g.ClassMargins.HostData()
		for len(k.gcmBufs) < len(k.parts) {
			k.gcmBufs = append(k.gcmBufs, nil)
		}
		k.gcm = k.gcmBufs[:len(k.parts)]
		for i := range k.gcm {
			k.gcm[i] = grow(k.gcm[i], p.C)
		}
	}
	// Each part of the rows has its own partial sums, added in part order
	// below, so the result does not depend on which goroutine ran it.
	parallelFor(len(k.parts), threads, k)
	if g.MP != nil {
		var sum float64
		for _, v := range k.mp {
			sum += v
		}
		g.MP.HostData()[0] += float32(sum)
	}
	for _, part := range k.gcm {
		for c, v := range part {
			classMarginGrad[c] += v
		}
	}
	k.cos, k.labels, k.cm, k.loss, k.dcos = nil, nil, nil, nil, nil
	k.p.ClassMargins = nil
}

// marginLoop is MarginSoftmaxCE's loop over parts of the rows, with each
// part's partial sums: mp[i] of ∂L/∂m_p, gcm[i] of ∂L/∂m_n (C values,
// when the class margins need a gradient). The sums' buffers are kept
// with it across calls.
type marginLoop struct {
	p                   backend.MarginParams
	cos, cm, loss, dcos []float32
	labels              []int32
	parts               [][2]int
	mp                  []float64
	gcm                 [][]float32 // gcmBufs[:len(parts)], or nil
	gcmBufs             [][]float32
}

var marginLoops freeList[marginLoop]

func (k *marginLoop) chunk(lo, hi int) {
	sc := marginScratch.get()
	defer marginScratch.put(sc)
	sc.z, sc.dz = grow(sc.z, k.p.C), grow(sc.dz, k.p.C)
	for i := lo; i < hi; i++ {
		var gcm []float32
		if len(k.gcm) > 0 {
			gcm = k.gcm[i]
			clear(gcm)
		}
		k.mp[i] = marginRows(&k.p, k.parts[i][0], k.parts[i][1], k.cos, k.labels, k.cm, k.loss, k.dcos, gcm, sc.z, sc.dz)
	}
}

// marginBuffers are one goroutine's logits and their derivatives (C values
// each), kept across calls.
type marginBuffers struct{ z, dz []float64 }

var marginScratch freeList[marginBuffers]

// targetLogit returns z_y and ∂z_y/∂c for the label's cosine c.
func targetLogit(p *backend.MarginParams, c float64) (z, dz float64) {
	s := float64(p.S)
	switch p.Kind {
	case backend.MarginSoftmax:
		return c, 1
	case backend.MarginNormFace, backend.MarginDMLClass, backend.MarginDMLAdaptive, backend.MarginDMLFixed, backend.MarginCosFace:
		m := 0.0
		switch p.Kind {
		case backend.MarginCosFace:
			m = float64(p.M)
		case backend.MarginDMLFixed, backend.MarginDMLClass, backend.MarginDMLAdaptive:
			m = float64(p.MP)
		}
		return s * (c - m), s
	}
	// The angular kinds: clamp before acos; outside the clamp the logit is
	// constant in c, so its derivative there is 0.
	eps := float64(p.Eps)
	lo, hi := -1+eps, 1-eps
	inside := 1.0
	if c < lo || c > hi {
		c, inside = math.Min(math.Max(c, lo), hi), 0
	}
	theta := math.Acos(c)
	sinT := math.Sqrt(1 - c*c) // = sin θ > 0 inside the clamp
	switch p.Kind {
	case backend.MarginSphereFace:
		m := float64(p.M)
		k := math.Floor(m * theta / math.Pi)
		sign := 1.0
		if int(k)%2 == 1 {
			sign = -1
		}
		psi := sign*math.Cos(m*theta) - 2*k
		// dψ/dc = (−1)^k · m·sin(mθ)/sin θ
		dpsi := sign * m * math.Sin(m*theta) / sinT
		lam := float64(p.Lambda)
		return s * (lam*c + psi) / (1 + lam), inside * s * (lam + dpsi) / (1 + lam)
	case backend.MarginArcFace:
		m := float64(p.M)
		if p.EasyMargin {
			if c <= 0 {
				return s * c, inside * s
			}
		} else if theta+m > math.Pi {
			return s * (c - m*math.Sin(m)), inside * s
		}
		// d cos(θ+m)/dc = sin(θ+m)/sin θ
		return s * math.Cos(theta+m), inside * s * math.Sin(theta+m) / sinT
	case backend.MarginCombined:
		m1, m2, m3 := float64(p.M1), float64(p.M2), float64(p.M3)
		return s * (math.Cos(m1*theta+m2) - m3), inside * s * m1 * math.Sin(m1*theta+m2) / sinT
	}
	panic("cpu: unknown margin kind " + p.Kind.String())
}

// otherLogits sets z_j and ∂z_j/∂c_j of every class of a row as a
// non-label class, one loop per kind: z_j = s·c_j (z_j = c_j for softmax),
// s·(c_j + m_n) for dml/fixed, s·(c_j + m_n,j) for dml/class and
// s·(c_j + m_n·(1 + c_j)/2) for dml/adaptive. It returns their maximum
// over j ≠ y (NaN if one is NaN).
func otherLogits(p *backend.MarginParams, classMargins []float32, row []float32, y int, z, dz []float64) (zmax float64) {
	s := float64(p.S)
	zmax = math.Inf(-1)
	switch p.Kind {
	case backend.MarginSoftmax:
		for j, cv := range row {
			z[j], dz[j] = float64(cv), 1
		}
	case backend.MarginDMLFixed:
		mn := float64(p.MN)
		for j, cv := range row {
			z[j], dz[j] = s*(float64(cv)+mn), s
		}
	case backend.MarginDMLClass:
		cm := classMargins[:len(row)]
		for j, cv := range row {
			z[j], dz[j] = s*(float64(cv)+float64(cm[j])), s
		}
	case backend.MarginDMLAdaptive:
		mn := float64(p.MN)
		for j, cv := range row {
			c := float64(cv)
			z[j], dz[j] = s*(c+mn*(1+c)/2), s*(1+mn/2)
		}
	default:
		for j, cv := range row {
			z[j], dz[j] = s*float64(cv), s
		}
	}
	for _, part := range [2][]float64{z[:y], z[y+1 : len(row)]} {
		for _, v := range part {
			if v > zmax || v != v {
				zmax = v
			}
		}
	}
	return zmax
}

// marginRows runs rows [r0, r1) of the fused head. z and dz are scratch
// of C values. mpGrad receives this range's ∂L/∂m_p; class-margin
// gradients accumulate into cmGrad (nil when not asked for).
func marginRows(p *backend.MarginParams, r0, r1 int, cos []float32, labels []int32, classMargins []float32, loss, dcos []float32, cmGrad []float32, z, dz []float64) (mpGrad float64) {
	C := p.C
	invN := 1 / float64(p.N)
	s := float64(p.S)
	for i := r0; i < r1; i++ {
		row := cos[i*C : (i+1)*C]
		y := int(labels[i])
		zmax := otherLogits(p, classMargins, row, y, z, dz)
		zy, dzy := targetLogit(p, float64(row[y]))
		z[y], dz[y] = zy, dzy
		if zy > zmax || math.IsNaN(zy) {
			zmax = zy
		}
		// z becomes e_j = exp(z_j − max z); p_j = e_j / Σe.
		var sum float64
		for j, v := range z[:C] {
			e := math.Exp(v - zmax)
			z[j] = e
			sum += e
		}
		lse := zmax + math.Log(sum)
		loss[i] = float32(lse - zy)
		inv := 1 / sum
		if dcos == nil && cmGrad == nil {
			if p.Kind >= backend.MarginDMLFixed {
				// ∂L/∂m_p needs only the label's probability; a caller may
				// ask for it without dcos.
				mpGrad += -s * (z[y]*inv - 1) * invN
			}
			continue
		}
		for j, e := range z[:C] {
			g := e * inv * invN // ∂L/∂z_j
			if j == y {
				g -= invN
				if p.Kind >= backend.MarginDMLFixed {
					mpGrad += -s * g // z_y = s(c − m_p)
				}
			} else if cmGrad != nil {
				cmGrad[j] += float32(s * g) // z_j = s(c + m_j)
			}
			if dcos != nil {
				dcos[i*C+j] = float32(g * dz[j])
			}
		}
	}
	return mpGrad
}

// ProjectMargins implements backend.Backend, in float64 as documented there.
func (b *Backend) ProjectMargins(p backend.ProjectParams, mp, rho *tensor.Tensor) {
	backend.CheckProject(p, mp, rho)
	m := p.MP
	if mp != nil {
		v := mp.HostData()
		v[0] = min(max(v[0], 0), p.MaxMP)
		m = float64(v[0])
	}
	room := p.MaxMargin - m - p.Delta - p.Gap
	if !(room > p.Gap) {
		return // m_p is at its top: every m_n,j is held at the clamp
	}
	hi := float32(room + math.Log(-math.Expm1(-room)))
	r := rho.HostData()
	for j, v := range r {
		if v > hi {
			r[j] = hi
		}
	}
}
