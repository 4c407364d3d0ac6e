package main

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHostLimitsCapConcurrentConnections(t *testing.T) {
	var h hostLimits
	var open, peak atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := h.acquire(context.Background(), "imap.example:993", 5, 2)
			if err != nil {
				t.Error(err)
				return
			}
			n := open.Add(2)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
			open.Add(-2)
			release()
			release() // a second call is harmless
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > 5 {
		t.Errorf("peak connections %d, want at most 5", p)
	}
	// Another host has its own slots; a cancelled wait gives nothing back twice.
	ctx, cancel := context.WithCancel(context.Background())
	hold, _ := h.acquire(ctx, "other:993", 1, 1)
	cancel()
	if _, err := h.acquire(ctx, "other:993", 1, 1); err == nil {
		t.Error("acquire with a cancelled context and no free slot succeeded")
	}
	hold()
	if release, err := h.acquire(context.Background(), "other:993", 1, 1); err != nil {
		t.Errorf("slot not free after release: %v", err)
	} else {
		release()
	}
}
