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
	// the anchor runs without them.
	cmd.Env = dropEnv(cmd.Env, "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
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
