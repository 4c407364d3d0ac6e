package imapsrc

import (
	"crypto/sha256"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// BenchmarkDovecotPrefetch reads 1,000 messages of about 10 KB from a real
// Dovecot through batched UID FETCHes, hashing each body as the pipeline
// does, over TLS and in clear text (as issue 18's side-by-side figures),
// and reports messages per second and allocations per message (the
// listing's included; go-imap's reader makes most of them).
func BenchmarkDovecotPrefetch(b *testing.B) {
	const n = 1000
	srv := dovecot.Start(b, dovecot.Options{Users: map[string]string{"alice": "s3cret"}})
	for i := range n {
		body := crlfMessage(fmt.Sprint("m", i), strings.Repeat(fmt.Sprintf("line %d of a benchmark message\r\n", i), 300))
		if err := srv.SeedMaildir("alice", "INBOX", []byte(body), "S", time.Date(2020, 1, 1, 0, 0, i, 0, time.UTC)); err != nil {
			b.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"tls", Options{Addr: srv.IMAPSAddr(), TLS: TLSImplicit, TLSConfig: srv.TLSConfig()}},
		{"plain", Options{Addr: srv.IMAPAddr(), TLS: TLSNone, AllowPlaintext: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			opts := tc.opts
			opts.User, opts.Password = "alice", secret.New("s3cret")
			var fetched int
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for b.Loop() {
				s, err := Open(b.Context(), opts)
				if err != nil {
					b.Fatal(err)
				}
				list, err := pipeline.ListAll(b.Context(), s)
				if err != nil || len(list) != n {
					b.Fatalf("List = %d messages, %v; want %d", len(list), err, n)
				}
				if err := s.Prefetch(b.Context(), list); err != nil {
					b.Fatal(err)
				}
				for _, m := range list {
					h := sha256.New()
					if _, err := s.Fetch(b.Context(), m, h); err != nil {
						b.Fatal(err)
					}
					_ = h.Sum(nil)
					fetched++
				}
				_ = s.Close(false)
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(fetched)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(fetched), "allocs/msg")
		})
	}
}
