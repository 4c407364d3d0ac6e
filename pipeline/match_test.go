package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/mail"
	"strings"
	"sync"
	"testing"
)

// matchingDest is a memDest whose sessions list Message-IDs (HeaderLister)
// and hash many messages at once (DigestLister), counting both.
type matchingDest struct {
	*memDest
	mu      sync.Mutex
	listed  int // ListHeaders calls
	batched int // Digests calls
	single  int // Digest calls
}

type matchingSession struct {
	memDestSession
	m *matchingDest
}

func newMatchingDest() *matchingDest { return &matchingDest{memDest: newMemDest()} }

func (m *matchingDest) open(context.Context) (Destination, error) {
	return &matchingSession{memDestSession{m.memDest}, m}, nil
}

func (s *matchingSession) ListHeaders(_ context.Context, mailbox string) (uint32, []DestHeader, error) {
	s.m.mu.Lock()
	s.m.listed++
	s.m.mu.Unlock()
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	mb := s.d.boxes[mailbox]
	if mb == nil {
		return 0, nil, nil
	}
	var out []DestHeader
	for _, m := range mb.msgs {
		id := ""
		if msg, err := mail.ReadMessage(bytes.NewReader(m.body)); err == nil {
			id = strings.TrimSpace(msg.Header.Get("Message-Id"))
		}
		out = append(out, DestHeader{UID: m.uid, Size: int64(len(m.body)), MessageID: id})
	}
	return mb.uidValidity, out, nil
}

func (s *matchingSession) Digests(_ context.Context, mailbox string, uidValidity uint32, uids []uint32) ([]DestDigest, error) {
	s.m.mu.Lock()
	s.m.batched++
	s.m.mu.Unlock()
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	mb := s.d.boxes[mailbox]
	if mb == nil || mb.uidValidity != uidValidity {
		return nil, ErrUIDValidityChanged
	}
	var out []DestDigest
	for _, m := range mb.msgs {
		for _, u := range uids {
			if u == m.uid {
				out = append(out, DestDigest{UID: u, Sum: sha256.Sum256(m.body), Size: int64(len(m.body))})
			}
		}
	}
	return out, nil
}

func (s *matchingSession) Digest(ctx context.Context, mailbox string, uid uint32) ([32]byte, int64, error) {
	s.m.mu.Lock()
	s.m.single++
	s.m.mu.Unlock()
	return s.memDestSession.Digest(ctx, mailbox, uid)
}

// seedDest stores bodies in a destination mailbox, as another tool or an
// earlier run under another checkpoint would have.
func seedDest(d *memDest, mailbox string, bodies ...[]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	mb := d.boxes[mailbox]
	if mb == nil {
		mb = &memMailbox{uidValidity: 7, uidNext: 1}
		d.boxes[mailbox] = mb
	}
	for _, b := range bodies {
		mb.msgs = append(mb.msgs, storedMsg{uid: mb.uidNext, body: b})
		mb.uidNext++
	}
}

// copiesLedger is a memLedger whose Folders tell, as the checkpoint's do,
// which destination folders entries name (HasCopies).
type copiesLedger struct{ *memLedger }

func (l copiesLedger) Folders(ctx context.Context, account AccountID) ([]Folder, error) {
	out, err := l.memLedger.Folders(ctx, account)
	seen := map[string]bool{}
	for _, e := range l.all(account) {
		if e.DestMailbox != "" && !seen[e.DestMailbox] {
			seen[e.DestMailbox] = true
			out = append(out, Folder{Side: DestSide, Name: e.DestMailbox, HasCopies: true})
		}
	}
	return out, err
}

func newMatchHarness(msgs []memMsg) (*harness, *matchingDest) {
	h := newHarness(msgs)
	md := newMatchingDest()
	h.dst = md.memDest
	h.runner.Ledger = copiesLedger{h.ledger}
	return h, md
}

func (h *harness) runOn(t *testing.T, md *matchingDest) *Stats {
	t.Helper()
	st, _ := h.runner.RunAccount(context.Background(), Job{
		Options:         h.opts,
		OpenSource:      func(context.Context) (Source, error) { return h.src, nil },
		OpenDestination: md.open,
	})
	return st
}

