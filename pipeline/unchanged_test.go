package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// summarizingSource is a memSource that summarizes its listing, as
// pop3src does.
type summarizingSource struct {
	*memSource
	summaries int
	thenList  []bool // each ListSummary's
}

func (s *summarizingSource) ListSummary(ctx context.Context, thenList bool) (ListSummary, bool, error) {
	s.summaries++
	s.thenList = append(s.thenList, thenList)
	h := sha256.New()
	n := 0
	err := s.memSource.List(ctx, func(page []SourceMessage) error {
		for _, m := range page {
			fmt.Fprintf(h, "%s %d\n", m.Key, m.Size)
			n++
		}
		return nil
	})
	return ListSummary{Messages: n, Digest: binary.BigEndian.Uint64(h.Sum(nil)) >> 1}, true, err
}

func (h *harness) runSummarizing(t *testing.T) *Stats {
	t.Helper()
	st, _ := h.runSummarized(t)
	return st
}

// runSummarized is runSummarizing returning the source too.
func (h *harness) runSummarized(t *testing.T) (*Stats, *summarizingSource) {
	t.Helper()
	src := &summarizingSource{memSource: h.src}
	st, _ := h.runner.RunAccount(context.Background(), Job{
		Options:         h.opts,
		OpenSource:      func(context.Context) (Source, error) { return src, nil },
		OpenDestination: h.dst.open,
	})
	if src.summaries == 0 {
		t.Error("the engine did not ask for the listing's summary")
	}
	return st, src
}

// TestListSummaryThenList: the engine tells the source when the List
// follows its summary whatever the summary says (no complete pass yet,
// deletion at the source), so that a POP3 source asks for the sizes in
// the same round trip; after a complete pass it does not, and an
// unchanged listing then needs no sizes.
func TestListSummaryThenList(t *testing.T) {
	h := newHarness(genMessages(5))
	for _, tc := range []struct {
		name   string
		delete bool
		want   bool
	}{
		{"first run", false, true},
		{"after a complete pass", false, false},
		{"deleting at the source", true, true},
	} {
		h.opts.DeleteSource = tc.delete
		st, src := h.runSummarized(t)
		if st.Error != "" {
			t.Fatalf("%s: %s", tc.name, st.Error)
		}
		if !slices.Equal(src.thenList, []bool{tc.want}) {
			t.Errorf("%s: ListSummary asked with thenList %v, want [%v]", tc.name, src.thenList, tc.want)
		}
	}
}

// TestUnchangedListingIsNotLookedUp: a re-run over a listing that has not
// changed since the last complete pass, every entry settled, reads no
// page against the ledger and reports what a page-by-page run would; any
// change (a new message, one gone, a failure, deletion at the source, a
// retry asked for) goes page by page again.
func TestUnchangedListingIsNotLookedUp(t *testing.T) {
	msgs := genMessages(23)
	for _, i := range []int{4, 17} { // two messages of 23 are bigger than the limit
		msgs[i].body = append(msgs[i].body, strings.Repeat("long line\r\n", 100)...)
	}
	h := newHarness(msgs)
	h.opts.MaxMessageBytes = 500
	first := h.runSummarizing(t)
	if first.Error != "" || first.Copied+first.Skipped != 23 || first.Skipped == 0 {
		t.Fatalf("first run: copied %d, skipped %d, error %q", first.Copied, first.Skipped, first.Error)
	}
	rec := h.ledger.folders[alice][SourceSide][maildropRecord]
	if rec.Messages != 23 || rec.HighestModSeq == 0 || rec.SyncedAt.IsZero() {
		t.Fatalf("maildrop record after a complete pass: %+v", rec)
	}

	lookups := h.ledger.lookups
	st := h.runSummarizing(t)
	if st.Error != "" || st.Copied != 0 || st.Listed != 23 || st.AlreadyDone != first.Copied || st.Skipped != 0 || st.SkippedBefore != first.Skipped {
		t.Errorf("unchanged re-run: listed %d, copied %d, already done %d, skipped %d, before %d, error %q; want 23, 0, %d, 0, %d",
			st.Listed, st.Copied, st.AlreadyDone, st.Skipped, st.SkippedBefore, st.Error, first.Copied, first.Skipped)
	}
	if h.ledger.lookups != lookups {
		t.Errorf("unchanged re-run: %d Lookups, want none", h.ledger.lookups-lookups)
	}

	// The same run without a summary reports the same.
	if plain := h.run(t); plain.Listed != st.Listed || plain.AlreadyDone != st.AlreadyDone || plain.SkippedBefore != st.SkippedBefore {
		t.Errorf("page by page: listed %d, already done %d, skipped before %d; without pages %d, %d, %d",
			plain.Listed, plain.AlreadyDone, plain.SkippedBefore, st.Listed, st.AlreadyDone, st.SkippedBefore)
	}

	// The limit grew past the skipped messages: they are retried.
	h.opts.MaxMessageBytes = 100000
	lookups = h.ledger.lookups
	if st := h.runSummarizing(t); st.Copied != first.Skipped || h.ledger.lookups == lookups {
		t.Errorf("after the limit grew: copied %d (want %d), %d Lookups", st.Copied, first.Skipped, h.ledger.lookups-lookups)
	}

	// A new message.
	h.src.msgs = append(h.src.msgs, genMessages(24)[23])
	if st := h.runSummarizing(t); st.Copied != 1 || st.AlreadyDone != 23 {
		t.Errorf("one new message: copied %d, already done %d", st.Copied, st.AlreadyDone)
	}
	// One gone from the source: swept.
	h.src.msgs = h.src.msgs[1:]
	if st := h.runSummarizing(t); st.Copied != 0 || st.SourceGone != 1 || st.Listed != 23 {
		t.Errorf("one message gone: copied %d, gone %d, listed %d", st.Copied, st.SourceGone, st.Listed)
	}
	lookups = h.ledger.lookups
	if st := h.runSummarizing(t); st.Copied != 0 || st.AlreadyDone != 23 || h.ledger.lookups != lookups {
		t.Errorf("unchanged again: copied %d, already done %d, %d Lookups", st.Copied, st.AlreadyDone, h.ledger.lookups-lookups)
	}

	// Deletion at the source needs the pages.
	h.opts.DeleteSource = true
	if st := h.runSummarizing(t); st.Deleted != 23 || h.ledger.lookups == lookups {
		t.Errorf("delete_source: deleted %d, %d Lookups", st.Deleted, h.ledger.lookups-lookups)
	}
}

// TestUnchangedListingWithFailures: a failed entry sends the run through
// the pages, where it is tried again.
func TestUnchangedListingWithFailures(t *testing.T) {
	h := newHarness(genMessages(12))
	h.src.failFetch = 3
	h.runner.Attempts = 1
	if st := h.runSummarizing(t); st.Failed == 0 && st.Error == "" {
		t.Fatalf("first run: failed %d, error %q; want a failure", st.Failed, st.Error)
	}
	h.src.failFetch = 0
	h.src.fetches = 0
	if st := h.runSummarizing(t); st.Copied == 0 || st.Error != "" {
		t.Errorf("second run: copied %d, error %q; want the failed message copied", st.Copied, st.Error)
	}
}
