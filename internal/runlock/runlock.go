// Package runlock keeps two processes from writing into the same output
// folder: an advisory lock on the file .lock in the folder, held for the
// whole run, which holds the holder's process id, start time, host and
// command line as text.
//
// The lock is flock(2) on the open file, so the kernel releases it when
// the holder exits, however it exits: a lock left by a killed run (kill -9,
// a crash, a power cut) is found unlocked, reported (Lock.Stale) and taken
// over. flock is per open file description, so two Acquires of one folder
// conflict even within one process. A clean Release removes the file.
//
// On systems without flock (Windows, Plan 9) the file is written but not
// locked (Lock.Enforced is false).
package runlock

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FileName is the lock file's name inside the folder.
const FileName = ".lock"

// Holder is what a lock file says about the process that holds (or held)
// it.
type Holder struct {
	PID     int
	Started time.Time
	Host    string
	Command string
}

// String is one line about the holder: "process 123 (train -out x) on host, started 2006-01-02 15:04:05".
func (h Holder) String() string {
	s := "process " + strconv.Itoa(h.PID)
	if h.PID <= 0 {
		s = "an unknown process"
	}
	if h.Command != "" {
		s += " (" + h.Command + ")"
	}
	if h.Host != "" {
		s += " on " + h.Host
	}
	if !h.Started.IsZero() {
		s += ", started " + h.Started.Local().Format("2006-01-02 15:04:05")
	}
	return s
}

// BusyError reports a folder whose lock another process holds.
type BusyError struct {
	Dir    string
	Holder Holder
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s is in use by %s: two runs cannot write into one folder; wait for it to end or stop it, or choose another folder", e.Dir, e.Holder)
}

// Lock is a held folder lock.
type Lock struct {
	// Dir is the locked folder; Path its lock file.
	Dir, Path string
	// Stale, when not nil, describes the process whose lock file was found
	// unlocked and taken over: a run that did not end cleanly.
	Stale *Holder
	// Enforced is false where the system has no flock: the file is
	// written but another process is not kept out.
	Enforced bool

	f *os.File
}

// Acquire takes the lock of dir, which must exist. It fails at once with a
// *BusyError when another process (or another Acquire in this one) holds
// it.
func Acquire(dir string) (*Lock, error) {
	path := filepath.Join(dir, FileName)
	// A holder that releases removes the file: after locking, make sure the
	// file locked is still the one at path, else try again with the new one.
	for range 10 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("locking %s: %w", dir, err)
		}
		enforced, err := tryLock(f)
		if err != nil {
			h, _ := readHolder(f)
			f.Close()
			if errors.Is(err, errBusy) {
				return nil, &BusyError{Dir: dir, Holder: h}
			}
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if !samePath(f, path) {
			f.Close()
			continue
		}
		l := &Lock{Dir: dir, Path: path, Enforced: enforced, f: f}
		if h, ok := readHolder(f); ok && enforced {
			l.Stale = &h
		}
		if err := l.write(); err != nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		return l, nil
	}
	return nil, fmt.Errorf("locking %s: the lock file keeps being replaced", path)
}

// samePath reports whether f is still the file at path.
func samePath(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// write records this process as the holder.
func (l *Lock) write() error {
	host, _ := os.Hostname()
	text := fmt.Sprintf("pid %d\nstarted %s\nhost %s\ncommand %s\n",
		os.Getpid(), startTime.UTC().Format(time.RFC3339), host, commandLine())
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	if _, err := l.f.WriteAt([]byte(text), 0); err != nil {
		return err
	}
	return l.f.Sync()
}

// startTime stands for the process's start: when the package was
// initialised.
var startTime = time.Now()

// commandLine is the program's base name and its arguments, on one line,
// shortened.
func commandLine() string {
	if len(os.Args) == 0 {
		return ""
	}
	s := strings.Join(append([]string{filepath.Base(os.Args[0])}, os.Args[1:]...), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.ReplaceAll(s, "\n", " ")
}

// readHolder parses the lock file's text; ok is false for an empty or
// unreadable file.
func readHolder(f *os.File) (Holder, bool) {
	raw, err := io.ReadAll(io.NewSectionReader(f, 0, 4096))
	if err != nil || len(raw) == 0 {
		return Holder{}, false
	}
	return ParseHolder(string(raw)), true
}

// ParseHolder reads the text of a lock file ("pid N", "started RFC3339",
// "host H", "command C" lines; unknown lines are ignored).
func ParseHolder(text string) Holder {
	var h Holder
	for _, line := range strings.Split(text, "\n") {
		key, val, _ := strings.Cut(line, " ")
		switch key {
		case "pid":
			h.PID, _ = strconv.Atoi(val)
		case "started":
			h.Started, _ = time.Parse(time.RFC3339, val)
		case "host":
			h.Host = val
		case "command":
			h.Command = val
		}
	}
	return h
}

// Release removes the lock file and releases the lock. It may be called
// more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	// Remove while holding: a process waiting on the old file then sees
	// that it is no longer at the path and opens the new one.
	err := os.Remove(l.Path)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return err
}
