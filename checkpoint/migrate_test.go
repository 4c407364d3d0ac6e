package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/postgres"
	"github.com/mailferry/mailferry/pipeline"
)

// TestScrubSpec: a recorded config that holds a secret's value (it should
// not: specs are written without them) loses it in a ledger migrate;
// where secrets come from (_env, _file, _command) and everything else
// stays.
func TestScrubSpec(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		n              int
	}{
		{"none", `{"source_password_env":"P","dest_password_file":"/x","user":"alice"}`, `{"source_password_env":"P","dest_password_file":"/x","user":"alice"}`, 0},
		{"password", `{"source_password":"hunter2","user":"alice"}`, `{"user":"alice"}`, 1},
		{"nested", `{"dest":{"master_password":"m","oauth2":{"client_secret":"s","refresh_token":"r","token_command":"get"}},"list":[{"password":"p"}]}`,
			`{"dest":{"oauth2":{"token_command":"get"}},"list":[{}]}`, 4},
		{"not JSON", `not json`, `not json`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, n := scrubSpec(tc.in)
			if n != tc.n {
				t.Errorf("scrubbed %d, want %d", n, tc.n)
			}
			var a, b any
			if json.Unmarshal([]byte(got), &a) != nil || json.Unmarshal([]byte(tc.want), &b) != nil {
				if got != tc.want {
					t.Errorf("got %s, want %s", got, tc.want)
				}
				return
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// dump is every copied table of a SQLite ledger, row by row in key
// order, as text.
func dump(t *testing.T, path string) map[string][]string {
	t.Helper()
	l := openTest(t, path, nil)
	out := map[string][]string{}
	for _, tb := range migrateTables {
		rows, err := l.r.QueryContext(context.Background(), `SELECT * FROM `+tb.name+` ORDER BY `+tb.order)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			out[tb.name] = append(out[tb.name], fmt.Sprintf("%#v", vals))
		}
		rows.Close()
	}
	l.Close()
	return out
}

// TestMigrateRoundTrip: a SQLite ledger (keys with NUL and invalid
// UTF-8, a paused account, a folder, runs, usage) copied into PostgreSQL
// and back into a new file is the same, row for row and byte for byte; a
// second copy into the non-empty database is refused and writes nothing;
// a PostgreSQL ledger with an account held by a running worker is refused
// as a source.
func TestMigrateRoundTrip(t *testing.T) {
	srv := postgres.Start(t, postgres.Options{})
	dbURL := postgres.Database(t, srv)
	ctx := context.Background()
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.db")
	l := openTest(t, orig, nil)
	for i, user := range []string{"alice", "bob"} {
		id, h := held(t, l, user)
		put := []pipeline.Entry{
			{Key: "k\x00" + user, State: pipeline.StateDone, Size: 10, DestMailbox: "INBOX", DestUID: 1, Digest: strings.Repeat("0a", 32)},
			{Key: "k\xff" + user, State: pipeline.StatePending, Size: 20, DestMailbox: "INBOX"},
			{Key: "k3" + user, State: pipeline.StateSkipped, Size: 30, Reason: "too big"},
		}
		if err := l.Commit(ctx, id, pipeline.Changes{Put: put}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.StartRun(ctx, id, time.Unix(1700000000, 0)); err != nil {
			t.Fatal(err)
		}
		_ = i
		h.Release(ctx)
	}
	if err := l.SetPaused(ctx, testSpec("bob").Endpoint, true); err != nil {
		t.Fatal(err)
	}
	l.Close()
	want := dump(t, orig)

	pgOpts := &Options{Password: srv.Password()}
	res, err := Migrate(ctx, orig, dbURL, MigrateOptions{To: pgOpts})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("into PostgreSQL: %+v", res.Tables)
	if _, err := Migrate(ctx, orig, dbURL, MigrateOptions{To: pgOpts}); !errors.Is(err, ErrTargetNotEmpty) {
		t.Fatalf("a second migrate into the same database: %v, want ErrTargetNotEmpty", err)
	}
	back := filepath.Join(dir, "back.db")
	if _, err := Migrate(ctx, dbURL, back, MigrateOptions{From: pgOpts}); err != nil {
		t.Fatal(err)
	}
	got := dump(t, back)
	if !reflect.DeepEqual(got, want) {
		for tb := range want {
			if !reflect.DeepEqual(got[tb], want[tb]) {
				t.Errorf("%s after the round trip:\n got %v\nwant %v", tb, got[tb], want[tb])
			}
		}
	}

	// A worker holding an account: the source is refused.
	w := openPG(t, srv, dbURL, "w:1:1", 0)
	held(t, w, "alice")
	if _, err := Migrate(ctx, dbURL, filepath.Join(dir, "third.db"), MigrateOptions{From: pgOpts}); err == nil || !strings.Contains(err.Error(), "held by running workers") {
		t.Fatalf("migrate from a ledger with a held account: %v", err)
	}
}
