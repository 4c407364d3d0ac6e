package pipeline

import (
	"context"
	"slices"
	"testing"
	"time"
)

// The engine's use of the schema-5 ledger: messages gone from the source,
// pauses, retries of skipped messages, and that nothing holds the whole
// account.

// TestSourceGoneIsSwept: messages the source no longer lists become gone
// (copied ones, kept with their copy for the retention) or are dropped
// (skipped ones: nothing of them is on the destination); a message listed
// again is done again, not copied twice; an empty listing marks nothing.
// The same with a KeyFolder that places none of the keys (a Gmail source
// copied once per message: "gm:" keys among IMAP ones), whose entries are
// swept as POP3's are.
func TestSourceGoneIsSwept(t *testing.T) {
	for _, tc := range []struct {
		name      string
		keyFolder func(string) (KeyPlace, bool)
	}{
		{"no KeyFolder", nil},
		{"keys KeyFolder does not place", func(string) (KeyPlace, bool) { return KeyPlace{}, false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := genMessages(12)
			msgs = append(msgs, memMsg{key: "empty", body: nil})
			h := newHarness(msgs)
			h.opts.KeyFolder = tc.keyFolder
			if st := h.run(t); st.Copied != 12 || st.Skipped != 1 {
				t.Fatalf("first run: copied %d, skipped %d", st.Copied, st.Skipped)
			}
			// A user deletes three messages and the empty one at the source.
			removed := map[string]bool{"uidl-002": true, "uidl-007": true, "uidl-011": true, "empty": true}
			h.src.msgs = slices.DeleteFunc(slices.Clone(msgs), func(m memMsg) bool { return removed[m.key] })
			st := h.run(t)
			if st.Error != "" || st.Copied != 0 || st.SourceGone != 3 || st.Failed != 0 {
				t.Fatalf("after deletions: error %q, copied %d, source gone %d, failed %d; want none, 0, 3, 0", st.Error, st.Copied, st.SourceGone, st.Failed)
			}
			all := h.ledger.all(alice)
			for k := range removed {
				e, ok := all[k]
				switch {
				case k == "empty" && ok:
					t.Errorf("the skipped message's entry was kept: %v", e.State)
				case k != "empty" && (!ok || e.State != StateGone || e.GoneAt.IsZero() || e.ReasonClass == ReasonDeleted):
					t.Errorf("%s: %v (%q), want gone, not as mailferry's deletion", k, e.State, e.ReasonClass)
				}
			}
			if n := h.ledger.states(alice)[StateDone]; n != 9 {
				t.Errorf("%d entries done, want 9", n)
			}
			// A server restores one from a backup: done again, not copied again.
			h.src.msgs = slices.DeleteFunc(slices.Clone(msgs), func(m memMsg) bool { return m.key == "uidl-002" || m.key == "uidl-011" })
			st = h.run(t)
			if st.Copied != 0 || h.ledger.all(alice)["uidl-007"].State != StateDone {
				t.Errorf("a message listed again: copied %d, state %v; want 0 and done", st.Copied, h.ledger.all(alice)["uidl-007"].State)
			}
			if n := len(h.dst.bodies("INBOX")); n != 12 {
				t.Errorf("destination holds %d, want the 12 copies", n)
			}
			// An empty listing cannot tell (a wrong login, a hiccup): nothing gone.
			h.src.msgs = nil
			if st := h.run(t); st.SourceGone != 0 || h.ledger.states(alice)[StateDone] != 10 {
				t.Errorf("an empty listing: source gone %d, done %d; want 0 and 10", st.SourceGone, h.ledger.states(alice)[StateDone])
			}
		})
	}
}

// TestFolderSweep: in an IMAP-like source the folders' records say which
// were listed in full; a message deleted in one folder is gone, a folder
// the run does not copy (excluded) keeps its entries.
func TestFolderSweep(t *testing.T) {
	h, src := newIMAPHarness(t)
	h.runWith(t, src)
	folders, _ := h.ledger.Folders(context.Background(), alice)
	if len(folders) != 2 {
		t.Fatalf("folder records after a complete pass: %+v, want INBOX and Sent", folders)
	}
	for _, f := range folders {
		if f.Side != SourceSide || f.Messages != 4 || f.SyncedAt.IsZero() || f.UIDValidity != 1 {
			t.Errorf("folder record %+v", f)
		}
	}
	// A user deletes one INBOX message at the source.
	gone := ""
	for _, m := range src.msgs {
		if src.folder[m.key] == "INBOX" {
			gone = m.key
			break
		}
	}
	src.msgs = slices.DeleteFunc(slices.Clone(src.msgs), func(m memMsg) bool { return m.key == gone })
	// And the run copies INBOX only.
	h.opts.MapFolders = func(context.Context, Source, Destination, bool) (map[string]string, error) {
		return map[string]string{"INBOX": "INBOX"}, nil
	}
	st := h.runWith(t, src)
	if st.SourceGone != 1 {
		t.Errorf("source gone %d, want 1", st.SourceGone)
	}
	counts := h.ledger.states(alice)
	if counts[StateGone] != 1 || counts[StateDone] != 7 {
		t.Errorf("states %v, want 1 gone (the deleted INBOX message) and 7 done (Sent kept)", counts)
	}
	// A second run has nothing to sweep: the record says INBOX has 3.
	if st := h.runWith(t, src); st.SourceGone != 0 {
		t.Errorf("second run: source gone %d, want 0", st.SourceGone)
	}
}

