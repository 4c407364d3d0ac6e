package checkpoint

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// heldBenchAccount is a new ledger with one account, "bench", held for
// the benchmark.
func heldBenchAccount(b *testing.B) (*Ledger, Resolution) {
	b.Helper()
	ctx := context.Background()
	l := openTest(b, "", nil)
	res, err := l.ResolveAccount(ctx, testSpec("bench"))
	if err != nil {
		b.Fatal(err)
	}
	h, err := l.Hold(ctx, res.Account)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Release(ctx) })
	return l, res
}

// benchLedger is a ledger of n done entries of one POP3 account, keyed
// like Dovecot's UIDLs.
func benchLedger(b *testing.B, n int) (*Ledger, pipeline.AccountID, func(int) string) {
	b.Helper()
	ctx := context.Background()
	l, res := heldBenchAccount(b)
	key := func(i int) string { return fmt.Sprintf("%08X%08X", i+1, 1700000000) }
	now := time.Now()
	for lo := 0; lo < n; lo += 1000 {
		var put []pipeline.Entry
		for i := lo; i < min(lo+1000, n); i++ {
			put = append(put, pipeline.Entry{Key: key(i), State: pipeline.StateDone, Digest: fmt.Sprintf("%064x", i), Size: int64(2000 + i%3000),
				MessageID: fmt.Sprintf("<%d@example.org>", i), DestMailbox: "INBOX", DestUIDValidity: 1, DestUID: uint32(i + 1),
				Updated: now, DoneAt: now})
		}
		if err := l.Commit(ctx, res.Account, pipeline.Changes{Put: put}); err != nil {
			b.Fatal(err)
		}
	}
	return l, res.Account, key
}

// BenchmarkLookup is a re-run's question for every key of a mailbox of
// 100,000 done messages, MaxLookup keys at a time, in the listing's order
// (ascending, as Dovecot's UIDLs are: read as one range per Lookup); one
// op is one key.
func BenchmarkLookup(b *testing.B) {
	const n = 100000
	l, id, key := benchLedger(b, n)
	ctx := context.Background()
	keys := make([]string, 0, pipeline.MaxLookup)
	b.ResetTimer()
	found := 0
	for i := 0; i < b.N; i++ {
		keys = append(keys, key(i%n))
		if len(keys) == pipeline.MaxLookup || i == b.N-1 {
			if err := l.Lookup(ctx, id, keys, func(pipeline.Entry) error { found++; return nil }); err != nil {
				b.Fatal(err)
			}
			keys = keys[:0]
		}
	}
	if found != b.N {
		b.Fatalf("found %d of %d", found, b.N)
	}
}

// BenchmarkLookupUnordered is BenchmarkLookup with keys in no order (UIDLs
// of servers that hash them): each key is a seek of the primary key, not
// part of one range.
func BenchmarkLookupUnordered(b *testing.B) {
	const n = 100000
	l, id, key := benchLedger(b, n)
	ctx := context.Background()
	keys := make([]string, 0, pipeline.MaxLookup)
	b.ResetTimer()
	found := 0
	for i := 0; i < b.N; i++ {
		keys = append(keys, key(i*7919%n)) // 7919 is prime: every key once per n
		if len(keys) == pipeline.MaxLookup || i == b.N-1 {
			if err := l.Lookup(ctx, id, keys, func(pipeline.Entry) error { found++; return nil }); err != nil {
				b.Fatal(err)
			}
			keys = keys[:0]
		}
	}
	if found != b.N {
		b.Fatalf("found %d of %d", found, b.N)
	}
}

// BenchmarkScanKeysOnly reads the same account a page of KeysOnly
// entries at a time; one op is one entry.
func BenchmarkScanKeysOnly(b *testing.B) {
	const n = 100000
	l, id, _ := benchLedger(b, n)
	ctx := context.Background()
	b.ResetTimer()
	read := 0
	q := pipeline.Query{KeysOnly: true}
	for read < b.N {
		page, next, err := l.Scan(ctx, id, q)
		if err != nil {
			b.Fatal(err)
		}
		read += len(page)
		q.After = next
	}
}

