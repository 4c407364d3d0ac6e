package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

// markingSource is an imapLikeSource that tells its folders' marks, as
// imapsrc does on a server with CONDSTORE: HIGHESTMODSEQ stands for a hash
// of the folder's keys and flags, which moves whenever they change.
type markingSource struct {
	*imapLikeSource
	noMarks  bool            // the server keeps no HIGHESTMODSEQ
	refuse   map[string]bool // keys (without folder) whose Fetch fails per message
	vanish   map[string]bool // keys (without folder) whose Fetch says the message is gone
	leaveOut []string
	listed   map[string]int // folder → messages listed, over every List
}

func (s *markingSource) FolderSummaries(context.Context) ([]FolderSummary, bool, error) {
	s.leaveOut = nil
	if s.noMarks {
		return nil, false, nil
	}
	type folder struct {
		h      []string
		maxUID uint32
	}
	byName := map[string]*folder{}
	for _, m := range s.msgs {
		if s.committed[m.key] {
			continue
		}
		name := s.folder[m.key]
		f := byName[name]
		if f == nil {
			f = &folder{}
			byName[name] = f
		}
		f.h = append(f.h, m.key+" "+strings.Join(s.flags[m.key], " "))
		var uid uint32
		fmt.Sscanf(m.key, "uidl-%d", &uid)
		f.maxUID = max(f.maxUID, uid+1)
	}
	var out []FolderSummary
	for name, f := range byName {
		sum := sha256.Sum256([]byte(strings.Join(f.h, "\n")))
		uv := s.uidValidity[name]
		out = append(out, FolderSummary{Mailbox: name, Generation: fmt.Sprintf("%s\x00%d\x00", name, uv),
			UIDValidity: uint32(uv), UIDNext: f.maxUID + 1, Messages: uint32(len(f.h)),
			HighestModSeq: binary.BigEndian.Uint64(sum[:])>>1 | 1})
	}
	slices.SortFunc(out, func(a, b FolderSummary) int { return strings.Compare(a.Mailbox, b.Mailbox) })
	return out, true, nil
}

func (s *markingSource) LeaveOut(mailboxes []string) { s.leaveOut = mailboxes }

func (s *markingSource) List(ctx context.Context, page func([]SourceMessage) error) error {
	leaveOut := s.leaveOut
	s.leaveOut = nil
	return s.imapLikeSource.List(ctx, func(msgs []SourceMessage) error {
		msgs = slices.DeleteFunc(msgs, func(m SourceMessage) bool { return slices.Contains(leaveOut, m.Mailbox) })
		for _, m := range msgs {
			s.listed[m.Mailbox]++
		}
		if len(msgs) == 0 {
			return nil
		}
		return page(msgs)
	})
}

func (s *markingSource) Fetch(ctx context.Context, msg SourceMessage, w io.Writer) (int64, error) {
	key := strings.Split(msg.Key, "\x00")[2]
	if s.refuse[key] {
		return 0, Classify(ClassPerMessage, errors.New("the server would not serve it"))
	}
	if s.vanish[key] {
		return 0, fmt.Errorf("UID FETCH: no such message: %w", ErrMessageGone)
	}
	return s.imapLikeSource.Fetch(ctx, msg, w)
}

