package main

// The anchors: the reference scripts run side by side, and peak memory.

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/cpu"

	_ "github.com/dmlgo/dmlgo/backend/cuda"
	"github.com/dmlgo/dmlgo/internal/procmem"
)

// runAnchor runs a reference script with the first python3 that imports
// module, and parses its `name value unit` lines. Problems are reported on
// stderr and give no anchor figures.
func runAnchor(module string, env []string, args ...string) map[string]float64 {
	py := findPython(module)
	if py == "" {
		fmt.Fprintf(os.Stderr, "bench: no python3 with %s found: anchor %s skipped\n", module, filepath.Base(args[0]))
		return nil
	}
	cmd := exec.Command(py, args...)
	cmd.Env = append(os.Environ(), env...)
	// OpenBLAS core-type pins slow a current numpy down (see the env notes):
	// the anchor runs without them, unless OpenBLAS does not know this CPU.
	cmd.Env = dropEnv(cmd.Env, "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
	if core := openblasPin(py); core != "" {
		cmd.Env = append(cmd.Env, "OPENBLAS_CORETYPE="+core)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: anchor %s failed: %v\n%s", filepath.Base(args[0]), err, errb.String())
		return nil
	}
	res := map[string]float64{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				res[f[0]] = v
			}
		}
	}
	return res
}

// openblasPin returns the OpenBLAS core type the anchors must be pinned to,
// or "" when OpenBLAS's own choice stands. An OpenBLAS older than the CPU
// (Debian 12's 0.3.21 on an Emerald Rapids Xeon) takes it for a Prescott and
// runs SSE3 kernels at a quarter of its speed, which would make every ratio
// against it a fake; then the anchors run on the SkylakeX kernels where the
// CPU has AVX-512 and the Haswell ones where it has AVX2, and a line on
// stderr says so. The probe runs once per python.
func openblasPin(py string) string {
	pinMu.Lock()
	defer pinMu.Unlock()
	if core, ok := pinned[py]; ok {
		return core
	}
	cmd := exec.Command(py, "-c", "import numpy")
	cmd.Env = append(dropEnv(os.Environ(), "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"), "OPENBLAS_VERBOSE=2")
	out, _ := cmd.CombinedOutput()
	core := pinFor(openblasCore(string(out)), cpu.X86.HasAVX512F, cpu.X86.HasAVX2 && cpu.X86.HasFMA)
	if core != "" {
		fmt.Fprintf(os.Stderr, "bench: OpenBLAS took this CPU for a %s: the anchors run with OPENBLAS_CORETYPE=%s\n", openblasCore(string(out)), core)
	}
	pinned[py] = core
	return core
}

var (
	pinMu  sync.Mutex
	pinned = map[string]string{}
)

// openblasCore reads the core OpenBLAS chose from its OPENBLAS_VERBOSE=2
// output ("Core: Haswell"); "" when the output has no such line.
func openblasCore(verbose string) string {
	for _, line := range strings.Split(verbose, "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "Core: "); ok {
			return strings.TrimSpace(name)
		}
	}
	return ""
}

// pinFor is the pin for OpenBLAS's choice core on a CPU with the given
// features: only a generic fallback below the CPU's vector width is pinned.
func pinFor(core string, avx512, avx2 bool) string {
	switch core {
	case "Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Katmai", "Coppermine", "Northwood", "Banias", "Atom":
	default:
		return ""
	}
	switch {
	case avx512:
		return "SkylakeX"
	case avx2:
		return "Haswell"
	}
	return ""
}

func findPython(module string) string {
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", "import "+module).Run() == nil {
			return py
		}
	}
	return ""
}

func dropEnv(env []string, names ...string) []string {
	out := env[:0:0]
	for _, kv := range env {
		keep := true
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

// peakRSS reads the process's high-water resident size (Linux), in bytes;
// 0 where /proc is missing.
func peakRSS() int64 {
	n, _ := procmem.PeakRSS(0)
	return n
}
