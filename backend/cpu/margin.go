package cpu

import (
	"math"

	"github.com/dmlgo/dmlgo/backend"
)

// The fused margin-softmax cross-entropy, one sample (row) at a time. Each
// kind maps a cosine c_j to a logit z_j; the loss is the cross-entropy of
// softmax(z) at the label y, computed in float64 with a stable log-sum-exp.
// Package dml documents the formulas and derives each gradient.

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

// otherLogit returns z_j and ∂z_j/∂c_j for a non-label class j.
func otherLogit(p *backend.MarginParams, classMargins []float32, j int, c float64) (z, dz float64) {
	s := float64(p.S)
	switch p.Kind {
	case backend.MarginSoftmax:
		return c, 1
	case backend.MarginDMLFixed:
		return s * (c + float64(p.MN)), s
	case backend.MarginDMLClass:
		return s * (c + float64(classMargins[j])), s
	case backend.MarginDMLAdaptive:
		mn := float64(p.MN)
		return s * (c + mn*(1+c)/2), s * (1 + mn/2)
	}
	return s * c, s
}

// marginRows runs rows [r0, r1) of the fused head. z is scratch of C values.
// mpGrad receives this range's ∂L/∂m_p; class-margin gradients accumulate
// into cmGrad (nil when not asked for).
func marginRows(p *backend.MarginParams, r0, r1 int, cos []float32, labels []int32, classMargins []float32, loss, dcos []float32, cmGrad []float32, z, dz []float64) (mpGrad float64) {
	C := p.C
	invN := 1 / float64(p.N)
	s := float64(p.S)
	for i := r0; i < r1; i++ {
		row := cos[i*C : (i+1)*C]
		y := int(labels[i])
		zmax := math.Inf(-1)
		for j, cv := range row {
			if j == y {
				z[j], dz[j] = targetLogit(p, float64(cv))
			} else {
				z[j], dz[j] = otherLogit(p, classMargins, j, float64(cv))
			}
			if z[j] > zmax || math.IsNaN(z[j]) {
				zmax = z[j]
			}
		}
		var sum float64
		for j := range z[:C] {
			sum += math.Exp(z[j] - zmax)
		}
		lse := zmax + math.Log(sum)
		loss[i] = float32(lse - z[y])
		if dcos == nil && cmGrad == nil {
			if p.Kind >= backend.MarginDMLFixed {
				// ∂L/∂m_p needs only the label's probability; a caller may
				// ask for it without dcos.
				mpGrad += -s * (math.Exp(z[y]-lse) - 1) * invN
			}
			continue
		}
		for j := range z[:C] {
			g := math.Exp(z[j]-lse) * invN // ∂L/∂z_j
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
