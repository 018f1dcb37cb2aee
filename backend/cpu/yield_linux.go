//go:build linux

package cpu

import "syscall"

// yieldThread offers the CPU to another runnable thread (sched_yield); it
// returns at once when there is none.
func yieldThread() { syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
