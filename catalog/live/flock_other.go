//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package live

import "os"

// flock does nothing where flock(2) is missing: two processes writing one
// catalog at once are then not kept apart (one process is: see
// Catalog.mu).
func flock(f *os.File) error { return nil }

func funlock(f *os.File) {}
