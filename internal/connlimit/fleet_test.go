package connlimit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeFleet is another process's view of shared caps: slots per key, in
// use by "other workers" too (taken), with the same all-or-none takes as
// the ledger's slots table.
type fakeFleet struct {
	mu    sync.Mutex
	used  map[string]int
	takes []string // key and n of each successful take, in order
}

func (f *fakeFleet) TryTake(_ context.Context, key string, size, n int) ([]func(), bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.used[key]+n > size {
		return nil, false, nil
	}
	f.used[key] += n
	f.takes = append(f.takes, key)
	rel := make([]func(), n)
	for i := range rel {
		var once sync.Once
		rel[i] = func() {
			once.Do(func() {
				f.mu.Lock()
				f.used[key]--
				f.mu.Unlock()
			})
		}
	}
	return rel, true, nil
}

func (f *fakeFleet) Take(ctx context.Context, key string, size, n int) ([]func(), error) {
	for {
		rel, ok, err := f.TryTake(ctx, key, size, n)
		if ok || err != nil {
			return rel, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

func (f *fakeFleet) inUse(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.used[key]
}

// TestFleetSlots: with a Fleet, a claim takes the fleet's slots of its
// limited keys (not of an Unlimited one), in key order; each claim's
// release gives back its share; a fleet whose slots other processes hold
// makes Acquire wait (until ctx ends) and TryAcquire fail, taking nothing
// in this process either.
func TestFleetSlots(t *testing.T) {
	f := &fakeFleet{used: map[string]int{}}
	var l Limits
	l.ShareWith(f)
	host := Cap{Key: "b-host:993", Max: 3}
	run := Cap{Key: "a-run", Max: 10}
	user := Cap{Key: "user:b-host:993/alice", Max: Unlimited}
	rel, err := l.Acquire(context.Background(), Claim{Caps: []Cap{host, user, run}, N: 1}, Claim{Caps: []Cap{host, run}, N: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.takes; len(got) != 2 || got[0] != "a-run" || got[1] != "b-host:993" {
		t.Errorf("fleet takes %v, want a-run then b-host:993 (the unlimited user key not at all)", got)
	}
	if n := f.inUse(host.Key); n != 3 {
		t.Errorf("fleet slots of the host in use: %d, want 3", n)
	}
	rel[1]()
	if n, m := f.inUse(host.Key), f.inUse(run.Key); n != 1 || m != 1 {
		t.Errorf("after the second claim's release: host %d, run %d in the fleet, want 1 and 1", n, m)
	}
	rel[0]()
	rel[0]()
	if n := f.inUse(host.Key); n != 0 {
		t.Errorf("after every release the fleet holds %d slots of the host", n)
	}

	// Other workers hold 2 of the host's 3: a claim of 2 cannot be had.
	others, _, _ := f.TryTake(context.Background(), host.Key, 3, 2)
	if _, ok := l.TryAcquire(Claim{Caps: []Cap{host, run}, N: 2}); ok {
		t.Fatal("TryAcquire succeeded with the fleet's slots in use")
	}
	if used, _ := l.InUse(host.Key); used != 0 || f.inUse(run.Key) != 0 {
		t.Errorf("a failed TryAcquire kept slots: %d of the host here, %d of the run in the fleet", used, f.inUse(run.Key))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(ctx, Claim{Caps: []Cap{host, run}, N: 2}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with the fleet's slots in use: %v, want the context's deadline", err)
	}
	if used, _ := l.InUse(host.Key); used != 0 || f.inUse(run.Key) != 0 {
		t.Errorf("a failed Acquire kept slots: %d of the host here, %d of the run in the fleet", used, f.inUse(run.Key))
	}
	// Once the other workers let go, the wait ends.
	done := make(chan error, 1)
	go func() {
		rel, err := l.Acquire(context.Background(), Claim{Caps: []Cap{host, run}, N: 2})
		if err == nil {
			rel[0]()
		}
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	for _, r := range others {
		r()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
