package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// imapLikeSource is a memSource whose messages have folders and flags, and
// whose keys carry a UIDVALIDITY that tests can change.
type imapLikeSource struct {
	memSource
	folder      map[string]string   // key → folder
	flags       map[string][]string // key → flags
	uidValidity map[string]int      // folder → generation
}

func (s *imapLikeSource) List(ctx context.Context, page func([]SourceMessage) error) error {
	return s.memSource.List(ctx, func(msgs []SourceMessage) error {
		for i := range msgs {
			k := msgs[i].Key
			msgs[i].Mailbox = s.folder[k]
			msgs[i].Flags = append([]string{}, s.flags[k]...)
			msgs[i].Key = fmt.Sprintf("%s\x00%d\x00%s", s.folder[k], s.uidValidity[s.folder[k]], k)
		}
		return page(msgs)
	})
}

func (s *imapLikeSource) Fetch(ctx context.Context, msg SourceMessage, w io.Writer) (int64, error) {
	parts := strings.Split(msg.Key, "\x00")
	msg.Key = parts[2]
	return s.memSource.Fetch(ctx, msg, w)
}

func (d *memDestSession) PermanentFlags(_ context.Context, mailbox string) ([]string, error) {
	return []string{`\Seen`, `\Flagged`, `\Answered`, `\Draft`, `\Deleted`, "$Forwarded"}, nil
}

func (d *memDestSession) StoreFlags(_ context.Context, mailbox string, uidValidity uint32, flags map[uint32][]string) error {
	d.d.mu.Lock()
	defer d.d.mu.Unlock()
	if d.d.refuseFlags {
		return Classify(ClassPerMessage, errors.New("NO keyword too long"))
	}
	mb := d.d.boxes[mailbox]
	if mb.uidValidity != uidValidity {
		return ErrUIDValidityChanged
	}
	for i := range mb.msgs {
		if f, ok := flags[mb.msgs[i].uid]; ok {
			mb.msgs[i].flags = f
		}
	}
	return nil
}

func newIMAPHarness(t *testing.T) (*harness, *imapLikeSource) {
	t.Helper()
	msgs := genMessages(12)
	src := &imapLikeSource{memSource: memSource{msgs: msgs}, folder: map[string]string{},
		flags: map[string][]string{}, uidValidity: map[string]int{"INBOX": 1, "Sent": 1, "Junk": 1}}
	for i, m := range msgs {
		src.folder[m.key] = []string{"INBOX", "Sent", "Junk"}[i%3]
		src.flags[m.key] = []string{`\Seen`, "$Forwarded", "bad(keyword", "$NotPermanent"}[:1+i%4]
	}
	h := newHarness(nil)
	h.opts.MapFolders = func(_ context.Context, _ Source, _ Destination, create bool) (map[string]string, error) {
		return map[string]string{"INBOX": "INBOX", "Sent": "Sent Items"}, nil // Junk excluded
	}
	h.opts.SyncFlags = true
	h.opts.KeyFolder = func(key string) (KeyPlace, bool) {
		p := strings.Split(key, "\x00")
		if len(p) != 3 {
			return KeyPlace{}, false
		}
		uv, _ := strconv.Atoi(p[1])
		uid, _ := strconv.Atoi(strings.TrimPrefix(p[2], "uidl-"))
		return KeyPlace{Mailbox: p[0], Folder: p[0] + "\x00", Generation: p[0] + "\x00" + p[1] + "\x00",
			UIDValidity: uint32(uv), UID: uint32(uid) + 1}, true
	}
	return h, src
}

func (h *harness) runWith(t *testing.T, src Source) *Stats {
	t.Helper()
	st, _ := h.runner.RunAccount(context.Background(), Job{Options: h.opts,
		OpenSource:      func(context.Context) (Source, error) { return src, nil },
		OpenDestination: h.dst.open})
	if st.Error != "" {
		t.Fatalf("run failed: %s", st.Error)
	}
	return st
}

func TestFoldersFlagsAndResync(t *testing.T) {
	h, src := newIMAPHarness(t)
	st := h.runWith(t, src)
	if st.Listed != 8 || st.Copied != 8 {
		t.Fatalf("listed %d, copied %d; want 8 and 8 (Junk excluded)", st.Listed, st.Copied)
	}
	if n := len(h.dst.bodies("INBOX")); n != 4 {
		t.Errorf("INBOX holds %d, want 4", n)
	}
	if n := len(h.dst.bodies("Sent Items")); n != 4 {
		t.Errorf("Sent Items holds %d, want 4", n)
	}
	// Invalid keywords and keywords outside PERMANENTFLAGS are dropped, counted.
	if st.FlagsDropped == 0 {
		t.Error("no flags reported dropped")
	}
	for _, m := range h.dst.boxes["INBOX"].msgs {
		for _, f := range m.flags {
			if f == "bad(keyword" || f == "$NotPermanent" {
				t.Errorf("flag %q reached the destination", f)
			}
		}
	}

	// The user reads and flags mail on the source: the next run updates
	// flags and copies nothing.
	for k := range src.flags {
		src.flags[k] = []string{`\Seen`, `\Flagged`}
	}
	st = h.runWith(t, src)
	if st.Copied != 0 || st.FlagsUpdated != 8 {
		t.Fatalf("flag resync: copied %d, flags updated %d; want 0 and 8", st.Copied, st.FlagsUpdated)
	}
	for _, mb := range []string{"INBOX", "Sent Items"} {
		for _, m := range h.dst.boxes[mb].msgs {
			if strings.Join(m.flags, " ") != `\Seen \Flagged` {
				t.Errorf("%s UID %d flags %v, want [\\Seen \\Flagged]", mb, m.uid, m.flags)
			}
		}
	}
	st = h.runWith(t, src)
	if st.FlagsUpdated != 0 {
		t.Errorf("third run updated %d flags, want 0", st.FlagsUpdated)
	}
}

