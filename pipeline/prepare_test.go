package pipeline

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestDestinationReadiedWhileFetching: once the listing knows messages go
// to a destination mailbox, the batch writer readies it (EnsureMailbox,
// and the listing for matching) while their bodies are fetched, not after
// the first batch is gathered (issue 18: at a 40 ms round trip the
// destination's lookups came 2–5 round trips after the first batch was
// full). Here each fetch waits for the mailbox: without the hint no batch
// fills, and the fetches give up waiting after 5 s.
func TestDestinationReadiedWhileFetching(t *testing.T) {
	h := newHarness(genMessages(10))
	var timedOut atomic.Bool
	h.src.beforeFetch = func(SourceMessage) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			h.dst.mu.Lock()
			ready := h.dst.boxes["INBOX"] != nil
			h.dst.mu.Unlock()
			if ready {
				return
			}
			if time.Now().After(deadline) {
				timedOut.Store(true)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	st := h.run(t)
	if timedOut.Load() {
		t.Error("a fetch waited 5 s for the destination mailbox: it was readied only with the first batch")
	}
	if st.Error != "" || st.Copied != 10 {
		t.Fatalf("copied %d, error %q; want 10, none", st.Copied, st.Error)
	}
	if n := len(h.dst.bodies("INBOX")); n != 10 {
		t.Errorf("destination holds %d messages, want 10", n)
	}
}

// TestWriterFailingWhileReadying: a batch writer that fails while readying
// its first mailbox (before it took any message) ends the attempt, which
// is tried again; it does not leave the listing waiting for room and the
// next session waiting for messages that would open it (that hung: the
// messages queued never outnumbered a batch).
func TestWriterFailingWhileReadying(t *testing.T) {
	h := newHarness(genMessages(30))
	h.opts.DestSessions = 2
	h.dst.failEnsure = 1
	done := make(chan *Stats, 1)
	go func() { done <- h.run(t) }()
	select {
	case st := <-done:
		if st.Error != "" || st.Copied != 30 {
			t.Fatalf("copied %d, error %q; want 30 (the attempt after the failed one), none", st.Copied, st.Error)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the copy hung after the writer failed while readying the mailbox")
	}
}
