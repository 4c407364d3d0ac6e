package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"
)

func genMessages(n int) []memMsg {
	var out []memMsg
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("Received: from a by b; Tue, 3 Jun 2008 10:20:%02d +0200\r\n"+
			"Message-ID: <m%d@test>\r\nSubject: message %d\r\n\r\nbody %d\r\n", i%60, i, i, i)
		out = append(out, memMsg{key: fmt.Sprintf("uidl-%03d", i), body: []byte(body)})
	}
	return out
}

func sortedBodies(msgs []memMsg) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, string(m.body))
	}
	sort.Strings(out)
	return out
}

type harness struct {
	src    *memSource
	dst    *memDest
	ledger *memLedger
	runner *Runner
	opts   Options
}

func newHarness(msgs []memMsg) *harness {
	// Pages of 5: every test crosses pages of the listing.
	h := &harness{src: &memSource{msgs: msgs, pageSize: 5}, dst: newMemDest(), ledger: newMemLedger()}
	h.runner = &Runner{Ledger: h.ledger, Backoff: time.Millisecond}
	h.opts = Options{Account: alice, Name: "alice", BatchMessages: 7, Linger: time.Millisecond,
		Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }}
	return h
}

func (h *harness) run(t *testing.T) *Stats {
	t.Helper()
	st, _ := h.runner.RunAccount(context.Background(), Job{
		Options:         h.opts,
		OpenSource:      func(context.Context) (Source, error) { return h.src, nil },
		OpenDestination: h.dst.open,
	})
	return st
}

func TestCopyThenRerunCopiesNothing(t *testing.T) {
	msgs := genMessages(30)
	h := newHarness(msgs)
	st := h.run(t)
	if st.Error != "" || st.Copied != 30 || st.Listed != 30 {
		t.Fatalf("first run: copied %d of %d listed, error %q; want 30 of 30", st.Copied, st.Listed, st.Error)
	}
	if got, want := h.dst.bodies("INBOX"), sortedBodies(msgs); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatal("destination bodies differ from the source's")
	}
	if st.DateSources["received"] != 30 {
		t.Errorf("date sources = %v, want 30 from received", st.DateSources)
	}
	mb := h.dst.boxes["INBOX"]
	if d := mb.msgs[0].date; !d.Equal(time.Date(2008, 6, 3, 8, 20, 0, 0, time.UTC)) {
		t.Errorf("internal date of first message = %v, want 2008-06-03 10:20:00 +0200", d)
	}
	if n := h.ledger.states(alice)[StateDone]; n != 30 {
		t.Errorf("ledger has %d done entries, want 30", n)
	}

	st = h.run(t)
	if st.Copied != 0 || st.AlreadyDone != 30 || st.Error != "" {
		t.Fatalf("second run: copied %d, already done %d, error %q; want 0, 30, none", st.Copied, st.AlreadyDone, st.Error)
	}
	if n := len(h.dst.bodies("INBOX")); n != 30 {
		t.Fatalf("destination holds %d messages after a re-run, want 30", n)
	}
}

func TestLostConnectionAfterStoreIsReconciledNotDuplicated(t *testing.T) {
	msgs := genMessages(40)
	h := newHarness(msgs)
	h.dst.loseAfter = 14 // the third batch is stored but never confirmed
	// Full batches only: a partial batch sent after the linger (a busy
	// machine) would move the batch boundaries.
	h.opts.Linger = time.Minute
	st := h.run(t)
	if st.Error != "" {
		t.Fatalf("run failed: %s", st.Error)
	}
	if st.Reconciled != 7 || st.Attempts != 2 {
		t.Errorf("reconciled %d in %d attempts, want 7 in 2", st.Reconciled, st.Attempts)
	}
	if got, want := h.dst.bodies("INBOX"), sortedBodies(msgs); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("destination holds %d messages, want exactly the 40 source messages once", len(got))
	}
	if st.Copied+st.Reconciled != 40 {
		t.Errorf("copied %d + reconciled %d, want 40", st.Copied, st.Reconciled)
	}
}

