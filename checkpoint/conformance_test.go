package checkpoint_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/checkpoint/ledgertest"
)

// TestConformanceSQLite holds the SQLite engine to the ledger's rules.
func TestConformanceSQLite(t *testing.T) {
	ledgertest.Run(t, ledgertest.Engine{
		Name: "sqlite",
		New: func(t *testing.T) func(*checkpoint.Options) (*checkpoint.Ledger, error) {
			path := filepath.Join(t.TempDir(), "ledger.db")
			return func(opts *checkpoint.Options) (*checkpoint.Ledger, error) {
				return checkpoint.Open(context.Background(), path, opts)
			}
		},
	})
}
