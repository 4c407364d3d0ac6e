package checkpoint

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// openTest opens a ledger at path (a new one in a temp dir when path is "")
// and closes it when the test ends.
func openTest(t testing.TB, path string, opts *Options) *Ledger {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "ledger.db")
	}
	l, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return l
}

// mustPut writes entries or fails the test.
func mustPut(t testing.TB, l *Ledger, entries ...pipeline.Entry) {
	t.Helper()
	if err := l.Put(context.Background(), entries); err != nil {
		t.Fatalf("Put(%d entries) = %v", len(entries), err)
	}
}

// mustEntries reads the entries of account or fails the test.
func mustEntries(t testing.TB, l *Ledger, account string) map[string]pipeline.Entry {
	t.Helper()
	got, err := l.Entries(context.Background(), account)
	if err != nil {
		t.Fatalf("Entries(%q) = %v", account, err)
	}
	return got
}

// sameEntry compares entries, times with time.Equal (the ledger returns UTC).
// Only done entries keep a DoneAt.
func sameEntry(t *testing.T, got, want pipeline.Entry) {
	t.Helper()
	if !got.Updated.Equal(want.Updated) {
		t.Errorf("entry %q: Updated = %v, want %v", want.Key, got.Updated, want.Updated)
	}
	if got.Updated.Location() != time.UTC {
		t.Errorf("entry %q: Updated location = %v, want UTC", want.Key, got.Updated.Location())
	}
	if want.State != pipeline.StateDone {
		want.DoneAt = time.Time{}
	}
	if !got.DoneAt.Equal(want.DoneAt) {
		t.Errorf("entry %q: DoneAt = %v, want %v", want.Key, got.DoneAt, want.DoneAt)
	}
	got.Updated, want.Updated = time.Time{}, time.Time{}
	got.DoneAt, want.DoneAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entry %q:\n got %+v\nwant %+v", want.Key, got, want)
	}
}

func fullEntry(account, key string) pipeline.Entry {
	return pipeline.Entry{
		Account:         account,
		Key:             key,
		State:           pipeline.StateDone,
		Reason:          "",
		Digest:          "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Size:            12345,
		MessageID:       "<abc@example.org>",
		DestMailbox:     "INBOX",
		DestUIDValidity: 1700000000,
		DestUID:         42,
		DestUIDNext:     40,
		Flags:           []string{`\Seen`, `\Flagged`, "$Forwarded"},
		Updated:         time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC),
		DoneAt:          time.Date(2024, 5, 1, 7, 8, 9, 987654321, time.UTC),
	}
}

func TestPutEntriesRoundTrip(t *testing.T) {
	paris := time.FixedZone("CEST", 2*60*60)
	tests := []struct {
		name  string
		entry func() pipeline.Entry
	}{
		{"every field", func() pipeline.Entry { return fullEntry("alice", "UIDL-1") }},
		{"pending with uidnext only", func() pipeline.Entry {
			e := fullEntry("alice", "UIDL-2")
			e.State, e.DestUID, e.DestUIDValidity = pipeline.StatePending, 0, 0
			return e
		}},
		{"skipped with reason", func() pipeline.Entry {
			e := fullEntry("alice", "UIDL-3")
			e.State, e.Reason = pipeline.StateSkipped, "TOOBIG: message exceeds APPENDLIMIT 10485760"
			return e
		}},
		{"failed with reason", func() pipeline.Entry {
			e := fullEntry("alice", "UIDL-4")
			e.State, e.Reason = pipeline.StateFailed, "connection reset"
			return e
		}},
		{"imap key with NUL separators", func() pipeline.Entry {
			return fullEntry("alice", "Archive/2019\x001234567\x0099")
		}},
		{"unicode everywhere", func() pipeline.Entry {
			e := fullEntry("jürgen@exämple.de", "sha256:ü")
			e.DestMailbox, e.MessageID = "Entwürfe", "<ä@ö>"
			return e
		}},
		{"uint32 maxima", func() pipeline.Entry {
			e := fullEntry("alice", "max")
			e.DestUIDValidity, e.DestUID, e.DestUIDNext = math.MaxUint32, math.MaxUint32, math.MaxUint32
			return e
		}},
		{"large size", func() pipeline.Entry {
			e := fullEntry("alice", "big")
			e.Size = 5 << 40
			return e
		}},
		{"non-UTC time", func() pipeline.Entry {
			e := fullEntry("alice", "tz")
			e.Updated = time.Date(2030, 1, 2, 3, 4, 5, 6, paris)
			return e
		}},
	}
	l := openTest(t, "", nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.entry()
			mustPut(t, l, want)
			got, ok := mustEntries(t, l, want.Account)[want.Key]
			if !ok {
				t.Fatalf("Entries(%q) has no key %q", want.Account, want.Key)
			}
			sameEntry(t, got, want)
		})
	}
}

