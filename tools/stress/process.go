//go:build linux

package main

// The subprocesses: building the binaries, starting and stopping them,
// their peak memory.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process; its stdout and stderr go, interleaved, into
// memory and into NAME.log in the case's folder.
type proc struct {
	name  string
	cmd   *exec.Cmd
	out   syncBuffer
	log   *os.File
	start time.Time
	done  chan struct{}
	end   time.Time
	werr  error
}

// startProc starts bin with args in dir (logs there too). The process is
// killed when ctx is done, and when this process dies.
func startProc(ctx context.Context, dir, name, bin string, args ...string) (*proc, error) {
	p := &proc{name: name, done: make(chan struct{})}
	logPath := filepath.Join(dir, name+".log")
	for i := 2; ; i++ { // one log per process
		if _, err := os.Stat(logPath); err != nil {
			break
		}
		logPath = filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, i))
	}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p.log = f
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = childEnv()
	w := io.MultiWriter(&p.out, f)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	p.cmd = cmd
	fmt.Fprintf(f, "$ %s %s\n", filepath.Base(bin), strings.Join(args, " "))
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() {
		p.werr = cmd.Wait()
		p.end = time.Now()
		p.log.Close()
		close(p.done)
	}()
	return p, nil
}

// childEnv is this process's environment without the settings that would
// change what the cases measure.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOMEMLIMIT", "GOGC", "DMLGO_TOKEN":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// start starts a process of the case (killed when the case ends).
func (r *caseRun) start(ctx context.Context, name, bin string, args ...string) (*proc, error) {
	p, err := startProc(ctx, r.dir, name, bin, args...)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.procs = append(r.procs, p)
	r.mu.Unlock()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits at most d for the process to exit and returns its exit code
// (-1: killed by a signal), or an error when it is still running.
func (p *proc) wait(d time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.code(), nil
	case <-time.After(d):
		return 0, fmt.Errorf("%s (pid %d) still running after %s", p.name, p.pid(), secs(d))
	}
}

// how says how the process ended: "exit 1", "killed by SIGINT".
func (p *proc) how() string {
	ps := p.cmd.ProcessState
	if ps == nil {
		return "not ended"
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		names := map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGKILL: "SIGKILL", syscall.SIGTERM: "SIGTERM",
			syscall.SIGABRT: "SIGABRT", syscall.SIGSEGV: "SIGSEGV", syscall.SIGQUIT: "SIGQUIT"}
		name, ok := names[ws.Signal()]
		if !ok {
			name = ws.Signal().String()
		}
		return "killed by " + name
	}
	return fmt.Sprintf("exit %d", ps.ExitCode())
}

func (p *proc) code() int {
	if p.cmd.ProcessState == nil {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// maxRSS is the exited process's peak resident memory in bytes (rusage).
func (p *proc) maxRSS() int64 {
	if p.cmd.ProcessState == nil {
		return 0
	}
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss << 10 // kilobytes on Linux
	}
	return 0
}

// hwm is the running process's peak resident memory in bytes (VmHWM).
func (p *proc) hwm() int64 {
	return procStatusKB(fmt.Sprintf("/proc/%d/status", p.pid()), "VmHWM") << 10
}

func (p *proc) signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// kill ends the process, if running, and waits for it.
func (p *proc) kill() {
	if !p.exited() {
		p.cmd.Process.Kill()
	}
	<-p.done
}

// waitFor polls the output until it holds s (at or after byte from), the
// process exits or d passes; it returns the offset just after s, or -1.
func (p *proc) waitFor(ctx context.Context, s string, from int, d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		out := p.out.String()
		if from <= len(out) {
			if i := strings.Index(out[from:], s); i >= 0 {
				return from + i + len(s)
			}
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			return -1
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// result is a finished command.
type result struct {
	code   int    // -1: killed, or did not start
	how    string // "exit 1", "killed by SIGKILL"
	out    string
	took   time.Duration
	rss    int64
	err    error // did not start, or did not end within its time
	killed bool
}

func (r result) status() string {
	if r.err != nil {
		return r.err.Error()
	}
	return r.how
}

// runFor runs a command to its end, killing it after d.
func runFor(ctx context.Context, dir string, d time.Duration, name, bin string, args ...string) result {
	p, err := startProc(ctx, dir, name, bin, args...)
	if err != nil {
		return result{code: -1, err: err}
	}
	code, err := p.wait(d)
	if err != nil {
		p.kill()
		return result{code: -1, out: p.out.String(), took: time.Since(p.start), err: err, killed: true}
	}
	return result{code: code, how: p.how(), out: p.out.String(), took: p.end.Sub(p.start), rss: p.maxRSS()}
}

// run runs a command of the case to its end, killing it after d.
func (r *caseRun) run(ctx context.Context, d time.Duration, name, bin string, args ...string) result {
	return runFor(ctx, r.dir, d, name, bin, args...)
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
