package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
)

// DeleteMailbox deletes an empty mailbox (MailboxDeleter); one that holds
// messages stays.
func (s *memDestSession) DeleteMailbox(_ context.Context, name string) (bool, error) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	mb := s.d.boxes[name]
	if mb == nil {
		return true, nil
	}
	if len(mb.msgs) > 0 {
		return false, nil
	}
	delete(s.d.boxes, name)
	s.d.deleted++
	return true, nil
}

// newFolderHarness is a harness over src whose folders map to destination
// folders of the same names, each folder the source has at the time.
func newFolderHarness(src *folderSource) *harness {
	h := newHarness(nil)
	h.opts.MapFolders = func(context.Context, Source, Destination, bool) (map[string]string, error) {
		src.mu.Lock()
		defer src.mu.Unlock()
		plan := map[string]string{}
		for _, n := range src.names() {
			plan[n] = n
		}
		return plan, nil
	}
	h.opts.KeyFolder = src.place
	h.opts.FolderKeys = func(mailbox string) string { return mailbox + "\x00" }
	h.opts.Mirror = true
	return h
}

func recreateBody(name string) []byte {
	return []byte(fmt.Sprintf("From: a@example.org\r\nSubject: %s\r\nMessage-ID: <%s@example.org>\r\n\r\n%s\r\n", name, name, name))
}

// destBodies returns what every destination mailbox holds, sorted.
func destBodies(d *memDest) map[string][]string {
	out := map[string][]string{}
	for name := range d.boxes {
		out[name] = d.bodies(name)
	}
	return out
}

// bodiesOf returns the bodies named, sorted, as memDest.bodies does.
func bodiesOf(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, string(recreateBody(n)))
	}
	slices.Sort(out)
	return out
}

// copiedThenDeleted returns a mirror harness whose first pass copied
// INBOX (inbox-1) and F (f-1, f-2), with F then deleted at the source.
func copiedThenDeleted(t *testing.T) (*harness, *folderSource) {
	t.Helper()
	h, src := folderCopied(t)
	delete(src.folders, "F")
	return h, src
}

// folderCopied returns a mirror harness whose first pass copied INBOX (inbox-1)
// and F (f-1, f-2).
func folderCopied(t *testing.T) (*harness, *folderSource) {
	t.Helper()
	src := &folderSource{folders: map[string][]folderMsg{
		"INBOX": {{uid: 1, body: recreateBody("inbox-1")}},
		"F":     {{uid: 1, body: recreateBody("f-1")}, {uid: 2, body: recreateBody("f-2")}},
	}}
	h := newFolderHarness(src)
	if st := h.runWith(t, src); st.Copied != 3 {
		t.Fatalf("first pass: copied %d, want 3", st.Copied)
	}
	return h, src
}

// checkFolderDeleted checks st, the pass after F was deleted at the
// source: F's two copies removed, F deleted on the destination.
func checkFolderDeleted(t *testing.T, h *harness, st *Stats) {
	t.Helper()
	if st.Removed != 2 || !slices.Equal(st.FoldersDeleted, []string{"F"}) || len(st.MirrorUnsure) != 0 || st.Copied != 0 {
		t.Fatalf("pass after F was deleted: removed %d, folders deleted %q, cannot tell %v, copied %d; want 2, [F], none, 0",
			st.Removed, st.FoldersDeleted, st.MirrorUnsure, st.Copied)
	}
	if _, ok := h.dst.boxes["F"]; ok {
		t.Fatal("the destination still has F")
	}
}

// folderDeleted returns a mirror harness whose second pass, F being
// deleted at the source, removed F's copies and deleted F on the
// destination (copiedThenDeleted).
func folderDeleted(t *testing.T) (*harness, *folderSource) {
	t.Helper()
	h, src := copiedThenDeleted(t)
	checkFolderDeleted(t, h, h.runWith(t, src))
	return h, src
}

