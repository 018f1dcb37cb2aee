package main

// retrieve serve: the HTTP search service over an index.

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/dmlgo/dmlgo/catalog"
	"github.com/dmlgo/dmlgo/internal/bytesize"
	"github.com/dmlgo/dmlgo/serve"
)

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve")
	var mf modelFlags
	mf.register(fs)
	cfg := serve.DefaultServerConfig()
	indexPath := fs.String("index", "", "index file made by 'retrieve index' with the same checkpoint")
	addr := fs.String("addr", "localhost:8080", "address to listen on (:8080 for every interface)")
	fs.IntVar(&cfg.DefaultK, "k", cfg.DefaultK, "results per search without ?k=")
	fs.IntVar(&cfg.MaxK, "max-k", cfg.MaxK, "largest ?k= accepted")
	upload := bytesize.Value(cfg.MaxUpload)
	fs.Var(&upload, "max-upload", "largest request body (413 past it), e.g. 10MiB")
	fs.IntVar(&cfg.MaxUploads, "max-uploads", cfg.MaxUploads, "uploads received at once (503 with Retry-After past it)")
	minRate := bytesize.Value(cfg.MinUploadRate)
	fs.Var(&minRate, "min-upload-rate", "slowest an upload may arrive after -upload-grace, per second (408 below it; 0: off)")
	fs.DurationVar(&cfg.UploadGrace, "upload-grace", cfg.UploadGrace, "time an upload may take before -min-upload-rate applies")
	fs.IntVar(&cfg.MaxPixels, "max-pixels", cfg.MaxPixels, "largest uploaded image, width × height (400 past it)")
	decodeBytes := bytesize.Value(cfg.MaxDecodeBytes)
	fs.Var(&decodeBytes, "max-decode-bytes", "most memory one image may take to decode (400 past it), e.g. 256MiB")
	decodeBudget := bytesize.Value(cfg.DecodeBudget)
	fs.Var(&decodeBudget, "decode-budget", "memory shared by the decodes in progress; a decode waits for its share (at most -queue-timeout)")
	fs.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "open connections at most (more clients wait to be accepted)")
	thumbCache := bytesize.Value(cfg.ThumbCache)
	fs.Var(&thumbCache, "thumb-cache", "memory for the gallery thumbnails kept, e.g. 32MiB")
	fs.StringVar(&cfg.Token, "token", os.Getenv("DMLGO_TOKEN"), "access token the API requires as \"Authorization: Bearer TOKEN\" (default $DMLGO_TOKEN; empty: none)")
	cors := fs.String("cors-origin", "", "origins allowed to call the API from a browser, comma-separated, or * (default: none)")
	fs.BoolVar(&cfg.ExposePaths, "expose-paths", false, "show the server's file paths in responses (default: paths relative to the indexed folder)")
	fs.IntVar(&cfg.Queue, "queue", cfg.Queue, "searches that may wait while one runs (503 with Retry-After past it)")
	fs.DurationVar(&cfg.QueueTimeout, "queue-timeout", cfg.QueueTimeout, "longest wait for the model (503 with Retry-After past it)")
	fs.IntVar(&cfg.MaxBatch, "max-batch", cfg.MaxBatch, "searches waiting for the model that one forward pass may take together (1: one at a time)")
	fs.DurationVar(&cfg.ReadHeaderTimeout, "read-header-timeout", cfg.ReadHeaderTimeout, "time to read a request's headers")
	fs.DurationVar(&cfg.ReadTimeout, "read-timeout", cfg.ReadTimeout, "time to read a whole request, upload included")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", cfg.WriteTimeout, "time from the end of the request headers to the end of the response")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "how long an idle keep-alive connection stays open")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "on SIGTERM/SIGINT, how long requests in flight may take to finish")
	fs.IntVar(&cfg.Thumb, "thumb", cfg.Thumb, "largest side of the gallery images served")
	fs.BoolVar(&cfg.Writable, "writable", false, "a catalog -index: accept POST /v1/items and DELETE /v1/items/ITEM (needs -token)")
	cfg.Reload = 2 * time.Second
	fs.DurationVar(&cfg.Reload, "reload", cfg.Reload, "a catalog -index: how often to pick up changes other processes made (0: only on SIGHUP)")
	if _, err := parse(fs, args, stderr, serveArgs, false); err != nil {
		return err
	}
	cfg.MaxUpload, cfg.MinUploadRate = int64(upload), int64(minRate)
	cfg.MaxDecodeBytes, cfg.DecodeBudget, cfg.ThumbCache = int64(decodeBytes), int64(decodeBudget), int64(thumbCache)
	for _, o := range strings.Split(*cors, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.CORSOrigins = append(cfg.CORSOrigins, o)
		}
	}
	cfg.Log = stderr
	if err := mf.check(); err != nil {
		return err
	}
	if *indexPath == "" {
		return usagef("-index is required: the index file made by 'retrieve index'")
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	for _, d := range []time.Duration{cfg.ReadHeaderTimeout, cfg.ReadTimeout, cfg.WriteTimeout, cfg.IdleTimeout, cfg.ShutdownTimeout} {
		if d <= 0 {
			return usagef("timeouts must be positive, got %v", d)
		}
	}
	// Decoded uploads turn into garbage quickly: a memory limit makes the
	// collector return it before the heap doubles (GOMEMLIMIT overrides).
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(cfg.DecodeBudget + 256<<20)
	}
	m, err := mf.load(stderr)
	if err != nil {
		return err
	}
	v, cat, err := openIndex(*indexPath, stderr)
	if err != nil {
		return err
	}
	gal := catalog.NewGallery(v.Index, m.Card.Data, stderr)
	if err := gal.Prepare(); err != nil {
		return fmt.Errorf("gallery images: %w", err)
	}
	var srv *serve.Server
	if cat != nil {
		defer cat.Close()
		srv, err = serve.NewCatalogServer(m, cat, gal, cfg)
	} else {
		srv, err = serve.NewServer(m, v.Index, *indexPath, gal, cfg)
	}
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			srv.Reload()
		}
	}()
	return srv.Serve(ctx, ln)
}
