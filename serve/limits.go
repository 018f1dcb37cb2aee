package serve

// The service's defences against slow and greedy clients: a memory budget
// shared by concurrent decodes, a body reader that demands a minimum
// transfer rate, a listener that bounds open connections, and a bounded
// cache of gallery thumbnails.

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// budget is a weighted semaphore over bytes: decodes acquire what they will
// take and wait, first come first served, while the total in use would pass
// the budget.
type budget struct {
	mu      sync.Mutex
	total   int64
	used    int64
	waiters list.List // of *budgetWaiter, oldest first
}

type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

func newBudget(total int64) *budget { return &budget{total: total} }

// acquire takes n bytes of the budget, waiting while they are not free; it
// returns ctx's error, having taken nothing, when ctx is done first. n must
// not exceed the total.
func (b *budget) acquire(ctx context.Context, n int64) error {
	if n > b.total {
		return fmt.Errorf("app: budget: %d bytes asked of a budget of %d", n, b.total)
	}
	b.mu.Lock()
	if b.waiters.Len() == 0 && b.used+n <= b.total {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	e := b.waiters.PushBack(w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready: // granted meanwhile: give it back
			b.used -= n
		default:
			b.waiters.Remove(e)
		}
		b.grant()
		b.mu.Unlock()
		return ctx.Err()
	}
}

// release returns n bytes taken by acquire.
func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	if b.used < 0 {
		b.mu.Unlock()
		panic("app: budget: released more than was acquired")
	}
	b.grant()
	b.mu.Unlock()
}

// grant wakes the waiters at the head of the line that now fit. b.mu is held.
func (b *budget) grant() {
	for e := b.waiters.Front(); e != nil; e = b.waiters.Front() {
		w := e.Value.(*budgetWaiter)
		if b.used+w.n > b.total {
			return
		}
		b.used += w.n
		b.waiters.Remove(e)
		close(w.ready)
	}
}

// inUse returns the bytes taken now.
func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// errSlowUpload is returned by a rateReader whose client sent too slowly.
var errSlowUpload = errors.New("the upload arrived too slowly")

// rateReader reads a request body that must keep arriving at minRate bytes
// per second after a grace period: byte n must have arrived by start +
// grace + n/minRate (and all of them by the request's deadline). It moves
// the connection's read deadline forward as bytes arrive, so a client that
// trickles a body (slowloris) is cut off after the grace period, not after
// the whole request timeout.
type rateReader struct {
	body     io.ReadCloser
	rc       *http.ResponseController
	start    time.Time
	grace    time.Duration
	minRate  int64
	deadline time.Time // the request's overall deadline (zero: none)
	n        int64
	slow     bool // the deadline set is the rate's, not the request's
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (r *rateReader) Read(p []byte) (int, error) {
	if r.minRate > 0 {
		// Byte n+1 is due by start + grace + (n+1)/minRate, and no later
		// than grace from now (a client that sent fast and then stalls
		// earns no credit past that), and within the request's deadline.
		d := r.start.Add(r.grace + time.Duration(float64(r.n+1)/float64(r.minRate)*float64(time.Second)))
		d = minTime(d, time.Now().Add(max(r.grace, time.Second)))
		r.slow = true
		if !r.deadline.IsZero() && !r.deadline.After(d) {
			d, r.slow = r.deadline, false
		}
		// Not every connection supports deadlines (HTTP/2, test
		// recorders): the server's ReadTimeout still bounds those.
		_ = r.rc.SetReadDeadline(d)
	}
	k, err := r.body.Read(p)
	r.n += int64(k)
	if err != nil && r.slow && errors.Is(err, os.ErrDeadlineExceeded) {
		return k, errSlowUpload
	}
	return k, err
}

func (r *rateReader) Close() error { return r.body.Close() }

// limitListener accepts at most n connections at once: Accept waits for
// one of them to close.
type limitListener struct {
	net.Listener
	slots chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// thumbCache keeps encoded thumbnails, least recently used dropped first
// past max bytes, and makes each at most once at a time (requests for a
// thumbnail being made wait for it).
type thumbCache struct {
	mu      sync.Mutex
	max     int64
	size    int64
	lru     list.List // of *thumbEntry, most recent first
	entries map[int]*list.Element
	making  map[int]*thumbCall
}

type thumbEntry struct {
	row int
	png []byte
}

type thumbCall struct {
	done chan struct{}
	png  []byte
	err  error
}

func newThumbCache(max int64) *thumbCache {
	return &thumbCache{max: max, entries: map[int]*list.Element{}, making: map[int]*thumbCall{}}
}

// get returns row's thumbnail, from the cache or made by build (once for
// concurrent requests of one row). ctx bounds the wait for another
// request's making.
func (c *thumbCache) get(ctx context.Context, row int, build func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	if e, ok := c.entries[row]; ok {
		c.lru.MoveToFront(e)
		b := e.Value.(*thumbEntry).png
		c.mu.Unlock()
		return b, nil
	}
	if call, ok := c.making[row]; ok {
		c.mu.Unlock()
		select {
		case <-call.done:
			return call.png, call.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	call := &thumbCall{done: make(chan struct{})}
	c.making[row] = call
	c.mu.Unlock()

	call.png, call.err = build()
	c.mu.Lock()
	delete(c.making, row)
	if call.err == nil && int64(len(call.png)) <= c.max {
		c.entries[row] = c.lru.PushFront(&thumbEntry{row: row, png: call.png})
		c.size += int64(len(call.png))
		for c.size > c.max {
			e := c.lru.Back()
			t := e.Value.(*thumbEntry)
			c.lru.Remove(e)
			delete(c.entries, t.row)
			c.size -= int64(len(t.png))
		}
	}
	c.mu.Unlock()
	close(call.done)
	return call.png, call.err
}

// bytes returns the cache's size.
func (c *thumbCache) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}
