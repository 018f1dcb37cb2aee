package backend

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
)

// Factory opens a backend. It returns an error when the device is absent
// (no driver, no GPU), with a reason a person can act on.
type Factory func() (Backend, error)

var (
	regMu     sync.Mutex
	factories = map[string]Factory{}
	opened    = map[string]Backend{}
)

// Register makes a backend available under name. Backends register from
// their package init; a program imports the ones it wants.
func Register(name string, f Factory) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := factories[name]; dup {
		panic("backend: Register called twice for " + name)
	}
	factories[name] = f
}

// Names lists the registered backends.
func Names() []string {
	regMu.Lock()
	defer regMu.Unlock()
	var names []string
	for n := range factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Select opens a backend by name: "cpu", "cuda", or "auto" (CUDA when it
// opens, else the CPU). An empty name means the DMLGO_DEVICE environment
// variable, or "auto" when that is unset. It returns the backend and one line
// saying what was chosen and why.
func Select(name string) (Backend, string, error) {
	src := "flag"
	if name == "" {
		name, src = os.Getenv("DMLGO_DEVICE"), "DMLGO_DEVICE"
		if name == "" {
			name, src = "auto", "default"
		}
	}
	name = strings.ToLower(strings.TrimSpace(name))
	if name != "auto" {
		b, err := open(name)
		if err != nil {
			return nil, "", fmt.Errorf("device %q (from %s): %w", name, src, err)
		}
		return b, fmt.Sprintf("device %s (asked for by %s): %s", name, src, b.Describe()), nil
	}
	var why string
	if _, ok := lookup("cuda"); ok {
		b, err := open("cuda")
		if err == nil {
			return b, "device auto: chose cuda: " + b.Describe(), nil
		}
		why = err.Error()
	} else {
		why = "no cuda backend in this build"
	}
	b, err := open("cpu")
	if err != nil {
		return nil, "", fmt.Errorf("device auto: cpu: %w", err)
	}
	return b, fmt.Sprintf("device auto: chose cpu (%s): %s", why, b.Describe()), nil
}

// Options tune a backend as SelectWith opens it.
type Options struct {
	// Threads is the compute threads of a backend that has a thread count
	// (the CPU's; 0: its default, all cores). Others ignore it.
	Threads int
}

// ThreadSetter is implemented by backends whose compute threads can be set
// (the CPU).
type ThreadSetter interface {
	SetThreads(n int)
}

// SetThreads sets b's compute threads when it has a thread count, and
// reports whether it has; callers need not know the concrete backend.
func SetThreads(b Backend, n int) bool {
	ts, ok := b.(ThreadSetter)
	if ok {
		ts.SetThreads(n)
	}
	return ok
}

// SelectWith is Select with options applied; the line it returns describes
// the backend as configured (its thread count, say).
func SelectWith(name string, o Options) (Backend, string, error) {
	b, why, err := Select(name)
	if err != nil {
		return nil, "", err
	}
	if o.Threads > 0 {
		desc := b.Describe()
		if SetThreads(b, o.Threads) {
			why = strings.TrimSuffix(why, desc) + b.Describe()
		}
	}
	return b, why, nil
}

// MustSelect is Select for tests and examples: it panics on error.
func MustSelect(name string) Backend {
	b, _, err := Select(name)
	if err != nil {
		panic(err)
	}
	return b
}

func lookup(name string) (Factory, bool) {
	regMu.Lock()
	defer regMu.Unlock()
	f, ok := factories[name]
	return f, ok
}

// open returns the one shared instance of a backend, opening it once.
func open(name string) (Backend, error) {
	f, ok := lookup(name)
	if !ok {
		return nil, fmt.Errorf("backend %q is not available (registered: %s)", name, strings.Join(Names(), ", "))
	}
	regMu.Lock()
	b := opened[name]
	regMu.Unlock()
	if b != nil {
		return b, nil
	}
	b, err := f()
	if err != nil {
		return nil, err
	}
	regMu.Lock()
	defer regMu.Unlock()
	if prev := opened[name]; prev != nil {
		return prev, nil
	}
	opened[name] = b
	return b, nil
}
