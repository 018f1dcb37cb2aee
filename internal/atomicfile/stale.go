package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix is how the temporary file of a Write to path begins: a dot,
// the base name and ".tmp-", then os.CreateTemp's random digits.
func TempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// RemoveStale removes from dir the temporary files that interrupted Writes
// of the named files left behind (TempPrefix then digits only; nothing
// else is touched) and returns their paths. A Write in progress has such a
// file too: call it only when no other process can be writing into dir
// (while holding the folder's lock).
func RemoveStale(dir string, names ...string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !isTemp(e.Name(), names) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}

// isTemp reports whether file is the temporary file of a Write of one of
// names.
func isTemp(file string, names []string) bool {
	for _, n := range names {
		rest, ok := strings.CutPrefix(file, TempPrefix(n))
		if ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
			return true
		}
	}
	return false
}
