package nn

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/safetensors"
)

// TestLoadRefusesNonFinite: weights holding NaN (bytes set to 0xFF) or
// infinities are refused on load (a checkpoint, -pretrained weights), with
// an error naming the file, the tensor and the count of non-finite values;
// a skipped tensor (fc. under a replaced head) does not matter.
func TestLoadRefusesNonFinite(t *testing.T) {
	b := cpu.New(0)
	m, _ := NewResNet(b, ResNetConfig{Arch: "resnet-s", Out: 8})
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := SaveState(path, b, m, nil, nil); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range f.Tensors {
		switch f.Tensors[i].Name {
		case "conv1.weight":
			for j := 0; j < 12; j++ { // three values: 0xFFFFFFFF is a NaN
				f.Tensors[i].Data[j] = 0xFF
			}
		case "bn1.running_var":
			bits := math.Float32bits(float32(math.Inf(1)))
			f.Tensors[i].Data[0], f.Tensors[i].Data[1], f.Tensors[i].Data[2], f.Tensors[i].Data[3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
		case "fc.weight":
			for j := range f.Tensors[i].Data {
				f.Tensors[i].Data[j] = 0xFF
			}
		}
	}
	bad := filepath.Join(dir, "bad.safetensors")
	if err := safetensors.WriteFile(bad, f.Tensors, f.Metadata); err != nil {
		t.Fatal(err)
	}
	fresh, _ := NewResNet(b, ResNetConfig{Arch: "resnet-s", Out: 8})
	err = LoadStateFile(bad, b, fresh, LoadOptions{Skip: []string{"fc."}})
	if err == nil {
		t.Fatal("NaN weights loaded")
	}
	for _, want := range []string{bad, "conv1.weight", "3 of", "bn1.running_var", "1 of", "not finite"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "fc.weight") {
		t.Errorf("error %q names the skipped fc.weight", err)
	}
}
