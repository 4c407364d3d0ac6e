package connlimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gauge counts connections open under one key and remembers the peak.
type gauge struct{ open, peak atomic.Int32 }

func (g *gauge) add(n int32) {
	v := g.open.Add(n)
	for {
		p := g.peak.Load()
		if v <= p || g.peak.CompareAndSwap(p, v) {
			return
		}
	}
}

func TestAcquireCapsConcurrentConnections(t *testing.T) {
	var l Limits
	var g gauge
	host := Cap{Key: "imap.example:993", Max: 5}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := l.Acquire(context.Background(), Claim{Caps: []Cap{host}, N: 2})
			if err != nil {
				t.Error(err)
				return
			}
			g.add(2)
			time.Sleep(5 * time.Millisecond)
			g.add(-2)
			release[0]()
			release[0]() // a second call is harmless
		}()
	}
	wg.Wait()
	if p := g.peak.Load(); p > 5 {
		t.Errorf("peak connections %d, want at most 5", p)
	}
	// Another key has its own slots; a cancelled wait takes nothing.
	other := Cap{Key: "other:993", Max: 1}
	ctx, cancel := context.WithCancel(context.Background())
	hold, _ := l.Acquire(ctx, Claim{Caps: []Cap{other}, N: 1})
	cancel()
	if _, err := l.Acquire(ctx, Claim{Caps: []Cap{other}, N: 1}); err == nil {
		t.Error("Acquire with a cancelled context and no free slot succeeded")
	}
	hold[0]()
	if release, ok := l.TryAcquire(Claim{Caps: []Cap{other}, N: 1}); !ok {
		t.Error("slot not free after release")
	} else {
		release[0]()
	}
}

// TestAcquireSessionsTogether: accounts whose source and destination are
// capped open both at once. Taking the two one by one, an account holding
// the source's only slot waits for destination slots that another account
// holds while it waits for that source slot: both wait for ever. Claimed
// together, every account gets its turn.
func TestAcquireSessionsTogether(t *testing.T) {
	tests := []struct {
		name     string
		src, dst Cap
	}{
		{"two servers", Cap{Key: "pop.old:995", Max: 1}, Cap{Key: "imap.new:993", Max: 2}},
		// One server for both sides (moving between users of one host):
		// one key, 1+2 slots per account.
		{"one server", Cap{Key: "imap.example:993", Max: 3}, Cap{Key: "imap.example:993", Max: 3}},
		// A cap below what one account needs lets one account at a time
		// run instead of none.
		{"cap below one account's need", Cap{Key: "imap.example:993", Max: 2}, Cap{Key: "imap.example:993", Max: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var l Limits
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			var done atomic.Int32
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 20 {
						rel, err := l.Acquire(ctx, Claim{Caps: []Cap{tc.src}, N: 1}, Claim{Caps: []Cap{tc.dst}, N: 2})
						if err != nil {
							t.Errorf("Acquire: %v (deadlocked?)", err)
							return
						}
						time.Sleep(100 * time.Microsecond)
						rel[1]() // the destination closes first, as in the engine
						rel[0]()
						done.Add(1)
					}
				}()
			}
			wg.Wait()
			if n := done.Load(); n != 8*20 {
				t.Errorf("%d attempts done, want %d", n, 8*20)
			}
			// Everything was given back.
			if rel, ok := l.TryAcquire(Claim{Caps: []Cap{{Key: tc.src.Key, Max: tc.src.Max}}, N: tc.src.Max}); !ok {
				t.Error("slots still in use after every release")
			} else {
				rel[0]()
			}
		})
	}
}