// sourceRecord returns the ledger's record of source folder name.
func sourceRecord(t *testing.T, l *memLedger, name string) Folder {
	t.Helper()
	recs, err := l.Folders(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range recs {
		if f.Side == SourceSide && f.Name == name {
			return f
		}
	}
	t.Fatalf("no record of source folder %q", name)
	return Folder{}
}

// TestMirrorFolderRecreated: a mirror pass removes the copies of folder F,
// deleted at the source, and deletes F on the destination; the user then
// creates F again (a new UIDVALIDITY) with new mail, and a message of the
// bytes of one whose copy was removed. The next pass copies both into F on
// the destination, has nothing it cannot tell (exit 0) and removes
// nothing, whether the old F's removed entries are still in the ledger
// (within ledger_retention) or were pruned while its record stayed; the
// pass after has nothing to do.
func TestMirrorFolderRecreated(t *testing.T) {
	for _, pruned := range []bool{false, true} {
		t.Run(fmt.Sprint("removed entries pruned ", pruned), func(t *testing.T) {
			h, src := folderDeleted(t)
			if pruned {
				var keys []string
				for k, e := range h.ledger.all(alice) {
					if e.State == StateRemoved {
						keys = append(keys, k)
					}
				}
				if err := h.ledger.Commit(context.Background(), alice, Changes{Delete: keys}); err != nil {
					t.Fatal(err)
				}
			}
			if rec := sourceRecord(t, h.ledger, "F"); rec.Op != FolderDeleted {
				t.Fatalf("F's source record after its deletion: %+v, want op %q", rec, FolderDeleted)
			}

			src.uidValidity = map[string]uint32{"F": 2}
			src.folders["F"] = []folderMsg{{uid: 1, body: recreateBody("f-new")}, {uid: 2, body: recreateBody("f-1")}}
			st := h.runWith(t, src)
			if st.Copied != 2 || st.Removed != 0 || st.Moved != 0 || st.MirrorHeld != 0 || len(st.MirrorUnsure) != 0 || len(st.FoldersDeleted) != 0 {
				t.Fatalf("pass after F was created again: copied %d, removed %d, moved %d, held %d, cannot tell %v, folders deleted %q; want 2 copied, nothing else",
					st.Copied, st.Removed, st.Moved, st.MirrorHeld, st.MirrorUnsure, st.FoldersDeleted)
			}
			want := map[string][]string{"INBOX": bodiesOf("inbox-1"), "F": bodiesOf("f-1", "f-new")}
			if got := destBodies(h.dst); !maps.EqualFunc(got, want, slices.Equal) {
				t.Fatalf("destination after F was created again: %q, want %q", got, want)
			}
			if rec := sourceRecord(t, h.ledger, "F"); rec.Op != "" || rec.UIDValidity != 2 {
				t.Errorf("F's source record after its pass: %+v, want UIDVALIDITY 2 and no op", rec)
			}
			st = h.runWith(t, src)
			if st.Copied != 0 || st.Removed != 0 || st.MirrorHeld != 0 || len(st.MirrorUnsure) != 0 || st.AlreadyDone != 3 {
				t.Fatalf("the pass after: copied %d, removed %d, held %d, cannot tell %v, already done %d; want 0, 0, 0, none, 3",
					st.Copied, st.Removed, st.MirrorHeld, st.MirrorUnsure, st.AlreadyDone)
			}
		})
	}
}

// TestMirrorFolderRecreatedCutShort: the first pass over F created again
// (UIDVALIDITY 2) is cut short after F's second message was appended,
// before its entry was committed (the ledger failed). Run again with F as
// it is, the pass finishes F as its own: nothing it cannot tell, nothing
// copied twice. Created yet again before that (UIDVALIDITY 3), F is a
// folder whose UIDVALIDITY changed while the ledger names copies of it
// (those of UIDVALIDITY 2): "cannot tell", nothing removed, its messages
// matched by content, nothing copied twice.
func TestMirrorFolderRecreatedCutShort(t *testing.T) {
	for _, again := range []bool{false, true} {
		t.Run(fmt.Sprint("created again ", again), func(t *testing.T) {
			h, src := folderDeleted(t)
			src.uidValidity = map[string]uint32{"F": 2}
			src.folders["F"] = []folderMsg{{uid: 1, body: recreateBody("f-new")}, {uid: 2, body: recreateBody("f-1")}}
			h.opts.BatchMessages = 1
			second := src.key("F", 2)
			h.ledger.beforeCommit = func(c Changes) error {
				if slices.ContainsFunc(c.Put, func(e Entry) bool { return e.Key == second && e.State == StateDone }) {
					return errors.New("disk full")
				}
				return nil
			}
			st, _ := h.runner.RunAccount(context.Background(), Job{Options: h.opts,
				OpenSource:      func(context.Context) (Source, error) { return src, nil },
				OpenDestination: h.dst.open})
			h.ledger.beforeCommit = nil
			if st.Error == "" {
				t.Fatal("the pass whose ledger failed did not fail")
			}
			if rec := sourceRecord(t, h.ledger, "F"); rec.Op != FolderDeleted || rec.UIDValidity != 1 {
				t.Fatalf("F's source record after the pass cut short: %+v, want the deleted folder's", rec)
			}
			wantUnsure, wantF := 0, bodiesOf("f-1", "f-new")
			if again {
				src.uidValidity["F"] = 3
				src.folders["F"] = []folderMsg{{uid: 1, body: recreateBody("f-new")}, {uid: 2, body: recreateBody("f-3")}}
				wantUnsure, wantF = 1, bodiesOf("f-1", "f-3", "f-new")
			}
			st = h.runWith(t, src)
			if st.Removed != 0 || len(st.MirrorUnsure) != wantUnsure || wantUnsure == 1 && st.MirrorUnsure[0].Folder != "F" {
				t.Fatalf("the next pass: removed %d, cannot tell %v; want 0, %d (F)", st.Removed, st.MirrorUnsure, wantUnsure)
			}
			want := map[string][]string{"INBOX": bodiesOf("inbox-1"), "F": wantF}
			if got := destBodies(h.dst); !maps.EqualFunc(got, want, slices.Equal) {
				t.Fatalf("destination after the next pass: %q, want %q (each once)", got, want)
			}
		})
	}
}

// TestMirrorFolderRecreatedCrashes: F is created again (new UIDVALIDITY,
// new mail) after a crash between the deletion of its destination folder
// and the record of it, or while the pass that deletes it runs (after it
// listed the source's folders, so that it copies nothing of it). Nothing
// is lost or copied twice. After the crash the record lacks
// FolderDeleted, so the next pass cannot tell, as for any folder whose
// UIDVALIDITY changed, and removes nothing; the pass after is clean.
func TestMirrorFolderRecreatedCrashes(t *testing.T) {
	recreate := func(src *folderSource) {
		src.mu.Lock()
		defer src.mu.Unlock()
		src.uidValidity = map[string]uint32{"F": 2}
		src.folders["F"] = []folderMsg{{uid: 1, body: recreateBody("f-new")}}
	}
	for _, c := range []struct {
		name       string
		crash      bool
		wantUnsure int
	}{
		{"crash after the destination folder's deletion", true, 1},
		{"created again during the pass that deletes it", false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, src := copiedThenDeleted(t)
			if c.crash {
				h.opts.Crashpoint = func(p string) {
					if p == "folder deleted" {
						panic(crash{p})
					}
				}
				func() {
					defer func() {
						if r := recover(); r != (crash{"folder deleted"}) {
							t.Fatalf("the pass did not stop at the folder deleted crashpoint: recovered %v", r)
						}
					}()
					h.runWith(t, src)
				}()
				h.opts.Crashpoint = nil
				if _, ok := h.dst.boxes["F"]; ok {
					t.Fatal("the destination still has F after the crash")
				}
				if rec := sourceRecord(t, h.ledger, "F"); rec.Op != "" {
					t.Fatalf("F's record after the crash: %+v, want no op", rec)
				}
				recreate(src)
			} else {
				src.afterNames = func() {
					src.afterNames = nil
					recreate(src)
				}
				checkFolderDeleted(t, h, h.runWith(t, src))
			}
			st := h.runWith(t, src)
			if st.Copied != 1 || st.Removed != 0 || len(st.MirrorUnsure) != c.wantUnsure {
				t.Fatalf("pass after F was created again: copied %d, removed %d, cannot tell %v; want 1, 0, %d",
					st.Copied, st.Removed, st.MirrorUnsure, c.wantUnsure)
			}
			want := map[string][]string{"INBOX": bodiesOf("inbox-1"), "F": bodiesOf("f-new")}
			if got := destBodies(h.dst); !maps.EqualFunc(got, want, slices.Equal) {
				t.Fatalf("destination after F was created again: %q, want %q", got, want)
			}
			st = h.runWith(t, src)
			if st.Copied != 0 || st.Removed != 0 || len(st.MirrorUnsure) != 0 || st.AlreadyDone != 2 {
				t.Fatalf("the pass after: copied %d, removed %d, cannot tell %v, already done %d; want 0, 0, none, 2",
					st.Copied, st.Removed, st.MirrorUnsure, st.AlreadyDone)
			}
		})
	}
}

