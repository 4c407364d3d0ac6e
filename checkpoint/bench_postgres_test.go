package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/postgres"
	"github.com/mailferry/mailferry/pipeline"
)

// Queue and ledger-write figures of the PostgreSQL engine beside SQLite's
// (issue 17's queue benchmark, rows only, no mail): go test ./checkpoint/
// -run '^$' -bench 'Claim|CommitBatch'. A private server (fsync off, as
// the test kit runs it): the figures are the engine's and the protocol's,
// not a disk's.

// BenchmarkClaim: 16 workers (each its own ledger and connections)
// claiming and releasing b.N queued accounts; reports claims per second.
func BenchmarkClaim(b *testing.B) {
	srv := postgres.Start(b, postgres.Options{})
	dbURL := postgres.Database(b, srv)
	ctx := context.Background()
	const workers = 16
	ls := make([]*Ledger, workers)
	for i := range ls {
		l, err := Open(ctx, dbURL, &Options{Password: srv.Password()})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		ls[i] = l
	}
	ids := make([]pipeline.AccountID, b.N)
	for i := range ids {
		res, err := ls[0].ResolveAccount(ctx, testSpec("user"+strconv.Itoa(i)))
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = res.Account
	}
	if _, err := ls[0].Enqueue(ctx, ids); err != nil {
		b.Fatal(err)
	}
	var claimed atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, h, err := l.Claim(ctx)
				if err != nil {
					return
				}
				claimed.Add(1)
				_ = h.Release(ctx)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if int(claimed.Load()) != b.N {
		b.Fatalf("claimed %d of %d", claimed.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
}

// BenchmarkCommitBatch: the exactly-once protocol's writes for batches of
// 50 messages (pending, then done), 4 accounts committing at once, on
// both engines; reports entries written per second.
func BenchmarkCommitBatch(b *testing.B) {
	srv := postgres.Start(b, postgres.Options{})
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			ctx := context.Background()
			var l *Ledger
			var err error
			if engine == "sqlite" {
				l, err = Open(ctx, filepath.Join(b.TempDir(), "ledger.db"), nil)
			} else {
				l, err = Open(ctx, postgres.Database(b, srv), &Options{Password: srv.Password()})
			}
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			const accounts, batch = 4, 50
			var holds []pipeline.AccountID
			for i := range accounts {
				id, _ := held(b, l, "user"+strconv.Itoa(i))
				holds = append(holds, id)
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			per := (b.N + accounts - 1) / accounts
			for _, id := range holds {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := range per {
						put := make([]pipeline.Entry, batch)
						for k := range put {
							put[k] = pipeline.Entry{Key: fmt.Sprintf("%08d-%03d", n, k), State: pipeline.StatePending, Size: 1000, DestMailbox: "INBOX"}
						}
						if err := l.Commit(ctx, id, pipeline.Changes{Put: put}); err != nil {
							b.Error(err)
							return
						}
						for k := range put {
							put[k].State, put[k].DestUID = pipeline.StateDone, uint32(n*batch+k+1)
						}
						if err := l.Commit(ctx, id, pipeline.Changes{Put: put}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(per*accounts*batch*2)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkQueue: issue 17's queue figures. 100,000 accounts queued
// (MAILFERRY_QUEUE_ACCOUNTS to change it), 16 workers each with its own
// ledger and connections taking the next account, recording one batch of
// 5 messages for it (a pending commit, then a done commit: the protocol's
// two writes, rows only, no mail) and giving it back, until none is left.
// PostgreSQL: Claim from the queue (FOR UPDATE SKIP LOCKED), the lease's
// release. SQLite has no queue: the workers share one ledger file and take
// the accounts in turn with Hold (the account's lock file) instead. It
// prints and reports claims per second and ledger writes (Commit
// transactions) per second. Run it once:
//
//	go test ./checkpoint/ -run '^$' -bench Queue -benchtime 1x -timeout 60m
//
// The SQLite file is put on /dev/shm when it exists and the PostgreSQL
// server runs with fsync off (as the test kit runs it): neither figure is
// a disk's.
func BenchmarkQueue(b *testing.B) {
	n := 100_000
	if s := os.Getenv("MAILFERRY_QUEUE_ACCOUNTS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("MAILFERRY_QUEUE_ACCOUNTS=%q: want a positive number", s)
		}
		n = v
	}
	const workers, batch = 16, 5
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			for range b.N {
				ctx := context.Background()
				ls := make([]*Ledger, workers)
				if engine == "postgres" {
					srv := postgres.Start(b, postgres.Options{})
					dbURL := postgres.Database(b, srv)
					for i := range ls {
						l, err := Open(ctx, dbURL, &Options{Password: srv.Password()})
						if err != nil {
							b.Fatal(err)
						}
						defer l.Close()
						ls[i] = l
					}
				} else {
					dir := b.TempDir()
					if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
						if dir, err = os.MkdirTemp("/dev/shm", "mailferry-bench-"); err != nil {
							b.Fatal(err)
						}
						defer os.RemoveAll(dir)
					}
					l, err := Open(ctx, filepath.Join(dir, "ledger.db"), nil)
					if err != nil {
						b.Fatal(err)
					}
					defer l.Close()
					for i := range ls {
						ls[i] = l
					}
				}
				ids := benchAccounts(b, ls[0], n)
				if engine == "postgres" {
					if _, err := ls[0].Enqueue(ctx, ids); err != nil {
						b.Fatal(err)
					}
				}
				var next, claims, writes atomic.Int64
				// take returns the worker's next account and its hold.
				take := func(l *Ledger) (pipeline.AccountID, pipeline.Hold, bool) {
					if engine == "postgres" {
						id, h, err := l.Claim(ctx)
						if errors.Is(err, ErrNothingToClaim) {
							return 0, nil, false
						}
						if err != nil {
							b.Error(err)
							return 0, nil, false
						}
						return id, h, true
					}
					i := next.Add(1) - 1
					if i >= int64(len(ids)) {
						return 0, nil, false
					}
					h, err := l.Hold(ctx, ids[i])
					if err != nil {
						b.Error(err)
						return 0, nil, false
					}
					return ids[i], h, true
				}
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for _, l := range ls {
					wg.Add(1)
					go func() {
						defer wg.Done()
						put := make([]pipeline.Entry, batch)
						for {
							id, h, ok := take(l)
							if !ok {
								return
							}
							claims.Add(1)
							for k := range put {
								put[k] = pipeline.Entry{Key: "m" + strconv.Itoa(k), State: pipeline.StatePending, Size: 1000, DestMailbox: "INBOX"}
							}
							err := l.Commit(ctx, id, pipeline.Changes{Put: put})
							if err == nil {
								for k := range put {
									put[k].State, put[k].DestUID = pipeline.StateDone, uint32(k+1)
								}
								err = l.Commit(ctx, id, pipeline.Changes{Put: put})
							}
							if err != nil {
								b.Error(err)
								_ = h.Release(ctx)
								return
							}
							writes.Add(2)
							if err := h.Release(ctx); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				took := time.Since(start)
				b.StopTimer()
				if int(claims.Load()) != n {
					b.Fatalf("%d accounts taken of %d", claims.Load(), n)
				}
				cps, wps := float64(n)/took.Seconds(), float64(writes.Load())/took.Seconds()
				b.ReportMetric(cps, "claims/s")
				b.ReportMetric(wps, "writes/s")
				fmt.Printf("queue bench, %s: %d accounts, %d workers, %v: %.0f claims/s, %.0f ledger writes/s (%.0f entries/s)\n",
					engine, n, workers, took.Round(time.Millisecond), cps, wps, wps*batch)
			}
		})
	}
}

// benchAccounts adds n accounts to l in a few statements (ResolveAccount
// one by one would take longer than the benchmark) and returns their ids.
func benchAccounts(b *testing.B, l *Ledger, n int) []pipeline.AccountID {
	b.Helper()
	ctx := context.Background()
	var q string
	if l.pg != nil {
		q = `INSERT INTO accounts (ident, src_proto, src_user, dst_user, key_scheme)
			SELECT 'bench' || g, 'pop3', 'u' || g, 'u' || g, 'pop3' FROM generate_series(1, $1) AS g`
	} else {
		q = `INSERT INTO accounts (ident, src_proto, src_user, dst_user, key_scheme)
			WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < ?)
			SELECT 'bench' || x, 'pop3', 'u' || x, 'u' || x, 'pop3' FROM g`
	}
	if _, err := l.w.ExecContext(ctx, q, n); err != nil {
		b.Fatal(err)
	}
	rows, err := l.r.QueryContext(ctx, `SELECT id FROM accounts ORDER BY id`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	ids := make([]pipeline.AccountID, 0, n)
	for rows.Next() {
		var id pipeline.AccountID
		if err := rows.Scan(&id); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return ids
}
