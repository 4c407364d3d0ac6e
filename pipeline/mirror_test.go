package pipeline

import (
	"strings"
	"testing"
)

func TestMaxDelete(t *testing.T) {
	for _, c := range []struct {
		name    string
		n, pct  int
		copied  int64
		wantCap int64
	}{
		{"default: at least 50", 0, 0, 100, 50},
		{"default: 10 percent", 0, 0, 10000, 1000},
		{"count", 20, 0, 10000, 20},
		{"percent, no floor", 0, 5, 100, 5},
		{"both: the smaller", 200, 1, 10000, 100},
		{"both: the smaller count", 20, 50, 10000, 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := (Options{MaxDelete: c.n, MaxDeletePercent: c.pct}).maxDelete(c.copied); got != c.wantCap {
				t.Errorf("maxDelete(%d) with --max-delete %d --max-delete-percent %d = %d, want %d", c.copied, c.n, c.pct, got, c.wantCap)
			}
		})
	}
}

// TestMirrorRemovals (a POP3-like source): copies of messages gone from
// the source are removed only with Mirror, never those mailferry deleted
// itself, none on a destination without UIDPLUS (held back instead), and
// none when the source suddenly lists nothing.
func TestMirrorRemovals(t *testing.T) {
	msgs := genMessages(12)
	h := newHarness(msgs)
	h.opts.DeleteSource = true
	h.src.msgs = msgs[:2]
	if st := h.run(t); st.Error != "" || st.Copied != 2 || st.Deleted != 2 {
		t.Fatalf("delete_source run: copied %d, deleted %d, error %q", st.Copied, st.Deleted, st.Error)
	}
	h.opts.DeleteSource = false
	h.src.msgs = msgs[2:]
	if st := h.run(t); st.Error != "" || st.Copied != 10 {
		t.Fatalf("bulk run: copied %d, error %q", st.Copied, st.Error)
	}
	h.src.msgs = msgs[2:9] // 3 deleted at the source by the user

	if st := h.run(t); st.Removed != 0 || st.SourceGone != 3 || len(h.dst.bodies("INBOX")) != 12 {
		t.Fatalf("without mirror: removed %d, gone %d, destination %d; want 0, 3, 12", st.Removed, st.SourceGone, len(h.dst.bodies("INBOX")))
	}
	h.opts.Mirror = true
	h.dst.capsNoUIDPlus = true
	if st := h.run(t); st.Error != "" || st.Removed != 0 || st.MirrorHeld != 3 || !strings.Contains(st.MirrorRefused, "UIDPLUS") || len(h.dst.bodies("INBOX")) != 12 {
		t.Fatalf("no UIDPLUS: removed %d, held %d, destination %d, error %q; want 0, 3, 12", st.Removed, st.MirrorHeld, len(h.dst.bodies("INBOX")), st.Error)
	}
	h.dst.capsNoUIDPlus = false
	st := h.run(t)
	if st.Error != "" || st.Removed != 3 || st.MirrorHeld != 0 {
		t.Fatalf("mirror: removed %d, held %d, error %q; want 3, 0", st.Removed, st.MirrorHeld, st.Error)
	}
	// The two messages mailferry deleted at the source keep their copies.
	if n := len(h.dst.bodies("INBOX")); n != 9 {
		t.Errorf("destination holds %d, want 9 (7 at the source, 2 deleted there by mailferry)", n)
	}
	entries := h.ledger.all(alice)
	for _, m := range msgs[9:] {
		if e := entries[m.key]; e.State != StateRemoved {
			t.Errorf("%s: %v, want removed", m.key, e.State)
		}
	}
	for _, m := range msgs[:2] {
		if e := entries[m.key]; e.State != StateGone || e.ReasonClass != ReasonDeleted {
			t.Errorf("%s: %v %q, want gone, deleted by mailferry", m.key, e.State, e.ReasonClass)
		}
	}

	h.src.msgs = nil
	if st := h.run(t); st.Removed != 0 || len(st.MirrorUnsure) != 1 || len(h.dst.bodies("INBOX")) != 9 {
		t.Fatalf("empty source: removed %d, cannot tell %v, destination %d; want 0, one, 9", st.Removed, st.MirrorUnsure, len(h.dst.bodies("INBOX")))
	}

	// The admin knows the maildrop was emptied: allowed to be empty, its
	// copies go (within the caps), those mailferry deleted itself stay.
	h.opts.MirrorAllowEmpty = []string{"Other"}
	if st := h.run(t); st.Removed != 0 || len(st.MirrorUnsure) != 1 {
		t.Fatalf("another folder allowed to be empty: removed %d, cannot tell %v; want 0, one", st.Removed, st.MirrorUnsure)
	}
	h.opts.MirrorAllowEmpty = []string{"INBOX"}
	h.opts.MaxDelete = 6
	if st := h.run(t); st.Removed != 0 || !st.MirrorOverCap || st.MirrorHeld != 7 || len(st.MirrorUnsure) != 0 {
		t.Fatalf("allowed empty, over the cap: removed %d, over cap %v, held %d, cannot tell %v; want 0, true, 7, none",
			st.Removed, st.MirrorOverCap, st.MirrorHeld, st.MirrorUnsure)
	}
	h.opts.MaxDelete = 0
	if st := h.run(t); st.Error != "" || st.Removed != 7 || st.MirrorHeld != 0 || len(st.MirrorUnsure) != 0 || len(h.dst.bodies("INBOX")) != 2 {
		t.Fatalf("allowed empty: removed %d, held %d, cannot tell %v, destination %d, error %q; want 7, 0, none, 2",
			st.Removed, st.MirrorHeld, st.MirrorUnsure, len(h.dst.bodies("INBOX")), st.Error)
	}
	// Settled: the next pass, without the override, has nothing to tell.
	h.opts.MirrorAllowEmpty = nil
	if st := h.run(t); st.Error != "" || st.Removed != 0 || st.MirrorHeld != 0 || len(st.MirrorUnsure) != 0 {
		t.Fatalf("the pass after: removed %d, held %d, cannot tell %v, error %q; want nothing", st.Removed, st.MirrorHeld, st.MirrorUnsure, st.Error)
	}
}
