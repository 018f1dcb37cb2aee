package serve

// Changing a live catalog over HTTP (POST /v1/items, DELETE
// /v1/items/{item}), and following the changes other processes make.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
	"unicode"

	"github.com/dmlgo/dmlgo/catalog/live"
	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/internal/atomicfile"
)

// ImagesDir is the folder of a catalog where the service keeps the images
// added over HTTP (named by their content's hash).
const ImagesDir = "images"

// writable answers 403 unless the service changes its catalog.
func (s *Server) writable(w http.ResponseWriter) bool {
	switch {
	case s.Catalog == nil:
		writeError(w, http.StatusForbidden, "this service serves a single-file index, which is read-only")
		return false
	case !s.Config.Writable:
		writeError(w, http.StatusForbidden, "this service does not change its catalog (start it with -writable and -token)")
		return false
	}
	return true
}

// ItemResponse is the body of a successful POST /v1/items.
type ItemResponse struct {
	ID           int64   `json:"id"`
	Item         int64   `json:"item"`
	Category     string  `json:"category,omitempty"`
	Path         string  `json:"path"`
	Rows         int     `json:"gallery_rows"`
	Milliseconds float64 `json:"took_ms"`
}

// addItem answers POST /v1/items?item=ID[&category=C][&box=…]: the image
// (as for a search) is received, decoded and embedded within the same
// bounds as a search, kept in the catalog's images folder, and added to
// the catalog; the answer (201) comes once the change is on disk.
func (s *Server) addItem(w http.ResponseWriter, r *http.Request) {
	if !s.writable(w) {
		return
	}
	t0 := time.Now()
	q := r.URL.Query()
	item, err := strconv.ParseInt(q.Get("item"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "item=%q: want the item id, an integer", q.Get("item"))
		return
	}
	category := q.Get("category")
	if err := checkCategory(category); err != nil {
		writeError(w, http.StatusBadRequest, "category=: %v", err)
		return
	}
	_, box, err := s.searchParams(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	raw, status, err := s.receive(w, r, t0)
	if err != nil {
		if status == http.StatusServiceUnavailable {
			s.busy(w, "%v", err)
		} else {
			writeError(w, status, "%v", err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.Config.QueueTimeout)
	defer cancel()
	x, status, err := s.prepare(ctx, raw, box)
	if err != nil {
		switch {
		case r.Context().Err() != nil:
		case status == http.StatusServiceUnavailable:
			s.busy(w, "%v", err)
		case status == http.StatusInternalServerError:
			s.internalError(w, "decoding the upload", err)
		default:
			writeError(w, status, "%v", err)
		}
		return
	}
	select {
	case s.slots <- struct{}{}:
	default:
		s.busy(w, "busy: %d searches are running or queued (-queue %d); retry later", cap(s.slots), s.Config.Queue)
		return
	}
	defer func() { <-s.slots }()
	e, err := s.Model.EmbedInputs(ctx, x, 1)
	switch {
	case err == nil:
	case r.Context().Err() != nil:
		return
	case errors.Is(err, context.DeadlineExceeded):
		s.busy(w, "busy: waited %v for the model (-queue-timeout); retry later", s.Config.QueueTimeout)
		return
	default:
		s.internalError(w, "embedding the image", err)
		return
	}
	path, err := s.keepImage(raw)
	if err != nil {
		s.internalError(w, "keeping the image", err)
		return
	}
	ids, err := s.Catalog.Add(s.Model.Fingerprint, []live.Row{{Item: item, Path: path, Category: category, Embedding: e}})
	if err != nil {
		s.internalError(w, "adding to the catalog", err)
		return
	}
	s.added.Add(1)
	writeJSON(w, http.StatusCreated, ItemResponse{ID: ids[0], Item: item, Category: category, Path: s.shownPath(path),
		Rows: s.view().Rows(), Milliseconds: float64(time.Since(t0).Microseconds()) / 1000})
}

// checkCategory refuses categories a page or a log could be fooled by.
func checkCategory(c string) error {
	if len(c) > 256 {
		return fmt.Errorf("at most 256 bytes, got %d", len(c))
	}
	for _, r := range c {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%q holds a control character", c)
		}
	}
	return nil
}

// keepImage writes an upload into the catalog's images folder, named by
// its content's hash (the same photo twice is one file), atomically and
// fsynced, and returns its absolute path.
func (s *Server) keepImage(raw []byte) (string, error) {
	cost, err := data.DecodeCost(raw)
	if err != nil {
		return "", err
	}
	ext := ".png"
	if cost.Format == "jpeg" {
		ext = ".jpg"
	}
	dir := filepath.Join(s.Catalog.Dir(), ImagesDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	sum := sha256.Sum256(raw)
	path, err := filepath.Abs(filepath.Join(dir, hex.EncodeToString(sum[:12])+ext))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	return path, atomicfile.WriteBytes(path, raw)
}

// removeItem answers DELETE /v1/items/{item}: every image of the item
// leaves the catalog (200 with the count, 404 when it had none).
func (s *Server) removeItem(w http.ResponseWriter, r *http.Request) {
	if !s.writable(w) {
		return
	}
	item, err := strconv.ParseInt(r.PathValue("item"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%q: want /v1/items/ITEM with ITEM an item id", r.PathValue("item"))
		return
	}
	n, err := s.Catalog.Remove(live.ByItem, []int64{item}, nil)
	if err != nil {
		s.internalError(w, "removing from the catalog", err)
		return
	}
	if n == 0 {
		writeError(w, http.StatusNotFound, "item %d has no image in the catalog", item)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"item": item, "removed": n, "gallery_rows": s.view().Rows()})
}

// Reload picks up the changes other processes made to the catalog (serve
// calls it on SIGHUP; with Config.Reload it also runs periodically). It
// does nothing for a single-file index.
func (s *Server) Reload() error {
	if s.Catalog == nil {
		return nil
	}
	before := s.view()
	changed, err := s.Catalog.Refresh()
	if err != nil {
		fmt.Fprintf(s.Config.Log, "catalog: reloading: %v\n", err)
		return err
	}
	if changed {
		v := s.view()
		fmt.Fprintf(s.Config.Log, "catalog: %d gallery images (was %d), generation %d\n", v.Rows(), before.Rows(), v.Generation)
	}
	return nil
}

// watch reloads the catalog every Config.Reload until ctx ends.
func (s *Server) watch(ctx context.Context) {
	t := time.NewTicker(s.Config.Reload)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Reload()
		}
	}
}
