package backend

import (
	"fmt"

	"github.com/dmlgo/dmlgo/tensor"
)

// MarginKind selects the target/non-target logit functions of the fused
// margin-softmax cross-entropy. Package dml documents each formula and its
// gradient; DESIGN.md has the table.
type MarginKind int

// Margin kinds.
const (
	// MarginSoftmax: plain cross-entropy over raw logits (the input is
	// W^T x + b, not a cosine); S is ignored.
	MarginSoftmax MarginKind = iota
	// MarginNormFace: z_j = S·cos θ_j for every class.
	MarginNormFace
	// MarginSphereFace: z_y = S·(Lambda·cos θ_y + ψ(θ_y))/(1+Lambda),
	// ψ(θ) = (−1)^k cos(Mθ) − 2k, k = ⌊Mθ/π⌋, M an integer ≥ 1.
	MarginSphereFace
	// MarginCosFace: z_y = S·(cos θ_y − M).
	MarginCosFace
	// MarginArcFace: z_y = S·cos(θ_y + M), falling back to S·(cos θ_y −
	// M·sin M) past θ_y > π − M (or to S·cos θ_y when cos θ_y ≤ 0 with
	// EasyMargin).
	MarginArcFace
	// MarginCombined: z_y = S·(cos(M1·θ_y + M2) − M3) (InsightFace).
	MarginCombined
	// MarginDMLFixed: z_y = S·(cos θ_y − MP), z_j = S·(cos θ_j + MN).
	MarginDMLFixed
	// MarginDMLClass: z_y = S·(cos θ_y − MP), z_j = S·(cos θ_j + m_j) with
	// m_j read from ClassMargins (C).
	MarginDMLClass
	// MarginDMLAdaptive: z_y = S·(cos θ_y − MP),
	// z_j = S·(cos θ_j + MN·(1 + cos θ_j)/2).
	MarginDMLAdaptive
	// NumMarginKinds is the number of margin kinds: the bound of tables and loops over them.
	NumMarginKinds
)

var marginNames = [...]string{"softmax", "normface", "sphereface", "cosface", "arcface", "combined", "dml/fixed", "dml/class", "dml/adaptive"}

func (k MarginKind) String() string {
	if k >= 0 && k < NumMarginKinds {
		return marginNames[k]
	}
	return fmt.Sprintf("MarginKind(%d)", int(k))
}

// MarginParams are the settings of one fused margin-softmax call.
type MarginParams struct {
	Kind       MarginKind
	N, C       int     // batch, classes
	S          float32 // scale
	M          float32 // cosface/arcface margin, sphereface multiplier
	M1, M2, M3 float32 // combined
	MP, MN     float32 // dml positive and negative margins
	Lambda     float32 // sphereface annealing weight (0: pure ψ)
	EasyMargin bool    // arcface
	Eps        float32 // cosine clamp: [−1+Eps, 1−Eps] before any acos
	// ClassMargins (C) holds the per-class negative margins of MarginDMLClass.
	ClassMargins *tensor.Tensor
	// MPFrom (1), when set, holds m_p on the device and takes the place
	// of MP (the dml kinds), so that a learned m_p need not be read back
	// to the host.
	MPFrom *tensor.Tensor
}

// ProjectParams are the bounds of ProjectMargins (dml/class's learned
// margins): m_p ∈ [0, MaxMP] and m_p + Delta + softplus(ρ_j) ≤
// MaxMargin − Gap. MP is m_p when it is not learned.
type ProjectParams struct {
	MP                    float64
	MaxMP                 float32
	MaxMargin, Delta, Gap float64
}

// MarginGrads names the optional margin gradients of a fused call; nil
// tensors are not computed. Both accumulate (+=) the gradient of the mean
// loss over the batch.
type MarginGrads struct {
	// ClassMargins (C): ∂L/∂m_j for MarginDMLClass.
	ClassMargins *tensor.Tensor
	// MP (1): ∂L/∂m_p for the dml kinds.
	MP *tensor.Tensor
}
