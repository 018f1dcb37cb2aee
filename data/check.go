package data

import (
	"fmt"
	"image"
	"sync/atomic"

	"github.com/dmlgo/dmlgo/internal/parallel"
)

// CheckMode says how thoroughly Manifest.Check looks at the image files.
type CheckMode uint8

const (
	// CheckNone trusts the manifest.
	CheckNone CheckMode = iota
	// CheckExists stats every file.
	CheckExists
	// CheckHeader reads every file's header: catches missing files and most
	// corrupt ones, and learns the image size so boxes can be clamped.
	CheckHeader
	// CheckDecode decodes every image fully: catches truncated files too.
	CheckDecode
)

var checkNames = [...]string{"none", "exists", "header", "decode"}

// String returns none, exists, header or decode.
func (c CheckMode) String() string {
	if int(c) < len(checkNames) {
		return checkNames[c]
	}
	return fmt.Sprintf("CheckMode(%d)", uint8(c))
}

// ParseCheckMode parses none, exists, header or decode.
func ParseCheckMode(s string) (CheckMode, error) {
	for i, n := range checkNames {
		if s == n {
			return CheckMode(i), nil
		}
	}
	return 0, fmt.Errorf("check mode %q is not none, exists, header or decode", s)
}

// CheckOptions tune Manifest.Check.
type CheckOptions struct {
	Mode CheckMode
	// Strict makes a missing or corrupt image an error instead of a
	// counted, skipped row.
	Strict bool
	// Workers is the number of goroutines (default GOMAXPROCS).
	Workers int
	// Progress, when set, is called now and then with the rows done.
	Progress func(done, total int)
}

// Check looks at every row's image as opts.Mode says and returns a manifest
// without the rows whose image is missing or corrupt (counted in the
// returned manifest's Warnings, or an error naming the file when Strict).
// Modes that learn the image size also clamp boxes to the image (counted);
// a box entirely outside is dropped (the whole image is used, counted).
// m itself is not modified.
func (m *Manifest) Check(opts CheckOptions) (*Manifest, error) {
	out := *m
	out.Rows = append([]Row(nil), m.Rows...)
	out.Warnings = NewWarnings()
	out.Warnings.Merge(m.Warnings)
	if opts.Mode == CheckNone {
		return &out, nil
	}
	type result struct {
		err  error
		size image.Point // zero when unknown
	}
	res := make([]result, len(out.Rows))
	var done atomic.Int64
	parallel.For(len(out.Rows), opts.Workers, func(_, i int) {
		res[i].size, res[i].err = checkRow(&out, i, opts.Mode)
		if d := done.Add(1); opts.Progress != nil && d%1000 == 0 {
			opts.Progress(int(d), len(out.Rows))
		}
	})
	if opts.Progress != nil {
		opts.Progress(len(out.Rows), len(out.Rows))
	}
	kept := out.Rows[:0]
	for i, r := range out.Rows {
		if err := res[i].err; err != nil {
			if opts.Strict {
				return nil, fmt.Errorf("data: %s: %w", out.Name, err)
			}
			kind := WarnCorruptImage
			if isNotExist(err) {
				kind = WarnMissingImage
			}
			out.Warnings.Add(kind, out.RowName(i))
			continue
		}
		if sz := res[i].size; sz != (image.Point{}) && r.Box != (image.Rectangle{}) {
			b := image.Rectangle{Max: sz}
			c := r.Box.Intersect(b)
			switch {
			case c.Empty():
				out.Warnings.Add(WarnBoxEmpty, out.RowName(i))
				r.Box = image.Rectangle{}
			case c != r.Box:
				out.Warnings.Add(WarnBoxClamped, out.RowName(i))
				r.Box = c
			}
		}
		kept = append(kept, r)
	}
	out.Rows = kept
	return &out, nil
}

// checkRow examines the image of row i and returns its size when the mode
// learns it.
func checkRow(m *Manifest, i int, mode CheckMode) (image.Point, error) {
	if img := m.Rows[i].Image; img != nil {
		b := img.Bounds()
		if b.Min != (image.Point{}) {
			return image.Point{}, nil
		}
		return b.Max, nil
	}
	path := m.ImagePath(i)
	switch mode {
	case CheckExists:
		_, err := statFile(path)
		return image.Point{}, err
	case CheckHeader:
		w, h, err := DecodeFileConfig(path)
		return image.Pt(w, h), err
	default:
		img, err := DecodeFile(path)
		if err != nil {
			return image.Point{}, err
		}
		b := img.Bounds()
		return image.Pt(b.Dx(), b.Dy()), nil
	}
}