// TestMatchExisting: a copy into a folder the ledger has nothing for first
// matches what the folder holds. Byte-identical messages are recorded as
// done (matched) and not sent, including one the source holds with bare
// LFs, whose CRLF form is what a copy stores; one with the same Message-ID
// and size but other bytes is skipped as probably present and, under
// DeleteSource, not deleted at the source; the rest are copied. Off, every
// message is sent.
func TestMatchExisting(t *testing.T) {
	msgs := genMessages(8)
	msgs[7].body = []byte("Message-ID: <lf@test>\nSubject: bare LF\n\nbody\n")
	crlfLF := []byte("Message-ID: <lf@test>\r\nSubject: bare LF\r\n\r\nbody\r\n")
	changed := bytes.Replace(msgs[2].body, []byte("body 2"), []byte("BODY 2"), 1)
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprint("NoMatchExisting=", off), func(t *testing.T) {
			h, md := newMatchHarness(msgs)
			h.opts.NoMatchExisting = off
			h.opts.DeleteSource = true
			seedDest(md.memDest, "INBOX", msgs[0].body, msgs[1].body, changed, crlfLF)
			st := h.runOn(t, md)
			n := len(h.dst.bodies("INBOX"))
			if off {
				if st.Copied != 8 || st.Matched != 0 || n != 12 || md.listed != 0 {
					t.Fatalf("off: copied %d, matched %d, destination %d, listings %d; want 8, 0, 12, 0", st.Copied, st.Matched, n, md.listed)
				}
				return
			}
			if st.Copied != 4 || st.Matched != 3 || st.ProbablyPresent != 1 || st.Skipped != 1 || n != 8 {
				t.Fatalf("copied %d, matched %d, probably present %d, skipped %d, destination %d; want 4, 3, 1, 1, 8\n%+v",
					st.Copied, st.Matched, st.ProbablyPresent, st.Skipped, n, st.Skips)
			}
			entries := h.ledger.all(alice)
			for k, uid := range map[string]uint32{msgs[0].key: 1, msgs[1].key: 2, msgs[7].key: 4} {
				// Matched (and maybe marked deleted at the source already:
				// DeleteSource).
				e := entries[k]
				ok := e.State == StateDone && e.ReasonClass == ReasonMatched || e.State == StateGone && e.ReasonClass == ReasonDeleted
				if !ok || e.DestUID != uid || e.DestMailbox != "INBOX" {
					t.Errorf("entry %s = %+v, want done (matched) with its copy at UID %d", k, e, uid)
				}
			}
			if e := entries[msgs[2].key]; e.State != StateSkipped || e.ReasonClass != ReasonPresent || !strings.Contains(e.Reason, "UID 3") || e.DestUID != 3 {
				t.Errorf("entry of the changed message = %+v, want skipped as present at UID 3", e)
			}
			// Deleted at the source: the done ones (matched ones too),
			// never the probably-present one.
			h.src.mu.Lock()
			kept := !h.src.committed[msgs[2].key]
			gone := h.src.committed[msgs[0].key] && h.src.committed[msgs[7].key]
			h.src.mu.Unlock()
			if !kept || !gone {
				t.Errorf("deleted at the source: probably present kept %v, matched deleted %v; want both", kept, gone)
			}
			if md.listed != 1 || md.single != 0 {
				t.Errorf("%d listings, %d single digests; want one listing and batched digests", md.listed, md.single)
			}
		})
	}
}

// TestMatchExistingOnlyForUnknownFolders: once the ledger names a
// destination folder, later runs do not list it again (a fetch job into a
// live INBOX): a message that then arrives there by other means is not
// taken for a source message's copy.
func TestMatchExistingOnlyForUnknownFolders(t *testing.T) {
	msgs := genMessages(6)
	h, md := newMatchHarness(msgs[:3])
	if st := h.runOn(t, md); st.Copied != 3 || md.listed != 1 {
		t.Fatalf("first run: copied %d, listings %d; want 3, 1 (an empty folder is listed once)", st.Copied, md.listed)
	}
	seedDest(md.memDest, "INBOX", msgs[3].body)
	h.src.msgs = msgs
	st := h.runOn(t, md)
	if st.Copied != 3 || st.Matched != 0 || md.listed != 1 {
		t.Errorf("second run: copied %d, matched %d, listings %d; want 3, 0, still 1", st.Copied, st.Matched, md.listed)
	}
}

// TestMatchExistingDryRun: a dry run matches as a real run would, and
// writes nothing.
func TestMatchExistingDryRun(t *testing.T) {
	msgs := genMessages(5)
	h, md := newMatchHarness(msgs)
	seedDest(md.memDest, "INBOX", msgs[0].body, msgs[1].body, msgs[2].body)
	h.runner.DryRun = true
	st := h.runOn(t, md)
	if st.Copied != 2 || st.Matched != 3 || len(h.dst.bodies("INBOX")) != 3 || len(h.ledger.all(alice)) != 0 {
		t.Errorf("dry run: would copy %d, matched %d, destination %d, ledger %d; want 2, 3, 3, 0",
			st.Copied, st.Matched, len(h.dst.bodies("INBOX")), len(h.ledger.all(alice)))
	}
}

// doneCounter checks that a run never shows more messages done than it
// announced (the statuspage's reading of Progress: an announcement adds to
// what is done already).
type doneCounter struct {
	mu          sync.Mutex
	done, total int
	over        string
}

func (p *doneCounter) AccountStarted(_ string, n int, _ int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = p.done + n
}

func (p *doneCounter) MessageDone(string, Outcome, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if p.done > p.total && p.over == "" {
		p.over = fmt.Sprintf("copied=%d of=%d", p.done, p.total)
	}
}
func (p *doneCounter) AccountPaused(string, *PausedError) {}
func (p *doneCounter) AccountFinished(string, *Stats)     {}

