package checkpoint

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

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