func TestPendingWithoutStoreIsResent(t *testing.T) {
	msgs := genMessages(10)
	h := newHarness(msgs)
	// A crashed run left pending entries for messages that never reached
	// the server.
	for _, m := range msgs[:3] {
		h.ledger.put(alice, Entry{Key: m.key, State: StatePending,
			Digest: "00", Size: int64(len(m.body)), DestMailbox: "INBOX", DestUIDValidity: 7, DestUIDNext: 1})
	}
	st := h.run(t)
	if st.Resent != 3 || st.Copied != 10 || st.Error != "" {
		t.Fatalf("resent %d, copied %d, error %q; want 3, 10, none", st.Resent, st.Copied, st.Error)
	}
	if n := len(h.dst.bodies("INBOX")); n != 10 {
		t.Errorf("destination holds %d, want 10", n)
	}
}

func TestPerMessageRejectionIsSkippedAndRecorded(t *testing.T) {
	msgs := genMessages(10)
	h := newHarness(msgs)
	h.dst.reject, h.dst.rejectClass, h.dst.rejectPermanent = "body 4\r\n", ClassPerMessage, true
	st := h.run(t)
	if st.Copied != 9 || st.Skipped != 1 || st.Error != "" {
		t.Fatalf("copied %d, skipped %d, error %q; want 9, 1, none", st.Copied, st.Skipped, st.Error)
	}
	if st.Skips[0].Key != "uidl-004" || !strings.Contains(st.Skips[0].Reason, "TOOBIG") {
		t.Errorf("skip = %+v, want uidl-004 with the server's reason", st.Skips[0])
	}
	// Reported once: the re-run lists it as skipped before, and it is no
	// failure of that run.
	st = h.run(t)
	if st.Copied != 0 || st.Skipped != 0 || st.SkippedBefore != 1 || st.SkipsBefore[0].Key != "uidl-004" || !st.Complete() {
		t.Errorf("re-run copied %d, skipped %d, skipped before %d (%v); want 0, 0, 1", st.Copied, st.Skipped, st.SkippedBefore, st.SkipsBefore)
	}
	// RetrySkipped sends it again: refused again, skipped again.
	h.opts.RetrySkipped = true
	st = h.run(t)
	if st.Copied != 0 || st.Skipped != 1 || st.SkippedBefore != 0 {
		t.Errorf("with RetrySkipped: copied %d, skipped %d, skipped before %d; want 0, 1, 0", st.Copied, st.Skipped, st.SkippedBefore)
	}
	h.dst.reject = ""
	if st = h.run(t); st.Copied != 1 || st.Skipped != 0 {
		t.Errorf("with RetrySkipped after the server took it: copied %d, skipped %d; want 1, 0", st.Copied, st.Skipped)
	}
}

func TestFatalErrorStopsAccountWithoutRetry(t *testing.T) {
	h := newHarness(genMessages(10))
	h.dst.reject, h.dst.rejectClass = "body 3\r\n", ClassFatal
	st := h.run(t)
	if st.Attempts != 1 || st.ErrorClass != "fatal" {
		t.Fatalf("attempts %d, class %q; want 1 attempt, fatal", st.Attempts, st.ErrorClass)
	}
	if st.Failed == 0 || st.Copied+st.Failed != 10 {
		t.Errorf("copied %d, failed %d; want them to add up to 10 with some failed", st.Copied, st.Failed)
	}
	// The refused message was not stored: it is forgotten, not pending.
	// Messages after it in the batch have no outcome and stay pending for
	// the next run to reconcile.
	if e, ok := h.ledger.entries[alice]["uidl-003"]; ok {
		t.Errorf("the refused message has a ledger entry %+v, want none", e)
	}
}