// BenchmarkCommit is one Commit of a typical batch of 50 entries, as the
// pipeline writes them: pending before the copy, then done after it, of
// one account on a SQLite ledger; one op is one Commit (issue 18: the
// statement preparation per Commit). TMPDIR=/dev/shm keeps the disk's
// fsyncs out of the figure; cpu-ns/op is the process's CPU time (user and
// system), which a loaded machine bends less than ns/op.
func BenchmarkCommit(b *testing.B) {
	const batch = 50
	l, id, key := benchLedger(b, 0)
	ctx := context.Background()
	put := make([]pipeline.Entry, batch)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for i := 0; i < b.N; i++ {
		n := i / 2
		for k := range put {
			put[k] = pipeline.Entry{Key: key(n*batch + k), State: pipeline.StatePending, Size: 1000, DestMailbox: "INBOX"}
			if i%2 == 1 {
				put[k].State, put[k].DestUIDValidity, put[k].DestUID = pipeline.StateDone, 1, uint32(n*batch+k+1)
				put[k].Digest = fmt.Sprintf("%064x", n*batch+k)
			}
		}
		if err := l.Commit(ctx, id, pipeline.Changes{Put: put}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time the process used so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCommitMixedSizes is the Commits of a run whose batches vary in
// size, as on *mixed* (a batch goes when it holds half the fetch budget,
// 15–54 messages there): each Commit writes one batch's pending entries
// and the last batch's outcome (the carry), so its row count differs from
// Commit to Commit; one op is one Commit (issue 18: a shape of upsert not
// kept prepared is prepared anew).
func BenchmarkCommitMixedSizes(b *testing.B) {
	l, id, key := benchLedger(b, 0)
	ctx := context.Background()
	size := func(i int) int { return 15 + (i*37)%40 }
	var carry []pipeline.Entry
	next := 0
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for i := 0; i < b.N; i++ {
		put := append([]pipeline.Entry{}, carry...)
		carry = carry[:0]
		for range size(i) {
			e := pipeline.Entry{Key: key(next), State: pipeline.StatePending, Size: 200000, DestMailbox: "INBOX"}
			put = append(put, e)
			e.State, e.DestUIDValidity, e.DestUID = pipeline.StateDone, 1, uint32(next+1)
			e.Digest = fmt.Sprintf("%064x", next)
			carry = append(carry, e)
			next++
		}
		if err := l.Commit(ctx, id, pipeline.Changes{Put: put}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkCommitCarry is the Commits of a run on *small* with the CLI's
// defaults: each writes one batch's 100 pending entries and the last
// batch's outcome (the carry: 100 entries done), with a Message-ID, a
// digest and flags as the pipeline writes them; one op is one message
// (two rows: its pending entry, then its done one). The CHECK constraints
// cost most of a row here (the ephemeral table of state IN (…)); cpu-ns/op
// is the process's CPU time per message.
func BenchmarkCommitCarry(b *testing.B) {
	const batch = 100
	l, id, key := benchLedger(b, 0)
	ctx := context.Background()
	now := time.Now()
	var carry []pipeline.Entry
	next := 0
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for done := 0; done < b.N; {
		put := append([]pipeline.Entry{}, carry...)
		done += len(carry)
		carry = carry[:0]
		for range batch {
			e := pipeline.Entry{Key: key(next), State: pipeline.StatePending, Size: 2000 + int64(next%18000),
				MessageID: fmt.Sprintf("<%d@example.org>", next), DestMailbox: "INBOX", DestUIDValidity: 1, DestUIDNext: uint32(next + 1)}
			put = append(put, e)
			e.State, e.DestUID, e.Updated, e.DoneAt = pipeline.StateDone, uint32(next+1), now, now
			e.Digest, e.Flags = fmt.Sprintf("%064x", next), []string{`\Seen`}
			carry = append(carry, e)
			next++
		}
		if err := l.Commit(ctx, id, pipeline.Changes{Put: put}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkAccountRerun is the ledger's part of an account's run with
// nothing new, as a fleet makes it for each of its accounts: resolve, hold,
// record the run, read the folders and the counts, write the source
// folder's record, finish the run (and prune), release. One op is one
// account's run; the accounts take turns (a fleet of 200).
func BenchmarkAccountRerun(b *testing.B) {
	ctx := context.Background()
	l := openTest(b, "", nil)
	const accounts = 200
	specs := make([]AccountSpec, accounts)
	for i := range specs {
		specs[i] = testSpec(fmt.Sprintf("user%03d", i))
	}
	run := func(spec AccountSpec) {
		res, err := l.ResolveAccount(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		h, err := l.Hold(ctx, res.Account)
		if err != nil {
			b.Fatal(err)
		}
		id, err := l.StartRun(ctx, res.Account, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.Folders(ctx, res.Account); err != nil {
			b.Fatal(err)
		}
		folder := pipeline.Folder{Side: pipeline.SourceSide, Name: "INBOX", UIDValidity: 7, UIDNext: 201, Messages: 200, SyncedAt: time.Now()}
		if err := l.Commit(ctx, res.Account, pipeline.Changes{Folders: []pipeline.Folder{folder}}); err != nil {
			b.Fatal(err)
		}
		if _, err := l.Counts(ctx, res.Account); err != nil {
			b.Fatal(err)
		}
		if err := l.FinishRun(ctx, id, pipeline.RunRecord{Finished: time.Now(), Result: "ok"}); err != nil {
			b.Fatal(err)
		}
		if err := h.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for _, s := range specs {
		run(s)
	}
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	i := 0
	for b.Loop() {
		run(specs[i%accounts])
		i++
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}
