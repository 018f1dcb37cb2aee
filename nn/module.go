// Package nn builds models on top of autograd: layers with named parameters
// and buffers, the ResNet family with torchvision's layout and names,
// initialisation, a flat parameter store, optimizers, learning-rate
// schedules and safetensors state I/O.
//
// Names follow PyTorch's state_dict: a child's name, a dot, the parameter's
// name ("layer1.0.bn1.running_mean"), so weights move between dmlgo and
// torchvision without renaming.
package nn

import (
	"fmt"
	"math/rand/v2"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// Module is a layer or a composition of layers.
type Module interface {
	// Forward runs the module on x, recording on g.
	Forward(g *autograd.Graph, x *autograd.Var) *autograd.Var
	// Children lists sub-modules with their names, in order.
	Children() []Child
	// Own lists the module's own parameters and buffers (not its children's).
	Own() ([]*Param, []*Buffer)
}

// Child is a named sub-module.
type Child struct {
	Name string
	M    Module
}

// Param is a learnable tensor.
type Param struct {
	Name string // local name ("weight")
	*autograd.Var
	// NoDecay excludes the parameter from weight decay (BN and biases).
	NoDecay bool
}

// Buffer is state saved with the model but not learned (BN running
// statistics). Counter buffers (num_batches_tracked) hold an integer.
type Buffer struct {
	Name    string
	T       *tensor.Tensor // nil for a counter
	Counter *int64
}

// trainer is implemented by modules whose behaviour depends on the mode.
type trainer interface {
	setTraining(bool)
	isTraining() bool
}

// Named is a parameter or buffer with its full dotted name.
type Named[T any] struct {
	Name string
	V    T
}

// Walk visits every module under m depth-first with its dotted prefix ("" for m).
func Walk(m Module, f func(prefix string, m Module)) {
	walk("", m, f)
}

func walk(prefix string, m Module, f func(string, Module)) {
	f(prefix, m)
	for _, c := range m.Children() {
		walk(join(prefix, c.Name), c.M, f)
	}
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// Params returns every parameter under m with its full name, in
// registration order (PyTorch's named_parameters order).
func Params(m Module) []Named[*Param] {
	var out []Named[*Param]
	Walk(m, func(prefix string, mod Module) {
		params, _ := mod.Own()
		for _, p := range params {
			out = append(out, Named[*Param]{join(prefix, p.Name), p})
		}
	})
	return out
}

// Buffers returns every buffer under m with its full name.
func Buffers(m Module) []Named[*Buffer] {
	var out []Named[*Buffer]
	Walk(m, func(prefix string, mod Module) {
		_, buffers := mod.Own()
		for _, b := range buffers {
			out = append(out, Named[*Buffer]{join(prefix, b.Name), b})
		}
	})
	return out
}

// SetTraining switches every module under m to training (true) or
// evaluation mode (batch norm statistics, dropout).
func SetTraining(m Module, training bool) {
	Walk(m, func(_ string, mod Module) {
		if t, ok := mod.(trainer); ok {
			t.setTraining(training)
		}
	})
}

// Training reports whether m is in training mode: whether any module under
// it that has a mode (batch norm, dropout) is in training mode. A caller
// that switches a network to evaluation for a while restores this after.
func Training(m Module) bool {
	training := false
	Walk(m, func(_ string, mod Module) {
		if t, ok := mod.(trainer); ok && t.isTraining() {
			training = true
		}
	})
	return training
}

// NumParams counts the learnable scalars under m.
func NumParams(m Module) int {
	n := 0
	for _, p := range Params(m) {
		n += p.V.Value.Numel()
	}
	return n
}

// newParam allocates a parameter on b with host values.
func newParam(b backend.Backend, name string, values []float32, noDecay bool, shape ...int) *Param {
	t := tensor.New(b.Alloc(tensor.Numel(shape)), 0, shape...)
	b.Upload(t, values)
	v := autograd.NewVar(t, true)
	return &Param{Name: name, Var: v, NoDecay: noDecay}
}

// newBuffer allocates a buffer on b with host values.
func newBuffer(b backend.Backend, name string, values []float32) *Buffer {
	t := tensor.New(b.Alloc(len(values)), 0, len(values))
	b.Upload(t, values)
	return &Buffer{Name: name, T: t}
}

// RNG returns the seeded generator dmlgo uses for initialisation.
func RNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0xda3e39cb94b95bdb)) }

func fill(n int, v float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// shapeErr formats a shape mismatch for state loading.
func shapeErr(name string, got, want []int) error {
	return fmt.Errorf("%s: shape %s in the file, the model expects %s", name, tensor.ShapeString(got), tensor.ShapeString(want))
}
