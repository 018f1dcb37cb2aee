package atomicfile

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestRemoveStale: the temporary files of interrupted writes of the named
// files go; everything else (other names, other patterns, folders, the
// targets themselves) stays.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	// A real temporary name, as Write makes it.
	tmp, err := os.CreateTemp(dir, TempPrefix("last.ckpt")+"*")
	if err != nil {
		t.Fatal(err)
	}
	tmp.Close()
	stale := []string{filepath.Base(tmp.Name()), ".metrics.json.tmp-1", ".report.md.tmp-4294967295"}
	keep := []string{"last.ckpt", ".last.ckpt.tmp-", ".last.ckpt.tmp-12x", ".other.tmp-5", "x.last.ckpt.tmp-5", ".last.ckpt.tmp5", "notes.txt"}
	for _, n := range append(slices.Clone(stale), keep...) {
		os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644)
	}
	os.Mkdir(filepath.Join(dir, ".best.ckpt.tmp-7"), 0o755) // a folder: not ours
	removed, err := RemoveStale(dir, "last.ckpt", "best.ckpt", "metrics.json", "report.md")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range removed {
		got = append(got, filepath.Base(p))
	}
	slices.Sort(got)
	slices.Sort(stale)
	if !slices.Equal(got, stale) {
		t.Errorf("removed %v, want %v", got, stale)
	}
	for _, n := range append(keep, ".best.ckpt.tmp-7") {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s was removed", n)
		}
	}
}
