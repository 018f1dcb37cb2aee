package sets

import (
	"context"
	"io"
	"sync"
)

// OpenContext is Open, but returns ctx's error as soon as ctx is
// cancelled. Open itself cannot be stopped: it goes on in the
// background with its log muted and its result is dropped (the command
// then exits).
func OpenContext(ctx context.Context, spec Spec, log io.Writer) (*Set, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ctx.Done() == nil {
		return Open(spec, log)
	}
	mw := &muteWriter{w: log}
	type result struct {
		set *Set
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := Open(spec, mw)
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		return r.set, r.err
	case <-ctx.Done():
		mw.mute()
		return nil, ctx.Err()
	}
}

// muteWriter passes writes to w until muted, then drops them.
type muteWriter struct {
	mu    sync.Mutex
	w     io.Writer
	muted bool
}

func (m *muteWriter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.muted || m.w == nil {
		return len(p), nil
	}
	return m.w.Write(p)
}

func (m *muteWriter) mute() {
	m.mu.Lock()
	m.muted = true
	m.mu.Unlock()
}
