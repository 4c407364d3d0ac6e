package checkpoint

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/postgres"
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

// statusLedger is a ledger of accounts accounts with perAccount done
// entries each, every account with one finished run and its lock file
// (held once and released), like the bench's top-up (-flat-ledger) but
// built in seconds: the entries are written by one INSERT per account in
// the engine's own SQL, not through Commit (Status reads the accounts,
// their runs and account_counts, which the triggers keep; never the
// entries).
func statusLedger(b *testing.B, l *Ledger, accounts, perAccount int) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	insert := `INSERT INTO messages (account_id, source_key, state, digest, size, message_id, dest_uidvalidity, dest_uid, dest_uidnext,
			flags, updated, done_at)
		WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
		SELECT ?, printf('%08X%08X', i + 1, ?), 'done', CAST(printf('%032d', i) AS BLOB), 2000 + i % 3000,
			printf('<%d.%d@mail.example.org>', i, ?), 1700000000, i + 1, i + 1, '\Seen', ?, ? FROM n`
	if l.pg != nil {
		insert = `INSERT INTO messages (account_id, source_key, state, digest, size, message_id, dest_uidvalidity, dest_uid, dest_uidnext,
			flags, updated, done_at)
		SELECT $2, convert_to(lpad(to_hex(i + 1), 8, '0') || lpad(to_hex($3::bigint), 8, '0'), 'UTF8'), 'done',
			convert_to(lpad(i::text, 32, '0'), 'UTF8'), 2000 + i % 3000,
			convert_to('<' || i || '.' || $4::bigint || '@mail.example.org>', 'UTF8'), 1700000000, i + 1, i + 1, '\Seen', $5, $6
		FROM generate_series(0, $1::bigint - 1) AS i`
	}
	now := time.Now()
	for a := range accounts {
		user := fmt.Sprintf("user%05d", a)
		res, err := l.ResolveAccount(ctx, testSpec(user))
		if err != nil {
			b.Fatal(err)
		}
		h, err := l.Hold(ctx, res.Account)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.w.ExecContext(ctx, insert, perAccount, res.Account, 1700000000+a, a, nanos(now), nanos(now)); err != nil {
			b.Fatal(err)
		}
		run, err := l.StartRun(ctx, res.Account, now)
		if err == nil {
			err = l.FinishRun(ctx, run, pipeline.RunRecord{Result: "ok", Listed: perAccount, Copied: perAccount})
		}
		if err != nil {
			b.Fatal(err)
		}
		h.Release(ctx)
	}
	if _, entries, err := l.Size(ctx); err != nil || entries != int64(accounts*perAccount) {
		b.Fatalf("the ledger holds %d entries (%v), want %d", entries, err, accounts*perAccount)
	}
	b.Logf("%s ledger of %d accounts, %d entries built in %v", l.d.name, accounts, accounts*perAccount, time.Since(start).Round(time.Second))
}

// BenchmarkStatus is `mailferry status`'s read of every account in a
// ledger of 1,000,000 entries over 10,000 accounts (issue 18, item 5);
// one op is one Status of all 10,000, and cpu-ms/op the process's CPU
// time per call (user and system), which a loaded machine bends less than
// ns/op. SQLite, and PostgreSQL where the test kit finds it (10,000
// accounts with 10 entries each there: its INSERTs take minutes for a
// million rows on this machine, and Status never reads the entries).
// TMPDIR=/dev/shm keeps the disk's fsyncs out of the SQLite ledger's
// build (about a minute in all).
func BenchmarkStatus(b *testing.B) {
	ctx := context.Background()
	for _, engine := range []struct {
		name       string
		perAccount int
		open       func(b *testing.B) *Ledger
	}{
		{"sqlite", 100, func(b *testing.B) *Ledger { return openTest(b, filepath.Join(b.TempDir(), "status.db"), nil) }},
		{"postgres", 10, func(b *testing.B) *Ledger {
			srv := postgres.Start(b, postgres.Options{})
			l, err := Open(ctx, postgres.Database(b, srv), &Options{Password: srv.Password()})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { l.Close() })
			return l
		}},
	} {
		b.Run(engine.name, func(b *testing.B) {
			const accounts = 10000
			l := engine.open(b)
			statusLedger(b, l, accounts, engine.perAccount)
			for _, c := range []struct {
				name   string
				status func(context.Context, Selector) ([]AccountStatus, error)
			}{{"holders", l.Status}, {"without-holders", l.StatusWithoutHolders}} {
				b.Run(c.name, func(b *testing.B) {
					b.ReportAllocs()
					b.ResetTimer()
					cpu0 := cpuTime(b)
					for i := 0; i < b.N; i++ {
						st, err := c.status(ctx, Selector{All: true})
						if err != nil || len(st) != accounts || st[0].LastRun == nil || st[0].Counts[pipeline.StateDone].Messages != int64(engine.perAccount) {
							b.Fatalf("Status of every account: %d accounts, %v; want %d, each with its run and %d done", len(st), err, accounts, engine.perAccount)
						}
					}
					b.ReportMetric(float64(cpuTime(b)-cpu0)/1e6/float64(b.N), "cpu-ms/op")
				})
			}
		})
	}
}

