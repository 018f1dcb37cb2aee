//go:build !linux

package cpu

import "unsafe"

// adviseHuge does nothing here: transparent huge pages are asked for on
// Linux only (huge_linux.go).
func adviseHuge(p unsafe.Pointer, size uintptr) {}