func TestContentSkips(t *testing.T) {
	msgs := []memMsg{
		{"nul", []byte("Subject: x\r\n\r\na\x00b\r\n")},
		{"empty", nil},
		{"big", []byte("Subject: big\r\n\r\n" + strings.Repeat("x", 2000) + "\r\n")},
		{"bare-lf", []byte("Subject: lf\n\nline\n")},
	}
	h := newHarness(msgs)
	h.dst.appendLim = 1000
	st := h.run(t)
	reasons := map[string]string{}
	for _, s := range st.Skips {
		reasons[s.Key] = s.Reason
	}
	for key, want := range map[string]string{"nul": "NUL", "empty": "empty", "big": "too big"} {
		if !strings.Contains(reasons[key], want) {
			t.Errorf("skip reason for %s = %q, want it to mention %q", key, reasons[key], want)
		}
	}
	if st.Copied != 1 || st.Normalised != 1 || st.LineEndsFixed != 3 {
		t.Errorf("copied %d, normalised %d, line ends fixed %d; want 1, 1, 3", st.Copied, st.Normalised, st.LineEndsFixed)
	}
	if got := h.dst.bodies("INBOX"); len(got) != 1 || got[0] != "Subject: lf\r\n\r\nline\r\n" {
		t.Errorf("destination = %q, want the CRLF-normalised message", got)
	}
}

func TestDeleteSourceOnlyAfterCommit(t *testing.T) {
	msgs := genMessages(20)
	h := newHarness(msgs)
	h.opts.DeleteSource = true
	h.src.failFetch = 12 // the first attempt dies mid-way
	h.runner.Attempts = 1
	st := h.run(t)
	if st.Error == "" {
		t.Fatal("the run with a failing fetch reported no error")
	}
	if len(h.src.committed) != 0 {
		t.Fatalf("%d messages deleted by an attempt that did not finish", len(h.src.committed))
	}
	h.src.failFetch = 0
	st = h.run(t)
	if st.Error != "" || st.Deleted != 20 {
		t.Fatalf("second run: error %q, deleted %d; want none, 20", st.Error, st.Deleted)
	}
	if len(h.src.committed) != 20 || len(h.dst.bodies("INBOX")) != 20 {
		t.Errorf("source deleted %d, destination holds %d; want 20 and 20", len(h.src.committed), len(h.dst.bodies("INBOX")))
	}
}

// TestDeleteSourceOnlyWhenDone: a message is deleted at the source only
// once the ledger says it is done, committed. The batch writers carry a
// batch's outcome into the next batch's transaction; the deletions of
// copies wait for it (they were once sent while the entries still said
// pending).
func TestDeleteSourceOnlyWhenDone(t *testing.T) {
	h := newHarness(genMessages(40))
	h.opts.DeleteSource = true
	var notDone []string
	deletes := 0
	h.src.onDelete = func(msgs []SourceMessage) {
		h.ledger.mu.Lock()
		defer h.ledger.mu.Unlock()
		for _, m := range msgs {
			deletes++
			if e, ok := h.ledger.entries[alice][m.Key]; !ok || e.State != StateDone {
				notDone = append(notDone, fmt.Sprintf("%s (%s)", m.Key, e.State))
			}
		}
	}
	st := h.run(t)
	if st.Error != "" || st.Copied != 40 || st.Deleted != 40 || deletes != 40 {
		t.Fatalf("copied %d, deleted %d (%d deletes seen), error %q; want 40, 40, 40", st.Copied, st.Deleted, deletes, st.Error)
	}
	if len(notDone) > 0 {
		t.Errorf("%d messages deleted at the source while their entries were not done: %v", len(notDone), notDone)
	}
}

