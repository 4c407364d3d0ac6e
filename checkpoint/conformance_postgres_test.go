package checkpoint_test

import (
	"context"
	"testing"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/checkpoint/ledgertest"
	"github.com/mailferry/mailferry/internal/testkit/postgres"
)

// TestConformancePostgres holds the PostgreSQL engine to the same rules
// as SQLite, on a private server (testkit/postgres): one database per
// case, opened with the password given as an option, never in the URL.
// Without PostgreSQL installed it skips, except under CI=true.
func TestConformancePostgres(t *testing.T) {
	srv := postgres.Start(t, postgres.Options{})
	ledgertest.Run(t, ledgertest.Engine{
		Name: "postgres",
		New: func(t *testing.T) func(*checkpoint.Options) (*checkpoint.Ledger, error) {
			url := postgres.Database(t, srv)
			return func(opts *checkpoint.Options) (*checkpoint.Ledger, error) {
				opts.Password = srv.Password()
				return checkpoint.Open(context.Background(), url, opts)
			}
		},
	})
}
