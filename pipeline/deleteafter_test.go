package pipeline

import (
	"bytes"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

// deletedKeys returns the keys the source deleted for good, sorted.
func (s *memSource) deletedKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.committed {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestDeleteAfterSelectsDueMessages runs one account whose ledger already
// holds entries in every state and age, and checks which messages the run
// deletes at the source and how many it reports as waiting.
func TestDeleteAfterSelectsDueMessages(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	const period = 30 * day
	type seeded struct {
		state State
		ago   time.Duration // DoneAt (done) or Updated (others) before now
	}
	tests := []struct {
		name        string
		ledger      map[string]seeded // by key; every key but "gone" is listed by the source
		wantDeleted []string
		wantWaiting int
	}{
		{"not yet due", map[string]seeded{"m": {StateDone, period - time.Second}}, nil, 1},
		{"exactly due", map[string]seeded{"m": {StateDone, period}}, []string{"m"}, 0},
		{"overdue", map[string]seeded{"m": {StateDone, 400 * day}}, []string{"m"}, 0},
		{"done in the future (clock moved back)", map[string]seeded{"m": {StateDone, -day}}, nil, 1},
		{"skipped is never deleted", map[string]seeded{"m": {StateSkipped, 400 * day}}, nil, 0},
		{"failed is never deleted", map[string]seeded{"m": {StateFailed, 400 * day}}, nil, 1},
		{"pending is never deleted", map[string]seeded{"m": {StatePending, 400 * day}}, nil, 1},
		{"gone at the source", map[string]seeded{"gone": {StateDone, 400 * day}}, nil, 0},
		{"a mix", map[string]seeded{
			"due1": {StateDone, 31 * day}, "due2": {StateDone, 90 * day}, "young": {StateDone, 29 * day},
			"skip": {StateSkipped, 90 * day}, "gone": {StateDone, 90 * day},
		}, []string{"due1", "due2"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var msgs []memMsg
			for key := range tc.ledger {
				if key != "gone" {
					msgs = append(msgs, memMsg{key: key, body: []byte("Subject: " + key + "\r\n\r\nbody\r\n")})
				}
			}
			// One message the ledger does not know: copied by this run, so
			// its period starts now.
			msgs = append(msgs, memMsg{key: "new", body: []byte("Subject: new\r\n\r\nbody\r\n")})
			h := newHarness(msgs)
			h.opts.Now = func() time.Time { return now }
			h.opts.DeleteAfter = period
			for key, s := range tc.ledger {
				e := Entry{Key: key, State: s.state, Updated: now.Add(-s.ago),
					Reason: "seeded", DestMailbox: "INBOX", DestUIDValidity: 7, DestUIDNext: 1}
				if s.state == StateDone {
					e.DoneAt = now.Add(-s.ago)
				}
				h.ledger.put(alice, e)
			}
			st := h.run(t)
			if st.Error != "" {
				t.Fatalf("run failed: %s", st.Error)
			}
			if got := h.src.deletedKeys(); !slices.Equal(got, tc.wantDeleted) {
				t.Errorf("deleted at the source %q, want %q", got, tc.wantDeleted)
			}
			if st.Deleted != len(tc.wantDeleted) {
				t.Errorf("Stats.Deleted = %d, want %d", st.Deleted, len(tc.wantDeleted))
			}
			// The message copied now waits too, as do failed and pending
			// ones once this run has copied them.
			if want := tc.wantWaiting + 1; st.DeleteWaiting != want {
				t.Errorf("Stats.DeleteWaiting = %d, want %d", st.DeleteWaiting, want)
			}
			// Deleted at the source, confirmed at QUIT: gone, as
			// mailferry's own deletion (mirror never removes its copy).
			for _, k := range tc.wantDeleted {
				if e := h.ledger.entries[alice][k]; e.State != StateGone || e.ReasonClass != ReasonDeleted || e.DoneAt.IsZero() {
					t.Errorf("ledger entry of deleted %q = %v (%q, done at %v), want gone as deleted, done time kept", k, e.State, e.ReasonClass, e.DoneAt)
				}
			}
		})
	}
}

// TestDeleteAfterLifecycle is the scheduled job: a run copies, a run 29 days
// later deletes nothing, a run 31 days later deletes exactly what was
// copied and confirmed; a message that cannot be copied stays.
func TestDeleteAfterLifecycle(t *testing.T) {
	for _, imapLike := range []bool{false, true} {
		name := "pop3"
		if imapLike {
			name = "imap"
		}
		t.Run(name, func(t *testing.T) {
			msgs := append(genMessages(12), memMsg{key: "nul", body: []byte("Subject: nul\r\n\r\na\x00b\r\n")})
			h := newHarness(msgs)
			h.src.immediate = imapLike
			start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
			now := start
			h.opts.Now = func() time.Time { return now }
			h.opts.DeleteAfter = 30 * day

			st := h.run(t)
			if st.Copied != 12 || st.Skipped != 1 || st.Deleted != 0 || st.DeleteWaiting != 12 {
				t.Fatalf("first run: copied %d, skipped %d, deleted %d, waiting %d; want 12, 1, 0, 12",
					st.Copied, st.Skipped, st.Deleted, st.DeleteWaiting)
			}
			// New mail arrives later and gets its own period.
			h.src.mu.Lock()
			h.src.msgs = append(h.src.msgs, memMsg{key: "late", body: []byte("Subject: late\r\n\r\nlate\r\n")})
			h.src.mu.Unlock()
			now = start.Add(10 * day)
			if st = h.run(t); st.Copied != 1 || st.Deleted != 0 || st.DeleteWaiting != 13 {
				t.Fatalf("day 10: copied %d, deleted %d, waiting %d; want 1, 0, 13", st.Copied, st.Deleted, st.DeleteWaiting)
			}
			now = start.Add(29 * day)
			if st = h.run(t); st.Deleted != 0 || st.DeleteWaiting != 13 || len(h.src.deletedKeys()) != 0 {
				t.Fatalf("day 29: deleted %d (source %d), waiting %d; want 0, 13", st.Deleted, len(h.src.deletedKeys()), st.DeleteWaiting)
			}
			now = start.Add(31 * day)
			st = h.run(t)
			if st.Deleted != 12 || st.DeleteWaiting != 1 || st.Error != "" {
				t.Fatalf("day 31: deleted %d, waiting %d, error %q; want 12, 1, none", st.Deleted, st.DeleteWaiting, st.Error)
			}
			got := h.src.deletedKeys()
			if len(got) != 12 || slices.Contains(got, "nul") || slices.Contains(got, "late") {
				t.Errorf("deleted %q, want the 12 first messages, not nul or late", got)
			}
			now = start.Add(41 * day)
			if st = h.run(t); st.Deleted != 1 || st.DeleteWaiting != 0 || st.Skipped != 0 || st.SkippedBefore != 1 {
				t.Fatalf("day 41: deleted %d, waiting %d, skipped %d, before %d; want 1, 0, 0, 1", st.Deleted, st.DeleteWaiting, st.Skipped, st.SkippedBefore)
			}
			if got := h.src.deletedKeys(); len(got) != 13 || slices.Contains(got, "nul") {
				t.Errorf("deleted %q, want every message but nul", got)
			}
			if want := sortedBodies(append(genMessages(12), memMsg{body: []byte("Subject: late\r\n\r\nlate\r\n")})); strings.Join(h.dst.bodies("INBOX"), "|") != strings.Join(want, "|") {
				t.Errorf("destination holds %d messages, want exactly the 13 copied ones once each", len(h.dst.bodies("INBOX")))
			}
		})
	}
}

// crash is the panic a test crashpoint raises to stop a run dead.
type crash struct{ point string }

// TestDeleteAfterCrashAfterDelete stops the run right after the deletions
// were issued, before the session is closed (as kill -9 would): POP3 then
// deleted nothing and the next run deletes; IMAP deleted already and the
// next run finds nothing left to delete. Either way the ledger still has
// every message as done and the destination is unchanged.
func TestDeleteAfterCrashAfterDelete(t *testing.T) {
	tests := []struct {
		name            string
		immediate       bool
		afterCrash      int // deleted for good right after the crash
		wantNextDeleted int
	}{
		{"pop3: nothing before QUIT", false, 0, 5},
		{"imap: UID EXPUNGE is at once", true, 5, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs := genMessages(5)
			h := newHarness(msgs)
			h.src.immediate = tc.immediate
			start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
			now := start
			h.opts.Now = func() time.Time { return now }
			h.opts.DeleteAfter = 30 * day
			if st := h.run(t); st.Copied != 5 {
				t.Fatalf("first run copied %d, want 5", st.Copied)
			}

			now = start.Add(31 * day)
			h.opts.Crashpoint = func(p string) {
				if p == "deleted" {
					panic(crash{p})
				}
			}
			func() {
				defer func() {
					if r := recover(); r != (crash{"deleted"}) {
						t.Fatalf("the run did not stop at the deleted crashpoint: recovered %v", r)
					}
				}()
				h.run(t)
			}()
			// The process died: its connection drops without QUIT.
			h.src.Close(false)
			if got := len(h.src.deletedKeys()); got != tc.afterCrash {
				t.Fatalf("after the crash the source deleted %d, want %d", got, tc.afterCrash)
			}
			if n := h.ledger.states(alice)[StateDone]; n != 5 {
				t.Fatalf("after the crash the ledger has %d done entries, want 5", n)
			}

			h.opts.Crashpoint = nil
			st := h.run(t)
			if st.Error != "" || st.Deleted != tc.wantNextDeleted || st.Copied != 0 {
				t.Fatalf("next run: error %q, deleted %d, copied %d; want none, %d, 0", st.Error, st.Deleted, st.Copied, tc.wantNextDeleted)
			}
			if got := len(h.src.deletedKeys()); got != 5 {
				t.Errorf("the source deleted %d in all, want 5", got)
			}
			if got, want := h.dst.bodies("INBOX"), sortedBodies(msgs); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("destination holds %d messages, want the 5 once each", len(got))
			}
		})
	}
}