func TestLedgerFailureIsFatalAndNothingDeleted(t *testing.T) {
	h := newHarness(genMessages(20))
	h.opts.DeleteSource = true
	h.ledger.failCommit = 2 // the commit of the first batch fails
	st := h.run(t)
	if st.ErrorClass != "fatal" || st.Attempts != 1 {
		t.Fatalf("class %q after %d attempts, want fatal after 1", st.ErrorClass, st.Attempts)
	}
	if len(h.src.committed) != 0 {
		t.Errorf("%d source messages deleted although the ledger did not commit", len(h.src.committed))
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	h := newHarness(genMessages(10))
	h.runner.DryRun = true
	h.opts.DeleteSource = true
	st := h.run(t)
	if st.Copied != 10 || !st.DryRun {
		t.Fatalf("dry run reports %d copied (dry_run=%v), want 10 would-be copies", st.Copied, st.DryRun)
	}
	if len(h.dst.boxes) != 0 || len(h.ledger.entries) != 0 || len(h.src.committed) != 0 || len(h.ledger.runs) != 0 {
		t.Errorf("dry run wrote: %d mailboxes, %d ledger accounts, %d deletions, %d runs",
			len(h.dst.boxes), len(h.ledger.entries), len(h.src.committed), len(h.ledger.runs))
	}
}

func TestLockedAccountIsRefused(t *testing.T) {
	h := newHarness(genMessages(1))
	hold, _ := h.ledger.Hold(context.Background(), alice)
	defer hold.Release(context.Background())
	st := h.run(t)
	if !strings.Contains(st.Error, "locking") || st.Copied != 0 {
		t.Errorf("run on a locked account: error %q, copied %d", st.Error, st.Copied)
	}
}

func TestCancelledRunIsResumable(t *testing.T) {
	msgs := genMessages(50)
	h := newHarness(msgs)
	ctx, cancel := context.WithCancel(context.Background())
	prog := &cancelAfter{n: 10, cancel: cancel}
	h.runner.Progress = prog
	st, err := h.runner.RunAccount(ctx, Job{Options: h.opts,
		OpenSource:      func(context.Context) (Source, error) { return h.src, nil },
		OpenDestination: h.dst.open})
	if !errors.Is(err, context.Canceled) || st.ErrorClass != "interrupted" {
		t.Fatalf("cancelled run: err %v, class %q", err, st.ErrorClass)
	}
	h.runner.Progress = nil
	st = h.run(t)
	if st.Error != "" {
		t.Fatal(st.Error)
	}
	if got, want := h.dst.bodies("INBOX"), sortedBodies(msgs); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("after resume the destination holds %d messages, want the 50 once each", len(got))
	}
}

type cancelAfter struct {
	nopProgress
	n      int
	cancel func()
}

func (c *cancelAfter) MessageDone(string, Outcome, int64) {
	c.n--
	if c.n == 0 {
		c.cancel()
	}
}

func TestAddHeaderPrependsToEachMessage(t *testing.T) {
	msgs := genMessages(3)
	h := newHarness(msgs)
	h.opts.AddHeader = func(m SourceMessage) string { return "X-UIDL: " + m.Key + "\r\n" }
	st := h.run(t)
	if st.Copied != 3 {
		t.Fatalf("copied %d, want 3", st.Copied)
	}
	var want []string
	for _, m := range msgs {
		want = append(want, "X-UIDL: "+m.key+"\r\n"+string(m.body))
	}
	sort.Strings(want)
	if got := h.dst.bodies("INBOX"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("destination = %q, want each message with its X-UIDL header first", got)
	}
}

func TestRefusedMessageIsRetriedNextRun(t *testing.T) {
	h := newHarness(genMessages(10))
	h.dst.reject, h.dst.rejectClass = "body 4\r\n", ClassPerMessage // not permanent
	st := h.run(t)
	if st.Copied != 9 || st.Failed != 1 || len(st.Failures) != 1 || st.Error != "" {
		t.Fatalf("copied %d, failed %d (%v), error %q; want 9, 1, none", st.Copied, st.Failed, st.Failures, st.Error)
	}
	h.dst.reject = "" // the destination takes it now
	st = h.run(t)
	if st.Copied != 1 || st.Failed != 0 {
		t.Fatalf("next run: copied %d, failed %d; want 1, 0", st.Copied, st.Failed)
	}
	if n := len(h.dst.bodies("INBOX")); n != 10 {
		t.Errorf("destination holds %d, want 10", n)
	}
}

func TestErrorBudgetStopsHopelessAccount(t *testing.T) {
	h := newHarness(genMessages(60))
	h.dst.reject, h.dst.rejectClass = "Subject", ClassPerMessage // every message
	h.opts.MaxRefusedInARow = 10
	st := h.run(t)
	if st.ErrorClass != "fatal" || !strings.Contains(st.Error, "refused 1") || st.Attempts != 1 {
		t.Fatalf("class %q, error %q, attempts %d; want a fatal stop after 10 refusals", st.ErrorClass, st.Error, st.Attempts)
	}
	if len(st.Failures) >= 60 {
		t.Errorf("%d refusals: the budget did not stop the account early", len(st.Failures))
	}
}

