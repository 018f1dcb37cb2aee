// Package live is a gallery index that changes while it is searched: a
// shop's catalog, to which product photos are added and from which they are
// removed every day, without embedding the rest again, and which loses no
// acknowledged change, whatever kills the process.
//
// A catalog is a folder:
//
//	CURRENT                 the manifest (JSON): the segments and the log in use;
//	                        replaced atomically, it is the commit point of a compaction
//	seg-<generation>.safetensors   immutable segments: retrieval.Index files
//	                        (embeddings, items, paths, categories, stable row ids)
//	wal-<generation>.log    the write-ahead log of the adds and removals since
//	LOCK                    flock'd by a writer for the length of one change
//
// Every change (Add, Remove) is appended to the log and fsynced before it is
// acknowledged. Compact writes the live rows into a new segment and starts
// an empty log, then switches CURRENT to them, then deletes the old files:
// a crash at any point leaves either the old state or the new one, both
// holding every acknowledged change. Files CURRENT does not name are left
// by such a crash and removed by the next writer.
//
// Several processes may open one catalog: the command-line tools and a
// running service. Writers take LOCK for each change and first catch up
// with what others appended; readers call Refresh (the service does,
// periodically and on SIGHUP) to see the others' changes.
//
// Rows keep a stable id (increasing with every add) through compactions;
// removals name rows by item id, path or row id, resolved against the rows
// present when the removal is applied, so replaying the log gives the same
// state in every process.
package live

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dmlgo/dmlgo/internal/atomicfile"
	"github.com/dmlgo/dmlgo/retrieval"
	"github.com/dmlgo/dmlgo/retrieval/ivf"
)

// Format is the manifest's format tag.
const Format = "dmlgo-live-1"

// The files of a catalog folder.
const (
	ManifestFile = "CURRENT"
	LockFile     = "LOCK"
)

// Row is a gallery image to add: its item, where its image is (for
// thumbnails and grids; "" when nowhere), its category ("" when unknown)
// and its embedding (Dim values, L2-normalised).
type Row struct {
	Item      int64
	Path      string
	Category  string
	Embedding []float32
}

// manifest is CURRENT.
type manifest struct {
	Format      string            `json:"format"`
	Generation  int64             `json:"generation"`
	Dim         int               `json:"dim"`
	Fingerprint string            `json:"fingerprint"`
	Meta        map[string]string `json:"meta,omitempty"`
	Segments    []string          `json:"segments"`
	WAL         string            `json:"wal"`
	// ANN is the approximate index of the segments' rows ("": none).
	ANN string `json:"ann,omitempty"`
	// NextID is the id the first row added to the log gets.
	NextID int64 `json:"next_id"`
}

// Catalog is an open catalog folder. Its methods are safe for concurrent
// use; View is lock-free.
type Catalog struct {
	dir  string
	log  io.Writer
	lock *os.File // LOCK, flock'd for each change

	mu   sync.Mutex // serialises changes and refreshes in this process
	st   *state     // guarded by mu
	view atomic.Pointer[View]
}

// state is what the manifest and the log give, with the lookups a removal
// needs.
type state struct {
	man    manifest
	walOff int64 // bytes of the log applied (header included)
	ix     *retrieval.Index
	ann    *ivf.Index        // of the segments' rows, or nil
	live   *retrieval.Bitset // nil: every row is live
	dead   int
	byItem map[int64][]int32
	byPath map[string][]int32
	nextID int64
}

// Options tune Open and Create.
type Options struct {
	// Log receives warnings (a torn record dropped, stray files removed);
	// nil: discarded.
	Log io.Writer
}

// IsCatalog reports whether path is a catalog folder.
func IsCatalog(path string) bool {
	st, err := os.Stat(filepath.Join(path, ManifestFile))
	return err == nil && st.Mode().IsRegular()
}