// TestStatusManySkipping: with more than manySkipping accounts holding
// skipped entries, Status of every account counts their skip reasons in
// one read of all of them, and each account gets its own, as Status of
// the accounts one by one gives them.
func TestStatusManySkipping(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, "", nil)
	const accounts = manySkipping + 6
	for i := range accounts {
		id, h := held(t, l, fmt.Sprintf("user%04d", i))
		put := []pipeline.Entry{{Key: "done", State: pipeline.StateDone, Size: 7}, {Key: "failed", State: pipeline.StateFailed, Reason: "refused"}}
		for j := range i%3 + 1 {
			put = append(put, pipeline.Entry{Key: fmt.Sprintf("big%d", j), State: pipeline.StateSkipped, Reason: "too big"})
		}
		if i%2 == 0 {
			put = append(put, pipeline.Entry{Key: "nul", State: pipeline.StateSkipped, Reason: fmt.Sprintf("NUL byte in %d", i)})
		}
		if err := l.Commit(ctx, id, pipeline.Changes{Put: put}); err != nil {
			t.Fatal(err)
		}
		h.Release(ctx)
	}
	all, err := l.Status(ctx, Selector{All: true})
	if err != nil || len(all) != accounts {
		t.Fatalf("Status of every account: %d, %v; want %d", len(all), err, accounts)
	}
	for _, a := range all {
		one, err := l.Status(ctx, Selector{IDs: []pipeline.AccountID{a.ID}})
		if err != nil || len(one) != 1 {
			t.Fatalf("Status of account %d: %+v, %v", a.ID, one, err)
		}
		if fmt.Sprint(a.SkipReasons) != fmt.Sprint(one[0].SkipReasons) || len(a.SkipReasons) == 0 {
			t.Errorf("account %s: skip reasons %v among all, %v alone", a.Ident, a.SkipReasons, one[0].SkipReasons)
		}
	}
}

// TestStatusOfManyIDs: more ids than a lookup takes (`status -c` of a
// config of 10,000 accounts) are kept from the read of every account's
// row: Status gives those accounts, each with its own last run and
// counts, and not the others; ids naming no account give nothing. And
// LookupAccounts finds the accounts of as many specs.
func TestStatusOfManyIDs(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, "", nil)
	const accounts = pipeline.MaxLookup + 10
	var ids []pipeline.AccountID
	for i := range accounts {
		res, err := l.ResolveAccount(ctx, testSpec(fmt.Sprintf("user%04d", i)))
		if err != nil {
			t.Fatal(err)
		}
		run, err := l.StartRun(ctx, res.Account, time.Now())
		if err == nil {
			err = l.FinishRun(ctx, run, pipeline.RunRecord{Result: "ok", Copied: i})
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Account)
	}
	copied := map[pipeline.AccountID]int{}
	for i, id := range ids {
		copied[id] = i
	}
	// LookupAccounts of them all (from one read of the aliases) and of a
	// few (one lookup each) finds each, and 0 for one the ledger does
	// not know.
	var specs []AccountSpec
	for i := range accounts {
		specs = append(specs, testSpec(fmt.Sprintf("user%04d", i)))
	}
	specs = append(specs, testSpec("nobody"))
	for _, n := range []int{len(specs), 3} {
		got, err := l.LookupAccounts(ctx, specs[len(specs)-n:])
		if want := append(slices.Clone(ids[len(ids)-n+1:]), 0); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("LookupAccounts of %d specs: %v, %v; want %v", n, got, err, want)
		}
	}
	asked := append([]pipeline.AccountID{0, ids[3]}, ids[5:]...) // not ids[0:3] nor ids[4]
	asked = append(asked, 999999, ids[7])
	st, err := l.StatusWithoutHolders(ctx, Selector{IDs: asked})
	if err != nil || len(st) != accounts-4 {
		t.Fatalf("Status of %d ids: %d accounts, %v; want %d", len(asked), len(st), err, accounts-4)
	}
	for _, a := range st {
		if n, ok := copied[a.ID]; !ok || a.ID == ids[0] || a.ID == ids[4] || a.LastRun == nil || a.LastRun.Copied != n || a.LastOK == nil || a.LastOK.Copied != n {
			t.Errorf("account %d (%s): last run %+v, last ok %+v; want its own run of %d copied, and not accounts %v", a.ID, a.Ident, a.LastRun, a.LastOK, n,
				[]pipeline.AccountID{ids[0], ids[1], ids[2], ids[4]})
		}
	}
}