// retryAfterErr is a transient error whose server asked for a wait.
type retryAfterErr struct{ wait time.Duration }

func (e retryAfterErr) Error() string             { return "NO [THROTTLED] slow down" }
func (e retryAfterErr) RetryAfter() time.Duration { return e.wait }

func TestRetryHonoursSuggestedWaitAndProgress(t *testing.T) {
	if got := retryAfter(fmt.Errorf("appending: %w", retryAfterErr{3 * time.Second})); got != 3*time.Second {
		t.Errorf("retryAfter through a wrap = %v, want 3s", got)
	}
	// A flaky source that fails every 12th fetch: each attempt makes
	// progress, so the account completes although 4 attempts in a row
	// would not be enough.
	h := newHarness(genMessages(60))
	h.runner.Attempts = 2
	h.src.failFetch = 12
	st := h.run(t)
	if st.Error != "" || st.Copied != 60 || st.Attempts < 3 {
		t.Fatalf("error %q, copied %d in %d attempts; want all 60 over several attempts", st.Error, st.Copied, st.Attempts)
	}
}

func TestParallelDestinationSessions(t *testing.T) {
	msgs := genMessages(200)
	h := newHarness(msgs)
	h.opts.DestSessions = 3
	h.dst.loseAfter = 60 // one batch is stored but never confirmed
	st := h.run(t)
	if st.Error != "" {
		t.Fatalf("run failed: %s", st.Error)
	}
	if got, want := h.dst.bodies("INBOX"), sortedBodies(msgs); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("destination holds %d messages, want exactly the 200 once each", len(got))
	}
	if st.Copied+st.Reconciled != 200 || st.Reconciled == 0 {
		t.Errorf("copied %d + reconciled %d, want 200 with some reconciled", st.Copied, st.Reconciled)
	}
	st = h.run(t)
	if st.Copied != 0 || st.AlreadyDone != 200 {
		t.Errorf("re-run: copied %d, already done %d; want 0, 200", st.Copied, st.AlreadyDone)
	}
}

// TestMailboxRecreatedMidRunKeepsReconcileOnUIDs: the destination mailbox
// is deleted and created again between two batches (the destination
// handled a [TRYCREATE]); then a batch is stored but its confirmation
// lost. The pending entries of that batch must name the new UIDVALIDITY and
// the new mailbox's UIDs, so that reconcile finds the batch by UID range
// rather than falling back to matching the whole mailbox by content.
func TestMailboxRecreatedMidRunKeepsReconcileOnUIDs(t *testing.T) {
	msgs := genMessages(40)
	h := newHarness(msgs)
	h.dst.recreateAt = 14       // batches 1-2 go to the old mailbox
	h.dst.loseAfter = 28        // batch 5 is stored, its OK lost
	h.opts.Linger = time.Minute // whole batches of 7, however slow the machine
	var log bytes.Buffer
	h.runner.Logger = slog.New(slog.NewTextHandler(&log, nil))
	st := h.run(t)
	if st.Error != "" || st.Reconciled != 7 || st.Attempts != 2 {
		t.Fatalf("error %q, reconciled %d in %d attempts; want none, 7 in 2\n%s", st.Error, st.Reconciled, st.Attempts, log.String())
	}
	if strings.Contains(log.String(), "changed UIDVALIDITY") {
		t.Errorf("reconcile fell back to matching by content:\n%s", log.String())
	}
	// The first two batches went with the deleted mailbox; the rest is
	// there once each.
	if got, want := h.dst.bodies("INBOX"), sortedBodies(msgs[14:]); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("destination holds %d messages, want the 26 sent after the mailbox was created again, once each", len(got))
	}
}

