package pipeline_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/internal/testkit/postgres"
	"github.com/mailferry/mailferry/pipeline"
)

// TestCopyRaceLedgers runs pipeline.CopyRace (copyrace_test.go) on the
// checkpoint's engines: SQLite, and PostgreSQL on a private server (which
// skips without PostgreSQL installed, except under CI=true).
func TestCopyRaceLedgers(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		copyRaceOn(t, func(t *testing.T) (*checkpoint.Ledger, error) {
			return checkpoint.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"), nil)
		})
	})
	t.Run("postgres", func(t *testing.T) {
		srv := postgres.Start(t, postgres.Options{})
		copyRaceOn(t, func(t *testing.T) (*checkpoint.Ledger, error) {
			return checkpoint.Open(context.Background(), postgres.Database(t, srv), &checkpoint.Options{Password: srv.Password()})
		})
	})
}

// copyRaceOn runs both orders of the race, and the race over a late copy
// (pipeline.LateCopyAdoptRace), each on a new ledger of two accounts that
// write into one destination mailbox: alice's.
func copyRaceOn(t *testing.T, open func(t *testing.T) (*checkpoint.Ledger, error)) {
	for _, order := range []string{"removing", "matched", "late copy"} {
		t.Run(order, func(t *testing.T) {
			l, err := open(t)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var ids []pipeline.AccountID
			for _, user := range []string{"alice", "bob"} {
				res, err := l.ResolveAccount(context.Background(), checkpoint.AccountSpec{
					Endpoint:    "pop3://" + user + "@pop.example.org:995 -> imap://alice@imap.example.org:993/INBOX",
					SourceProto: "pop3", SourceUser: user, DestUser: "alice", DestFolder: "INBOX",
					Source: "pop3://" + user + "@pop.example.org:995", Destination: "imap://alice@imap.example.org:993",
					KeyScheme: "pop3",
				})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, res.Account)
			}
			if order == "late copy" {
				pipeline.LateCopyAdoptRace(t, l, ids[0], ids[1])
				return
			}
			pipeline.CopyRace(t, order, l, ids[0], ids[1])
		})
	}
}
