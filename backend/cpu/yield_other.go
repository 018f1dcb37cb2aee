//go:build !linux

package cpu

// yieldThread would offer the CPU to another runnable thread; outside
// Linux the waits rely on runtime.Gosched alone.
func yieldThread() {}