// Create makes a catalog folder at dir (which must not exist, or be empty)
// holding the rows of ix: a new index (a shop's first gallery) or an
// existing single-file index converted. Rows without stable ids get their
// position. The fingerprint and metadata come from ix.
func Create(dir string, ix *retrieval.Index, opts Options) (*Catalog, error) {
	if ix.Dim < 1 {
		return nil, fmt.Errorf("catalog %s: dimension %d", dir, ix.Dim)
	}
	if err := ix.Validate(); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", dir, err)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("catalog %s: the folder exists and is not empty", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", dir, err)
	}
	c, err := newCatalog(dir, opts)
	if err != nil {
		return nil, err
	}
	if err := c.lockFile(); err != nil {
		c.Close()
		return nil, err
	}
	defer c.unlockFile()
	seg := *ix
	if seg.IDs == nil {
		seg.IDs = make([]int64, ix.Len())
		for i := range seg.IDs {
			seg.IDs[i] = int64(i)
		}
	}
	next := int64(0)
	if n := seg.Len(); n > 0 {
		next = seg.IDs[n-1] + 1
	}
	man := manifest{Format: Format, Generation: 1, Dim: ix.Dim, Fingerprint: ix.Fingerprint, Meta: ix.Meta, NextID: next}
	if err := c.writeGeneration(&man, &seg, nil); err != nil {
		c.Close()
		return nil, err
	}
	st, err := newState(man, &seg)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.setState(st)
	return c, nil
}

// Open opens the catalog folder dir: its segments, then its log.
func Open(dir string, opts Options) (*Catalog, error) {
	if !IsCatalog(dir) {
		return nil, fmt.Errorf("%s: not a catalog folder (no %s)", dir, ManifestFile)
	}
	c, err := newCatalog(dir, opts)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.refreshLocked(false); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func newCatalog(dir string, opts Options) (*Catalog, error) {
	lock, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", dir, err)
	}
	c := &Catalog{dir: dir, log: opts.Log, lock: lock}
	if c.log == nil {
		c.log = io.Discard
	}
	return c, nil
}

// Dir is the catalog's folder.
func (c *Catalog) Dir() string { return c.dir }

// Close releases the catalog's files. Views stay usable.
func (c *Catalog) Close() error {
	if c.lock == nil {
		return nil
	}
	err := c.lock.Close()
	c.lock = nil
	return err
}

// View is the catalog as it stands: a snapshot that later changes do not
// touch.
func (c *Catalog) View() *View { return c.view.Load() }

// Fingerprint is the fingerprint of the model whose embeddings the catalog
// holds.
func (c *Catalog) Fingerprint() string { return c.View().Fingerprint }

func (c *Catalog) setState(st *state) {
	c.st = st
	c.view.Store(st.view())
}

func (c *Catalog) path(name string) string { return filepath.Join(c.dir, name) }

// Refresh brings the catalog up to what other processes have written:
// a compaction (a new generation) or changes appended to the log. It
// reports whether anything changed.
func (c *Catalog) Refresh() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refreshLocked(false)
}

// refreshLocked reads CURRENT and applies what is new. repair (a writer
// holding LOCK) truncates a torn record at the end of the log; a reader
// stops before it.
func (c *Catalog) refreshLocked(repair bool) (bool, error) {
	for attempt := 0; ; attempt++ {
		changed, err := c.refreshOnce(repair)
		// A compaction in another process may delete the files of the
		// generation just read: read CURRENT again.
		if errors.Is(err, fs.ErrNotExist) && attempt < 5 {
			continue
		}
		return changed, err
	}
}

func (c *Catalog) refreshOnce(repair bool) (bool, error) {
	man, err := c.readManifest()
	if err != nil {
		return false, err
	}
	st := c.st
	changed := false
	if st == nil || st.man.Generation != man.Generation {
		ix, err := c.loadSegments(man)
		if err != nil {
			return false, err
		}
		if st, err = newState(man, ix); err != nil {
			return false, fmt.Errorf("%s: %w", c.dir, err)
		}
		if man.ANN != "" {
			ann, _, err := ivf.Load(c.path(man.ANN))
			if err != nil {
				return false, err
			}
			if ann.Len() != ix.Len() || ann.Dim() != man.Dim {
				return false, fmt.Errorf("%s: %d rows of dimension %d, the segments hold %d of %d", c.path(man.ANN), ann.Len(), ann.Dim(), ix.Len(), man.Dim)
			}
			st.ann = ann
		}
		changed = true
	}
	applied, err := c.replay(st, repair)
	if err != nil {
		return false, err
	}
	if changed || applied {
		c.setState(st)
	}
	return changed || applied, nil
}

