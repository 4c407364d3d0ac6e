package checkpoint

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

func TestForgetRecordsResentAtomically(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openTest(t, path, nil)
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	if err := l.Put(ctx, []pipeline.Entry{
		{Account: "alice", Key: "a", State: pipeline.StatePending, Digest: "d1", Size: 10, DestMailbox: "INBOX"},
		{Account: "alice", Key: "b", State: pipeline.StatePending, Digest: "d2", Size: 20, DestMailbox: "INBOX"},
		{Account: "alice", Key: "c", State: pipeline.StateDone, Digest: "d3", Size: 30, DestMailbox: "INBOX", DestUIDValidity: 5, DestUID: 9},
	}); err != nil {
		t.Fatal(err)
	}
	resent := []pipeline.Resent{
		{Account: "alice", Key: "a", Mailbox: "INBOX", UIDValidity: 5, FromUID: 12, Digest: "d1", Size: 10, Recorded: at},
		{Account: "alice", Key: "b", Mailbox: "INBOX", UIDValidity: 5, FromUID: 12, Digest: "d2", Size: 20, Recorded: at},
	}
	if err := l.Forget(ctx, "alice", []string{"a", "b"}, resent); err != nil {
		t.Fatal(err)
	}
	if got := mustEntries(t, l, "alice"); len(got) != 1 || got["c"].State != pipeline.StateDone {
		t.Errorf("entries after Forget = %v, want only c", got)
	}
	got, err := l.Resent(ctx, "alice")
	if err != nil || len(got) != 2 {
		t.Fatalf("Resent = %v, %v; want 2 records", got, err)
	}
	for i, r := range got {
		want := resent[i]
		want.ID = r.ID
		if r.ID == 0 || r != want {
			t.Errorf("record %d = %+v, want %+v", i, r, want)
		}
	}
	if other, _ := l.Resent(ctx, "bob"); len(other) != 0 {
		t.Errorf("bob has %d records, want 0", len(other))
	}

	// A record for another account is refused, and nothing of the call is kept.
	err = l.Forget(ctx, "alice", []string{"c"}, []pipeline.Resent{{Account: "bob", Key: "x"}})
	if !errors.Is(err, ErrInvalidEntry) {
		t.Errorf("Forget with bob's record = %v, want ErrInvalidEntry", err)
	}
	if got := mustEntries(t, l, "alice"); len(got) != 1 {
		t.Errorf("a refused Forget deleted entries: %v", got)
	}

	if err := l.DropResent(ctx, "alice", []int64{got[0].ID}); err != nil {
		t.Fatal(err)
	}
	if left, _ := l.Resent(ctx, "alice"); len(left) != 1 || left[0].Key != "b" {
		t.Errorf("after dropping a: %v, want only b", left)
	}
}