func TestPutUpsertOverwrites(t *testing.T) {
	l := openTest(t, "", nil)
	first := fullEntry("alice", "k")
	first.State, first.DestUID = pipeline.StatePending, 0
	mustPut(t, l, first)

	second := fullEntry("alice", "k")
	second.State, second.DestUID, second.Updated = pipeline.StateDone, 77, first.Updated.Add(time.Minute)
	mustPut(t, l, second)

	got := mustEntries(t, l, "alice")
	if len(got) != 1 {
		t.Fatalf("Entries(alice) has %d entries, want 1", len(got))
	}
	sameEntry(t, got["k"], second)
}

func TestPutSameKeyDifferentAccounts(t *testing.T) {
	l := openTest(t, "", nil)
	a, b := fullEntry("alice", "k"), fullEntry("bob", "k")
	b.Size = 1
	mustPut(t, l, a, b)
	sameEntry(t, mustEntries(t, l, "alice")["k"], a)
	sameEntry(t, mustEntries(t, l, "bob")["k"], b)
}

func TestPutDefaultsUpdatedToNow(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	l := openTest(t, "", &Options{Now: func() time.Time { return now }})
	e := fullEntry("alice", "k")
	e.Updated = time.Time{}
	mustPut(t, l, e)
	if got := mustEntries(t, l, "alice")["k"].Updated; !got.Equal(now) {
		t.Errorf("Updated = %v, want %v", got, now)
	}
}

func TestPutInvalid(t *testing.T) {
	tests := []struct {
		name  string
		entry pipeline.Entry
	}{
		{"no account", pipeline.Entry{Key: "k", State: pipeline.StateDone}},
		{"no key", pipeline.Entry{Account: "alice", State: pipeline.StateDone}},
		{"zero state", pipeline.Entry{Account: "alice", Key: "k"}},
		{"unknown state", pipeline.Entry{Account: "alice", Key: "k", State: 99}},
		{"time out of range", pipeline.Entry{Account: "alice", Key: "k", State: pipeline.StateDone,
			Updated: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := openTest(t, "", nil)
			// A valid entry first: nothing of the batch may be written.
			err := l.Put(context.Background(), []pipeline.Entry{fullEntry("alice", "valid"), tt.entry})
			if !errors.Is(err, ErrInvalidEntry) {
				t.Fatalf("Put(%+v) = %v, want ErrInvalidEntry", tt.entry, err)
			}
			if got := mustEntries(t, l, "alice"); len(got) != 0 {
				t.Errorf("after failed Put, Entries(alice) = %v, want none", got)
			}
		})
	}
}

func TestPutEmpty(t *testing.T) {
	l := openTest(t, "", nil)
	if err := l.Put(context.Background(), nil); err != nil {
		t.Errorf("Put(nil) = %v, want nil", err)
	}
	if got := mustEntries(t, l, "nobody"); got == nil || len(got) != 0 {
		t.Errorf("Entries(nobody) = %#v, want empty non-nil map", got)
	}
}

