package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// BenchmarkTrafficRealTime checks the rate limits against the wall clock,
// end to end against Dovecot, and prints the figures: a 20 MB copy under
// --bwlimit-write 2M (10 s expected), one under --bwlimit-read 4M (5 s)
// and 200 messages under --max-messages-per-second 20 (10 s). The tests
// assert the same limits on a virtual clock (TestE2ETrafficRates,
// TestE2EMessageRate); timing with the real clock belongs here, not in a
// test a loaded machine could fail. Run it with
//
//	go test ./cmd/mailferry -run XXX -bench TrafficRealTime -benchtime 1x
func BenchmarkTrafficRealTime(b *testing.B) {
	ca, err := dovecot.NewCA()
	if err != nil {
		b.Fatal(err)
	}
	p := &pair{dir: b.TempDir()}
	p.src = dovecot.Start(b, dovecot.Options{Name: "mf-bsrc", CA: ca, Users: map[string]string{"alice": srcPassword}})
	p.dst = dovecot.Start(b, dovecot.Options{Name: "mf-bdst", CA: ca, Users: map[string]string{"alice": dstPassword}})
	big, small := bigMessages(20, 1_000_000), simpleMessages(200)
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, m := range append(append([][]byte{}, big...), small...) {
		folder := "Big"
		if i >= len(big) {
			folder = "Small"
		}
		if err := p.src.SeedMaildir("alice", folder, m, "", base.Add(time.Duration(i)*time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	total := float64(totalSize(big))
	for _, bc := range []struct {
		name, folder string
		flags        []string
		want         time.Duration
	}{
		{"20MB written at 2MB/s", "Big", []string{"--bwlimit-write", "2M"}, time.Duration(total / 2e6 * float64(time.Second))},
		{"20MB read at 4MB/s", "Big", []string{"--bwlimit-read", "4M"}, time.Duration(total / 4e6 * float64(time.Second))},
		{"200 messages at 20/s", "Small", []string{"--max-messages-per-second", "20"}, 10 * time.Second},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				args := append([]string{"copy", "imaps://alice@" + p.src.IMAPSAddr() + "/" + bc.folder,
					p.dstURL() + "/" + fmt.Sprintf("Run%d", time.Now().UnixNano()), "--tls-ca", p.src.CAFile(),
					"--state", filepath.Join(b.TempDir(), "state.db"), "--json", "--progress", "none", "--create-folders"}, bc.flags...)
				var stdout, stderr bytes.Buffer
				start := time.Now()
				code := run(context.Background(), args, &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: p.getenv})
				took := time.Since(start)
				var rep report
				if code != exitOK || json.Unmarshal(stdout.Bytes(), &rep) != nil {
					b.Fatalf("exit %d\n%s", code, stderr.String())
				}
				dev := (took.Seconds() - bc.want.Seconds()) / bc.want.Seconds() * 100
				b.ReportMetric(took.Seconds(), "s/copy")
				b.ReportMetric(dev, "%off")
				b.Logf("%s: %d messages, %.1f MB in %v (the limit's time %v, %+.1f %%)", bc.name, rep.Totals.Copied,
					float64(rep.Totals.Bytes)/1e6, took.Round(time.Millisecond), bc.want.Round(time.Millisecond), dev)
			}
		})
	}
}