// TestPipelinedAppend runs the copy against a destination that takes the
// next batch before the previous one's outcome (AppendStarter): every
// message is pending before it is sent, at most two batches are in flight
// per session (pipelining checks both when a batch starts), and what was
// stored is recorded once, whatever goes wrong.
func TestPipelinedAppend(t *testing.T) {
	tests := []struct {
		name     string
		sessions int
		setup    func(*memDest)
		// check looks at the stats of the first run; a second run must
		// then leave exactly the 100 messages, each once.
		check func(t *testing.T, h *harness, st *Stats, l *memLedger)
	}{
		{
			name: "all copied", sessions: 1,
			check: func(t *testing.T, h *harness, st *Stats, l *memLedger) {
				if st.Copied != 100 || st.Error != "" {
					t.Errorf("copied %d, error %q; want 100, none", st.Copied, st.Error)
				}
				if got := l.states(alice); got[StateDone] != 100 {
					t.Errorf("ledger states %v, want 100 done", got)
				}
			},
		},
		{
			name: "three sessions, a batch stored but not confirmed", sessions: 3,
			setup: func(d *memDest) { d.loseAfter = 40 },
			check: func(t *testing.T, h *harness, st *Stats, l *memLedger) {
				if st.Error != "" || st.Copied+st.Reconciled != 100 || st.Reconciled == 0 {
					t.Errorf("copied %d + reconciled %d, error %q; want 100 with some reconciled", st.Copied, st.Reconciled, st.Error)
				}
			},
		},
		{
			name: "a message refused", sessions: 2,
			setup: func(d *memDest) { d.reject, d.rejectClass = "body 42\r\n", ClassPerMessage },
			check: func(t *testing.T, h *harness, st *Stats, l *memLedger) {
				if st.Copied != 99 || len(st.Failures) != 1 {
					t.Errorf("copied %d, failures %v; want 99 and the refused one", st.Copied, st.Failures)
				}
			},
		},
		{
			name: "fatal refusal with a later batch in flight", sessions: 1,
			setup: func(d *memDest) { d.reject, d.rejectClass = "body 30\r\n", ClassFatal },
			check: func(t *testing.T, h *harness, st *Stats, l *memLedger) {
				if st.ErrorClass != "fatal" {
					t.Errorf("class %q, want fatal", st.ErrorClass)
				}
				// A batch in flight when the refusal came is finished and
				// committed: nothing stored is left pending.
				stored := map[string]bool{}
				for _, b := range h.dst.bodies("INBOX") {
					_, rest, _ := strings.Cut(b, "Message-ID: ")
					id, _, _ := strings.Cut(rest, "\r\n")
					stored[id] = true
				}
				for k, e := range l.entries[alice] {
					if stored[e.MessageID] && e.State != StateDone {
						t.Errorf("%s is stored but %v in the ledger", k, e.State)
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs := genMessages(100)
			h := newHarness(msgs)
			h.opts.DestSessions = tt.sessions
			p := &pipelining{ledger: h.ledger, account: alice}
			h.dst.pipelined = p
			if tt.setup != nil {
				tt.setup(h.dst)
			}
			tt.check(t, h, h.run(t), h.ledger)
			h.dst.reject = ""
			if st := h.run(t); st.Error != "" {
				t.Fatalf("second run: %s", st.Error)
			}
			if got, want := h.dst.bodies("INBOX"), sortedBodies(msgs); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("destination holds %d messages, want exactly the 100 once each", len(got))
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			for _, e := range p.errs {
				t.Error(e)
			}
			// Whether a second batch goes out depends on the fetcher
			// having the next messages ready; imapdst's transcript tests
			// show the pipelining on the wire.
			t.Logf("at most %d batches in flight per session", p.max)
		})
	}
}

// TestAppendPreparedOnlyToCopy: the engine asks the destination to open
// what appending needs (AppendPreparer) before its first APPEND, and only
// when it has something to copy: a re-run with nothing new and a dry run
// never do.
func TestAppendPreparedOnlyToCopy(t *testing.T) {
	tests := []struct {
		name    string
		msgs    int
		rerun   bool
		dryRun  bool
		prepare bool
		appends bool
	}{
		{name: "copy", msgs: 30, prepare: true, appends: true},
		{name: "re-run with nothing new", msgs: 30, rerun: true},
		{name: "dry run", msgs: 30, dryRun: true},
		{name: "empty source", msgs: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(genMessages(tc.msgs))
			if tc.rerun {
				if st := h.run(t); st.Error != "" || st.Copied != tc.msgs {
					t.Fatalf("first run: copied %d, error %q", st.Copied, st.Error)
				}
				h.dst.prepares, h.dst.appends = 0, 0
			}
			h.runner.DryRun = tc.dryRun
			if st := h.run(t); st.Error != "" {
				t.Fatalf("run: %s", st.Error)
			}
			d := h.dst
			if (d.prepares > 0) != tc.prepare || (d.appends > 0) != tc.appends {
				t.Errorf("%d PrepareAppend and %d Append calls; want prepared %v, appended %v", d.prepares, d.appends, tc.prepare, tc.appends)
			}
			if d.unprepared > 0 {
				t.Errorf("%d Append calls before any PrepareAppend", d.unprepared)
			}
		})
	}
}

// TestExtraSessionsFollowTheQueue: with DestSessions 4 and batches of 250,
// the i-th extra destination session opens only once more than i batches
// were queued; an account of 200 messages opens one session in all.
func TestExtraSessionsFollowTheQueue(t *testing.T) {
	tests := []struct {
		msgs int
		want int // sessions opened
	}{
		{msgs: 0, want: 1},
		{msgs: 200, want: 1},
		{msgs: 250, want: 1},
		{msgs: 251, want: 2},
		{msgs: 600, want: 3},
		{msgs: 1100, want: 4},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d messages", tc.msgs), func(t *testing.T) {
			h := newHarness(genMessages(tc.msgs))
			h.opts.DestSessions, h.opts.BatchMessages = 4, 250
			if st := h.run(t); st.Error != "" || st.Copied != tc.msgs {
				t.Fatalf("copied %d of %d, error %q", st.Copied, tc.msgs, st.Error)
			}
			if h.dst.opens != tc.want {
				t.Errorf("%d destination sessions opened, want %d", h.dst.opens, tc.want)
			}
		})
	}
}