func TestUIDValidityChangeDoesNotDuplicate(t *testing.T) {
	h, src := newIMAPHarness(t)
	h.runWith(t, src)
	src.uidValidity["Sent"] = 2 // the server renumbered the folder
	st := h.runWith(t, src)
	if st.Copied != 0 || st.Rematched != 4 {
		t.Fatalf("after a UIDVALIDITY change: copied %d, rematched %d; want 0 and 4", st.Copied, st.Rematched)
	}
	if n := len(h.dst.bodies("Sent Items")); n != 4 {
		t.Fatalf("Sent Items holds %d after the UIDVALIDITY change, want 4", n)
	}
	st = h.runWith(t, src)
	if st.Copied != 0 || st.Rematched != 0 || st.AlreadyDone != 8 {
		t.Errorf("next run: copied %d, rematched %d, already done %d; want 0, 0, 8", st.Copied, st.Rematched, st.AlreadyDone)
	}
}

// TestPruneSourceFolderRecords: a source folder record goes once its
// folder is no longer copied (deleted at the source) and no entry is in
// it; one whose folder still has entries stays until they are gone; a dry
// run drops nothing; nothing is copied twice.
func TestPruneSourceFolderRecords(t *testing.T) {
	h, src := newIMAPHarness(t)
	plan := map[string]string{"INBOX": "INBOX", "Sent": "Sent Items", "Empty": "Empty"}
	h.opts.MapFolders = func(context.Context, Source, Destination, bool) (map[string]string, error) {
		return maps.Clone(plan), nil
	}
	h.opts.FolderKeys = func(mailbox string) string { return mailbox + "\x00" }
	records := func() []string {
		t.Helper()
		fs, err := h.ledger.Folders(context.Background(), alice)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range fs {
			if f.Side == SourceSide {
				out = append(out, f.Name)
			}
		}
		slices.Sort(out)
		return out
	}
	if st := h.runWith(t, src); st.Copied != 8 {
		t.Fatalf("first run: copied %d, want 8", st.Copied)
	}
	if got, want := records(), []string{"Empty", "INBOX", "Sent"}; !slices.Equal(got, want) {
		t.Fatalf("records after the first run: %q, want %q", got, want)
	}
	// Empty and Sent are deleted at the source, Sent with its messages.
	delete(plan, "Empty")
	delete(plan, "Sent")
	src.msgs = slices.DeleteFunc(src.msgs, func(m memMsg) bool { return src.folder[m.key] == "Sent" })

	h.runner.DryRun = true
	st := h.runWith(t, src)
	h.runner.DryRun = false
	if st.Copied != 0 {
		t.Fatalf("dry run: copied %d, want 0", st.Copied)
	}
	if got, want := records(), []string{"Empty", "INBOX", "Sent"}; !slices.Equal(got, want) {
		t.Errorf("records after a dry run: %q, want %q (a dry run drops nothing)", got, want)
	}
	if st := h.runWith(t, src); st.Copied != 0 {
		t.Fatalf("run after the deletions: copied %d, want 0", st.Copied)
	}
	if got, want := records(), []string{"INBOX", "Sent"}; !slices.Equal(got, want) {
		t.Errorf("records after the deletions: %q, want %q (Sent's entries keep its record)", got, want)
	}
	// Sent's entries leave the ledger (ledger_retention after gone): the
	// next run drops its record too.
	var sent []string
	for k := range h.ledger.entries[alice] {
		if strings.HasPrefix(k, "Sent\x00") {
			sent = append(sent, k)
		}
	}
	if len(sent) != 4 {
		t.Fatalf("%d entries in Sent, want 4", len(sent))
	}
	if err := h.ledger.Commit(context.Background(), alice, Changes{Delete: sent}); err != nil {
		t.Fatal(err)
	}
	if st := h.runWith(t, src); st.Copied != 0 {
		t.Fatalf("run after Sent's entries left: copied %d, want 0", st.Copied)
	}
	if got, want := records(), []string{"INBOX"}; !slices.Equal(got, want) {
		t.Errorf("records after Sent's entries left: %q, want %q", got, want)
	}
	if n := len(h.dst.bodies("INBOX")); n != 4 {
		t.Errorf("INBOX holds %d, want 4 (nothing twice)", n)
	}
}
