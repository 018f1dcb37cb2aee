//go:build linux

// Command stress replays the attacks and faults of the reliability issue
// against the real binaries and prints one line per case with its figure
// (memory, latency, status and exit codes) and whether it is within its
// bound.
//
//	go run ./tools/stress                       # every case (make stress)
//	go run ./tools/stress -cases slow-bodies,decode-bombs -keep
//
// It builds tools/train and tools/retrieve into a temporary folder, trains a
// tiny model on the synthetic Fashion-MNIST archive of the data package's
// tests (about a second), indexes its gallery, and runs each case in a
// folder of its own, as subprocesses talking over 127.0.0.1 only. Every
// case runs under a deadline, and every process it starts is killed when
// it ends (and when this command is interrupted or dies: the children get
// SIGKILL with their parent). Progress goes to stderr; the case lines and
// the summary to stdout. Exit status: 0 when every case is within its
// bound, 1 otherwise, 2 for a usage error.
//
// It reads the memory of processes from /proc and wait4's rusage, so it
// runs on Linux only.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stressCase is one attack or fault: run returns an error when the case
// could not be carried out (a failure too); bounds are checked with
// r.bound.
type stressCase struct {
	name    string
	timeout time.Duration
	run     func(ctx context.Context, r *caseRun) error
}

var cases = []stressCase{
	{"slow-bodies", 60 * time.Second, caseSlowBodies},
	{"slow-grace", 30 * time.Second, caseSlowGrace},
	{"decode-bombs", 60 * time.Second, caseDecodeBombs},
	{"decode-budget", 90 * time.Second, caseDecodeBudget},
	{"gallery-flood", 90 * time.Second, caseGalleryFlood},
	{"access", 60 * time.Second, caseAccess},
	{"two-runs-same-out", 60 * time.Second, caseTwoRuns},
	{"kill-resume-log", 90 * time.Second, caseKillResume},
	{"nan-checkpoint", 60 * time.Second, caseNaNCheckpoint},
	{"bad-flags", 60 * time.Second, caseBadFlags},
	{"sigint-eval", 120 * time.Second, caseSigintEval},
	{"local-bomb", 60 * time.Second, caseLocalBomb},
}

// env is what every case shares: the binaries and a tiny trained model
// with its gallery index. Cases only read it.
type env struct {
	root    string // the repository
	tmp     string // this run's temporary folder
	train   string // binaries
	retr    string
	archive string // the synthetic Fashion-MNIST archive
	model   string // the tiny run's folder
	ckpt    string // its best.ckpt
	index   string // its gallery index
}

// tinyTrain are the flags of a tiny run (as app_test.go's tinyConfig): 72
// training images of 24 items, 10 queries against 10 gallery images, two
// epochs of 4 steps; about a second on 2 cores.
func (e *env) tinyTrain(out string, extra ...string) []string {
	args := []string{"-data-path", e.archive, "-train-items", "24", "-test-items", "10",
		"-epochs", "2", "-batch", "16", "-eval-every", "1", "-loss", "dml/class", "-threads", "2", "-out", out}
	return append(args, extra...)
}

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("stress", flag.ContinueOnError)
	only := fs.String("cases", "", "comma-separated cases to run (default: all): "+caseNames())
	keep := fs.Bool("keep", false, "keep the temporary folder (binaries, model, each case's files and logs)")
	goCmd := fs.String("go", "go", "the go command that builds the binaries")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "stress: unexpected argument %q (flags only)\n", fs.Arg(0))
		return 2
	}
	todo := cases
	if *only != "" {
		todo = nil
		for _, n := range strings.Split(*only, ",") {
			n = strings.TrimSpace(n)
			i := slices.IndexFunc(cases, func(c stressCase) bool { return c.name == n })
			if i < 0 {
				fmt.Fprintf(os.Stderr, "stress: -cases: unknown case %q (want %s)\n", n, caseNames())
				return 2
			}
			todo = append(todo, cases[i])
		}
	}

	// SIGINT or SIGTERM cancels everything; CommandContext then kills
	// the children.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Println(machine())
	e, err := setup(ctx, *goCmd, *keep)
	if e != nil && e.tmp != "" {
		if *keep {
			defer fmt.Fprintf(os.Stderr, "kept %s\n", e.tmp)
		} else {
			defer os.RemoveAll(e.tmp)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "stress: %v\n", err)
		return 1
	}

	t0 := time.Now()
	var failed []string
	for _, c := range todo {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "stress: interrupted")
			return 1
		}
		fmt.Fprintf(os.Stderr, "running %s...\n", c.name)
		r := runCase(ctx, e, c)
		fmt.Println(r.line())
		if !r.ok() {
			failed = append(failed, c.name)
			if tail := r.logTail(); tail != "" {
				fmt.Fprintf(os.Stderr, "%s: the last lines of its logs (in %s):\n%s", c.name, r.dir, tail)
			}
		}
	}
	sum := fmt.Sprintf("%d passed, %d failed", len(todo)-len(failed), len(failed))
	if len(failed) > 0 {
		sum += " (" + strings.Join(failed, ", ") + ")"
	}
	fmt.Printf("%s in %s\n", sum, secs(time.Since(t0)))
	if len(failed) > 0 {
		return 1
	}
	return 0
}

func caseNames() string {
	var n []string
	for _, c := range cases {
		n = append(n, c.name)
	}
	return strings.Join(n, ", ")
}