// TestMirrorRenumberedFolderCannotTell: F's UIDVALIDITY changes at the
// source while its copies are on the destination (no mirror pass deleted
// it): the pass cannot tell what was deleted in F, removes nothing (not
// f-2's copy, gone from F), matches f-1 by content and copies only f-new.
func TestMirrorRenumberedFolderCannotTell(t *testing.T) {
	h, src := folderCopied(t)
	src.uidValidity = map[string]uint32{"F": 2}
	src.folders["F"] = []folderMsg{{uid: 1, body: recreateBody("f-1")}, {uid: 2, body: recreateBody("f-new")}}
	st := h.runWith(t, src)
	if st.Copied != 1 || st.Removed != 0 || len(st.MirrorUnsure) != 1 || st.MirrorUnsure[0].Folder != "F" || len(st.FoldersDeleted) != 0 {
		t.Fatalf("pass after F was renumbered: copied %d, removed %d, cannot tell %v, folders deleted %q; want 1, 0, F, none",
			st.Copied, st.Removed, st.MirrorUnsure, st.FoldersDeleted)
	}
	want := map[string][]string{"INBOX": bodiesOf("inbox-1"), "F": bodiesOf("f-1", "f-2", "f-new")}
	if got := destBodies(h.dst); !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("destination after F was renumbered: %q, want %q", got, want)
	}
}
