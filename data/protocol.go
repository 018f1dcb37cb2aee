package data

import (
	"fmt"
	"sort"
	"strings"
)

// Subset is a list of manifest rows, with a class label for each row when it
// is a training set.
type Subset struct {
	Manifest *Manifest
	// Rows[i] is the manifest row of element i.
	Rows []int
	// Labels[i] is the class of element i in 0..NumClasses-1 (training
	// sets); nil for evaluation sets.
	Labels []int32
	// NumClasses is the number of classes of a training set (0 otherwise).
	NumClasses int
}

// Len returns the number of elements.
func (s *Subset) Len() int { return len(s.Rows) }

// Row returns the manifest row of element i.
func (s *Subset) Row(i int) *Row { return &s.Manifest.Rows[s.Rows[i]] }

// Items returns the item id of every element.
func (s *Subset) Items() []int64 {
	out := make([]int64, len(s.Rows))
	for i, r := range s.Rows {
		out[i] = s.Manifest.Rows[r].Item
	}
	return out
}

// Domains returns the domain of every element.
func (s *Subset) Domains() []Domain {
	out := make([]Domain, len(s.Rows))
	for i, r := range s.Rows {
		out[i] = s.Manifest.Rows[r].Domain
	}
	return out
}

// ProtocolOptions choose how NewDataset splits a manifest.
type ProtocolOptions struct {
	// GalleryWithVal adds the shop images of the val split to the gallery:
	// mmfashion's Consumer-to-Shop gallery image set, though not its
	// protocol (which also queries with val consumer images and keeps
	// per-pair duplicates; see data/deepfashion). Default: the test split
	// only, as the official protocol.
	GalleryWithVal bool
	// AllowNoTrain accepts a manifest without training rows (evaluation
	// only); otherwise an empty train split is an error.
	AllowNoTrain bool
	// Strict makes a query whose item has no gallery image an error;
	// otherwise such queries are excluded and counted.
	Strict bool
}

// Dataset is a manifest split into the sets training and evaluation use.
//
// The protocol, for every data set:
//   - Train: every row of split train, shop and consumer; class c is the
//     c-th distinct item id in ascending order.
//   - Query: rows of split query, and consumer rows of split test.
//   - Gallery: rows of split gallery, shop rows of split test, and (with
//     GalleryWithVal) shop rows of split val.
//
// Queries whose item has no gallery image cannot be scored and are excluded
// (and counted in Warnings), or are an error in strict mode. The manifest
// is not modified.
type Dataset struct {
	Manifest *Manifest
	Train    *Subset
	Query    *Subset
	Gallery  *Subset
	// Classes[c] is the item id of training class c.
	Classes []int64
	// Excluded lists the manifest rows of queries left out because their
	// item is absent from the gallery.
	Excluded []int
	// Warnings holds the manifest's warnings plus the exclusions.
	Warnings *Warnings
	Options  ProtocolOptions
}

// NewDataset splits m by the protocol above. It fails if the query or
// gallery set is empty, or the train split is (unless AllowNoTrain), naming
// what it looked for.
func NewDataset(m *Manifest, opts ProtocolOptions) (*Dataset, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	ds := &Dataset{
		Manifest: m,
		Train:    &Subset{Manifest: m},
		Query:    &Subset{Manifest: m},
		Gallery:  &Subset{Manifest: m},
		Warnings: NewWarnings(),
		Options:  opts,
	}
	ds.Warnings.Merge(m.Warnings)
	for i, r := range m.Rows {
		switch {
		case r.Split == Train:
			ds.Train.Rows = append(ds.Train.Rows, i)
		case r.Split == Query, r.Split == Test && r.Domain == Consumer:
			ds.Query.Rows = append(ds.Query.Rows, i)
		case r.Split == Gallery, r.Split == Test && r.Domain == Shop,
			opts.GalleryWithVal && r.Split == Val && r.Domain == Shop:
			ds.Gallery.Rows = append(ds.Gallery.Rows, i)
		}
	}
	if len(ds.Train.Rows) == 0 && !opts.AllowNoTrain {
		return nil, fmt.Errorf("data: %s: the train split is empty (no row has split train)", m.Name)
	}
	if len(ds.Gallery.Rows) == 0 {
		return nil, fmt.Errorf("data: %s: the gallery is empty (no row of split gallery, and no shop row of split test%s)", m.Name, ifStr(opts.GalleryWithVal, " or val", ""))
	}
	if len(ds.Query.Rows) == 0 {
		return nil, fmt.Errorf("data: %s: there are no queries (no row of split query, and no consumer row of split test)", m.Name)
	}

	// Classes: distinct train items, ascending.
	classOf := map[int64]int32{}
	for _, r := range ds.Train.Rows {
		classOf[m.Rows[r].Item] = 0
	}
	ds.Classes = make([]int64, 0, len(classOf))
	for id := range classOf {
		ds.Classes = append(ds.Classes, id)
	}
	sort.Slice(ds.Classes, func(i, j int) bool { return ds.Classes[i] < ds.Classes[j] })
	for c, id := range ds.Classes {
		classOf[id] = int32(c)
	}
	ds.Train.Labels = make([]int32, len(ds.Train.Rows))
	for i, r := range ds.Train.Rows {
		ds.Train.Labels[i] = classOf[m.Rows[r].Item]
	}
	ds.Train.NumClasses = len(ds.Classes)

	// Queries need their item in the gallery.
	inGallery := map[int64]bool{}
	for _, r := range ds.Gallery.Rows {
		inGallery[m.Rows[r].Item] = true
	}
	kept := ds.Query.Rows[:0]
	var missing []string
	for _, r := range ds.Query.Rows {
		if inGallery[m.Rows[r].Item] {
			kept = append(kept, r)
			continue
		}
		ds.Excluded = append(ds.Excluded, r)
		if len(missing) < 5 {
			missing = append(missing, fmt.Sprintf("item %d (%s)", m.Rows[r].Item, m.RowName(r)))
		}
	}
	ds.Query.Rows = kept
	if len(ds.Excluded) > 0 {
		if opts.Strict {
			return nil, fmt.Errorf("data: %s: %d queries have no image of their item in the gallery, e.g. %s", m.Name, len(ds.Excluded), strings.Join(missing, ", "))
		}
		for _, r := range ds.Excluded {
			ds.Warnings.Add(WarnQueryExcluded, fmt.Sprintf("item %d", m.Rows[r].Item))
		}
		if len(ds.Query.Rows) == 0 {
			return nil, fmt.Errorf("data: %s: no query has its item in the gallery (%d excluded)", m.Name, len(ds.Excluded))
		}
	}
	return ds, nil
}

// Summary is a one-paragraph description of the split, for logs.
func (ds *Dataset) Summary() string {
	s := fmt.Sprintf("%s: train %d images of %d items; %d queries; gallery %d images of %d items",
		ds.Manifest.Name, ds.Train.Len(), len(ds.Classes), ds.Query.Len(), ds.Gallery.Len(), DistinctItems(ds.Gallery.Items()))
	if len(ds.Excluded) > 0 {
		s += fmt.Sprintf("; %d queries excluded (item absent from the gallery)", len(ds.Excluded))
	}
	return s
}

// DistinctItems counts the distinct ids.
func DistinctItems(ids []int64) int {
	seen := make(map[int64]struct{}, len(ids))
	for _, id := range ids {
		seen[id] = struct{}{}
	}
	return len(seen)
}

func ifStr(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}
