package cpu

import (
	"os"
	"testing"
)

// bf16EnvMode is the mode DMLGO_BF16 gave at init, before TestMain set it.
var bf16EnvMode WinogradMode

// TestMain runs the package's tests of Precision BF16 on the bfloat16
// kernels wherever they can run, however fast they are on this CPU (an
// Emerald Rapids Xeon runs them at half the float32 rate, where auto
// would leave them out); TestBF16Auto tests auto's choice.
func TestMain(m *testing.M) {
	bf16EnvMode = WinogradMode(bf16Mode.Load())
	bf16Mode.Store(int32(WinogradAlways))
	os.Exit(m.Run())
}
