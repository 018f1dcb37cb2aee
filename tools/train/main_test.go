package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmlgo/dmlgo/internal/runlock"
)

var tinyData = []string{
	"-data-path", filepath.Join("..", "..", "data", "testdata", "fmnist", "fashion-mnist-synthetic.tgz"),
	"-train-items", "24", "-test-items", "10", "-epochs", "1", "-batch", "16", "-threads", "2",
}

// TestBadFlagsExit2AtOnce: a setting out of its range, a NaN, an unknown
// model or device exits 2 with a message naming the flag, before any work:
// no data is read and no output folder made.
func TestBadFlagsExit2AtOnce(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-lr", "NaN"}, "--lr"},
		{[]string{"-lr", "Inf"}, "--lr"},
		{[]string{"-threads", "100000"}, "--threads: must be in 0..1024"},
		{[]string{"-dim", "100000000"}, "--dim: must be in 1..65536"},
		{[]string{"-train-items", "-7"}, "--train-items"},
		{[]string{"-workers", "-3"}, "--workers"},
		{[]string{"-momentum", "-5"}, "--momentum: must be a finite number in [0, 1)"},
		{[]string{"-weight-decay", "-1"}, "--weight-decay"},
		{[]string{"-model", "vgg"}, `--model: unknown model "vgg"`},
		{[]string{"-device", "tpu"}, `--device: unknown device "tpu"`},
		{[]string{"-nope"}, "not defined"},
	}
	for _, c := range cases {
		out := filepath.Join(t.TempDir(), "run")
		var stdout, stderr bytes.Buffer
		t0 := time.Now()
		code := run(context.Background(), append(append([]string{"-out", out}, tinyData...), c.args...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr.String(), c.want)
		}
		if strings.Contains(stderr.String(), "data:") {
			t.Errorf("%v: data was loaded before the flags were checked: %q", c.args, stderr.String())
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%v: the output folder was made", c.args)
		}
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("%v: took %v to refuse", c.args, d)
		}
	}
}

// TestBusyFolderExit1: a run on a folder another run holds exits 1 at
// once, naming the folder and the other process.
func TestBusyFolderExit1(t *testing.T) {
	out := t.TempDir()
	l, err := runlock.Acquire(out)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	for _, args := range [][]string{append([]string{"-out", out}, tinyData...), {"-resume", out}} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), out) || !strings.Contains(stderr.String(), "process "+strconv.Itoa(os.Getpid())) {
			t.Errorf("%v: exit %d, stderr %q; want 1 naming %s and PID %d", args[:2], code, stderr.String(), out, os.Getpid())
		}
	}
}

// TestInterruptedStartExit130: a signal while the data loads (a cancelled
// context) exits 130, as one during training does, and leaves no folder.
func TestInterruptedStartExit130(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, append([]string{"-out", out}, tinyData...), &stdout, &stderr); code != 130 || !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("exit %d, stderr %q; want 130, interrupted", code, stderr.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the interrupted start left its output folder (%v)", err)
	}
}
