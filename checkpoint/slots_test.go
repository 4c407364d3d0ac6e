package checkpoint

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/postgres"
)

// TestPostgresSlots: the fleet's connection slots of one scope, taken by
// several workers (each its own ledger) at once, never number more than
// the cap; a take of several is all or none; a released slot and a dead
// worker's expired one come free; a worker's Close gives back what it
// holds; SQLite has none.
func TestPostgresSlots(t *testing.T) {
	srv := postgres.Start(t, postgres.Options{})
	dbURL := postgres.Database(t, srv)
	ctx := context.Background()
	const scope, size = "imap.example:993", 3
	workers := make([]*Slots, 6)
	for i := range workers {
		workers[i] = openPG(t, srv, dbURL, "w"+string(rune('a'+i))+":1:1", 2*time.Second).Slots()
	}

	// Each worker takes one or two at a time, holds them a moment and
	// gives them back; a gauge counts what is held.
	var open, peak atomic.Int32
	var wg sync.WaitGroup
	for i, s := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 8 {
				n := 1 + (i+round)%2
				rel, err := s.Take(ctx, scope, size, n)
				if err != nil {
					t.Error(err)
					return
				}
				v := open.Add(int32(n))
				for p := peak.Load(); v > p && !peak.CompareAndSwap(p, v); p = peak.Load() {
				}
				time.Sleep(5 * time.Millisecond)
				open.Add(-int32(n))
				for _, r := range rel {
					r()
					r() // a second call is harmless
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("at most %d of %d slots held at once by 6 workers", peak.Load(), size)
	if p := peak.Load(); p > size {
		t.Errorf("%d slots held at once, cap %d", p, size)
	}
	if n, err := workers[0].InUse(ctx, scope); err != nil || n != 0 {
		t.Fatalf("slots in use after every release: %d, %v", n, err)
	}

	// All or none: two held, a take of two fails and takes nothing.
	held, err := workers[0].Take(ctx, scope, size, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := workers[1].TryTake(ctx, scope, size, 2); ok || err != nil {
		t.Fatalf("TryTake of 2 with 1 free: ok %v, %v", ok, err)
	}
	if n, _ := workers[1].InUse(ctx, scope); n != 2 {
		t.Errorf("a failed take left %d slots in use, want the 2 held", n)
	}
	// A waiting take ends with the context.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := workers[1].Take(short, scope, size, 2); err == nil {
		t.Fatal("Take of 2 with 1 free returned without waiting")
	}
	for _, r := range held {
		r()
	}

	// A cap lowered to 2 (a server refused a connection) while another
	// worker holds slot 2: a take of 2 more would make 3.
	three, err := workers[0].Take(ctx, scope, size, 3)
	if err != nil {
		t.Fatal(err)
	}
	three[0]()
	three[1]()
	if _, ok, err := workers[1].TryTake(ctx, scope, 2, 2); ok || err != nil {
		t.Fatalf("TryTake of 2 under a lowered cap of 2 with slot 2 held: ok %v, %v", ok, err)
	}
	if rel, ok, err := workers[1].TryTake(ctx, scope, 2, 1); !ok || err != nil {
		t.Fatalf("TryTake of 1 under a lowered cap of 2 with 1 held: ok %v, %v", ok, err)
	} else {
		rel[0]()
	}
	three[2]()

	// A dead worker's slots (not renewed) come free when they expire;
	// a live worker's are renewed past their first expiry.
	dead := workers[2]
	deadRel, err := dead.Take(ctx, scope, size, 1)
	if err != nil {
		t.Fatal(err)
	}
	_ = deadRel
	live, err := workers[3].Take(ctx, scope, size, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Stop the dead one's renewal as a kill would: its rows stay.
	if _, err := dead.e.l.w.ExecContext(ctx, `UPDATE slots SET worker = 'gone:1:1' WHERE worker = $1`, dead.e.worker); err != nil {
		t.Fatal(err)
	}
	time.Sleep(slotTTL(2*time.Second) + 500*time.Millisecond) // past the slots' TTL (twice the 2 s lease)
	if n, _ := workers[0].InUse(ctx, scope); n != 1 {
		t.Errorf("after the TTL %d slots in use, want 1 (the live worker's; the dead one's expired)", n)
	}
	if _, ok, err := workers[4].TryTake(ctx, scope, size, 2); !ok || err != nil {
		t.Errorf("the dead worker's slot did not come free: ok %v, %v", ok, err)
	}
	_ = live

	// Close gives back what a worker still holds.
	if err := workers[3].e.l.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := workers[0].InUse(ctx, scope); n != 2 {
		t.Errorf("after a worker's Close %d slots in use, want 2 (worker 4's)", n)
	}

	if l := openTest(t, filepath.Join(t.TempDir(), "ledger.db"), nil); l.Slots() != nil {
		t.Error("a SQLite ledger has fleet slots")
	}
}
