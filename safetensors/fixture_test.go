package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fixture returns the path of a shared fixture file, skipping the test if it
// is absent. DMLGO_FIXTURES overrides the fixtures directory.
func fixture(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("DMLGO_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "fixtures")
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("fixture %s not available (set DMLGO_FIXTURES to the fixtures directory): %v", path, err)
	}
	return path
}

func TestResNet18Fixture(t *testing.T) {
	path := fixture(t, "resnet18_seed7.safetensors")
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != 122 {
		t.Errorf("%d tensors, want 122", len(f.Tensors))
	}
	if f.Metadata["format"] != "pt" || f.Metadata["source"] == "" {
		t.Errorf("metadata %v, want format=pt and a source", f.Metadata)
	}

	w, ok := f.Get("conv1.weight")
	if !ok || w.DType != "F32" || !slices.Equal(w.Shape, []int{64, 3, 7, 7}) {
		t.Fatalf("conv1.weight = %s %v (found %v), want F32 [64 3 7 7]", w.DType, w.Shape, ok)
	}
	v, err := w.Float32()
	if err != nil {
		t.Fatal(err)
	}
	nonzero := 0
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			t.Fatalf("conv1.weight[%d] = %v", i, x)
		}
		if x != 0 {
			nonzero++
		}
	}
	if len(v) != 64*3*7*7 || nonzero == 0 {
		t.Errorf("conv1.weight: %d values, %d nonzero", len(v), nonzero)
	}

	nb, ok := f.Get("bn1.num_batches_tracked")
	if !ok || nb.DType != "I64" || len(nb.Shape) != 0 || len(nb.Data) != 8 {
		t.Fatalf("bn1.num_batches_tracked = %s %v %d bytes (found %v), want an I64 scalar", nb.DType, nb.Shape, len(nb.Data), ok)
	}
	if n, err := nb.Float32(); err != nil || len(n) != 1 || n[0] < 0 {
		t.Errorf("bn1.num_batches_tracked = %v, %v", n, err)
	}

	// Names, shapes and dtypes match torchvision's state_dict, in its order.
	keysPath := fixture(t, "torchvision_resnet18_state_dict_keys.json")
	keysJSON, err := os.ReadFile(keysPath)
	if err != nil {
		t.Fatal(err)
	}
	var keys struct {
		StateDict []struct {
			Name  string `json:"name"`
			Shape []int  `json:"shape"`
			DType string `json:"dtype"`
		} `json:"state_dict"`
	}
	if err := json.Unmarshal(keysJSON, &keys); err != nil {
		t.Fatal(err)
	}
	dtypes := map[string]string{"float32": "F32", "int64": "I64"}
	if len(keys.StateDict) != len(f.Tensors) {
		t.Fatalf("%d tensors, state_dict has %d", len(f.Tensors), len(keys.StateDict))
	}
	for i, k := range keys.StateDict {
		got := f.Tensors[i]
		if got.Name != k.Name || got.DType != dtypes[k.DType] || !slices.Equal(got.Shape, k.Shape) {
			t.Errorf("tensor %d: %s %s %v, want %s %s %v", i, got.Name, got.DType, got.Shape, k.Name, k.DType, k.Shape)
		}
		if _, err := got.Float32(); err != nil {
			t.Error(err)
		}
	}

	// Rewriting keeps the data section byte for byte.
	out := filepath.Join(t.TempDir(), "copy.safetensors")
	if err := WriteFile(out, f.Tensors, f.Metadata); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(path)
	copied, _ := os.ReadFile(out)
	if !slices.Equal(dataSection(orig), dataSection(copied)) {
		t.Error("rewritten fixture has a different data section")
	}
	g, err := ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	equalTensors(t, g.Tensors, f.Tensors)
}

// TestResNet18IOFixture reads a file whose header the reference writer padded
// with trailing spaces.
func TestResNet18IOFixture(t *testing.T) {
	f, err := ReadFile(fixture(t, "resnet18_seed7_io.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Names(), []string{"input", "features", "logits"}) {
		t.Errorf("names %q", f.Names())
	}
	if x, _ := f.Get("logits"); !slices.Equal(x.Shape, []int{2, 1000}) {
		t.Errorf("logits shape %v", x.Shape)
	}
}

// dataSection returns the bytes after a well-formed file's header.
func dataSection(file []byte) []byte {
	n := binary.LittleEndian.Uint64(file)
	return file[8+n:]
}
