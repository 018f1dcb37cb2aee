package runlock

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSecondAcquireFails: flock is per open file description, so a second
// Acquire of a held folder fails even in the same process, naming the
// holder's PID and the folder; after Release the folder can be locked
// again, and a cleanly released lock leaves no file and no stale report.
func TestSecondAcquireFails(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Enforced {
		t.Skip("no flock on this system")
	}
	if l.Stale != nil {
		t.Errorf("fresh folder: stale holder %v", l.Stale)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, FileName))
	if h := ParseHolder(string(raw)); h.PID != os.Getpid() || h.Started.IsZero() {
		t.Errorf("lock file %q: holder %+v", raw, h)
	}
	_, err = Acquire(dir)
	var be *BusyError
	if !errors.As(err, &be) || be.Holder.PID != os.Getpid() || be.Dir != dir {
		t.Fatalf("second Acquire: %v", err)
	}
	for _, want := range []string{dir, "process " + strconv.Itoa(os.Getpid()), "in use"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); !os.IsNotExist(err) {
		t.Errorf("lock file after Release: %v", err)
	}
	l2, err := Acquire(dir)
	if err != nil || l2.Stale != nil {
		t.Fatalf("after Release: %v, stale %v", err, l2.Stale)
	}
	l2.Release()
}

// TestStaleLockTakenOver: a run killed with SIGKILL leaves its lock file;
// the kernel released the flock, so the next Acquire succeeds and reports
// the dead holder. While the holder lives, Acquire names its PID.
func TestStaleLockTakenOver(t *testing.T) {
	if dir := os.Getenv("RUNLOCK_HOLD"); dir != "" {
		// The child: hold the lock until killed.
		if _, err := Acquire(dir); err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	dir := t.TempDir()
	if l, err := Acquire(dir); err != nil || !l.Enforced {
		t.Skipf("no flock on this system (%v)", err)
	} else {
		l.Release()
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestStaleLockTakenOver$")
	cmd.Env = append(os.Environ(), "RUNLOCK_HOLD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("child: %q %v", line, err)
	}
	_, err = Acquire(dir)
	var be *BusyError
	if !errors.As(err, &be) {
		t.Fatalf("Acquire while the child holds the lock: %v", err)
	}
	if be.Holder.PID != cmd.Process.Pid {
		t.Errorf("holder PID %d, want the child's %d", be.Holder.PID, cmd.Process.Pid)
	}
	cmd.Process.Kill() // SIGKILL: no chance to clean up
	cmd.Wait()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after the holder was killed: %v", err)
	}
	defer l.Release()
	if l.Stale == nil || l.Stale.PID != cmd.Process.Pid {
		t.Errorf("stale holder %v, want PID %d", l.Stale, cmd.Process.Pid)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, FileName))
	if h := ParseHolder(string(raw)); h.PID != os.Getpid() {
		t.Errorf("lock file after the takeover names PID %d, want %d", h.PID, os.Getpid())
	}
}