func TestDelete(t *testing.T) {
	tests := []struct {
		name   string
		delete []string
		want   []string
	}{
		{"some", []string{"a", "c"}, []string{"b"}},
		{"none", nil, []string{"a", "b", "c"}},
		{"unknown keys ignored", []string{"x", "b"}, []string{"a", "c"}},
		{"all", []string{"a", "b", "c"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := openTest(t, "", nil)
			for _, acct := range []string{"alice", "bob"} {
				mustPut(t, l, fullEntry(acct, "a"), fullEntry(acct, "b"), fullEntry(acct, "c"))
			}
			if err := l.Delete(context.Background(), "alice", tt.delete); err != nil {
				t.Fatalf("Delete(alice, %q) = %v", tt.delete, err)
			}
			got := mustEntries(t, l, "alice")
			if len(got) != len(tt.want) {
				t.Errorf("after Delete(alice, %q): %d entries, want %v", tt.delete, len(got), tt.want)
			}
			for _, k := range tt.want {
				if _, ok := got[k]; !ok {
					t.Errorf("after Delete(alice, %q): key %q missing", tt.delete, k)
				}
			}
			if n := len(mustEntries(t, l, "bob")); n != 3 {
				t.Errorf("Delete(alice, …) touched bob: %d entries left, want 3", n)
			}
		})
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	ctx := context.Background()
	l, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	want := fullEntry("alice", "k")
	mustPut(t, l, want)
	started := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	id, err := l.StartRun(ctx, "alice", started)
	if err != nil {
		t.Fatalf("StartRun = %v", err)
	}
	if err := l.FinishRun(ctx, id, pipeline.RunRecord{Result: "ok", Copied: 1}); err != nil {
		t.Fatalf("FinishRun = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}

	l = openTest(t, path, nil)
	sameEntry(t, mustEntries(t, l, "alice")["k"], want)
	runs, err := l.Runs(ctx, "alice", 0)
	if err != nil || len(runs) != 1 || runs[0].Result != "ok" || !runs[0].Started.Equal(started) {
		t.Errorf("Runs(alice) after reopen = %+v, %v; want one ok run started %v", runs, err, started)
	}
}

func TestFileModes(t *testing.T) {
	// A permissive umask must not leak into the modes. Umask is process-wide:
	// this test does not run in parallel with others.
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	dir := filepath.Join(t.TempDir(), "state", "mailferry")
	path := filepath.Join(dir, "ledger.db")
	l := openTest(t, path, nil)
	mustPut(t, l, fullEntry("alice", "k"))
	unlock, err := l.Lock(context.Background(), "alice")
	if err != nil {
		t.Fatalf("Lock(alice) = %v", err)
	}
	defer unlock()

	tests := []struct {
		name string
		path string
		want fs.FileMode
	}{
		{"parent directory", dir, fs.ModeDir | 0o700},
		{"grandparent directory", filepath.Dir(dir), fs.ModeDir | 0o700},
		{"database", path, 0o600},
		{"wal", path + "-wal", 0o600},
		{"shm", path + "-shm", 0o600},
		{"lock directory", path + ".locks", fs.ModeDir | 0o700},
		{"lock file", l.LockPath("alice"), 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fi, err := os.Stat(tt.path)
			if err != nil {
				t.Fatalf("Stat(%s) = %v", tt.path, err)
			}
			if got := fi.Mode() & (fs.ModeDir | fs.ModePerm); got != tt.want {
				t.Errorf("mode of %s = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
}

func TestOpenPaths(t *testing.T) {
	tests := []struct {
		name string
		file string
	}{
		{"plain", "ledger.db"},
		{"space", "my ledger.db"},
		{"query characters", "a?b=c&d#e%20f.db"},
		{"relative subdirectory", filepath.Join("sub", "x.db")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			l := openTest(t, tt.file, nil)
			mustPut(t, l, fullEntry("alice", "k"))
			want := filepath.Join(dir, tt.file)
			if l.Path() != want {
				t.Errorf("Path() = %q, want %q", l.Path(), want)
			}
			if _, err := os.Stat(want); err != nil {
				t.Errorf("ledger file not at %s: %v", want, err)
			}
		})
	}
}

// userVersion reads PRAGMA user_version with a plain connection.
func userVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("sql.Open(%s) = %v", path, err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatalf("reading user_version of %s: %v", path, err)
	}
	return v
}

func TestSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if got := userVersion(t, path); got != SchemaVersion() || got < 1 {
		t.Errorf("user_version = %d, want SchemaVersion() = %d (>= 1)", got, SchemaVersion())
	}
	// Opening again leaves the version alone.
	l = openTest(t, path, nil)
	if err := l.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if got := userVersion(t, path); got != SchemaVersion() {
		t.Errorf("user_version after reopen = %d, want %d", got, SchemaVersion())
	}
}

func TestOpenRefuses(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantErr error  // matched with errors.Is when set
		wantMsg string // substring of the error otherwise
	}{
		{
			name: "newer schema",
			prepare: func(t *testing.T, path string) {
				db, err := sql.Open("sqlite", path)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion()+1)); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrSchemaTooNew,
		},
		{
			name: "not a database",
			prepare: func(t *testing.T, path string) {
				if err := os.WriteFile(path, []byte(strings.Repeat("this is not sqlite\n", 100)), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrNotLedger,
			wantMsg: "ledger.db",
		},
		{
			name: "another program's SQLite database",
			prepare: func(t *testing.T, path string) {
				db, err := sql.Open("sqlite", path)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if _, err := db.Exec(`CREATE TABLE contacts (name TEXT); CREATE TABLE notes (body TEXT)`); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrNotLedger,
			wantMsg: "contacts, notes",
		},
		{
			name: "another program's database with a schema version",
			prepare: func(t *testing.T, path string) {
				db, err := sql.Open("sqlite", path)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if _, err := db.Exec(`CREATE TABLE moz_places (url TEXT); PRAGMA user_version = 3`); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrNotLedger,
			wantMsg: "moz_places",
		},
		{
			name: "directory in the way",
			prepare: func(t *testing.T, path string) {
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			},
			wantMsg: "ledger.db",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ledger.db")
			tt.prepare(t, path)
			l, err := Open(context.Background(), path, nil)
			if err == nil {
				l.Close()
				t.Fatalf("Open(%s) = nil error, want one", path)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Open(%s) = %v, want %v", path, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Open(%s) = %q, want it to mention %q", path, err, tt.wantMsg)
			}
		})
	}
}

func TestRuns(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	l := openTest(t, "", &Options{Now: func() time.Time { return now }})

	t0 := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	id1, err := l.StartRun(ctx, "alice", t0)
	if err != nil {
		t.Fatalf("StartRun = %v", err)
	}
	rec1 := pipeline.RunRecord{Account: "alice", Finished: t0.Add(time.Minute), Result: "partial",
		Error: "TOOBIG", ErrorClass: "quota", Hint: "make room", Copied: 10, Skipped: 2, Failed: 1}
	if err := l.FinishRun(ctx, id1, rec1); err != nil {
		t.Fatalf("FinishRun(%d) = %v", id1, err)
	}
	id2, err := l.StartRun(ctx, "alice", t0.Add(time.Hour))
	if err != nil {
		t.Fatalf("StartRun = %v", err)
	}
	if id2 == id1 {
		t.Fatalf("StartRun returned id %d twice", id1)
	}
	if _, err := l.StartRun(ctx, "bob", t0); err != nil {
		t.Fatalf("StartRun(bob) = %v", err)
	}
	// id2 is left unfinished, as after a crash.

	tests := []struct {
		name  string
		limit int
		want  []pipeline.RunRecord
	}{
		{"all newest first", 0, []pipeline.RunRecord{
			{Account: "alice", Started: t0.Add(time.Hour)},
			{Account: "alice", Started: t0, Finished: rec1.Finished, Result: "partial", Error: "TOOBIG",
				ErrorClass: "quota", Hint: "make room", Copied: 10, Skipped: 2, Failed: 1},
		}},
		{"limit 1", 1, []pipeline.RunRecord{{Account: "alice", Started: t0.Add(time.Hour)}}},
		{"limit above count", 10, nil}, // same as all, filled below
	}
	tests[2].want = tests[0].want
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Runs(ctx, "alice", tt.limit)
			if err != nil {
				t.Fatalf("Runs(alice, %d) = %v", tt.limit, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Runs(alice, %d) = %d runs, want %d", tt.limit, len(got), len(tt.want))
			}
			for i := range got {
				if !got[i].Started.Equal(tt.want[i].Started) || !got[i].Finished.Equal(tt.want[i].Finished) {
					t.Errorf("run %d times = %v..%v, want %v..%v", i, got[i].Started, got[i].Finished, tt.want[i].Started, tt.want[i].Finished)
				}
				g, w := got[i], tt.want[i]
				g.Started, g.Finished, w.Started, w.Finished = time.Time{}, time.Time{}, time.Time{}, time.Time{}
				if g != w {
					t.Errorf("run %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}

	t.Run("finish with zero time uses now", func(t *testing.T) {
		if err := l.FinishRun(ctx, id2, pipeline.RunRecord{Result: "ok"}); err != nil {
			t.Fatalf("FinishRun(%d) = %v", id2, err)
		}
		got, err := l.Runs(ctx, "alice", 1)
		if err != nil || len(got) != 1 || !got[0].Finished.Equal(now) {
			t.Errorf("Runs(alice, 1) = %+v, %v; want Finished %v", got, err, now)
		}
	})

	errTests := []struct {
		name string
		id   int64
		rec  pipeline.RunRecord
	}{
		{"unknown id", 9999, pipeline.RunRecord{Result: "ok"}},
		{"other account's run", id1, pipeline.RunRecord{Account: "bob", Result: "ok"}},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.FinishRun(ctx, tt.id, tt.rec); !errors.Is(err, ErrUnknownRun) {
				t.Errorf("FinishRun(%d, %+v) = %v, want ErrUnknownRun", tt.id, tt.rec, err)
			}
		})
	}
}

func TestSummaryAndAccounts(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, "", nil)
	entry := func(account, key string, st pipeline.State, size int64, reason string) pipeline.Entry {
		e := fullEntry(account, key)
		e.State, e.Size, e.Reason = st, size, reason
		return e
	}
	mustPut(t, l,
		entry("alice", "1", pipeline.StateDone, 100, ""),
		entry("alice", "2", pipeline.StateDone, 250, ""),
		entry("alice", "3", pipeline.StatePending, 1000, ""),
		entry("alice", "4", pipeline.StateSkipped, 7, "TOOBIG"),
		entry("alice", "5", pipeline.StateSkipped, 8, "TOOBIG"),
		entry("alice", "6", pipeline.StateSkipped, 9, "NUL bytes"),
		entry("alice", "7", pipeline.StateFailed, 10, "timeout"),
		entry("bob", "1", pipeline.StateDone, 5, ""),
	)
	started := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, acct := range []string{"alice", "carol"} {
		if _, err := l.StartRun(ctx, acct, started); err != nil {
			t.Fatalf("StartRun(%s) = %v", acct, err)
		}
	}

	accounts, err := l.Accounts(ctx)
	if err != nil {
		t.Fatalf("Accounts() = %v", err)
	}
	if want := []string{"alice", "bob", "carol"}; !reflect.DeepEqual(accounts, want) {
		t.Errorf("Accounts() = %q, want %q", accounts, want)
	}

	tests := []struct {
		name     string
		account  string
		want     AccountSummary
		wantRuns bool
	}{
		{"mixed", "alice", AccountSummary{Done: 2, Pending: 1, Skipped: 3, Failed: 1, Bytes: 350, AllBytes: 1384,
			SkipReasons: map[string]int{"TOOBIG": 2, "NUL bytes": 1}}, true},
		{"done only, no runs", "bob", AccountSummary{Done: 1, Bytes: 5, AllBytes: 5, SkipReasons: map[string]int{}}, false},
		{"runs only", "carol", AccountSummary{SkipReasons: map[string]int{}}, true},
		{"unknown", "nobody", AccountSummary{SkipReasons: map[string]int{}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Summary(ctx, tt.account)
			if err != nil {
				t.Fatalf("Summary(%q) = %v", tt.account, err)
			}
			if (got.LastRun != nil) != tt.wantRuns {
				t.Fatalf("Summary(%q).LastRun = %+v, want present %v", tt.account, got.LastRun, tt.wantRuns)
			}
			if got.LastRun != nil && (!got.LastRun.Started.Equal(started) || got.LastRun.Account != tt.account) {
				t.Errorf("Summary(%q).LastRun = %+v, want account %q started %v", tt.account, got.LastRun, tt.account, started)
			}
			got.LastRun = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Summary(%q) = %+v, want %+v", tt.account, got, tt.want)
			}
		})
	}
	// Summaries says the same of every account at once (no skip reasons).
	all, err := l.Summaries(ctx)
	if err != nil {
		t.Fatalf("Summaries() = %v", err)
	}
	if len(all) != 3 {
		t.Errorf("Summaries() has %d accounts, want alice, bob and carol", len(all))
	}
	for _, tt := range tests {
		one, _ := l.Summary(ctx, tt.account)
		got := all[tt.account]
		if (got.LastRun == nil) != (one.LastRun == nil) || got.LastRun != nil && *got.LastRun != *one.LastRun {
			t.Errorf("Summaries()[%q].LastRun = %+v, Summary says %+v", tt.account, got.LastRun, one.LastRun)
		}
		got.LastRun, one.LastRun, one.SkipReasons = nil, nil, nil
		if !reflect.DeepEqual(got, one) {
			t.Errorf("Summaries()[%q] = %+v, Summary says %+v", tt.account, got, one)
		}
	}
}

func TestClosedLedger(t *testing.T) {
	ctx := context.Background()
	l, err := Open(ctx, filepath.Join(t.TempDir(), "ledger.db"), nil)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Put", func() error { return l.Put(ctx, []pipeline.Entry{fullEntry("a", "k")}) }},
		{"Entries", func() error { _, err := l.Entries(ctx, "a"); return err }},
		{"Delete", func() error { return l.Delete(ctx, "a", []string{"k"}) }},
		{"StartRun", func() error { _, err := l.StartRun(ctx, "a", time.Now()); return err }},
		{"FinishRun", func() error { return l.FinishRun(ctx, 1, pipeline.RunRecord{}) }},
		{"Runs", func() error { _, err := l.Runs(ctx, "a", 0); return err }},
		{"Accounts", func() error { _, err := l.Accounts(ctx); return err }},
		{"Summary", func() error { _, err := l.Summary(ctx, "a"); return err }},
		{"Lock", func() error { _, err := l.Lock(ctx, "a"); return err }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, ErrClosed) {
				t.Errorf("%s after Close = %v, want ErrClosed", c.name, err)
			}
		})
	}
}

func TestConcurrentPut(t *testing.T) {
	const (
		goroutines = 8
		batches    = 5
		batchSize  = 20 // small: the race detector slows SQLite down ~20x
	)
	tests := []struct {
		name    string
		ledgers int // goroutine g uses ledger g%ledgers; several act like processes
	}{
		{"one ledger", 1},
		{"two ledgers on one file", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "ledger.db")
			ledgers := make([]*Ledger, tt.ledgers)
			for i := range ledgers {
				ledgers[i] = openTest(t, path, nil)
			}
			var wg sync.WaitGroup
			errs := make(chan error, goroutines*2)
			for g := range goroutines {
				l := ledgers[g%len(ledgers)]
				account := fmt.Sprintf("user%d", g%4) // two goroutines per account
				wg.Add(2)
				go func() {
					defer wg.Done()
					for b := range batches {
						entries := make([]pipeline.Entry, batchSize)
						for i := range entries {
							entries[i] = fullEntry(account, fmt.Sprintf("g%d-b%d-m%d", g, b, i))
						}
						if err := l.Put(ctx, entries); err != nil {
							errs <- fmt.Errorf("goroutine %d: Put: %w", g, err)
							return
						}
					}
				}()
				go func() { // a reader alongside each writer
					defer wg.Done()
					for range batches {
						if _, err := l.Entries(ctx, account); err != nil {
							errs <- fmt.Errorf("goroutine %d: Entries: %w", g, err)
							return
						}
						if _, err := l.Summary(ctx, account); err != nil {
							errs <- fmt.Errorf("goroutine %d: Summary: %w", g, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			for a := range 4 {
				account := fmt.Sprintf("user%d", a)
				if n := len(mustEntries(t, ledgers[0], account)); n != 2*batches*batchSize {
					t.Errorf("Entries(%s) = %d entries, want %d", account, n, 2*batches*batchSize)
				}
			}
		})
	}
}

func TestPragmas(t *testing.T) {
	l := openTest(t, "", nil)
	tests := []struct {
		name   string
		db     *sql.DB
		pragma string
		want   string
	}{
		{"journal mode", l.w, "journal_mode", "wal"},
		{"synchronous FULL", l.w, "synchronous", "2"},
		{"foreign keys", l.w, "foreign_keys", "1"},
		{"busy timeout", l.w, "busy_timeout", "10000"},
		{"reader busy timeout", l.r, "busy_timeout", "10000"},
		{"reader query only", l.r, "query_only", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			if err := tt.db.QueryRow("PRAGMA " + tt.pragma).Scan(&got); err != nil {
				t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
			}
			if got != tt.want {
				t.Errorf("PRAGMA %s = %q, want %q", tt.pragma, got, tt.want)
			}
		})
	}
}

func BenchmarkPut1000(b *testing.B) {
	l := openTest(b, filepath.Join(b.TempDir(), "ledger.db"), nil)
	entries := make([]pipeline.Entry, 1000)
	for i := range entries {
		entries[i] = fullEntry("alice", fmt.Sprintf("UIDL-%06d", i))
	}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if err := l.Put(ctx, entries); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEntries10000(b *testing.B) {
	l := openTest(b, filepath.Join(b.TempDir(), "ledger.db"), nil)
	entries := make([]pipeline.Entry, 10000)
	for i := range entries {
		entries[i] = fullEntry("alice", fmt.Sprintf("UIDL-%06d", i))
	}
	mustPut(b, l, entries...)
	mustPut(b, l, fullEntry("bob", "other"))
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		got, err := l.Entries(ctx, "alice")
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != len(entries) {
			b.Fatalf("Entries = %d, want %d", len(got), len(entries))
		}
	}
}

// A file written by schema version 1 is migrated in place: its entries
// survive and gain empty flags.
func TestMigrationFromVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(migrations[0] + `; PRAGMA user_version = 1;
		INSERT INTO messages (account, source_key, state, digest, size, updated)
		VALUES ('alice', 'k1', 'done', 'abc', 10, 0);`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	l, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("opening a version 1 ledger: %v", err)
	}
	defer l.Close()
	got, err := l.Entries(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if e := got["k1"]; e.State != pipeline.StateDone || e.Digest != "abc" || e.Flags != nil {
		t.Errorf("migrated entry = %+v, want done, digest abc, no flags", e)
	}
}

// A file written by schema version 2 is migrated in place: entries already
// done get their last update as the time they became done, the others none.
func TestMigrationFromVersion2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v2.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	doneAt := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if _, err := db.Exec(migrations[0] + ";" + migrations[1] + fmt.Sprintf(`; PRAGMA user_version = 2;
		INSERT INTO messages (account, source_key, state, digest, size, flags, updated)
		VALUES ('alice', 'done', 'done', 'abc', 10, '\Seen', %d),
		       ('alice', 'pending', 'pending', 'def', 11, '', %d),
		       ('alice', 'skipped', 'skipped', 'ghi', 12, '', %d);`,
		doneAt.UnixNano(), doneAt.UnixNano(), doneAt.UnixNano())); err != nil {
		t.Fatal(err)
	}
	db.Close()
	l := openTest(t, path, nil)
	if got := userVersion(t, path); got != SchemaVersion() {
		t.Errorf("user_version after migration = %d, want %d", got, SchemaVersion())
	}
	got := mustEntries(t, l, "alice")
	for _, tc := range []struct {
		key  string
		want time.Time
	}{
		{"done", doneAt},
		{"pending", time.Time{}},
		{"skipped", time.Time{}},
	} {
		if e := got[tc.key]; !e.DoneAt.Equal(tc.want) {
			t.Errorf("migrated entry %q: DoneAt = %v, want %v", tc.key, e.DoneAt, tc.want)
		}
	}
	if e := got["done"]; e.Digest != "abc" || len(e.Flags) != 1 || e.Flags[0] != `\Seen` {
		t.Errorf("migrated done entry = %+v, want digest abc and flags [\\Seen]", e)
	}
}

// DoneAt is the time an entry first became done: later Puts of the done
// entry (flag syncs) keep it, whatever they carry.
func TestDoneAtKeepsFirstDoneTime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d int) time.Time { return t0.AddDate(0, 0, d) }
	entry := func(state pipeline.State, updated, doneAt time.Time) pipeline.Entry {
		return pipeline.Entry{Account: "alice", Key: "k", State: state, Updated: updated, DoneAt: doneAt}
	}
	tests := []struct {
		name string
		puts []pipeline.Entry
		want time.Time
	}{
		{"done with DoneAt", []pipeline.Entry{entry(pipeline.StateDone, at(2), at(1))}, at(1)},
		{"done without DoneAt takes Updated", []pipeline.Entry{entry(pipeline.StateDone, at(2), time.Time{})}, at(2)},
		{"pending has none", []pipeline.Entry{entry(pipeline.StatePending, at(2), at(1))}, time.Time{}},
		{"pending then done", []pipeline.Entry{
			entry(pipeline.StatePending, at(1), time.Time{}), entry(pipeline.StateDone, at(3), at(3))}, at(3)},
		{"flag sync keeps the first", []pipeline.Entry{
			entry(pipeline.StateDone, at(1), at(1)), entry(pipeline.StateDone, at(9), at(9))}, at(1)},
		{"flag sync without DoneAt keeps the first", []pipeline.Entry{
			entry(pipeline.StateDone, at(1), at(1)), entry(pipeline.StateDone, at(9), time.Time{})}, at(1)},
		{"failed after done has none", []pipeline.Entry{
			entry(pipeline.StateDone, at(1), at(1)), entry(pipeline.StateFailed, at(2), time.Time{})}, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := openTest(t, "", nil)
			for _, e := range tc.puts {
				mustPut(t, l, e)
			}
			if got := mustEntries(t, l, "alice")["k"].DoneAt; !got.Equal(tc.want) {
				t.Errorf("DoneAt = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDoneSince(t *testing.T) {
	l := openTest(t, "", nil)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, st := range []pipeline.State{pipeline.StateDone, pipeline.StateDone, pipeline.StateDone, pipeline.StateSkipped} {
		mustPut(t, l, pipeline.Entry{Account: "alice", Key: fmt.Sprint(i), State: st,
			Updated: t0.AddDate(0, 0, 10*i), DoneAt: t0.AddDate(0, 0, 10*i)})
	}
	mustPut(t, l, pipeline.Entry{Account: "bob", Key: "x", State: pipeline.StateDone, DoneAt: t0.AddDate(1, 0, 0)})
	tests := []struct {
		since    time.Time
		n        int
		earliest time.Time
	}{
		{t0.AddDate(0, 0, -1), 3, t0},
		{t0, 2, t0.AddDate(0, 0, 10)}, // exactly at since: not counted
		{t0.AddDate(0, 0, 15), 1, t0.AddDate(0, 0, 20)},
		{t0.AddDate(0, 0, 20), 0, time.Time{}},
	}
	for _, tc := range tests {
		n, earliest, err := l.DoneSince(context.Background(), "alice", tc.since)
		if err != nil || n != tc.n || !earliest.Equal(tc.earliest) {
			t.Errorf("DoneSince(%v) = %d, %v, %v; want %d, %v", tc.since, n, earliest, err, tc.n, tc.earliest)
		}
	}
}
