//go:build linux && (amd64 || arm64)

package cuda

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cuda/internal/fakecuda"
)

// TestKernelTable: the Go side's kernel list is exactly the kernels the
// sources define, and the committed PTX declares every one for sm_80.
func TestKernelTable(t *testing.T) {
	_, names, err := fakecuda.Kernels()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	ours := KernelNames()
	sort.Strings(ours)
	if strings.Join(names, " ") != strings.Join(ours, " ") {
		t.Errorf("kernels in the .cu files:\n%v\nkernels the backend looks up:\n%v", names, ours)
	}
	srcs, _, err := loadPTX()
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, s := range srcs {
		if !bytes.Contains(s.text, []byte("\n.target sm_80\n")) {
			t.Errorf("%s does not target sm_80", s.name)
		}
		all = append(all, s.text...)
	}
	for _, n := range ours {
		if !bytes.Contains(all, []byte(".entry "+n+"(")) {
			t.Errorf("no PTX declares kernel %s (run kernels/gen.sh)", n)
		}
	}
}

// TestOpCodes: the op codes the Go side passes (backend's constants) are
// the enums of the kernels, name for name.
func TestOpCodes(t *testing.T) {
	dir, err := fakecuda.KernelDir()
	if err != nil {
		t.Fatal(err)
	}
	enum := func(file, prefix string) []string {
		src, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`enum\s*\{([^}]*\b` + prefix + `[^}]*)\}`).FindSubmatch(src)
		if m == nil {
			t.Fatalf("%s: no enum of %s", file, prefix)
		}
		var out []string
		for _, f := range strings.Split(string(m[1]), ",") {
			out = append(out, strings.ToLower(strings.TrimPrefix(strings.TrimSpace(f), prefix)))
		}
		return out
	}
	check := func(what string, got []string, name func(i int) string, n int) {
		if len(got) != n {
			t.Errorf("%s: %d codes in the kernels, %d in Go", what, len(got), n)
		}
		for i := 0; i < min(n, len(got)); i++ {
			if want := strings.ReplaceAll(name(i), "/", "_"); got[i] != want {
				t.Errorf("%s code %d: kernel %q, Go %q", what, i, got[i], want)
			}
		}
	}
	check("unary", enum("elementwise.cu", "U_"), func(i int) string { return backend.UnaryOp(i).String() }, int(backend.NumUnaryOps))
	check("binary", enum("elementwise.cu", "B_"), func(i int) string { return backend.BinaryOp(i).String() }, int(backend.NumBinaryOps))
	check("reduce", enum("reduce.cu", "R_"), func(i int) string { return backend.ReduceOp(i).String() }, int(backend.NumReduceOps))
	check("margin", enum("margin.cu", "K_"), func(i int) string { return backend.MarginKind(i).String() }, int(backend.NumMarginKinds))
	// bn.cu numbers its phases explicitly ("BN_MEAN = 0").
	phases := []string{
		fmt.Sprintf("mean = %d", bnMean), fmt.Sprintf("var = %d", bnVar),
		fmt.Sprintf("backward = %d", bnBackward), fmt.Sprintf("eval = %d", bnEval),
	}
	if got := enum("bn.cu", "BN_"); strings.Join(got, ", ") != strings.Join(phases, ", ") {
		t.Errorf("batch-norm phases: kernel %q, Go %q", got, phases)
	}
}

// TestPTXUpToDate regenerates the PTX with nvcc, where there is one, and
// compares it with the committed files.
func TestPTXUpToDate(t *testing.T) {
	if _, err := exec.LookPath("nvcc"); err != nil {
		t.Skip("nvcc not on PATH: the committed PTX is not regenerated here")
	}
	ver, _ := exec.Command("nvcc", "--version").Output()
	committed, err := embeddedPTX.ReadFile("kernels/gemm.ptx")
	if err != nil {
		t.Fatal(err)
	}
	// PTX text depends on the compiler's version: compare only with the
	// nvcc that made the committed files ("…, release 11.8, V11.8.89").
	tool := regexp.MustCompile(`release [0-9.]+, V[0-9.]+`)
	here, then := tool.Find(ver), tool.Find(committed)
	if here == nil || then == nil || !bytes.Equal(here, then) {
		t.Skipf("nvcc here is %q, the committed PTX came from %q: not comparable", here, then)
	}
	out := t.TempDir()
	cmd := exec.Command("sh", "kernels/gen.sh", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen.sh: %v\n%s", err, msg)
	}
	fresh, _ := filepath.Glob(filepath.Join(out, "*.ptx"))
	for _, f := range fresh {
		got, _ := os.ReadFile(f)
		want, err := embeddedPTX.ReadFile("kernels/" + filepath.Base(f))
		if err != nil {
			t.Errorf("%s is not committed", filepath.Base(f))
			continue
		}
		// nvcc names internal symbols with a hash of the source's path
		// (_INTERNAL_afdc0ce8_…): compare without it.
		if !bytes.Equal(internalHash.ReplaceAll(got, []byte("_INTERNAL_")), internalHash.ReplaceAll(want, []byte("_INTERNAL_"))) {
			t.Errorf("kernels/%s differs from what this nvcc makes of the source (run kernels/gen.sh; nvcc here: %s)",
				filepath.Base(f), lastLine(ver))
		}
	}
}

var internalHash = regexp.MustCompile(`_INTERNAL_[0-9a-f]+_`)

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// TestPTXAssembles runs ptxas, where there is one, on the committed PTX
// for Ampere and Hopper: what the driver's JIT will do when it loads it.
// It reports each kernel's registers and spills.
func TestPTXAssembles(t *testing.T) {
	if _, err := exec.LookPath("ptxas"); err != nil {
		t.Skip("ptxas not on PATH")
	}
	srcs, _, err := loadPTX()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, arch := range []string{"sm_80", "sm_90"} {
		for _, s := range srcs {
			in := filepath.Join(dir, s.name)
			if err := os.WriteFile(in, s.text, 0o644); err != nil {
				t.Fatal(err)
			}
			msg, err := exec.Command("ptxas", "-arch="+arch, "-v", "-o", os.DevNull, in).CombinedOutput()
			if err != nil {
				t.Errorf("ptxas -arch=%s %s: %v\n%s", arch, s.name, err, msg)
				continue
			}
			if arch == "sm_90" {
				t.Logf("%s", summarisePtxas(msg))
			}
			if bytes.Contains(msg, []byte("bytes spill stores")) && !bytes.Contains(msg, []byte(" 0 bytes spill stores")) {
				t.Logf("%s spills registers on %s", s.name, arch)
			}
		}
	}
}

var ptxasEntry = regexp.MustCompile(`Compiling entry function '(\w+)'[\s\S]*?Used (\d+) registers`)

func summarisePtxas(msg []byte) string {
	var parts []string
	for _, m := range ptxasEntry.FindAllSubmatch(msg, -1) {
		parts = append(parts, fmt.Sprintf("%s %s regs", m[1], m[2]))
	}
	return strings.Join(parts, ", ")
}