// TestUnchangedFoldersAreNotListed: a re-run lists no folder whose marks
// (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, MESSAGES) are those of its last
// complete pass, every entry of it settled, and reports what a full
// listing would; a flag change, a new message, an expunge, a failed entry
// or a source without marks have their folder listed again.
func TestUnchangedFoldersAreNotListed(t *testing.T) {
	h, imapSrc := newIMAPHarness(t)
	imapSrc.immediate = true
	src := &markingSource{imapLikeSource: imapSrc, refuse: map[string]bool{}, vanish: map[string]bool{}}
	run := func(what string) (*Stats, map[string]int) {
		t.Helper()
		src.listed = map[string]int{}
		st := h.runWith(t, src)
		return st, src.listed
	}
	inFolder := func(folder string) []string {
		var keys []string
		for _, m := range imapSrc.msgs {
			if imapSrc.folder[m.key] == folder && !imapSrc.committed[m.key] {
				keys = append(keys, m.key)
			}
		}
		return keys
	}

	st, listed := run("first")
	if st.Copied != 8 || listed["INBOX"] != 4 || listed["Sent"] != 4 {
		t.Fatalf("first run: copied %d, listed %v; want 8, INBOX and Sent listed", st.Copied, listed)
	}
	if rec := h.ledger.folders[alice][SourceSide]["INBOX"]; rec.HighestModSeq == 0 || rec.UIDNext == 0 || rec.Messages != 4 {
		t.Fatalf("INBOX record after a complete pass: %+v; want its marks", rec)
	}

	lookups := h.ledger.lookups
	st, listed = run("unchanged")
	if len(listed) != 0 || h.ledger.lookups != lookups {
		t.Errorf("unchanged re-run listed %v with %d Lookups; want nothing listed or looked up", listed, h.ledger.lookups-lookups)
	}
	if st.Copied != 0 || st.Listed != 8 || st.AlreadyDone != 8 {
		t.Errorf("unchanged re-run: copied %d, listed %d, already done %d; want 0, 8, 8", st.Copied, st.Listed, st.AlreadyDone)
	}
	// The records of the folders left out are kept for the next run.
	if _, listed = run("unchanged again"); len(listed) != 0 {
		t.Errorf("second unchanged re-run listed %v", listed)
	}

	// A flag change in INBOX: INBOX alone is listed, the flag synced.
	k := inFolder("INBOX")[0]
	imapSrc.flags[k] = []string{`\Seen`, `\Flagged`}
	st, listed = run("flag change")
	if st.FlagsUpdated != 1 || listed["INBOX"] != 4 || listed["Sent"] != 0 {
		t.Errorf("after a flag change: flags updated %d, listed %v; want 1, INBOX alone", st.FlagsUpdated, listed)
	}

	// A new message in Sent.
	msgs := genMessages(14)
	imapSrc.msgs = append(imapSrc.msgs, msgs[12])
	imapSrc.folder[msgs[12].key] = "Sent"
	st, listed = run("new message")
	if st.Copied != 1 || listed["Sent"] != 5 || listed["INBOX"] != 0 {
		t.Errorf("after a new message: copied %d, listed %v; want 1, Sent alone", st.Copied, listed)
	}

	// An expunge in INBOX: found gone.
	imapSrc.committed = map[string]bool{inFolder("INBOX")[1]: true}
	st, listed = run("expunge")
	if st.SourceGone != 1 || listed["INBOX"] != 3 || listed["Sent"] != 0 {
		t.Errorf("after an expunge: gone %d, listed %v; want 1, INBOX alone", st.SourceGone, listed)
	}

	// A message of INBOX the source would not serve: failed. The next
	// run lists INBOX again although nothing changed there, and copies it.
	imapSrc.msgs = append(imapSrc.msgs, msgs[13])
	imapSrc.folder[msgs[13].key] = "INBOX"
	src.refuse[msgs[13].key] = true
	if st, _ = run("refused"); st.Failed != 1 {
		t.Fatalf("refused message: failed %d, want 1", st.Failed)
	}
	delete(src.refuse, msgs[13].key)
	st, listed = run("retry")
	if st.Copied != 1 || listed["INBOX"] != 4 || listed["Sent"] != 0 {
		t.Errorf("after a failure: copied %d, listed %v; want 1, INBOX alone", st.Copied, listed)
	}
	if _, listed = run("settled"); len(listed) != 0 {
		t.Errorf("settled re-run listed %v", listed)
	}

	// A new message of Sent taken for gone when fetched (a server
	// glitch: it is still there): it has no entry, so Sent gets no marks
	// and the next run lists it and copies the message.
	extra := genMessages(16)[15]
	imapSrc.msgs = append(imapSrc.msgs, extra)
	imapSrc.folder[extra.key] = "Sent"
	src.vanish[extra.key] = true
	if st, _ = run("taken for gone"); st.Gone != 1 || st.Copied != 0 {
		t.Fatalf("message taken for gone: gone %d, copied %d; want 1, 0", st.Gone, st.Copied)
	}
	delete(src.vanish, extra.key)
	if st, listed = run("after gone at fetch"); st.Copied != 1 || listed["Sent"] != 6 || listed["INBOX"] != 0 {
		t.Errorf("after a message taken for gone: copied %d, listed %v; want 1, Sent alone", st.Copied, listed)
	}

	// A flag update the destination refuses: INBOX gets no marks, and the
	// next run lists it to try again.
	imapSrc.flags[k] = []string{`\Seen`}
	h.dst.refuseFlags = true
	if st, listed = run("flags refused"); st.FlagsUpdated != 0 || listed["INBOX"] != 4 {
		t.Fatalf("refused flag update: flags updated %d, listed %v", st.FlagsUpdated, listed)
	}
	h.dst.refuseFlags = false
	if st, listed = run("flags again"); st.FlagsUpdated != 1 || listed["INBOX"] != 4 || listed["Sent"] != 0 {
		t.Errorf("after a refused flag update: flags updated %d, listed %v; want 1, INBOX alone", st.FlagsUpdated, listed)
	}

	// Without flag sync, every folder is listed, and no marks recorded:
	// a later run with it must see the flags changed meanwhile.
	h.opts.SyncFlags = false
	if _, listed = run("no flag sync"); listed["INBOX"] != 4 || listed["Sent"] != 6 {
		t.Errorf("without flag sync: listed %v, want every folder", listed)
	}
	imapSrc.flags[k] = []string{`\Answered`}
	h.opts.SyncFlags = true
	if st, listed = run("flag sync again"); st.FlagsUpdated != 1 || listed["INBOX"] != 4 {
		t.Errorf("flag sync after a run without: flags updated %d, listed %v; want 1, INBOX listed", st.FlagsUpdated, listed)
	}

	// Without marks, every folder is listed.
	src.noMarks = true
	st, listed = run("no marks")
	if listed["INBOX"] != 4 || listed["Sent"] != 6 || st.AlreadyDone != 10 {
		t.Errorf("without marks: listed %v, already done %d; want every folder listed", listed, st.AlreadyDone)
	}
	// A run without marks records none: the next one lists again.
	src.noMarks = false
	if _, listed = run("after no marks"); listed["INBOX"] != 4 {
		t.Errorf("after a run without marks: listed %v, want every folder", listed)
	}

	// Deleting at the source needs the listing.
	h.opts.DeleteSource = true
	if st, listed = run("delete"); st.Deleted != 10 || listed["INBOX"] != 4 {
		t.Errorf("delete_source: deleted %d, listed %v", st.Deleted, listed)
	}
	if rec := h.ledger.folders[alice][SourceSide]["INBOX"]; rec.HighestModSeq != 0 || rec.SyncedAt.IsZero() {
		t.Errorf("INBOX record after a pass that deleted at the source: %+v; want a complete pass without marks", rec)
	}
}

