package data

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Kinds of warning counted while building manifests and loading images.
const (
	WarnMissingImage  = "missing image"
	WarnCorruptImage  = "corrupt image"
	WarnBoxClamped    = "bbox clamped to the image"
	WarnBoxEmpty      = "bbox outside the image (whole image used)"
	WarnNoBox         = "image without bbox"
	WarnQueryExcluded = "query excluded: item absent from the gallery"

	// Annotation lists (examples are file:line).
	WarnListBOM        = "UTF-8 byte-order mark at the start of a list (stripped)"
	WarnListCount      = "list's count line disagrees with its rows (rows kept)"
	WarnBoxNoArea      = "bbox row with x_2 <= x_1 or y_2 <= y_1 (box dropped, whole image used)"
	WarnBoxDuplicate   = "second bbox row for an image (dropped, the first kept)"
	WarnSourceMismatch = "bbox row's source_type disagrees with the pair list (row's box and type dropped)"
	WarnBoxUnused      = "bbox row for an image no pair lists (ignored)"
)

// maxExamples is how many examples a Warnings keeps per kind.
const maxExamples = 3

// Warnings counts recoverable problems by kind and keeps the first few
// examples of each. It is safe for concurrent use, and a nil *Warnings
// ignores everything (so callers need not check).
type Warnings struct {
	mu       sync.Mutex
	counts   map[string]int
	examples map[string][]string
}

// NewWarnings returns an empty counter.
func NewWarnings() *Warnings {
	return &Warnings{counts: map[string]int{}, examples: map[string][]string{}}
}

// Add counts one problem of the given kind; example (a path, a file:line)
// is kept if fewer than a few examples of that kind are held.
func (w *Warnings) Add(kind, example string) { w.AddN(kind, 1, example) }

// AddN counts n problems of the given kind with one example.
func (w *Warnings) AddN(kind string, n int, example string) {
	if w == nil || n <= 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.counts == nil {
		w.counts, w.examples = map[string]int{}, map[string][]string{}
	}
	w.counts[kind] += n
	if example != "" && len(w.examples[kind]) < maxExamples {
		w.examples[kind] = append(w.examples[kind], example)
	}
}

// Count returns how many problems of kind were counted.
func (w *Warnings) Count(kind string) int {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts[kind]
}

// Total returns the number of problems of all kinds.
func (w *Warnings) Total() int {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, c := range w.counts {
		n += c
	}
	return n
}

// Kinds returns the kinds counted so far, sorted.
func (w *Warnings) Kinds() []string {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	ks := make([]string, 0, len(w.counts))
	for k := range w.counts {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Examples returns the examples kept for kind.
func (w *Warnings) Examples(kind string) []string {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.examples[kind]...)
}

// Merge adds o's counts and examples to w.
func (w *Warnings) Merge(o *Warnings) {
	if w == nil || o == nil || w == o {
		return
	}
	for _, k := range o.Kinds() {
		n, ex := o.Count(k), o.Examples(k)
		w.mu.Lock()
		if w.counts == nil {
			w.counts, w.examples = map[string]int{}, map[string][]string{}
		}
		w.counts[k] += n
		for _, e := range ex {
			if len(w.examples[k]) < maxExamples {
				w.examples[k] = append(w.examples[k], e)
			}
		}
		w.mu.Unlock()
	}
}

// String lists the counts, one kind per line, with examples:
//
//	2 missing image (e.g. img/a.jpg, img/b.jpg)
func (w *Warnings) String() string {
	var b strings.Builder
	for _, k := range w.Kinds() {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%d %s", w.Count(k), k)
		if ex := w.Examples(k); len(ex) > 0 {
			fmt.Fprintf(&b, " (e.g. %s)", strings.Join(ex, ", "))
		}
	}
	return b.String()
}

// MarshalJSON writes {"kind": {"count": n, "examples": [...]}, ...}.
func (w *Warnings) MarshalJSON() ([]byte, error) {
	type entry struct {
		Count    int      `json:"count"`
		Examples []string `json:"examples,omitempty"`
	}
	out := map[string]entry{}
	for _, k := range w.Kinds() {
		out[k] = entry{w.Count(k), w.Examples(k)}
	}
	return json.Marshal(out)
}