// TestReconcileInBatches: a run after a crash settles the pending entries
// of a mailbox with one batched hash of the candidates (DigestLister), not
// one Digest per message, and its progress never shows more done than
// announced (issue 14: copied=18350 of=18250).
func TestReconcileInBatches(t *testing.T) {
	msgs := genMessages(20)
	h, md := newMatchHarness(msgs)
	// A crash after the server stored the first 10: pending, on the
	// destination.
	for _, m := range msgs[:10] {
		seedDest(md.memDest, "INBOX", m.body)
		sum := sha256.Sum256(m.body)
		h.ledger.put(alice, Entry{Key: m.key, State: StatePending, Digest: fmt.Sprintf("%x", sum), Size: int64(len(m.body)),
			DestMailbox: "INBOX", DestUIDValidity: 7, DestUIDNext: 1})
	}
	prog := &doneCounter{}
	h.runner.Progress = prog
	st := h.runOn(t, md)
	if st.Error != "" || st.Reconciled != 10 || st.Copied != 10 || len(h.dst.bodies("INBOX")) != 20 {
		t.Fatalf("reconciled %d, copied %d, destination %d, error %q; want 10, 10, 20, none", st.Reconciled, st.Copied, len(h.dst.bodies("INBOX")), st.Error)
	}
	if md.single != 0 || md.batched != 1 {
		t.Errorf("reconcile hashed with %d single Digest calls and %d batched; want 0 and 1", md.single, md.batched)
	}
	if prog.over != "" || prog.done != 20 || prog.total != 20 {
		t.Errorf("progress: %s (ended %d of %d); want never more done than announced, 20 of 20", prog.over, prog.done, prog.total)
	}
}

// TestMatchExistingSeveralSessions: batch writers on several destination
// sessions share one listing of the folder, and no destination message is
// taken by two source messages.
func TestMatchExistingSeveralSessions(t *testing.T) {
	msgs := genMessages(60)
	h, md := newMatchHarness(msgs)
	h.opts.DestSessions, h.opts.BatchMessages = 3, 5
	for i := 0; i < 60; i += 2 {
		seedDest(md.memDest, "INBOX", msgs[i].body)
	}
	st := h.runOn(t, md)
	if st.Error != "" || st.Copied != 30 || st.Matched != 30 || len(h.dst.bodies("INBOX")) != 60 || md.listed != 1 {
		t.Errorf("copied %d, matched %d, destination %d, listings %d, error %q; want 30, 30, 60, 1",
			st.Copied, st.Matched, len(h.dst.bodies("INBOX")), md.listed, st.Error)
	}
}

// TestReconcileIdenticalBodies: pending entries of messages with the same
// bytes under different keys (a POP3 mailbox holding one message twice)
// are each matched with a copy of their own, never one copy for two, and
// never a copy a done entry names; what is not found is sent again. The
// destination ends with the source's multiset (the fault suite's scenario
// 069 of seed 1796549140317265009 duplicated 2 such messages once).
func TestReconcileIdenticalBodies(t *testing.T) {
	for _, tc := range []struct {
		name       string
		doneFirst  bool // uidl-001 is done at UID 1
		stored     int  // copies of the shared body on the destination
		reconciled int
	}{
		{"done twin, one of two pending stored", true, 2, 1},
		{"done twin, neither pending stored", true, 1, 0},
		{"done twin, both pending stored", true, 3, 2},
		{"no done twin, both pending stored", false, 2, 2},
		{"no done twin, one stored", false, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := genMessages(8)
			msgs[6].body, msgs[7].body = msgs[1].body, msgs[1].body
			h, md := newMatchHarness(msgs)
			for range tc.stored {
				seedDest(md.memDest, "INBOX", msgs[1].body)
			}
			sum := fmt.Sprintf("%x", sha256.Sum256(msgs[1].body))
			next := uint32(1)
			if tc.doneFirst {
				h.ledger.put(alice, Entry{Key: msgs[1].key, State: StateDone, Digest: sum, Size: int64(len(msgs[1].body)),
					DestMailbox: "INBOX", DestUIDValidity: 7, DestUID: 1})
				next = 2
			}
			for _, m := range msgs[6:] {
				h.ledger.put(alice, Entry{Key: m.key, State: StatePending, Digest: sum, Size: int64(len(m.body)),
					DestMailbox: "INBOX", DestUIDValidity: 7, DestUIDNext: next})
			}
			st := h.runOn(t, md)
			if st.Error != "" || st.Reconciled != tc.reconciled {
				t.Fatalf("reconciled %d, error %q; want %d, none", st.Reconciled, st.Error, tc.reconciled)
			}
			if got, want := h.dst.bodies("INBOX"), sortedBodies(msgs); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("destination holds %d messages, want the source's 8 (the shared body 3 times)", len(got))
			}
		})
	}
}