// TestPausedAccountStopsCleanly: an account paused by an admin stops at
// the next page, after committing what is in flight; the run is no error.
func TestPausedAccountStopsCleanly(t *testing.T) {
	h := newHarness(genMessages(30))
	h.ledger.paused[alice] = true
	st, err := h.runner.RunAccount(context.Background(), Job{Options: h.opts,
		OpenSource: func(context.Context) (Source, error) { return h.src, nil }, OpenDestination: h.dst.open})
	if err != nil || st.Error != "" || !st.Paused || st.Copied != 0 {
		t.Fatalf("paused account: %v, error %q, paused %v, copied %d; want no error, paused, nothing copied", err, st.Error, st.Paused, st.Copied)
	}
	if len(h.ledger.runs) != 1 || h.ledger.runs[0].Result != "paused" {
		t.Errorf("run recorded as %+v, want paused", h.ledger.runs)
	}
	h.ledger.paused[alice] = false
	if st := h.run(t); st.Copied != 30 {
		t.Errorf("resumed: copied %d, want 30", st.Copied)
	}
}

// TestRetrySkipped: skipped messages are tried again when a retry is asked
// for, by the account's retry flag (the status page) or by the run's
// option (--retry-skipped), one mechanism: except those probably present
// already. One skipped as too big is tried again by itself once the limit
// has grown past it. Without a retry, earlier skips are listed as skipped
// before, no failure of the run.
func TestRetrySkipped(t *testing.T) {
	for _, tc := range []struct {
		name string
		ask  func(h *harness)
	}{
		{"retry flag", func(h *harness) { h.ledger.retry[alice] = true }},
		{"run option", func(h *harness) { h.opts.RetrySkipped = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := genMessages(6)
			h := newHarness(msgs)
			h.ledger.put(alice,
				Entry{Key: "uidl-000", State: StateSkipped, ReasonClass: ReasonRefused, Reason: "refused", Updated: time.Now()},
				Entry{Key: "uidl-001", State: StateSkipped, ReasonClass: ReasonPresent, Reason: "probably present", Updated: time.Now()},
				Entry{Key: "uidl-002", State: StateSkipped, ReasonClass: ReasonTooBig, Reason: "too big", Size: 100, Updated: time.Now()},
				Entry{Key: "uidl-003", State: StateSkipped, ReasonClass: ReasonTooBig, Reason: "too big", Size: 1 << 30, Updated: time.Now()},
			)
			h.opts.MaxMessageBytes = 1 << 20 // now: a limit of 1 MiB, past uidl-002's 100 bytes
			st := h.run(t)
			if st.Copied != 3 || st.Skipped != 0 || st.SkippedBefore != 3 || !st.Complete() {
				t.Fatalf("without a retry: copied %d, skipped %d, before %d; want 3 (two new, uidl-002 now fits), 0, 3 listed", st.Copied, st.Skipped, st.SkippedBefore)
			}
			tc.ask(h)
			st = h.run(t)
			if st.Copied != 2 || st.SkippedBefore != 1 {
				t.Errorf("with a retry: copied %d, skipped before %d; want 2 (uidl-000 and uidl-003; never the one probably present), 1", st.Copied, st.SkippedBefore)
			}
			if e := h.ledger.all(alice)["uidl-001"]; e.State != StateSkipped {
				t.Errorf("the message probably present is %v, want still skipped", e.State)
			}
		})
	}
}

// TestQuotaUsageRecorded: every commit adds what it read and wrote to the
// account's window of the day.
func TestQuotaUsageRecorded(t *testing.T) {
	msgs := genMessages(10)
	h := newHarness(msgs)
	st := h.run(t)
	u, _ := h.ledger.Usage(context.Background(), alice, QuotaWindow(h.opts.Now()))
	if u.ReadBytes != st.Bytes || u.WrittenBytes != st.Bytes || st.Bytes == 0 {
		t.Errorf("usage %+v, want %d read and written", u, st.Bytes)
	}
}

// TestLookupsAreChunked: the engine never asks the ledger for more keys at
// once than MaxLookup, however big a page (the fake refuses more).
func TestLookupsAreChunked(t *testing.T) {
	h := newHarness(genMessages(MaxLookup + 7))
	h.src.pageSize = MaxLookup + 7
	if st := h.run(t); st.Error != "" || st.Copied != MaxLookup+7 {
		t.Fatalf("error %q, copied %d", st.Error, st.Copied)
	}
	if st := h.run(t); st.AlreadyDone != MaxLookup+7 || st.Error != "" {
		t.Errorf("second run: already done %d", st.AlreadyDone)
	}
}
