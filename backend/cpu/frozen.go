package cpu

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
	"weak"

	"github.com/dmlgo/dmlgo/tensor"
)

// Frozen weights: a model loaded for inference declares its weights
// unchanging (backend.Freeze), and the convolutions keep their filters
// packed for the GEMM kernel from the first call on, instead of packing
// every filter on every call (for ResNet-50 at batch 1, a fifth of the
// time). The packs follow the kernel and the k blocking in use when made;
// a change of either (tests force SIMD levels and block sizes) makes new
// ones.

// SetPrecision sets the arithmetic of frozen convolutions ("fp32", "bf16"
// or "int8"; see lowp.go) and returns what will run, with the reason when
// it is not what was asked: BF16 needs AVX-512 BF16 that beats float32
// here (bf16Runs), INT8 AVX-512 VNNI, and both the AVX-512 level.
// Training (unfrozen weights) is always float32.
func (b *Backend) SetPrecision(name string) (string, error) {
	var p Precision
	switch name {
	case "", "fp32":
		p = FP32
	case "bf16":
		p = BF16
	case "int8":
		p = INT8
	default:
		return "", fmt.Errorf("cpu: unknown precision %q (want fp32, bf16 or int8)", name)
	}
	b.precision.Store(int32(p))
	return b.EffectivePrecision(), nil
}

// EffectivePrecision says what frozen convolutions run in now, and why
// when it is not the precision set.
func (b *Backend) EffectivePrecision() string {
	p := Precision(b.precision.Load())
	switch {
	case p == FP32 || b.ref:
		return "fp32"
	case p == BF16 && bf16Kernel.fn == nil:
		return "fp32 (bf16 asked for, but this CPU or build has no AVX-512 BF16)"
	case p == INT8 && i8Kernel.fn == nil:
		return "fp32 (int8 asked for, but this CPU or build has no AVX-512 VNNI)"
	case ActiveLevel() != AVX512:
		return fmt.Sprintf("fp32 (%v asked for, but the SIMD level is %v)", p, ActiveLevel())
	case p == INT8:
		return "int8 (AVX-512 VNNI)"
	case WinogradMode(bf16Mode.Load()) == WinogradNever:
		return "fp32 (bf16 asked for, but DMLGO_BF16=never)"
	case !bf16Runs():
		return fmt.Sprintf("fp32 (bf16 asked for, but this CPU's AVX-512 BF16 kernel multiplies at %.2f× the float32 kernel's rate; DMLGO_BF16=always runs it anyway)", bf16Gain())
	}
	return "bf16 (AVX-512 BF16)"
}

// frozenSet maps the address of a frozen tensor's first element to its
// entry. Neither the keys nor the entries keep the values alive: each
// entry holds a weak pointer to them, and a cleanup removes it once they
// are collected (a process that loads one checkpoint after another on
// the shared backend used to keep every one, packed in each precision it
// ran). An entry counts only while its weak pointer still gives the
// values it was made for, so a new tensor at a collected one's address is
// never taken for it. Lookups make no weak pointer (that would allocate a
// handle for every tensor asked about).
type frozenSet struct {
	mu sync.Mutex
	m  map[uintptr]*frozenEntry
	n  atomic.Int32 // len(m), read without the lock
}

type frozenEntry struct {
	w     weak.Pointer[float32] // the first value
	n     int                   // number of values
	packs map[packKey][]packedA
	wg    map[packKey]*wgFilters // Winograd's transformed filters (groups: the output tile)
	lanes *[]float32             // the lanes path's filter (lanesPack)
	// lanesBF16 is the lanes path's filter in bfloat16 (lanesPackBF16).
	lanesBF16 *[]float32
}

type packKey struct {
	groups, m, k, mr, kc int
	bf16, i8             bool
}

// lookup is the entry of the frozen tensor whose n values are w (under
// the lock), or nil.
func (f *frozenSet) lookup(w []float32) *frozenEntry {
	p := unsafe.SliceData(w)
	e := f.m[uintptr(unsafe.Pointer(p))]
	if e == nil || e.n != len(w) || e.w.Value() != p {
		return nil
	}
	return e
}

