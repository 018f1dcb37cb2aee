package procmem

import (
	"os"
	"testing"
)

func TestPeakRSS(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	self, err := PeakRSS(0)
	if err != nil || self < 1<<20 {
		t.Fatalf("PeakRSS(self) = %d, %v", self, err)
	}
	if byPid, err := PeakRSS(os.Getpid()); err != nil || byPid < self {
		t.Errorf("PeakRSS(pid) = %d, %v; self %d", byPid, err, self)
	}
	if _, err := Field("/proc/self/status", "NoSuchKey"); err == nil {
		t.Error("a missing key gave no error")
	}
}
