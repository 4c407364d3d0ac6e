package pipeline

import (
	"context"
	"slices"
	"sync"
	"testing"
)

// sweepScans counts the Scans of a sweep (sweepScope's query).
type sweepScans struct {
	*memLedger
	mu    sync.Mutex
	scans int
}

func (l *sweepScans) Scan(ctx context.Context, account AccountID, q Query) ([]Entry, string, error) {
	if slices.Equal(q.States, []State{StateDone, StateSkipped, StateFailed}) {
		l.mu.Lock()
		l.scans++
		l.mu.Unlock()
	}
	return l.memLedger.Scan(ctx, account, q)
}

// TestFirstIMAPRunSweepsNothing: an IMAP-like first run, with no entry in
// the ledger at its start, has nothing to mark gone and reads no entry
// back for it; the next run, with a message deleted at the source, does.
func TestFirstIMAPRunSweepsNothing(t *testing.T) {
	h, src := newIMAPHarness(t)
	l := &sweepScans{memLedger: h.ledger}
	h.runner.Ledger = l
	if st := h.runWith(t, src); st.Copied != 8 || st.SourceGone != 0 {
		t.Fatalf("first run: copied %d, gone %d; want 8 (INBOX and Sent), 0", st.Copied, st.SourceGone)
	}
	if l.scans != 0 {
		t.Errorf("first run: %d sweep scans, want 0", l.scans)
	}
	folders, _ := h.ledger.Folders(context.Background(), alice)
	if len(folders) != 2 {
		t.Errorf("folder records after the first run: %+v, want INBOX and Sent", folders)
	}

	src.msgs = slices.Clone(src.msgs)
	for i, m := range src.msgs {
		if src.folder[m.key] == "INBOX" {
			src.msgs = slices.Delete(src.msgs, i, i+1)
			break
		}
	}
	if st := h.runWith(t, src); st.SourceGone != 1 || l.scans == 0 {
		t.Errorf("after a deletion at the source: gone %d, sweep scans %d; want 1 and some", st.SourceGone, l.scans)
	}
}
