package dml

import (
	"fmt"
	"math"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// NonFiniteError reports a NaN or ±Inf found in training: in the loss, the
// embeddings or a parameter, at a step.
type NonFiniteError struct {
	Step  int
	What  string // "embeddings", "head.weight", "cosface loss", ...
	Index []int  // the element's coordinates (nil for the loss)
	Value float32
}

func (e *NonFiniteError) Error() string {
	at := ""
	if e.Index != nil {
		at = " at " + tensor.ShapeString(e.Index)
	}
	return fmt.Sprintf("dml: step %d: %s holds %v%s", e.Step, e.What, e.Value, at)
}

// CheckFinite downloads t and returns a *NonFiniteError naming the step,
// what (the tensor's name) and the coordinates of its first NaN or ±Inf,
// or nil when every value is finite.
func CheckFinite(b backend.Backend, step int, what string, t *tensor.Tensor) error {
	vals := make([]float32, t.Numel())
	b.Download(vals, t)
	i, bad := tensor.HasNonFinite(vals)
	if !bad {
		return nil
	}
	return &NonFiniteError{Step: step, What: what, Index: unravel(i, t.Shape()), Value: vals[i]}
}

// unravel turns a flat row-major index into coordinates.
func unravel(i int, shape []int) []int {
	idx := make([]int, len(shape))
	for k := len(shape) - 1; k >= 0; k-- {
		if shape[k] > 0 {
			idx[k] = i % shape[k]
			i /= shape[k]
		}
	}
	return idx
}

func finite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