// TestSessionGate: session 0 may open at once; the i-th extra session once
// more than i batches were queued, and, when the listing ends first, is
// told it is not needed; until then its wait lasts, and a stop ends it.
func TestSessionGate(t *testing.T) {
	tests := []struct {
		name   string
		queued []int // grow calls, in order
		listed bool
		want   []bool // wait(i) for each session
	}{
		{name: "nothing queued yet", want: []bool{true, false, false}},
		{name: "a batch, listed", queued: []int{1, 100}, listed: true, want: []bool{true, false, false}},
		{name: "one more than a batch", queued: []int{101}, want: []bool{true, true, false}},
		{name: "more than two batches, listed", queued: []int{50, 201}, listed: true, want: []bool{true, true, true}},
		{name: "more than a batch, listed twice", queued: []int{150}, listed: true, want: []bool{true, true, false}},
		{name: "more batches than sessions", queued: []int{1000}, want: []bool{true, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newSessionGate(len(tc.want), 100)
			if g.sessions() != len(tc.want) {
				t.Fatalf("sessions() = %d, want %d", g.sessions(), len(tc.want))
			}
			for _, q := range tc.queued {
				g.grow(q)
			}
			if tc.listed {
				g.listed()
				g.listed()
			}
			for i, want := range tc.want {
				stop := make(chan struct{})
				if !want && !tc.listed {
					// Not needed yet, and the listing goes on: the
					// wait lasts until something ends it.
					select {
					case <-g.opened[i]:
						t.Errorf("session %d may open after %v queued, want it to wait", i, tc.queued)
					default:
					}
					close(stop)
				}
				if got := g.wait(context.Background(), stop, i); got != want {
					t.Errorf("wait(%d) after %v queued (listed %v) = %v, want %v", i, tc.queued, tc.listed, got, want)
				}
			}
		})
	}
}
