package model

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/safetensors"
	"github.com/dmlgo/dmlgo/tensor"
)

// A checkpoint is one safetensors file: the model's state under "model."
// (torchvision names), the head's parameters (named "head.…"), the
// optimizer's buffers under "optim.", the model card as JSON in the
// metadata key "dmlgo.card", and the trainer's state (config, epoch, step,
// sampler position, history) as JSON in the metadata key "dmlgo.state". It
// is written atomically (temporary file, fsync, rename).

// Parts names what a checkpoint holds.
type Parts struct {
	Model nn.Module
	// Card describes Model; the zero Card writes none.
	Card Card
	Head []nn.Named[*nn.Param]
	Opt  nn.Optimizer
}

// SaveCheckpoint writes the parts and the JSON-encodable state to path.
func SaveCheckpoint(path string, b backend.Backend, p Parts, state any) error {
	var ts []safetensors.Tensor
	for _, st := range nn.StateTensors(b, p.Model) {
		st.Name = "model." + st.Name
		ts = append(ts, st)
	}
	for _, h := range p.Head {
		ts = append(ts, hostTensor(b, h.Name, h.V.Value))
	}
	meta := map[string]string{"format": "dmlgo-checkpoint-1"}
	if p.Card.Arch != "" {
		raw, err := json.Marshal(p.Card)
		if err != nil {
			return err
		}
		meta[cardKey] = string(raw)
	}
	if p.Opt != nil {
		tensors, counters := p.Opt.State()
		names := make([]string, 0, len(tensors))
		for n := range tensors {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			ts = append(ts, hostTensor(b, n, tensors[n]))
		}
		raw, _ := json.Marshal(counters)
		meta["dmlgo.optim"] = string(raw)
	}
	raw, err := json.Marshal(state)
	if err != nil {
		return err
	}
	meta["dmlgo.state"] = string(raw)
	return safetensors.WriteFile(path, ts, meta)
}

func hostTensor(b backend.Backend, name string, t *tensor.Tensor) safetensors.Tensor {
	host := make([]float32, t.Numel())
	b.Download(host, t)
	return safetensors.FromFloat32(name, t.Shape(), host)
}

// ReadFile reads a checkpoint, refusing a file that is not one.
func ReadFile(path string) (*safetensors.File, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if f.Metadata["format"] != "dmlgo-checkpoint-1" {
		return nil, fmt.Errorf("%s: not a dmlgo checkpoint (format %q)", path, f.Metadata["format"])
	}
	return f, nil
}

// ReadState reads a checkpoint and decodes its trainer state into state.
func ReadState(path string, state any) (*safetensors.File, error) {
	f, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(f.Metadata["dmlgo.state"]), state); err != nil {
		return nil, fmt.Errorf("%s: trainer state: %w", path, err)
	}
	return f, nil
}

// LoadCheckpoint restores the parts from a file read by ReadState. A
// checkpoint of another model or head is an error naming what differs; one
// whose tensors hold NaN or infinite values is an error naming the file,
// the tensor and how many values are not finite.
func LoadCheckpoint(path string, f *safetensors.File, b backend.Backend, p Parts) error {
	sub := &safetensors.File{Metadata: f.Metadata}
	var head, optim []safetensors.Tensor
	for _, t := range f.Tensors {
		switch {
		case len(t.Name) > 6 && t.Name[:6] == "model.":
			t.Name = t.Name[6:]
			sub.Tensors = append(sub.Tensors, t)
		case len(t.Name) > 5 && t.Name[:5] == "head.":
			head = append(head, t)
		default:
			optim = append(optim, t)
		}
	}
	if err := nn.LoadState(b, p.Model, sub, nn.LoadOptions{}); err != nil {
		return fmt.Errorf("%s: model: %w", path, err)
	}
	byName := map[string]safetensors.Tensor{}
	for _, t := range append(head, optim...) {
		byName[t.Name] = t
	}
	load := func(name string, dst *tensor.Tensor) error {
		t, ok := byName[name]
		if !ok {
			return fmt.Errorf("%s: %s is missing: a checkpoint of another head or optimizer?", path, name)
		}
		if !tensor.EqualShapes(t.Shape, dst.Shape()) {
			return fmt.Errorf("%s: %s has shape %v, the run expects %v: a checkpoint of another configuration?", path, name, t.Shape, dst.Shape())
		}
		v, err := t.Float32()
		if err != nil {
			return fmt.Errorf("%s: %s: %w", path, name, err)
		}
		if n := nn.CountNonFinite(v); n > 0 {
			return fmt.Errorf("%s: %s holds %d of %d values that are not finite (NaN or ±Inf: diverged or corrupt weights)", path, name, n, len(v))
		}
		b.Upload(dst, v)
		return nil
	}
	for _, h := range p.Head {
		if err := load(h.Name, h.V.Value); err != nil {
			return err
		}
	}
	if p.Opt != nil {
		tensors, _ := p.Opt.State()
		for n, t := range tensors {
			if err := load(n, t); err != nil {
				return err
			}
		}
		var counters map[string]int64
		if raw := f.Metadata["dmlgo.optim"]; raw != "" {
			if err := json.Unmarshal([]byte(raw), &counters); err != nil {
				return fmt.Errorf("%s: optimizer counters: %w", path, err)
			}
		}
		if len(counters) > 0 {
			if err := p.Opt.SetCounters(counters); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
	}
	return nil
}
