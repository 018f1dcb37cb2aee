package data

import (
	"encoding/json"
	"fmt"
	"image"
	"path/filepath"
	"strings"
)

// Domain says where an image comes from.
type Domain uint8

const (
	// Shop is a clean product photo (the gallery side).
	Shop Domain = iota
	// Consumer is a street photo taken by a shopper (the query side).
	Consumer
	numDomains
)

var domainNames = [...]string{Shop: "shop", Consumer: "consumer"}

// String returns "shop" or "consumer".
func (d Domain) String() string {
	if int(d) < len(domainNames) {
		return domainNames[d]
	}
	return fmt.Sprintf("Domain(%d)", uint8(d))
}

// ParseDomain parses "shop" or "consumer" (case-insensitive).
func ParseDomain(s string) (Domain, error) {
	for i, n := range domainNames {
		if strings.EqualFold(s, n) {
			return Domain(i), nil
		}
	}
	return 0, fmt.Errorf("domain %q is not shop or consumer", s)
}

// MarshalText implements encoding.TextMarshaler.
func (d Domain) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Domain) UnmarshalText(b []byte) error {
	v, err := ParseDomain(string(b))
	*d = v
	return err
}

// Split is the part of a data set a row belongs to.
//
// Consumer-to-shop data sets split by item into train, val and test; the
// evaluation then queries with the consumer images of test against the shop
// images of test. In-Shop style data sets name the query and gallery images
// directly (splits Query and Gallery).
type Split uint8

const (
	Train Split = iota
	Val
	Test
	Query
	Gallery
	numSplits
)

var splitNames = [...]string{Train: "train", Val: "val", Test: "test", Query: "query", Gallery: "gallery"}

// String returns the split's name as written in manifests.
func (s Split) String() string {
	if int(s) < len(splitNames) {
		return splitNames[s]
	}
	return fmt.Sprintf("Split(%d)", uint8(s))
}

// ParseSplit parses train, val, test, query or gallery (case-insensitive).
func ParseSplit(s string) (Split, error) {
	for i, n := range splitNames {
		if strings.EqualFold(s, n) {
			return Split(i), nil
		}
	}
	return 0, fmt.Errorf("split %q is not one of train, val, test, query, gallery", s)
}

// MarshalText implements encoding.TextMarshaler.
func (s Split) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Split) UnmarshalText(b []byte) error {
	v, err := ParseSplit(string(b))
	*s = v
	return err
}

// NoCategory is the Category of a row whose category is unknown.
const NoCategory = -1

// Row is one image of a manifest.
type Row struct {
	// Path locates the image file: relative to Manifest.Root, or absolute.
	// Empty when Image is set.
	Path string
	// Image is the decoded image for in-memory data sets (FMNIST-C2S);
	// nil when Path is set.
	Image image.Image
	// Item is the id of the garment: rows with the same Item show the same
	// product, whatever their domain.
	Item   int64
	Domain Domain
	Split  Split
	// Box is the garment's bounding box in pixel coordinates (Max
	// exclusive); the zero rectangle means the whole image.
	Box image.Rectangle
	// Category is the clothes type, or NoCategory.
	Category int32
}

// Manifest is the one in-memory form of every data set: the FMNIST-C2S
// generator, the DeepFashion loaders and the TSV reader all produce it, and
// training and evaluation (through NewDataset) consume it.
type Manifest struct {
	// Name describes the data set, e.g. "deepfashion-c2s" or
	// "fmnist-c2s quick shift=moderate seed=1".
	Name string
	// Root is the folder that relative row paths are relative to.
	Root string
	Rows []Row
	// ItemNames optionally maps item ids to names (from a TSV whose item ids
	// are not integers).
	ItemNames map[int64]string
	// CategoryNames optionally maps categories to names.
	CategoryNames map[int32]string
	// Warnings counts what building the manifest skipped or repaired.
	Warnings *Warnings
}

// ImagePath returns the file path of row i (joined with Root when relative),
// or "" for an in-memory row.
func (m *Manifest) ImagePath(i int) string {
	p := m.Rows[i].Path
	if p == "" || filepath.IsAbs(p) || m.Root == "" {
		return p
	}
	return filepath.Join(m.Root, p)
}

// RowName names row i in messages: its path, or "item I view N" for
// in-memory rows.
func (m *Manifest) RowName(i int) string {
	if r := m.Rows[i]; r.Path != "" {
		return r.Path
	}
	r := m.Rows[i]
	return fmt.Sprintf("row %d (item %d, %s, %s)", i, r.Item, r.Domain, r.Split)
}