func TestClaimsAcrossAccounts(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, "", nil)
	if err := l.Put(ctx, []pipeline.Entry{
		{Account: "alice", Key: "1", State: pipeline.StateDone, Digest: "d", DestMailbox: "INBOX", DestUIDValidity: 5, DestUID: 3},
		{Account: "bob", Key: "1", State: pipeline.StateDone, Digest: "d", DestMailbox: "INBOX", DestUIDValidity: 5, DestUID: 8},
		{Account: "bob", Key: "2", State: pipeline.StateDone, Digest: "d", DestMailbox: "Other", DestUIDValidity: 5, DestUID: 9},
		{Account: "bob", Key: "3", State: pipeline.StateDone, Digest: "d", DestMailbox: "INBOX", DestUIDValidity: 6, DestUID: 10},
		{Account: "bob", Key: "5", State: pipeline.StateDone, Digest: "e", DestMailbox: "INBOX", DestUIDValidity: 5, DestUID: 12},
		{Account: "bob", Key: "6", State: pipeline.StateSkipped, Digest: "d", DestMailbox: "INBOX", DestUIDValidity: 5, DestUIDNext: 2},
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pending []pipeline.Entry
		want    pipeline.Claims
	}{
		{name: "done entries of every account, this mailbox and UIDVALIDITY",
			want: pipeline.Claims{UIDs: map[uint32]bool{3: true, 8: true}}},
		{name: "a pending entry claims from its UIDNEXT",
			pending: []pipeline.Entry{
				{Account: "carol", Key: "p1", State: pipeline.StatePending, Digest: "d", DestMailbox: "INBOX", DestUIDValidity: 5, DestUIDNext: 20},
				{Account: "carol", Key: "p2", State: pipeline.StatePending, Digest: "d", DestMailbox: "INBOX", DestUIDValidity: 5, DestUIDNext: 15},
				{Account: "carol", Key: "p3", State: pipeline.StatePending, Digest: "e", DestMailbox: "INBOX", DestUIDValidity: 5, DestUIDNext: 4},
			},
			want: pipeline.Claims{UIDs: map[uint32]bool{3: true, 8: true}, PendingFrom: 15}},
		{name: "a pending entry under another UIDVALIDITY claims everything",
			pending: []pipeline.Entry{
				{Account: "carol", Key: "p4", State: pipeline.StatePending, Digest: "d", DestMailbox: "INBOX", DestUIDValidity: 4, DestUIDNext: 30},
			},
			want: pipeline.Claims{UIDs: map[uint32]bool{3: true, 8: true}, PendingFrom: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := l.Put(ctx, tc.pending); err != nil {
				t.Fatal(err)
			}
			got, err := l.Claims(ctx, "INBOX", 5, "d")
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("Claims = %v, %v; want %v", got, err, tc.want)
			}
			if !got.Has(8) || got.Has(9) != (tc.want.PendingFrom != 0 && tc.want.PendingFrom <= 9) {
				t.Errorf("Has(8) = %v, Has(9) = %v", got.Has(8), got.Has(9))
			}
		})
	}
}

func TestMigrationFromVersion3KeepsEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v3.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(migrations[0] + ";" + migrations[1] + ";" + migrations[2] + `; PRAGMA user_version = 3;
		INSERT INTO messages (account, source_key, state, digest, size, updated, done_at)
		VALUES ('alice', 'k', 'done', 'abc', 10, 1, 1);`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	l := openTest(t, path, nil)
	if got := userVersion(t, path); got != SchemaVersion() {
		t.Errorf("user_version after migration = %d, want %d", got, SchemaVersion())
	}
	if e := mustEntries(t, l, "alice")["k"]; e.State != pipeline.StateDone || e.Digest != "abc" {
		t.Errorf("migrated entry = %+v", e)
	}
	if r, err := l.Resent(context.Background(), "alice"); err != nil || len(r) != 0 {
		t.Errorf("Resent after migration = %v, %v; want none", r, err)
	}
}

// Put writes in statements of several rows: a call across the chunk size
// keeps every entry, and a key given twice in one call ends as its last.
func TestPutManyRowsAndRepeatedKeys(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, "", nil)
	at := time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC)
	var es []pipeline.Entry
	for i := range 2*upsertRows + 3 {
		es = append(es, pipeline.Entry{Account: "alice", Key: fmt.Sprint(i), State: pipeline.StatePending, Size: int64(i), Updated: at})
	}
	// The same key again, now done, in the same chunk and in a later one.
	es = append(es, pipeline.Entry{Account: "alice", Key: "5", State: pipeline.StateDone, DestUID: 9, Updated: at})
	es = append(es, pipeline.Entry{Account: "alice", Key: fmt.Sprint(2*upsertRows + 2), State: pipeline.StateDone, DestUID: 10, Updated: at})
	if err := l.Put(ctx, es); err != nil {
		t.Fatal(err)
	}
	got := mustEntries(t, l, "alice")
	if len(got) != 2*upsertRows+3 {
		t.Errorf("%d entries, want %d", len(got), 2*upsertRows+3)
	}
	for _, k := range []string{"5", fmt.Sprint(2*upsertRows + 2)} {
		if e := got[k]; e.State != pipeline.StateDone || e.DestUID == 0 || !e.DoneAt.Equal(at) {
			t.Errorf("entry %s = %+v, want its last version (done, with its UID and done time)", k, e)
		}
	}
	if e := got["70"]; e.State != pipeline.StatePending || e.Size != 70 {
		t.Errorf("entry 70 = %+v", e)
	}
}
