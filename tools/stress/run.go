//go:build linux

package main

// How one case runs: its folder, deadline, figure and bound.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// caseRun is one case being run: its folder, the processes it started,
// its figures and the bounds it passed.
type caseRun struct {
	e     *env
	name  string
	dir   string
	t0    time.Time
	figs  []string
	fails []string
	err   error
	mu    sync.Mutex
	procs []*proc
}

// fig adds a figure to the case's line.
func (r *caseRun) fig(format string, a ...any) { r.figs = append(r.figs, fmt.Sprintf(format, a...)) }

// bound records a failure when ok is false.
func (r *caseRun) bound(ok bool, format string, a ...any) {
	if !ok {
		r.fails = append(r.fails, fmt.Sprintf(format, a...))
	}
}

func (r *caseRun) ok() bool { return r.err == nil && len(r.fails) == 0 }

func (r *caseRun) line() string {
	head := "ok  "
	if !r.ok() {
		head = "FAIL"
	}
	s := fmt.Sprintf("%s %s (%s): %s", head, r.name, secs(time.Since(r.t0)), strings.Join(r.figs, "; "))
	if r.err != nil {
		s += "; ERROR: " + oneLine(r.err.Error())
	}
	if len(r.fails) > 0 {
		s += "; OUT OF BOUND: " + strings.Join(r.fails, "; ")
	}
	return s
}

// logTail returns the last lines of the case's logs.
func (r *caseRun) logTail() string {
	logs, _ := filepath.Glob(filepath.Join(r.dir, "*.log"))
	var b strings.Builder
	for _, l := range logs {
		raw, _ := os.ReadFile(l)
		if len(raw) == 0 {
			continue
		}
		fmt.Fprintf(&b, "  == %s\n", filepath.Base(l))
		for _, line := range strings.Split(tail(string(raw), 8), "\n") {
			if line != "" {
				fmt.Fprintf(&b, "  %s\n", line)
			}
		}
	}
	return b.String()
}

func runCase(ctx context.Context, e *env, c stressCase) *caseRun {
	r := &caseRun{e: e, name: c.name, t0: time.Now(), dir: filepath.Join(e.tmp, "cases", c.name)}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		r.err = err
		return r
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	func() {
		defer func() {
			if p := recover(); p != nil {
				r.err = fmt.Errorf("panic: %v", p)
			}
		}()
		r.err = c.run(cctx, r)
	}()
	if r.err == nil && cctx.Err() != nil {
		r.err = fmt.Errorf("the case ran past its %v deadline", c.timeout)
	}
	r.mu.Lock()
	procs := r.procs
	r.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	return r
}