// machine describes the CPU, the cores and the memory.
func machine() string {
	model := "unknown CPU"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if kb := procStatusKB("/proc/meminfo", "MemTotal"); kb > 0 {
		mem = ", " + mib(kb<<10) + " memory"
	}
	return fmt.Sprintf("machine: %s, %d cores%s, %s %s/%s", model, runtime.NumCPU(), mem, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// setup builds the binaries, trains the tiny model and indexes its gallery.
func setup(ctx context.Context, goCmd string, keep bool) (*env, error) {
	e := &env{}
	out, err := exec.CommandContext(ctx, goCmd, "env", "GOMOD").Output()
	if err != nil {
		return e, fmt.Errorf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return e, errors.New("run it inside the dmlgo module (go env GOMOD is empty)")
	}
	e.root = filepath.Dir(gomod)
	e.archive = filepath.Join(e.root, "data", "testdata", "fmnist", "fashion-mnist-synthetic.tgz")
	if _, err := os.Stat(e.archive); err != nil {
		return e, fmt.Errorf("the synthetic archive: %v", err)
	}
	if e.tmp, err = os.MkdirTemp("", "dmlgo-stress-"); err != nil {
		return e, err
	}
	bin := filepath.Join(e.tmp, "bin")
	e.train, e.retr = filepath.Join(bin, "train"), filepath.Join(bin, "retrieve")

	t0 := time.Now()
	build := exec.CommandContext(ctx, goCmd, "build", "-o", bin+string(filepath.Separator), "./tools/train", "./tools/retrieve")
	build.Dir = e.root
	if out, err := build.CombinedOutput(); err != nil {
		return e, fmt.Errorf("go build: %v\n%s", err, out)
	}
	tBuild := time.Since(t0)

	e.model = filepath.Join(e.tmp, "model")
	logs := filepath.Join(e.tmp, "setup")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return e, err
	}
	res := runFor(ctx, logs, 2*time.Minute, "train", e.train, e.tinyTrain(e.model)...)
	if res.code != 0 {
		return e, fmt.Errorf("training the tiny model: %s\n%s", res.status(), tail(res.out, 20))
	}
	tTrain := res.took
	e.ckpt = filepath.Join(e.model, "best.ckpt")
	e.index = filepath.Join(e.model, "gallery.safetensors")
	res = runFor(ctx, logs, time.Minute, "index", e.retr, "index", "-ckpt", e.ckpt, "-out", e.index)
	if res.code != 0 {
		return e, fmt.Errorf("indexing the gallery: %s\n%s", res.status(), tail(res.out, 20))
	}
	fmt.Fprintf(os.Stderr, "setup: built train and retrieve in %s, trained a tiny model (2 epochs, 72 images) in %s, indexed its gallery in %s\n",
		secs(tBuild), secs(tTrain), secs(res.took))
	return e, nil
}

// ---- a case's run ----

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

// ---- processes ----

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

// ---- small helpers ----

// procStatusKB reads a "Key:   123 kB" line of a /proc file.
func procStatusKB(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		return n
	}
	return 0
}

// freePort returns a loopback port free now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tensorInfo is a tensor's entry in a safetensors header.
type tensorInfo struct {
	DType   string   `json:"dtype"`
	Shape   []int64  `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// readHeader reads a safetensors file's header: its tensors and metadata,
// and where the data begins.
func readHeader(path string) (map[string]tensorInfo, map[string]string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, 0, err
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return nil, nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	if n > 100<<20 {
		return nil, nil, 0, fmt.Errorf("%s: a header of %d bytes", path, n)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(f, raw); err != nil {
		return nil, nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, nil, 0, fmt.Errorf("%s: header: %w", path, err)
	}
	tensors := map[string]tensorInfo{}
	var meta map[string]string
	for k, v := range all {
		if k == "__metadata__" {
			if err := json.Unmarshal(v, &meta); err != nil {
				return nil, nil, 0, fmt.Errorf("%s: metadata: %w", path, err)
			}
			continue
		}
		var t tensorInfo
		if err := json.Unmarshal(v, &t); err != nil {
			return nil, nil, 0, fmt.Errorf("%s: tensor %s: %w", path, k, err)
		}
		tensors[k] = t
	}
	return tensors, meta, 8 + int64(n), nil
}

// ckptEpoch returns the epochs a checkpoint has completed.
func ckptEpoch(path string) (int, error) {
	_, meta, _, err := readHeader(path)
	if err != nil {
		return 0, err
	}
	var st struct {
		Epoch int `json:"epoch"`
		Step  int `json:"step"`
	}
	if err := json.Unmarshal([]byte(meta["dmlgo.state"]), &st); err != nil {
		return 0, fmt.Errorf("%s: state: %w", path, err)
	}
	return st.Epoch, nil
}

func mib(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

// secs writes a duration for people: 4 ms, 1.23 s, 2m05s.
func secs(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d < time.Minute:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// lineWith returns the first line of s containing sub (trimmed), or "".
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// quantile is the nearest-rank q-quantile of sorted ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(float64(len(ds))*q+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// codes writes a count of status codes: "19×200, 1×503".
func codes(m map[int]int) string {
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	var s []string
	for _, k := range ks {
		name := strconv.Itoa(k)
		if k <= 0 {
			name = "no answer"
		}
		s = append(s, fmt.Sprintf("%d×%s", m[k], name))
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// only reports whether every code counted is one of want.
func only(m map[int]int, want ...int) bool {
	for k := range m {
		if !slices.Contains(want, k) {
			return false
		}
	}
	return len(m) > 0
}
