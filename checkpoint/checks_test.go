package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/mailferry/mailferry/pipeline"
)

// TestCommitStatesMatchSchemaChecks holds what lets the write connection
// skip the schema's CHECK constraints (dsn: ignore_check_constraints):
// whatever Commit writes passes them, and what would not is refused
// before anything is written. PRAGMA integrity_check on the read
// connection, which keeps the checks, verifies every row against them;
// a row written past them shows that it would tell.
func TestCommitStatesMatchSchemaChecks(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, filepath.Join(t.TempDir(), "ledger.db"), nil)
	a, _ := held(t, l, "alice")
	var c pipeline.Changes
	for i, s := range pipeline.States {
		c.Put = append(c.Put, pipeline.Entry{Key: fmt.Sprint("k", i), State: s, DestMailbox: "INBOX", MoveTo: "Archive"})
	}
	for _, side := range []pipeline.Side{pipeline.SourceSide, pipeline.DestSide} {
		for _, op := range []pipeline.FolderOp{"", pipeline.FolderRenaming, pipeline.FolderDeleting, pipeline.FolderDeleted} {
			c.Folders = append(c.Folders, pipeline.Folder{Side: side, Name: "F" + string(op), Op: op})
		}
	}
	if err := l.Commit(ctx, a, c); err != nil {
		t.Fatal(err)
	}
	if got := integrity(t, l); got != "ok" {
		t.Fatalf("integrity_check after committing every state, side and folder operation = %q, want ok", got)
	}

	for _, bad := range []pipeline.Changes{
		{Put: []pipeline.Entry{{Key: "bad", State: pipeline.State(0)}}},
		{Put: []pipeline.Entry{{Key: "bad", State: pipeline.StateMoving + 1}}},
		{Folders: []pipeline.Folder{{Side: "both", Name: "bad"}}},
		{Folders: []pipeline.Folder{{Side: pipeline.DestSide, Name: "bad", Op: "renamed"}}},
	} {
		if err := l.Commit(ctx, a, bad); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("Commit(%+v) = %v, want ErrInvalidEntry", bad, err)
		}
	}
	if got := integrity(t, l); got != "ok" {
		t.Fatalf("integrity_check after the refused commits = %q, want ok", got)
	}

	// The control: a state past the check is found.
	if _, err := l.w.ExecContext(ctx, `UPDATE messages SET state = 'bogus' WHERE source_key = 'k0'`); err != nil {
		t.Fatal(err)
	}
	if got := integrity(t, l); got == "ok" {
		t.Fatal("integrity_check with a state outside the CHECK = ok: it does not verify the checks")
	}
}

func integrity(t *testing.T, l *Ledger) string {
	t.Helper()
	var res string
	if err := l.r.QueryRowContext(context.Background(), "PRAGMA integrity_check").Scan(&res); err != nil {
		t.Fatal(err)
	}
	return res
}
