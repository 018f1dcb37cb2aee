package serve

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestBudget: acquisitions wait while the budget is spent, are granted in
// arrival order as bytes are released, and a cancelled wait takes nothing.
func TestBudget(t *testing.T) {
	b := newBudget(100)
	ctx := context.Background()
	if err := b.acquire(ctx, 60); err != nil {
		t.Fatal(err)
	}
	if err := b.acquire(ctx, 101); err == nil {
		t.Error("more than the whole budget was granted")
	}
	got := make(chan int, 3)
	waiting := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.waiters.Len()
	}
	wait := func(id int, n int64) {
		before := waiting()
		go func() {
			if err := b.acquire(ctx, n); err == nil {
				got <- id
			}
		}()
		// Queue in this order: wait (bounded) until it is in the line.
		for i := 0; waiting() == before && i < 5000; i++ {
			time.Sleep(time.Millisecond)
		}
	}
	wait(1, 50) // does not fit beside 60
	wait(2, 10) // would fit, but waits behind 1: first come, first served
	if n := waiting(); n != 2 {
		t.Fatalf("%d waiting, want both (60 of 100 in use)", n)
	}
	select {
	case id := <-got:
		t.Fatalf("waiter %d was granted with 60 of 100 in use", id)
	default:
	}
	// A waiter that gives up takes nothing and leaves the line.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	if err := b.acquire(cctx, 90); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled wait: %v", err)
	}
	cancel()
	b.release(60)
	seen := map[int]bool{}
	for range 2 { // both fit now (granted together, in any order)
		select {
		case id := <-got:
			seen[id] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("granted only %v", seen)
		}
	}
	if u := b.inUse(); u != 60 {
		t.Errorf("%d in use, want 60", u)
	}
	b.release(60)
	if u := b.inUse(); u != 0 {
		t.Errorf("%d in use after every release", u)
	}
}

// TestLimitListener: at most n connections are accepted at once; closing
// one lets the next in.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newLimitListener(inner, 2)
	defer ln.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first := []net.Conn{<-accepted, <-accepted}
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted with two open")
	case <-time.After(100 * time.Millisecond):
	}
	first[0].Close()
	first[0].Close() // closing twice frees one place only
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("closing a connection did not let the next in")
	}
	first[1].Close()
}

// TestThumbCache: one build per row for concurrent requests, eviction past
// the byte limit, errors not cached.
func TestThumbCache(t *testing.T) {
	c := newThumbCache(10)
	builds := 0
	build := func(n int) func() ([]byte, error) {
		return func() ([]byte, error) { builds++; return make([]byte, n), nil }
	}
	ctx := context.Background()
	c.get(ctx, 1, build(4))
	c.get(ctx, 1, build(4))
	c.get(ctx, 2, build(4))
	if builds != 2 || c.bytes() != 8 {
		t.Errorf("%d builds, %d bytes", builds, c.bytes())
	}
	c.get(ctx, 1, build(4)) // 1 is now the most recent
	c.get(ctx, 3, build(4)) // evicts 2
	c.get(ctx, 1, build(4))
	if builds != 3 || c.bytes() != 8 {
		t.Errorf("after eviction: %d builds, %d bytes", builds, c.bytes())
	}
	c.get(ctx, 2, build(4))
	if builds != 4 {
		t.Errorf("the evicted row was not rebuilt: %d builds", builds)
	}
	if _, err := c.get(ctx, 9, func() ([]byte, error) { return nil, errors.New("no") }); err == nil {
		t.Error("the error was lost")
	}
	if _, err := c.get(ctx, 9, build(1)); err != nil || builds != 5 {
		t.Errorf("an error was cached: %v, %d builds", err, builds)
	}
}

// TestReadAllReservesLittle: a declared length reserves at most readAhead
// bytes before they arrive; the whole body is still read.
func TestReadAllReservesLittle(t *testing.T) {
	body := bytes.Repeat([]byte{7}, 3*readAhead+5)
	got, err := readAll(bytes.NewReader(body), 10<<20)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("readAll: %d bytes, %v", len(got), err)
	}
	small, err := readAll(bytes.NewReader([]byte{1}), 10<<20)
	if err != nil || len(small) != 1 || cap(small) > readAhead {
		t.Errorf("a 1-byte body that declared 10 MiB: %d bytes in a buffer of %d, %v", len(small), cap(small), err)
	}
}