// TestReleaseShares: each claim gives back its own share of a key.
func TestReleaseShares(t *testing.T) {
	var l Limits
	host := Cap{Key: "imap.example:993", Max: 3}
	rel, err := l.Acquire(context.Background(), Claim{Caps: []Cap{host}, N: 1}, Claim{Caps: []Cap{host}, N: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.TryAcquire(Claim{Caps: []Cap{host}, N: 1}); ok {
		t.Fatal("a slot was free with the cap in use")
	}
	rel[1]() // two slots back
	two, ok := l.TryAcquire(Claim{Caps: []Cap{host}, N: 2})
	if !ok {
		t.Fatal("the second claim's two slots are not free after its release")
	}
	if _, ok := l.TryAcquire(Claim{Caps: []Cap{host}, N: 1}); ok {
		t.Error("the first claim's slot is free before its release")
	}
	rel[0]()
	two[0]()
	if all, ok := l.TryAcquire(Claim{Caps: []Cap{host}, N: 3}); !ok {
		t.Error("slots still in use")
	} else {
		all[0]()
	}
}

// TestTryAcquireTakesAllOrNothing: a failed TryAcquire leaves no slot of
// the keys it could take.
func TestTryAcquireTakesAllOrNothing(t *testing.T) {
	var l Limits
	a, b := Cap{Key: "a", Max: 2}, Cap{Key: "b", Max: 1}
	holdB, _ := l.TryAcquire(Claim{Caps: []Cap{b}, N: 1})
	if _, ok := l.TryAcquire(Claim{Caps: []Cap{a, b}, N: 1}); ok {
		t.Fatal("TryAcquire succeeded with b in use")
	}
	if rel, ok := l.TryAcquire(Claim{Caps: []Cap{a}, N: 2}); !ok {
		t.Error("a failed TryAcquire kept a slot of a")
	} else {
		rel[0]()
	}
	holdB[0]()
}

// TestNoCap: claims without a positive Max, or of no slot, never wait.
func TestNoCap(t *testing.T) {
	var l Limits
	for range 100 {
		if _, err := l.Acquire(context.Background(), Claim{Caps: []Cap{{Key: "x", Max: 0}}, N: 2}, Claim{N: 1}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLower: a cap lowered while its slots are in use keeps them in use
// and grants nothing until the use is below the new size; a waiter asking
// for more than the new size gets all of it; an unknown key is left alone.
func TestLower(t *testing.T) {
	var l Limits
	user := Cap{Key: "user:imap.example:993/alice", Max: Unlimited}
	rel, err := l.Acquire(context.Background(), Claim{Caps: []Cap{user}, N: 2}, Claim{Caps: []Cap{user}, N: 2})
	if err != nil {
		t.Fatal(err)
	}
	if used, size := l.InUse(user.Key); used != 4 || size != Unlimited {
		t.Fatalf("InUse = %d, %d; want 4, %d", used, size, Unlimited)
	}
	if !l.Lower(user.Key, 3) {
		t.Fatal("Lower(3) did not lower an unlimited cap")
	}
	if l.Lower(user.Key, 5) {
		t.Error("Lower(5) raised a cap of 3")
	}
	if l.Lower("user:other", 1) {
		t.Error("Lower of a key nobody claimed reported a change")
	}
	if _, ok := l.TryAcquire(Claim{Caps: []Cap{user}, N: 1}); ok {
		t.Fatal("a slot was granted with 4 in use under a cap of 3")
	}
	// A waiter for 4 slots under a cap of 3 gets the 3 once they are free.
	got := make(chan []func(), 1)
	go func() {
		r, err := l.Acquire(context.Background(), Claim{Caps: []Cap{user}, N: 4})
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	rel[0]() // 2 in use: below 3, but the waiter needs 3
	select {
	case <-got:
		t.Fatal("the waiter got its slots with 2 of 3 in use")
	case <-time.After(50 * time.Millisecond):
	}
	rel[1]()
	var big []func()
	select {
	case big = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter never got the lowered cap's slots")
	}
	if used, size := l.InUse(user.Key); used != 3 || size != 3 {
		t.Fatalf("InUse = %d, %d; want 3, 3", used, size)
	}
	big[0]()
	if used, _ := l.InUse(user.Key); used != 0 {
		t.Fatalf("%d slots in use after every release, want 0", used)
	}
	// Lowered to nothing: one slot stays.
	l.Lower(user.Key, 0)
	if _, size := l.InUse(user.Key); size != 1 {
		t.Errorf("size after Lower(0) = %d, want 1", size)
	}
}

// TestLowerWithCancelledWaiter: a waiter that gives up leaves the slots to
// the next one.
func TestLowerWithCancelledWaiter(t *testing.T) {
	var l Limits
	c := Cap{Key: "k", Max: 2}
	hold, _ := l.TryAcquire(Claim{Caps: []Cap{c}, N: 2})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := l.Acquire(ctx, Claim{Caps: []Cap{c}, N: 2})
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	second := make(chan struct{})
	go func() {
		r, err := l.Acquire(context.Background(), Claim{Caps: []Cap{c}, N: 1})
		if err == nil {
			r[0]()
		}
		close(second)
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("a cancelled Acquire succeeded")
	}
	l.Lower(c.Key, 1)
	hold[0]()
	select {
	case <-second:
	case <-time.After(5 * time.Second):
		t.Fatal("the second waiter never got its slot")
	}
}