// Validate checks each row: exactly one of Path and Image, a known domain and
// split, a well-formed box. It names the first bad row.
func (m *Manifest) Validate() error {
	for i, r := range m.Rows {
		switch {
		case r.Path == "" && r.Image == nil:
			return fmt.Errorf("data: manifest %s: row %d has neither a path nor an image", m.Name, i)
		case r.Path != "" && r.Image != nil:
			return fmt.Errorf("data: manifest %s: row %d has both a path and an image", m.Name, i)
		case r.Domain >= numDomains:
			return fmt.Errorf("data: manifest %s: row %d has an unknown domain %d", m.Name, i, r.Domain)
		case r.Split >= numSplits:
			return fmt.Errorf("data: manifest %s: row %d has an unknown split %d", m.Name, i, r.Split)
		case r.Box != (image.Rectangle{}) && (r.Box.Min.X >= r.Box.Max.X || r.Box.Min.Y >= r.Box.Max.Y):
			return fmt.Errorf("data: manifest %s: row %d (%s) has an empty or inverted box %v", m.Name, i, m.RowName(i), r.Box)
		}
	}
	return nil
}

// Stats counts a manifest's rows by split and domain.
type Stats struct {
	Rows int
	// Images[split][domain] counts rows.
	Images [numSplits][numDomains]int
	// Items[split] counts distinct item ids.
	Items [numSplits]int
	// TotalItems counts distinct item ids over all splits.
	TotalItems int
	// Boxes counts rows with a bounding box; Categories distinct categories.
	Boxes, Categories int
}

// Stats counts the manifest's rows.
func (m *Manifest) Stats() Stats {
	var s Stats
	s.Rows = len(m.Rows)
	var items [numSplits]map[int64]struct{}
	for i := range items {
		items[i] = map[int64]struct{}{}
	}
	all := map[int64]struct{}{}
	cats := map[int32]struct{}{}
	for _, r := range m.Rows {
		if r.Split >= numSplits || r.Domain >= numDomains {
			continue
		}
		s.Images[r.Split][r.Domain]++
		items[r.Split][r.Item] = struct{}{}
		all[r.Item] = struct{}{}
		if r.Box != (image.Rectangle{}) {
			s.Boxes++
		}
		if r.Category != NoCategory {
			cats[r.Category] = struct{}{}
		}
	}
	for i := range items {
		s.Items[i] = len(items[i])
	}
	s.TotalItems = len(all)
	s.Categories = len(cats)
	return s
}

// String renders the stats as a small table: one line per non-empty split.
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %8s %8s %9s\n", "split", "items", "shop", "consumer")
	for sp := Split(0); sp < numSplits; sp++ {
		if s.Items[sp] == 0 {
			continue
		}
		fmt.Fprintf(&b, "%-8s %8d %8d %9d\n", sp, s.Items[sp], s.Images[sp][Shop], s.Images[sp][Consumer])
	}
	fmt.Fprintf(&b, "%-8s %8d %8d %9d", "total", s.TotalItems, s.sum(Shop), s.sum(Consumer))
	return b.String()
}

func (s Stats) sum(d Domain) int {
	n := 0
	for sp := range s.Images {
		n += s.Images[sp][d]
	}
	return n
}

// MarshalJSON writes the stats with split and domain names as keys.
func (s Stats) MarshalJSON() ([]byte, error) {
	type splitStats struct {
		Items    int `json:"items"`
		Shop     int `json:"shop"`
		Consumer int `json:"consumer"`
	}
	splits := map[string]splitStats{}
	for sp := Split(0); sp < numSplits; sp++ {
		if s.Items[sp] > 0 {
			splits[sp.String()] = splitStats{s.Items[sp], s.Images[sp][Shop], s.Images[sp][Consumer]}
		}
	}
	return json.Marshal(struct {
		Rows       int                   `json:"rows"`
		Items      int                   `json:"items"`
		Boxes      int                   `json:"boxes"`
		Categories int                   `json:"categories"`
		Splits     map[string]splitStats `json:"splits"`
	}{s.Rows, s.TotalItems, s.Boxes, s.Categories, splits})
}

// Filter returns a manifest with the rows for which keep returns true. The
// rows are shared, not copied.
func (m *Manifest) Filter(keep func(i int, r *Row) bool) *Manifest {
	out := *m
	out.Rows = nil
	for i := range m.Rows {
		if keep(i, &m.Rows[i]) {
			out.Rows = append(out.Rows, m.Rows[i])
		}
	}
	return &out
}
