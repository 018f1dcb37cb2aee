//go:build linux

package cpu

import (
	"syscall"
	"unsafe"
)

// adviseHuge asks the kernel to back the 2 MiB-aligned pages inside the
// size bytes from p with transparent huge pages (madvise MADV_HUGEPAGE),
// for buffers of hugeMin bytes or more. Pages faulted in after the advice
// come as huge pages, where the system's setting allows them ("always" or
// "madvise" in /sys/kernel/mm/transparent_hugepage/enabled; "never"
// ignores it). A kernel without them refuses the advice, which changes
// nothing.
func adviseHuge(p unsafe.Pointer, size uintptr) {
	off, n := hugeRange(uintptr(p), size)
	if n == 0 {
		return
	}
	_ = syscall.Madvise(unsafe.Slice((*byte)(p), size)[off:off+n], syscall.MADV_HUGEPAGE)
}