// A run that fails while copying deletes nothing, not even messages that
// are due: deletions only follow a complete copy.
func TestDeleteAfterNothingDeletedWhenCopyFails(t *testing.T) {
	msgs := genMessages(10)
	h := newHarness(msgs)
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	now := start
	h.opts.Now = func() time.Time { return now }
	h.opts.DeleteAfter = 30 * day
	h.src.msgs = msgs[:5]
	if st := h.run(t); st.Copied != 5 {
		t.Fatalf("first run copied %d, want 5", st.Copied)
	}
	h.src.msgs = msgs
	h.src.failFetch = 2
	h.runner.Attempts = 1
	now = start.Add(31 * day)
	st := h.run(t)
	if st.Error == "" || st.Deleted != 0 || len(h.src.deletedKeys()) != 0 {
		t.Fatalf("failing run: error %q, deleted %d (source %d); want an error and nothing deleted", st.Error, st.Deleted, len(h.src.deletedKeys()))
	}
}

func TestDeleteAfterDryRunDeletesNothing(t *testing.T) {
	h := newHarness(genMessages(4))
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	now := start
	h.opts.Now = func() time.Time { return now }
	h.opts.DeleteAfter = 30 * day
	h.run(t)
	now = start.Add(31 * day)
	h.runner.DryRun = true
	var log bytes.Buffer
	h.runner.Logger = slog.New(slog.NewTextHandler(&log, nil))
	st := h.run(t)
	if st.Deleted != 4 || !st.DryRun {
		t.Fatalf("dry run reports %d would-be deletions (dry_run=%v), want 4", st.Deleted, st.DryRun)
	}
	if !strings.Contains(log.String(), `msg="dry run: would delete at the source" account=alice messages=4 keys="[uidl-000`) {
		t.Errorf("the dry run does not log what it would delete:\n%s", log.String())
	}
	if got := h.src.deletedKeys(); len(got) != 0 {
		t.Errorf("dry run deleted %q at the source", got)
	}
}

func TestDeleteAfterExcludesDeleteSource(t *testing.T) {
	tests := []struct {
		name string
		opts func(*Options)
	}{
		{"both", func(o *Options) { o.DeleteSource, o.DeleteAfter = true, day }},
		{"negative", func(o *Options) { o.DeleteAfter = -day }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(genMessages(2))
			tc.opts(&h.opts)
			st := h.run(t)
			if st.ErrorClass != "fatal" || st.Copied != 0 || len(h.src.deletedKeys()) != 0 {
				t.Errorf("class %q, copied %d, deleted %d; want a fatal error before anything happens", st.ErrorClass, st.Copied, len(h.src.deletedKeys()))
			}
		})
	}
}