func (c *Catalog) readManifest() (manifest, error) {
	var man manifest
	raw, err := os.ReadFile(c.path(ManifestFile))
	if err != nil {
		return man, fmt.Errorf("catalog %s: %w", c.dir, err)
	}
	if err := json.Unmarshal(raw, &man); err != nil {
		return man, fmt.Errorf("%s: %w", c.path(ManifestFile), err)
	}
	if man.Format != Format {
		return man, fmt.Errorf("%s: format %q, want %q", c.path(ManifestFile), man.Format, Format)
	}
	if man.Dim < 1 || man.WAL == "" || man.Generation < 1 {
		return man, fmt.Errorf("%s: dimension %d, log %q, generation %d", c.path(ManifestFile), man.Dim, man.WAL, man.Generation)
	}
	names := append([]string{man.WAL}, man.Segments...)
	if man.ANN != "" {
		names = append(names, man.ANN)
	}
	for _, name := range names {
		if name != filepath.Base(name) || strings.HasPrefix(name, ".") {
			return man, fmt.Errorf("%s: file name %q is not a plain name in the folder", c.path(ManifestFile), name)
		}
	}
	return man, nil
}

// loadSegments reads the manifest's segments into one index.
func (c *Catalog) loadSegments(man manifest) (*retrieval.Index, error) {
	all := &retrieval.Index{Dim: man.Dim, Fingerprint: man.Fingerprint, Meta: man.Meta, IDs: []int64{}}
	for _, name := range man.Segments {
		seg, err := retrieval.LoadIndex(c.path(name))
		if err != nil {
			return nil, err
		}
		if seg.Dim != man.Dim || seg.Fingerprint != man.Fingerprint || seg.IDs == nil {
			return nil, fmt.Errorf("%s: dimension %d, fingerprint %s, ids %v: the catalog has %d and %s", c.path(name), seg.Dim, seg.Fingerprint, seg.IDs != nil, man.Dim, man.Fingerprint)
		}
		if len(man.Segments) == 1 {
			seg.Meta = man.Meta
			if seg.Categories == nil {
				seg.Categories = make([]string, seg.Len())
			}
			return seg, nil
		}
		if n := len(all.IDs); n > 0 && seg.Len() > 0 && seg.IDs[0] <= all.IDs[n-1] {
			return nil, fmt.Errorf("%s: row ids overlap the segment before", c.path(name))
		}
		all.Embeddings = append(all.Embeddings, seg.Embeddings...)
		all.Items = append(all.Items, seg.Items...)
		all.Paths = append(all.Paths, seg.Paths...)
		all.IDs = append(all.IDs, seg.IDs...)
		for i := range seg.Len() {
			all.Categories = append(all.Categories, seg.Category(i))
		}
	}
	if all.Categories == nil {
		all.Categories = []string{}
	}
	return all, nil
}

func newState(man manifest, ix *retrieval.Index) (*state, error) {
	st := &state{man: man, ix: ix, byItem: map[int64][]int32{}, byPath: map[string][]int32{}, nextID: man.NextID}
	if n := ix.Len(); n > 0 && ix.IDs[n-1] >= man.NextID {
		return nil, fmt.Errorf("row id %d in the segments, but the manifest's next id is %d", ix.IDs[n-1], man.NextID)
	}
	for i := range ix.Len() {
		st.index(int32(i))
	}
	return st, nil
}

func (st *state) index(pos int32) {
	st.byItem[st.ix.Items[pos]] = append(st.byItem[st.ix.Items[pos]], pos)
	if p := st.ix.Paths[pos]; p != "" {
		st.byPath[p] = append(st.byPath[p], pos)
	}
}