// TestUnchangedFoldersWithSkipped: a folder left out as unchanged reports
// its messages skipped for good as a listing would; a skip this run would
// retry (the limit grew past it) has its folder listed.
func TestUnchangedFoldersWithSkipped(t *testing.T) {
	h, imapSrc := newIMAPHarness(t)
	imapSrc.msgs[0].body = append(imapSrc.msgs[0].body, strings.Repeat("long line\r\n", 100)...) // INBOX
	h.opts.MaxMessageBytes = 500
	src := &markingSource{imapLikeSource: imapSrc}
	run := func() (*Stats, map[string]int) {
		t.Helper()
		src.listed = map[string]int{}
		return h.runWith(t, src), src.listed
	}
	if st, _ := run(); st.Copied != 7 || st.Skipped != 1 {
		t.Fatalf("first run: copied %d, skipped %d; want 7, 1", st.Copied, st.Skipped)
	}
	st, listed := run()
	if len(listed) != 0 || st.Listed != 8 || st.AlreadyDone != 7 || st.SkippedBefore != 1 {
		t.Errorf("unchanged re-run: listed %v (%d), already done %d, skipped before %d; want nothing listed, 8, 7, 1",
			listed, st.Listed, st.AlreadyDone, st.SkippedBefore)
	}
	h.opts.MaxMessageBytes = 100000
	if st, listed = run(); st.Copied != 1 || listed["INBOX"] != 4 || listed["Sent"] != 0 {
		t.Errorf("after the limit grew: copied %d, listed %v; want 1, INBOX alone", st.Copied, listed)
	}
}

// lateMarks is a markingSource whose marks of folder were taken before
// its last message came: the listing that follows them meets a UID at
// their UIDNEXT.
type lateMarks struct {
	*markingSource
	folder string
}

func (s *lateMarks) FolderSummaries(ctx context.Context) ([]FolderSummary, bool, error) {
	sums, ok, err := s.markingSource.FolderSummaries(ctx)
	for i := range sums {
		if sums[i].Mailbox == s.folder {
			sums[i].UIDNext--
			sums[i].Messages--
		}
	}
	return sums, ok, err
}

// TestMarksOnlyBelowTheirUIDNext: a folder whose listing met a message at
// or past its marks' UIDNEXT (one that came during the listing) is
// recorded without marks, so that the next run lists it whole instead of
// taking its record's count for the messages below UIDNEXT (what a listing
// by changes compares); the other folders keep theirs.
func TestMarksOnlyBelowTheirUIDNext(t *testing.T) {
	h, imapSrc := newIMAPHarness(t)
	src := &lateMarks{markingSource: &markingSource{imapLikeSource: imapSrc, listed: map[string]int{}}, folder: "INBOX"}
	if st := h.runWith(t, src); st.Copied != 8 {
		t.Fatalf("first run copied %d, want 8", st.Copied)
	}
	folders, err := h.ledger.Folders(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Folder{}
	for _, f := range folders {
		if f.Side == SourceSide {
			got[f.Name] = f
		}
	}
	if f := got["INBOX"]; f.SyncedAt.IsZero() || f.UIDNext != 0 || f.HighestModSeq != 0 || f.Messages != 4 {
		t.Errorf("INBOX record = %+v; want a complete pass of 4 messages without marks", f)
	}
	if f := got["Sent"]; f.SyncedAt.IsZero() || f.UIDNext == 0 || f.HighestModSeq == 0 {
		t.Errorf("Sent record = %+v; want a complete pass with marks", f)
	}
}