// FreezeWeights implements backend.WeightFreezer.
func (b *Backend) FreezeWeights(ts ...*tensor.Tensor) {
	if b.ref {
		return
	}
	b.frozen.mu.Lock()
	defer b.frozen.mu.Unlock()
	if b.frozen.m == nil {
		b.frozen.m = map[uintptr]*frozenEntry{}
	}
	for _, t := range ts {
		w := t.HostData()
		if len(w) == 0 || b.frozen.lookup(w) != nil {
			continue
		}
		p := unsafe.SliceData(w)
		at := uintptr(unsafe.Pointer(p))
		b.frozen.m[at] = &frozenEntry{w: weak.Make(p), n: len(w), packs: map[packKey][]packedA{}, wg: map[packKey]*wgFilters{}}
		runtime.AddCleanup(p, b.forgetFrozen, at)
	}
	b.frozen.n.Store(int32(len(b.frozen.m)))
}

// forgetFrozen drops the entry at address at once its values are
// collected (not one made since for new values there).
func (b *Backend) forgetFrozen(at uintptr) {
	b.frozen.mu.Lock()
	defer b.frozen.mu.Unlock()
	if e := b.frozen.m[at]; e != nil && e.w.Value() == nil {
		delete(b.frozen.m, at)
	}
	b.frozen.n.Store(int32(len(b.frozen.m)))
}

// thaw forgets what was derived from the values at w (an Upload into a
// frozen tensor).
func (b *Backend) thaw(w []float32) {
	if len(w) == 0 {
		return
	}
	b.frozen.mu.Lock()
	defer b.frozen.mu.Unlock()
	wlo := uintptr(unsafe.Pointer(unsafe.SliceData(w)))
	whi := wlo + uintptr(4*len(w))
	for at, e := range b.frozen.m {
		// Any overlap: the upload may cover part of a frozen tensor.
		if wlo < at+uintptr(4*e.n) && at < whi {
			delete(b.frozen.m, at)
		}
	}
	b.frozen.n.Store(int32(len(b.frozen.m)))
}

// packedFilters returns each group's filter packed (w holds groups
// filters of m×k): the frozen tensor's packs, made once, when w is a
// frozen tensor's whole data; otherwise packed now into a pooled buffer,
// fp, which the caller returns to filterPool.
func (b *Backend) packedFilters(groups, m, k int, w []float32) (packs []packedA, fp *[]packedA) {
	if len(w) > 0 && b.frozen.n.Load() > 0 {
		b.frozen.mu.Lock()
		e := b.frozen.lookup(w)
		if e != nil && e.n == groups*m*k {
			kern := activeKernel()
			switch prec := Precision(b.precision.Load()); {
			case prec == BF16 && bf16Runs():
				kern = bf16Kernel
			case prec == INT8 && i8Ready():
				kern = i8Kernel
			}
			key := packKey{groups, m, k, kern.mr, kern.kc(), kern.bf16, kern.i8}
			ps, ok := e.packs[key]
			if !ok {
				ps = make([]packedA, groups)
				for g := range ps {
					ps[g].pack(kern, false, m, k, w[g*m*k:], k)
				}
				e.packs[key] = ps
			}
			b.frozen.mu.Unlock()
			return ps, nil
		}
		b.frozen.mu.Unlock()
	}
	fp = packFilters(groups, m, k, w)
	return *fp, fp
}

// frozenWeights reports whether w is a frozen tensor's whole data.
func (b *Backend) frozenWeights(w []float32) bool {
	if len(w) == 0 || b.frozen.n.Load() == 0 {
		return false
	}
	b.frozen.mu.Lock()
	defer b.frozen.mu.Unlock()
	return b.frozen.lookup(w) != nil
}

// winogradFilters returns w's K×C filters (3×3) transformed for
// F(out×out, 3×3) and packed for the kernel that runs (wgFilters.set):
// the frozen tensor's, made once (for the bfloat16 kernel when that is
// the precision set and out is 2), when w is a frozen tensor's whole
// data; otherwise made now into a pooled one, which the caller returns to
// wgFilterPool (pooled).
func (b *Backend) winogradFilters(out, K, C int, w []float32) (f *wgFilters, pooled bool) {
	kern := activeKernel()
	if len(w) > 0 && b.frozen.n.Load() > 0 {
		b.frozen.mu.Lock()
		e := b.frozen.lookup(w)
		if e != nil && e.n == K*C*9 {
			if Precision(b.precision.Load()) == BF16 && bf16Runs() && out == 2 {
				kern = bf16Kernel
			}
			key := packKey{out, K, C, kern.mr, kern.kc(), kern.bf16, false}
			f, ok := e.wg[key]
			if !ok {
				f = &wgFilters{}
				f.set(kern, out, K, C, w, b.Threads())
				e.wg[key] = f
			}
			b.frozen.mu.Unlock()
			return f, false
		}
		b.frozen.mu.Unlock()
	}
	f = wgFilterPool.get()
	f.set(kern, out, K, C, w, b.Threads())
	return f, true
}
