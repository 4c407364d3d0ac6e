package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/fakeclock"
)

// The traffic tests run mailferry in-process with a virtual clock
// (fakeclock): a wait of the rate limits moves the clock instead of
// sleeping, so the time a limited copy takes is a property of the run the
// test can assert exactly, in a second of real time. The release binary
// has no way to be given another clock (env.clock is set by tests only).

// runClocked runs mailferry in-process with clock as the traffic clock.
func runClocked(t *testing.T, getenv func(string) string, clock *fakeclock.Clock, args ...string) runResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: getenv, clock: clock})
	r := runResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
	if strings.Contains(strings.Join(args, " "), "--json") && stdout.Len() > 0 {
		if err := json.Unmarshal(stdout.Bytes(), &r.report); err != nil {
			t.Fatalf("the --json report does not parse: %v\n%s", err, stdout.String())
		}
	}
	return r
}

// bigMessages makes n distinct messages of about size bytes each.
func bigMessages(n, size int) [][]byte {
	line := strings.Repeat("abcdefghij", 7) + "\r\n"
	var out [][]byte
	for i := 0; i < n; i++ {
		var b bytes.Buffer
		fmt.Fprintf(&b, "Message-ID: <big-%d@example.test>\r\nFrom: a@example.test\r\nSubject: big %d\r\n\r\n", i, i)
		for b.Len() < size {
			b.WriteString(line)
		}
		out = append(out, b.Bytes())
	}
	return out
}

func totalSize(msgs [][]byte) int {
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	return n
}

// trafficConfig is a run config for p's alice, her mail going to folder,
// with extra top-level keys and extra account keys.
func trafficConfig(t *testing.T, p *pair, state, folder, top, acct string) string {
	t.Helper()
	doc := fmt.Sprintf(`state = %q
%s
[source]
url = "pop3s://%s"
tls_ca = %q
[destination]
url = "imaps://%s"
tls_ca = %q
[[account]]
source_user = "alice"
source_password_command = "echo %s"
dest_password_command = "echo %s"
dest_folder = %q
%s
`, state, top, p.src.POP3SAddr(), p.src.CAFile(), p.dst.IMAPSAddr(), p.src.CAFile(), srcPassword, dstPassword, folder, acct)
	path := filepath.Join(t.TempDir(), "migrate.toml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var monday0800 = time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC) // a Monday

// TestE2ETrafficRates: a 20 MB copy under a bandwidth limit takes the
// limit's time within 5 % (2 MB/s written: 10 s), through every way of
// setting it: copy's flags, an account's key, the run's keys and flags.
// The time is the virtual clock's: only the limiter moves it.
func TestE2ETrafficRates(t *testing.T) {
	p := startPair(t)
	msgs := bigMessages(20, 1_000_000)
	seed(t, p, msgs)
	served := sourceServed(t, p)
	total := float64(totalSize(served))
	tests := []struct {
		name string
		args func(state, folder string) []string
		rate float64
	}{
		{"copy --bwlimit-write 2M", func(state, folder string) []string {
			return []string{"copy", p.srcURL(), p.dstURL() + "/" + folder, "--tls-ca", p.src.CAFile(), "--state", state, "--json", "--progress", "none", "--bwlimit-write", "2M"}
		}, 2e6},
		{"copy --bwlimit-read 4MB", func(state, folder string) []string {
			return []string{"copy", p.srcURL(), p.dstURL() + "/" + folder, "--tls-ca", p.src.CAFile(), "--state", state, "--json", "--progress", "none", "--bwlimit-read", "4MB"}
		}, 4e6},
		{"account's bwlimit_write under a wider top level", func(state, folder string) []string {
			return []string{"run", "-c", trafficConfig(t, p, state, folder, `bwlimit_write = "10M"`, `bwlimit_write = "2M"`), "--json", "--progress", "none"}
		}, 2e6},
		{"bwlimit_write_total", func(state, folder string) []string {
			return []string{"run", "-c", trafficConfig(t, p, state, folder, `bwlimit_write_total = "2M"`, ""), "--json", "--progress", "none"}
		}, 2e6},
		{"bwlimit_read_total and --bwlimit-read-total", func(state, folder string) []string {
			return []string{"run", "-c", trafficConfig(t, p, state, folder, `bwlimit_read_total = "1M"`, ""), "--json", "--progress", "none", "--bwlimit-read-total", "4M"}
		}, 4e6},
		{"--bwlimit-write-total over an unlimited config", func(state, folder string) []string {
			return []string{"run", "-c", trafficConfig(t, p, state, folder, `bwlimit_write_total = "off"`, ""), "--json", "--progress", "none", "--bwlimit-write-total", "5M"}
		}, 5e6},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := fakeclock.New(monday0800)
			folder := fmt.Sprintf("Rate%d", i)
			r := runClocked(t, p.getenv, clock, tt.args(filepath.Join(t.TempDir(), "state.db"), folder)...)
			if r.code != exitOK || r.report.Totals.Copied != 20 {
				t.Fatalf("exit %d, copied %d\n%s", r.code, r.report.Totals.Copied, r.stderr)
			}
			got := clock.Now().Sub(monday0800)
			want := time.Duration(total / tt.rate * float64(time.Second))
			if got < want*95/100 || got > want*105/100 {
				t.Errorf("copying %.1f MB took %v of the clock, want %v ± 5 %%", total/1e6, got, want)
			}
			t.Logf("%.1f MB at %.0f B/s: %v of the clock (%v expected)", total/1e6, tt.rate, got, want)
			assertSameMultiset(t, served, destBodies(destMessages(t, p, folder)))
		})
	}
}

// TestE2EMessageRate: under --max-messages-per-second 5, 400 messages take
// 80 s of the clock, and no minute holds more than 300 and the bucket's
// one message.
func TestE2EMessageRate(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(400))
	served := sourceServed(t, p)
	clock := fakeclock.New(monday0800)
	var mu sync.Mutex
	var times []time.Time
	clock.OnWait(func(now time.Time) {
		mu.Lock()
		times = append(times, now)
		mu.Unlock()
	})
	r := runClocked(t, p.getenv, clock, p.copyArgs("--max-messages-per-second", "5")...)
	if r.code != exitOK || r.report.Totals.Copied != 400 {
		t.Fatalf("exit %d, copied %d\n%s", r.code, r.report.Totals.Copied, r.stderr)
	}
	// Each message after the first waited for its turn.
	if len(times) != 399 {
		t.Fatalf("%d waits for 400 messages, want 399", len(times))
	}
	elapsed := clock.Now().Sub(monday0800)
	if elapsed < 76*time.Second || elapsed > 84*time.Second {
		t.Errorf("400 messages at 5/s took %v of the clock, want 80 s ± 5 %%", elapsed)
	}
	for i := range times {
		n := 1 // the message admitted at times[i]
		for j := i + 1; j < len(times) && times[j].Sub(times[i]) < time.Minute; j++ {
			n++
		}
		if n > 300+1 {
			t.Fatalf("%d messages in the minute from %v, want at most 301", n, times[i].Sub(monday0800))
		}
	}
	assertSameMultiset(t, served, destBodies(destMessages(t, p, "INBOX")))
}