// replay applies the log's records past st.walOff.
func (c *Catalog) replay(st *state, repair bool) (bool, error) {
	name := c.path(st.man.WAL)
	flag := os.O_RDONLY
	if repair {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(name, flag, 0)
	if err != nil {
		return false, fmt.Errorf("catalog %s: %w", c.dir, err)
	}
	defer f.Close()
	if st.walOff == 0 {
		if err := checkHeader(f); err != nil {
			return false, fmt.Errorf("%s: %w", name, err)
		}
		st.walOff = int64(len(walMagic))
	}
	info, err := f.Stat()
	if err != nil {
		return false, err
	}
	if info.Size() == st.walOff {
		return false, nil
	}
	if info.Size() < st.walOff {
		return false, fmt.Errorf("%s: the log shrank from %d to %d bytes under an open catalog", name, st.walOff, info.Size())
	}
	r := &offsetReader{f: f, off: st.walOff}
	applied := false
	for {
		rec, err := readRecord(r.buffered(), st.man.Dim)
		if err == io.EOF {
			return applied, nil
		}
		if errors.Is(err, errTorn) {
			if !repair {
				return applied, nil // perhaps a record being written: next time
			}
			fmt.Fprintf(c.log, "catalog %s: dropped a torn record at the end of %s (bytes %d to %d: a change never acknowledged; %v)\n", c.dir, st.man.WAL, st.walOff, info.Size(), err)
			if err := f.Truncate(st.walOff); err != nil {
				return applied, err
			}
			return applied, f.Sync()
		}
		if err != nil {
			return applied, fmt.Errorf("%s: %w", name, err)
		}
		st.apply(rec)
		st.walOff += rec.length
		r.seek(st.walOff)
		applied = true
	}
}

// apply changes the state by one record. It never fails: records are
// checked before they are written.
func (st *state) apply(rec record) {
	switch rec.op {
	case opAdd:
		st.add(rec.rows)
	case opRemove:
		st.remove(st.resolve(rec.kind, rec.ints, rec.paths))
	}
}

// add appends rows. The new index shares the old one's arrays up to their
// length (views of it see none of the new rows).
func (st *state) add(rows []Row) {
	ix := *st.ix
	n0 := ix.Len()
	for _, r := range rows {
		ix.Embeddings = append(ix.Embeddings, r.Embedding...)
		ix.Items = append(ix.Items, r.Item)
		ix.Paths = append(ix.Paths, r.Path)
		ix.Categories = append(ix.Categories, r.Category)
		ix.IDs = append(ix.IDs, st.nextID)
		st.nextID++
	}
	st.ix = &ix
	if st.live != nil {
		st.live = st.live.Grown(ix.Len(), true)
	}
	for i := n0; i < ix.Len(); i++ {
		st.index(int32(i))
	}
}

// resolve lists the live positions the keys name, without repeats, in
// order.
func (st *state) resolve(kind KeyKind, ints []int64, paths []string) []int32 {
	seen := map[int32]bool{}
	var out []int32
	take := func(pos []int32) {
		for _, p := range pos {
			if !seen[p] && st.isLive(int(p)) {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	switch kind {
	case ByItem:
		for _, v := range ints {
			take(st.byItem[v])
		}
	case ByPath:
		for _, p := range paths {
			take(st.byPath[p])
		}
	case ByID:
		for _, id := range ints {
			if pos, ok := findID(st.ix.IDs, id); ok {
				take([]int32{int32(pos)})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (st *state) isLive(pos int) bool { return st.live == nil || st.live.Has(pos) }

func (st *state) remove(pos []int32) {
	if len(pos) == 0 {
		return
	}
	live := st.live
	if live == nil {
		live = retrieval.FullBitset(st.ix.Len())
	} else {
		live = live.Clone()
	}
	for _, p := range pos {
		live.Clear(int(p))
	}
	st.live = live
	st.dead += len(pos)
}

func findID(ids []int64, id int64) (int, bool) {
	i := sort.Search(len(ids), func(i int) bool { return ids[i] >= id })
	return i, i < len(ids) && ids[i] == id
}

func (st *state) view() *View {
	v := &View{Index: st.ix, Removed: st.dead, Generation: st.man.Generation, Version: st.walOff, ann: st.ann}
	if st.live != nil {
		v.live = st.live
	}
	return v
}

// lockFile takes LOCK, waiting for another writer to finish its change.
func (c *Catalog) lockFile() error {
	if c.lock == nil {
		return fmt.Errorf("catalog %s: closed", c.dir)
	}
	if err := flock(c.lock); err != nil {
		return fmt.Errorf("catalog %s: locking: %w", c.dir, err)
	}
	return nil
}

func (c *Catalog) unlockFile() { funlock(c.lock) }

// change runs f holding LOCK, with the state caught up with the log
// (a torn tail repaired).
func (c *Catalog) change(f func(st *state) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.lockFile(); err != nil {
		return err
	}
	defer c.unlockFile()
	if _, err := c.refreshLocked(true); err != nil {
		return err
	}
	return f(c.st)
}

// appendRecord writes one framed record at the end of the log and fsyncs
// it: once it returns nil, the change survives any crash.
func (c *Catalog) appendRecord(st *state, rec []byte) error {
	name := c.path(st.man.WAL)
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("catalog %s: %w", c.dir, err)
	}
	defer f.Close()
	crash("append:before")
	if _, err := f.WriteAt(rec, st.walOff); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	crash("append:written")
	if err := f.Sync(); err != nil {
		// The record may or may not be on disk: cut it off so that it is
		// not applied later, unacknowledged.
		f.Truncate(st.walOff)
		return fmt.Errorf("%s: fsync: %w", name, err)
	}
	crash("append:synced")
	return nil
}

// Add appends rows to the catalog and returns their stable ids. The model
// fingerprint must be the catalog's; every embedding must have the
// catalog's dimension, be finite and L2-normalised. The change is on disk
// (fsynced) when Add returns.
func (c *Catalog) Add(fingerprint string, rows []Row) ([]int64, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	var ids []int64
	err := c.change(func(st *state) error {
		if fingerprint != st.man.Fingerprint {
			return fmt.Errorf("catalog %s holds embeddings of model %s; these are of model %s: embeddings of different models cannot be compared", c.dir, st.man.Fingerprint, fingerprint)
		}
		for i, r := range rows {
			if err := checkRow(r, st.man.Dim); err != nil {
				return fmt.Errorf("row %d (item %d, %q): %w", i, r.Item, r.Path, err)
			}
		}
		rec := encodeAdd(rows)
		if len(rec) > maxRecord {
			return fmt.Errorf("%d rows make a %d-byte record, more than %d: add them in smaller batches", len(rows), len(rec), maxRecord)
		}
		if err := c.appendRecord(st, rec); err != nil {
			return err
		}
		for i := range rows {
			ids = append(ids, st.nextID+int64(i))
		}
		st.add(rows)
		st.walOff += int64(len(rec))
		c.setState(st)
		return nil
	})
	return ids, err
}

func checkRow(r Row, dim int) error {
	if len(r.Embedding) != dim {
		return fmt.Errorf("embedding of %d values, the catalog's dimension is %d", len(r.Embedding), dim)
	}
	var ss float64
	for _, v := range r.Embedding {
		ss += float64(v) * float64(v)
	}
	if math.IsNaN(ss) || math.IsInf(ss, 0) || math.Abs(ss-1) > 1e-3 {
		return fmt.Errorf("embedding norm² %g: not finite or not L2-normalised", ss)
	}
	return nil
}

// Remove removes the live rows the keys name (every row of an item, every
// row with a path, or one row by id) and returns how many it removed. Keys
// that name no live row are ignored; when none does, nothing is written.
func (c *Catalog) Remove(kind KeyKind, ints []int64, paths []string) (int, error) {
	switch kind {
	case ByItem, ByID, ByPath:
	default:
		return 0, fmt.Errorf("remove: unknown key kind %d", kind)
	}
	removed := 0
	err := c.change(func(st *state) error {
		pos := st.resolve(kind, ints, paths)
		if len(pos) == 0 {
			return nil
		}
		rec := encodeRemove(kind, ints, paths)
		if err := c.appendRecord(st, rec); err != nil {
			return err
		}
		st.remove(pos)
		st.walOff += int64(len(rec))
		removed = len(pos)
		c.setState(st)
		return nil
	})
	return removed, err
}

// CompactReport says what Compact did.
type CompactReport struct {
	Generation int64       // the new generation
	Rows       int         // live rows kept
	Dropped    int         // removed rows dropped
	Lists      int         // lists of the approximate index built (0: none)
	Storage    ivf.Storage // how its lists hold the rows
	ANNBytes   int64       // its memory
	Stray      []string
}

// Compact is CompactWith the default options: an approximate index when
// the catalog holds ivf.ExactBelow rows or more.
func (c *Catalog) Compact() (CompactReport, error) { return c.CompactWith(CompactOptions{}) }

// CompactWith writes the live rows into one new segment (and, as o asks,
// their approximate index) and starts an empty log: removed rows stop
// taking memory and search time, and opening the catalog no longer
// replays the log. It is crash-safe at every step (see the package
// comment).
func (c *Catalog) CompactWith(o CompactOptions) (CompactReport, error) {
	var rep CompactReport
	err := c.change(func(st *state) error {
		v := st.view()
		seg := v.LiveIndex()
		ann, err := buildANN(seg, o)
		if err != nil {
			return err
		}
		man := st.man
		man.Generation++
		man.NextID = st.nextID
		if err := c.writeGeneration(&man, seg, ann); err != nil {
			return err
		}
		old := append([]string{st.man.WAL}, st.man.Segments...)
		if st.man.ANN != "" {
			old = append(old, st.man.ANN)
		}
		crash("compact:manifest")
		for _, name := range old {
			if err := os.Remove(c.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(c.log, "catalog %s: removing %s after compaction: %v\n", c.dir, name, err)
			}
		}
		crash("compact:removed")
		nst, err := newState(man, seg)
		if err != nil {
			return err
		}
		nst.ann = ann
		nst.walOff = int64(len(walMagic))
		c.setState(nst)
		rep = CompactReport{Generation: man.Generation, Rows: seg.Len(), Dropped: st.dead}
		if ann != nil {
			rep.Lists, rep.Storage, rep.ANNBytes = ann.Lists(), ann.Storage(), ann.Bytes()
		}
		rep.Stray = c.removeStray(man)
		return nil
	})
	return rep, err
}

// writeGeneration writes man's generation: the segment of ix (when it has
// rows) and its approximate index (when ann is not nil), an empty log,
// then CURRENT naming them. The caller holds LOCK.
func (c *Catalog) writeGeneration(man *manifest, ix *retrieval.Index, ann *ivf.Index) error {
	man.Segments = nil
	if ix.Len() > 0 {
		name := fmt.Sprintf("seg-%06d.safetensors", man.Generation)
		cp := *ix
		cp.Meta = nil
		if err := cp.Save(c.path(name)); err != nil {
			return err
		}
		man.Segments = []string{name}
	}
	man.ANN = ""
	if ann != nil {
		name := fmt.Sprintf("ann-%06d.safetensors", man.Generation)
		if err := ann.Save(c.path(name), map[string]string{"fingerprint": man.Fingerprint}); err != nil {
			return err
		}
		man.ANN = name
	}
	crash("generation:segment")
	man.WAL = fmt.Sprintf("wal-%06d.log", man.Generation)
	if err := atomicfile.WriteBytes(c.path(man.WAL), []byte(walMagic)); err != nil {
		return err
	}
	crash("generation:log")
	raw, _ := json.MarshalIndent(man, "", "  ")
	return atomicfile.WriteBytes(c.path(ManifestFile), append(raw, '\n'))
}

// removeStray deletes the segments, logs and temporary files that man does
// not name: what a crash in the middle of a compaction left. The caller
// holds LOCK.
func (c *Catalog) removeStray(man manifest) []string {
	keep := map[string]bool{ManifestFile: true, LockFile: true, man.WAL: true, man.ANN: true}
	for _, s := range man.Segments {
		keep[s] = true
	}
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		ours := false
		for _, prefix := range []string{"seg-", "wal-", "ann-", ".seg-", ".wal-", ".ann-", "." + ManifestFile + ".tmp-"} {
			ours = ours || strings.HasPrefix(name, prefix)
		}
		if keep[name] || !ours || e.IsDir() {
			continue
		}
		if os.Remove(c.path(name)) == nil {
			removed = append(removed, name)
		}
	}
	if len(removed) > 0 {
		fmt.Fprintf(c.log, "catalog %s: removed %d files an interrupted compaction left: %s\n", c.dir, len(removed), strings.Join(removed, ", "))
	}
	return removed
}

// Tidy removes what an interrupted compaction left (see Compact), under
// LOCK. Open does not, so that a reader never writes.
func (c *Catalog) Tidy() ([]string, error) {
	var removed []string
	err := c.change(func(st *state) error {
		removed = c.removeStray(st.man)
		return nil
	})
	return removed, err
}

// crashAt, when set (tests), is called at named points of a change; a test
// kills the process there.
var crashAt func(point string)

func crash(point string) {
	if crashAt != nil {
		crashAt(point)
	}
}
