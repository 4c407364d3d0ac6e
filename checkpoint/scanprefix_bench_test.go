package checkpoint

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// BenchmarkScanFolderPages is the sweep of an IMAP first run (pipeline's
// sweepScope): every done, skipped or failed entry of one folder read a
// page at a time, KeysOnly, by KeyPrefix and After, at two folder sizes;
// one op is the whole folder. cpu-ns/entry at 100,000 over that at 10,000
// is near 1 when each page seeks to After; it grew with the folder
// while each page read the folder from its start up to After.
func BenchmarkScanFolderPages(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprint("entries=", n), func(b *testing.B) {
			ctx := context.Background()
			l, res := heldBenchAccount(b)
			const prefix = "INBOX\x001700000000\x00"
			now := time.Now()
			for lo := 0; lo < n; lo += 1000 {
				var put []pipeline.Entry
				for i := lo; i < min(lo+1000, n); i++ {
					put = append(put, pipeline.Entry{Key: fmt.Sprint(prefix, i+1), State: pipeline.StateDone, Digest: fmt.Sprintf("%064x", i),
						Size: 3000, DestMailbox: "INBOX", DestUIDValidity: 1, DestUID: uint32(i + 1), Updated: now, DoneAt: now})
				}
				if err := l.Commit(ctx, res.Account, pipeline.Changes{Put: put}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for range b.N {
				q := pipeline.Query{KeyPrefix: prefix, KeysOnly: true,
					States: []pipeline.State{pipeline.StateDone, pipeline.StateSkipped, pipeline.StateFailed}}
				read := 0
				for {
					page, next, err := l.Scan(ctx, res.Account, q)
					if err != nil {
						b.Fatal(err)
					}
					read += len(page)
					if next == "" {
						break
					}
					q.After = next
				}
				if read != n {
					b.Fatalf("read %d entries of %d", read, n)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N*n), "cpu-ns/entry")
		})
	}
}
