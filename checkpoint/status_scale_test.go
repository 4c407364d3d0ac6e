package checkpoint

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/mailferry/mailferry/pipeline"
)

// TestStatusOfOneAccountReadsOne: the status of a few accounts picked by
// id (Summary, the status page's read of one account) reads those
// accounts, not every account of the ledger: it read every account's row
// and counts, so a run of 10,000 accounts with the status page on paid
// 10,000 reads of all 10,000 (issue 18). Measured by allocations (each row
// read allocates its strings), never by time: the same read in a ledger of
// four times the accounts may cost at most half as much again. An id that
// names no account gives nothing.
func TestStatusOfOneAccountReadsOne(t *testing.T) {
	ctx := context.Background()
	ledgerOf := func(n int) (*Ledger, pipeline.AccountID) {
		l, err := Open(ctx, filepath.Join(t.TempDir(), "s.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		var first pipeline.AccountID
		for i := range n {
			id, h := held(t, l, fmt.Sprintf("user%04d", i))
			if err := l.Commit(ctx, id, pipeline.Changes{Put: []pipeline.Entry{{Key: "k", State: pipeline.StateDone, Size: 7}}}); err != nil {
				t.Fatal(err)
			}
			h.Release(ctx)
			if i == 0 {
				first = id
			}
		}
		return l, first
	}
	small, smallID := ledgerOf(100)
	large, largeID := ledgerOf(400)
	allocs := func(l *Ledger, id pipeline.AccountID) float64 {
		return testing.AllocsPerRun(5, func() {
			st, err := l.Status(ctx, Selector{IDs: []pipeline.AccountID{id}})
			if err != nil || len(st) != 1 || st[0].ID != id || st[0].Counts[pipeline.StateDone].Messages != 1 || st[0].Ident == "" {
				t.Fatalf("Status of account %d: %+v, %v; want it with 1 done", id, st, err)
			}
		})
	}
	a, b := allocs(small, smallID), allocs(large, largeID)
	t.Logf("Status of one account: %.0f allocations among 100 accounts, %.0f among 400", a, b)
	if b > 1.5*a {
		t.Errorf("Status of one account among 400 made %.0f allocations, %.1f × those among 100 (%.0f): it reads every account", b, b/a, a)
	}
	if st, err := large.Status(ctx, Selector{IDs: []pipeline.AccountID{largeID, 999999, largeID}}); err != nil || len(st) != 1 || st[0].ID != largeID {
		t.Errorf("Status of an account, an unknown id and the account again: %+v, %v; want the account once", st, err)
	}
}
