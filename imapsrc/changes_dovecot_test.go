package imapsrc

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// TestListChangesDovecot: a folder listed by its changes since its marks
// hands over the messages whose flags changed and those that came, and
// nothing else, in one round trip after the summaries; more changes than
// changesHeld still come through whole, their attributes fetched again in
// batches; a folder with a message gone since, or whose UIDVALIDITY is
// not the marks', is listed whole and named in no Changes; a folder not
// named to ListChanges is listed whole.
func TestListChangesDovecot(t *testing.T) {
	srv := dovecot.Start(t, dovecot.Options{Users: map[string]string{"alice": "s3cret"}})
	const n = 1200
	for _, box := range []string{"Big", "Other"} {
		if err := srv.SeedMaildirBulk("alice", box, n, func(i int) []byte {
			return fmt.Appendf(nil, "Subject: %s %d\r\n\r\nbody\r\n", box, i)
		}); err != nil {
			t.Fatal(err)
		}
	}
	opts := Options{Addr: srv.IMAPSAddr(), TLS: TLSImplicit, TLSConfig: srv.TLSConfig(), User: "alice", Password: secret.New("s3cret")}
	marks := func() map[string]pipeline.FolderSummary {
		t.Helper()
		s := openSource(t, opts)
		sums, ok, err := s.FolderSummaries(t.Context())
		if err != nil || !ok {
			t.Fatalf("FolderSummaries = %v, %v", ok, err)
		}
		out := map[string]pipeline.FolderSummary{}
		for _, m := range sums {
			out[m.Mailbox] = m
		}
		// A complete pass lists everything after its marks. (Without it,
		// Dovecot answers the first CHANGEDSINCE with every message: a
		// mailbox's mod-sequences start with the first FETCH, it seems.)
		if err := s.List(t.Context(), func([]pipeline.SourceMessage) error { return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// listing lists with Big (and Other, with other) by changes since last.
	listing := func(last map[string]pipeline.FolderSummary, boxes ...string) (map[string][]uint32, []pipeline.FolderChanges) {
		t.Helper()
		s := openSource(t, opts)
		now, _, err := s.FolderSummaries(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var since []pipeline.FolderSince
		for _, m := range now {
			if slices.Contains(boxes, m.Mailbox) {
				since = append(since, pipeline.FolderSince{Last: last[m.Mailbox], Now: m})
			}
		}
		s.ListChanges(since)
		got := map[string][]uint32{}
		err = s.List(t.Context(), func(page []pipeline.SourceMessage) error {
			if len(page) > pipeline.ListPage {
				t.Errorf("a page of %d messages, want at most %d", len(page), pipeline.ListPage)
			}
			for _, m := range page {
				_, _, uid, _ := ParseKey(m.Key)
				got[m.Mailbox] = append(got[m.Mailbox], uid)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, uids := range got {
			slices.Sort(uids)
		}
		return got, s.Changes()
	}
	last := marks()
	for _, box := range []string{"Big", "Other"} {
		if m := last[box]; m.Messages != n || m.UIDNext != n+1 {
			t.Fatalf("%s: marks %+v, want %d messages up to UID %d", box, m, n, n)
		}
	}

	// Two flag changes and a new message in Big.
	if _, err := srv.Doveadm("flags", "add", "-u", "alice", `\Flagged`, "mailbox", "Big", "uid", "7,500"); err != nil {
		t.Fatal(err)
	}
	if err := srv.SeedMaildir("alice", "Big", []byte("Subject: new\r\n\r\nnew\r\n"), "", time.Date(2022, 1, 2, 3, 4, 5, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	got, changes := listing(last, "Big")
	if want := []uint32{7, 500, n + 1}; !slices.Equal(got["Big"], want) {
		t.Errorf("Big by its changes: UIDs %v, want %v", got["Big"], want)
	}
	if len(got["Other"]) != n {
		t.Errorf("Other (not named): %d messages listed, want all %d", len(got["Other"]), n)
	}
	want := []pipeline.FolderChanges{{Mailbox: "Big", UIDValidity: last["Big"].UIDValidity, Messages: n + 1, Unlisted: n - 2, MaxUID: n + 1}}
	if !slices.Equal(changes, want) {
		t.Errorf("Changes = %+v, want %+v", changes, want)
	}

	// More flag changes than changesHeld.
	if _, err := srv.Doveadm("flags", "add", "-u", "alice", `\Seen`, "mailbox", "Other", "all"); err != nil {
		t.Fatal(err)
	}
	got, changes = listing(last, "Other")
	if len(got["Other"]) != n || got["Other"][0] != 1 || got["Other"][n-1] != n {
		t.Errorf("Other after %d flag changes: %d UIDs listed (%v…), want 1 to %d", n, len(got["Other"]), got["Other"][:min(3, len(got["Other"]))], n)
	}
	if len(changes) != 1 || changes[0].Unlisted != 0 || changes[0].Messages != n {
		t.Errorf("Changes = %+v, want Other with all %d messages listed", changes, n)
	}

	// An expunge: Big is listed whole.
	if _, err := srv.Doveadm("expunge", "-u", "alice", "mailbox", "Big", "uid", "3"); err != nil {
		t.Fatal(err)
	}
	got, changes = listing(last, "Big")
	if len(got["Big"]) != n || len(changes) != 0 {
		t.Errorf("Big after an expunge: %d messages listed, Changes %+v; want all %d listed, none by changes", len(got["Big"]), changes, n)
	}

	// Marks of another UIDVALIDITY: listed whole.
	other := last
	m := other["Other"]
	m.UIDValidity++
	other["Other"] = m
	got, changes = listing(other, "Other")
	if len(got["Other"]) != n || len(changes) != 0 {
		t.Errorf("Other under another UIDVALIDITY: %d listed, Changes %+v; want all %d listed, none by changes", len(got["Other"]), changes, n)
	}
}
