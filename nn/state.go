package nn

import (
	"fmt"
	"sort"
	"strings"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/safetensors"
	"github.com/dmlgo/dmlgo/tensor"
)

// StateTensors returns m's parameters and buffers as safetensors entries
// with PyTorch state_dict names: F32 values, I64 counters.
func StateTensors(b backend.Backend, m Module) []safetensors.Tensor {
	var out []safetensors.Tensor
	for _, p := range Params(m) {
		out = append(out, download(b, p.Name, p.V.Value))
	}
	for _, bf := range Buffers(m) {
		if bf.V.Counter != nil {
			out = append(out, safetensors.FromInt64(bf.Name, []int{}, []int64{*bf.V.Counter}))
			continue
		}
		out = append(out, download(b, bf.Name, bf.V.T))
	}
	return out
}

func download(b backend.Backend, name string, t *tensor.Tensor) safetensors.Tensor {
	host := make([]float32, t.Numel())
	b.Download(host, t)
	return safetensors.FromFloat32(name, t.Shape(), host)
}

// SaveState writes m's state (and any extra tensors) to path atomically.
func SaveState(path string, b backend.Backend, m Module, extra []safetensors.Tensor, meta map[string]string) error {
	ts := append(StateTensors(b, m), extra...)
	return safetensors.WriteFile(path, ts, meta)
}

// LoadOptions tune LoadState.
type LoadOptions struct {
	// Skip ignores file and model entries under these name prefixes (e.g.
	// "fc." when the classifier is replaced by an embedding head).
	Skip []string
	// AllowMissing leaves model entries absent from the file at their
	// current values instead of failing.
	AllowMissing bool
	// AllowExtra ignores file entries the model does not have.
	AllowExtra bool
}

func (o LoadOptions) skipped(name string) bool {
	for _, p := range o.Skip {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// LoadState copies the tensors of f into m's parameters and buffers by
// name. F16, BF16 and F64 values are converted to float32. A missing or
// extra tensor, a shape mismatch, an unreadable dtype or values that are
// not finite (NaN, ±Inf) are errors naming the tensor (and the count of
// such values); every tensor is checked before any is loaded, so on error
// m is left as it was.
func LoadState(b backend.Backend, m Module, f *safetensors.File, o LoadOptions) error {
	type slot struct {
		name    string
		t       *tensor.Tensor
		counter *int64
	}
	var slots []slot
	for _, p := range Params(m) {
		slots = append(slots, slot{name: p.Name, t: p.V.Value})
	}
	for _, bf := range Buffers(m) {
		slots = append(slots, slot{name: bf.Name, t: bf.V.T, counter: bf.V.Counter})
	}
	// Names first: a checkpoint of another architecture shows up as missing
	// and extra tensors, which says more than the first shape mismatch.
	want := map[string]bool{}
	var missing []string
	for _, s := range slots {
		if o.skipped(s.name) {
			continue
		}
		want[s.name] = true
		if _, ok := f.Get(s.name); !ok {
			missing = append(missing, s.name)
		}
	}
	var extra []string
	for _, n := range f.Names() {
		if !want[n] && !o.skipped(n) {
			extra = append(extra, n)
		}
	}
	var problems []string
	if len(missing) > 0 && !o.AllowMissing {
		problems = append(problems, fmt.Sprintf("%d tensors the model needs are missing from the file (%s)", len(missing), preview(missing)))
	}
	if len(extra) > 0 && !o.AllowExtra {
		problems = append(problems, fmt.Sprintf("%d tensors in the file are not in the model (%s)", len(extra), preview(extra)))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s; is this a checkpoint of another model?", strings.Join(problems, "; "))
	}
	// Every tensor is read and checked before any is loaded.
	type upload struct {
		s    slot
		vals []float32
	}
	var ups []upload
	var nonFinite []string
	for _, s := range slots {
		st, ok := f.Get(s.name)
		if !ok || o.skipped(s.name) {
			continue
		}
		vals, err := st.Float32()
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if s.counter != nil {
			if len(vals) != 1 {
				return fmt.Errorf("%s: want one integer counter, got shape %v", s.name, st.Shape)
			}
			ups = append(ups, upload{s, vals})
			continue
		}
		// A scalar and a one-element vector are the same thing.
		if !tensor.EqualShapes(st.Shape, s.t.Shape()) && !(len(vals) == 1 && s.t.Numel() == 1) {
			return shapeErr(s.name, st.Shape, s.t.Shape())
		}
		if n := CountNonFinite(vals); n > 0 {
			nonFinite = append(nonFinite, fmt.Sprintf("%s (%d of %d values)", s.name, n, len(vals)))
		}
		ups = append(ups, upload{s, vals})
	}
	if len(nonFinite) > 0 {
		what := "tensors hold"
		if len(nonFinite) == 1 {
			what = "tensor holds"
		}
		return fmt.Errorf("%d %s values that are not finite (NaN or ±Inf: diverged or corrupt weights): %s", len(nonFinite), what, preview(nonFinite))
	}
	for _, u := range ups {
		if u.s.counter != nil {
			*u.s.counter = int64(u.vals[0])
			continue
		}
		b.Upload(u.s.t, u.vals)
	}
	return nil
}

// CountNonFinite counts the NaN and infinite values of x.
func CountNonFinite(x []float32) int {
	n := 0
	for _, v := range x {
		if v-v != 0 { // NaN - NaN and Inf - Inf are NaN
			n++
		}
	}
	return n
}

// LoadStateFile reads path and loads it into m; errors name the file.
func LoadStateFile(path string, b backend.Backend, m Module, o LoadOptions) error {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return err
	}
	if err := LoadState(b, m, f, o); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func preview(names []string) string {
	sort.Strings(names)
	if len(names) > 6 {
		return strings.Join(names[:6], ", ") + ", …"
	}
	return strings.Join(names, ", ")
}
