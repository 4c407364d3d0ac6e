package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

func TestScan(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, "", nil)
	var all []pipeline.Entry
	for i := range 10 {
		e := fullEntry("alice", fmt.Sprintf("k%02d", i))
		if i%3 == 0 {
			e.State, e.Reason = pipeline.StateSkipped, "too big"
		}
		all = append(all, e)
	}
	mustPut(t, l, all...)
	mustPut(t, l, fullEntry("bob", "k00"))
	keys := func(opts ScanOptions) []string {
		t.Helper()
		var out []string
		err := l.Scan(ctx, "alice", opts, func(e pipeline.Entry) error {
			if e.Account != "alice" {
				t.Errorf("Scan gave an entry of %q", e.Account)
			}
			out = append(out, e.Key)
			return nil
		})
		if err != nil {
			t.Fatalf("Scan(%+v) = %v", opts, err)
		}
		return out
	}
	tests := []struct {
		name string
		opts ScanOptions
		want string
	}{
		{"all in key order", ScanOptions{}, "[k00 k01 k02 k03 k04 k05 k06 k07 k08 k09]"},
		{"skipped only", ScanOptions{States: []pipeline.State{pipeline.StateSkipped}}, "[k00 k03 k06 k09]"},
		{"page", ScanOptions{After: "k03", Limit: 3}, "[k04 k05 k06]"},
		{"skipped page", ScanOptions{States: []pipeline.State{pipeline.StateSkipped}, After: "k00", Limit: 2}, "[k03 k06]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(keys(tt.opts)); got != tt.want {
			t.Errorf("%s: Scan keys = %s, want %s", tt.name, got, tt.want)
		}
	}
	// Entries read by Scan are those Entries returns.
	byKey := mustEntries(t, l, "alice")
	if err := l.Scan(ctx, "alice", ScanOptions{}, func(e pipeline.Entry) error {
		sameEntry(t, e, byKey[e.Key])
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	n := 0
	if err := l.Scan(ctx, "alice", ScanOptions{}, func(pipeline.Entry) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("Scan with a failing fn = %v after %d entries, want the fn's error after 1", err, n)
	}
	if err := l.Scan(ctx, "alice", ScanOptions{States: []pipeline.State{0}}, func(pipeline.Entry) error { return nil }); !errors.Is(err, ErrInvalidEntry) {
		t.Errorf("Scan with state 0 = %v, want ErrInvalidEntry", err)
	}
}

func TestDoneHistory(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	l := openTest(t, "", nil)
	var es []pipeline.Entry
	for i, at := range []time.Duration{0, 10 * time.Second, 70 * time.Second, 200 * time.Second, -time.Hour} {
		e := fullEntry("alice", fmt.Sprintf("k%d", i))
		e.State, e.Size, e.Updated, e.DoneAt = pipeline.StateDone, 100, t0.Add(at), t0.Add(at)
		es = append(es, e)
	}
	skipped := fullEntry("bob", "s")
	skipped.State, skipped.Updated = pipeline.StateSkipped, t0
	mustPut(t, l, append(es, skipped)...)
	got, err := l.DoneHistory(ctx, t0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := []Throughput{{t0, 2, 200}, {t0.Add(time.Minute), 1, 100}, {t0.Add(3 * time.Minute), 1, 100}}
	if len(got) != len(want) {
		t.Fatalf("DoneHistory = %+v, want %+v", got, want)
	}
	for i := range got {
		if !got[i].Start.Equal(want[i].Start) || got[i].Messages != want[i].Messages || got[i].Bytes != want[i].Bytes {
			t.Errorf("DoneHistory[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := l.DoneHistory(ctx, t0, 0); err == nil {
		t.Error("DoneHistory with step 0 = nil error, want one")
	}
}

// BenchmarkScan200k reads an account of 200,000 entries through Scan and
// reports the live heap at its highest, sampled every 20,000 entries after
// a GC, next to what Entries holds for the same account: Scan's stays
// flat, whatever the account's size.
func BenchmarkScan200k(b *testing.B) {
	ctx := context.Background()
	l := openTest(b, "", nil)
	fillLedger(b, l, "alice", 200_000)
	b.ResetTimer()
	for range b.N {
		base := liveHeap()
		peak := uint64(0)
		n := 0
		if err := l.Scan(ctx, "alice", ScanOptions{}, func(pipeline.Entry) error {
			if n++; n%20_000 == 0 {
				peak = max(peak, liveHeap())
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(int64(peak)-int64(base))/1e6, "scan-heap-MB")
	}
	b.StopTimer()
	base := liveHeap()
	m := mustEntries(b, l, "alice")
	b.ReportMetric(float64(int64(liveHeap())-int64(base))/1e6, "entries-heap-MB")
	runtime.KeepAlive(m)
}

// fillLedger puts n done entries for account, 10,000 per transaction.
func fillLedger(t testing.TB, l *Ledger, account string, n int) {
	t.Helper()
	batch := make([]pipeline.Entry, 0, 10_000)
	for i := range n {
		e := fullEntry(account, fmt.Sprintf("INBOX\x001\x00%d", i+1))
		e.Size, e.DestUID = int64(1000+i%5000), uint32(i+1)
		batch = append(batch, e)
		if len(batch) == cap(batch) || i == n-1 {
			mustPut(t, l, batch...)
			batch = batch[:0]
		}
	}
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
