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
	"github.com/mailferry/mailferry/internal/testkit/faultproxy"
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
create_folders = true
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
			return []string{"copy", p.srcURL(), p.dstURL() + "/" + folder, "--tls-ca", p.src.CAFile(), "--state", state, "--json", "--progress", "none", "--bwlimit-write", "2M", "--create-folders"}
		}, 2e6},
		{"copy --bwlimit-read 4MB", func(state, folder string) []string {
			return []string{"copy", p.srcURL(), p.dstURL() + "/" + folder, "--tls-ca", p.src.CAFile(), "--state", state, "--json", "--progress", "none", "--bwlimit-read", "4MB", "--create-folders"}
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

// TestE2EScheduleLive: a timetable of the message rate switches during a
// run from off to 2 messages a second and then to pause: the limit
// applies from its minute on, the pause ends the attempt after what is in
// flight (the sessions close), the run waits for the pause to end and goes
// on with new sessions, and the copy finishes exact. The source is slowed
// at a proxy so that the run lasts long enough for the test to move the
// clock to the limit's minute while it goes on; the limit's waits move the
// clock on to the pause, and the pause's wait to its end.
func TestE2EScheduleLive(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(300))
	served := sourceServed(t, p)
	total := int64(totalSize(served))
	proxy := startProxy(t, p.src.POP3SAddr())
	if err := proxy.SetPlan(faultproxy.Plan{Faults: []faultproxy.Fault{{Kind: faultproxy.Slow, Dir: faultproxy.ServerToClient, BytesPerSecond: 120_000}}}); err != nil {
		t.Fatal(err)
	}
	start := monday0800.Add(30 * time.Second)
	clock := fakeclock.New(start)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if down, _ := proxy.Traffic(); down >= total/4 {
				clock.Set(monday0800.Add(time.Minute)) // 08:01: the limit begins
				return
			}
		}
	}()
	r := runClocked(t, p.getenv, clock, "copy", "pop3s://alice@"+proxy.Addr(), p.dstURL(), "--tls-ca", p.src.CAFile(),
		"--state", p.state, "--json", "--progress", "none", "--batch-messages", "10",
		"--max-messages-per-second", "Mon 08:01,2 08:02,pause 08:03,off", "--timezone", "UTC")
	close(done)
	if r.code != exitOK || r.report.Totals.Copied != 300 {
		t.Fatalf("exit %d, copied %d\n%s", r.code, r.report.Totals.Copied, r.stderr)
	}
	a := r.report.Accounts[0]
	if a.Pauses != 1 || a.PausedUntil != nil {
		t.Errorf("pauses %d, paused until %v; want one pause the run waited out", a.Pauses, a.PausedUntil)
	}
	// The log tells the story in order.
	steps := []string{
		`msg="traffic limit changed" limit=max_messages_per_second for="pop3://alice@`, /* from off */
		`to="2 msg/s"`,
		`to=pause`,
		`msg="account paused; its sessions are closed until it goes on"`,
		`msg="paused by the schedule; sessions closed"`,
		`from=pause to=off`,
	}
	rest := r.stderr
	for _, s := range steps {
		i := strings.Index(rest, s)
		if i < 0 {
			t.Fatalf("the log lacks %q (in order):\n%s", s, r.stderr)
		}
		rest = rest[i+len(s):]
	}
	if n := proxy.Conns(); n < 2 {
		t.Errorf("%d source connections: the pause did not close the sessions", n)
	}
	// Nothing waited after the pause: the clock stands at its end.
	if got, want := clock.Now(), monday0800.Add(3*time.Minute); !got.Equal(want) {
		t.Errorf("the clock ends at %v, want %v", got, want)
	}
	assertSameMultiset(t, served, destBodies(destMessages(t, p, "INBOX")))
}

// TestE2EDailyQuota: a daily quota of 1 MB written pauses the account when
// reached, without failing the run (exit 0); the report, the summary and
// status say until when; a second run the same day copies nothing and
// still says so; the next day's run goes on, and so on until the copy is
// complete and exact.
func TestE2EDailyQuota(t *testing.T) {
	p := startPair(t)
	seed(t, p, bigMessages(30, 100_000))
	served := sourceServed(t, p)
	// A day still to come in real time, so that status (which reads the
	// real clock) sees the pause as current.
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(24*time.Hour + 10*time.Hour)
	clock := fakeclock.New(day)
	args := p.copyArgs("--max-bytes-per-day-write", "1MB", "--batch-messages", "2", "--dest-sessions", "1", "--timezone", "UTC")
	copied := 0
	for d := 0; copied < 30; d++ {
		if d > 6 {
			t.Fatalf("after %d days %d of 30 copied", d, copied)
		}
		midnight := day.Truncate(24 * time.Hour).Add(time.Duration(d+1) * 24 * time.Hour)
		r := runClocked(t, p.getenv, clock, args...)
		if r.code != exitOK {
			t.Fatalf("day %d: exit %d, want 0 (a paused account is no failure)\n%s", d, r.code, r.stderr)
		}
		a := r.report.Accounts[0]
		copied += a.Copied
		if a.Bytes > 1_000_000 || a.Failed != 0 || a.Error != "" {
			t.Fatalf("day %d: %d bytes written, %d failed, error %q; want at most 1 MB and no failure", d, a.Bytes, a.Failed, a.Error)
		}
		if copied < 30 {
			if a.PausedUntil == nil || !a.PausedUntil.Equal(midnight) || a.Waiting != 30-copied || !strings.Contains(a.PausedReason, "daily quota of 1 MB written reached") {
				t.Fatalf("day %d: paused until %v (%q), waiting %d; want until %v with %d waiting", d, a.PausedUntil, a.PausedReason, a.Waiting, midnight, 30-copied)
			}
			// The same day again: nothing moves, the pause holds.
			again := runClocked(t, p.getenv, clock, args...)
			if b := again.report.Accounts[0]; again.code != exitOK || b.Copied != 0 || b.PausedUntil == nil || !b.PausedUntil.Equal(midnight) {
				t.Fatalf("day %d, second run: exit %d, copied %d, paused until %v\n%s", d, again.code, b.Copied, b.PausedUntil, again.stderr)
			}
			text := runClocked(t, p.getenv, clock, "copy", p.srcURL(), p.dstURL(), "--tls-ca", p.src.CAFile(), "--state", p.state,
				"--progress", "none", "--max-bytes-per-day-write", "1MB", "--timezone", "UTC")
			if want := "paused until " + midnight.Local().Format("2006-01-02 15:04"); !strings.Contains(text.stdout, want) {
				t.Errorf("the summary does not say %q:\n%s", want, text.stdout)
			}
			st := runInProcess(t, p.getenv, "status", "--state", p.state, "--json")
			var rep statusReport
			if err := json.Unmarshal([]byte(st.stdout), &rep); err != nil || len(rep.Accounts) != 1 {
				t.Fatalf("status: %v\n%s", err, st.stdout)
			}
			if sa := rep.Accounts[0]; sa.PausedUntil == nil || !sa.PausedUntil.Equal(midnight) || !strings.Contains(sa.PausedReason, "daily quota") || sa.LastError != nil {
				t.Errorf("status: paused until %v (%q), last error %v; want until %v and no error", sa.PausedUntil, sa.PausedReason, sa.LastError, midnight)
			}
			st = runInProcess(t, p.getenv, "status", "--state", p.state)
			if !strings.Contains(st.stdout, "paused until "+midnight.Local().Format("2006-01-02 15:04")) {
				t.Errorf("status does not say when the account goes on:\n%s", st.stdout)
			}
		}
		clock.Set(midnight.Add(time.Minute))
	}
	assertSameMultiset(t, served, destBodies(destMessages(t, p, "INBOX")))
}

// TestE2EDailyQuotaAcrossRuns: a daily quota counts what earlier runs of
// the same day moved (the ledger's usage), not only what this run moves:
// a run that ended without reaching the quota leaves the next run of the
// day only the rest of it; the next day starts afresh.
func TestE2EDailyQuotaAcrossRuns(t *testing.T) {
	p := startPair(t)
	msgs := bigMessages(12, 100_000)
	seed(t, p, msgs[:6])
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(24*time.Hour + 10*time.Hour)
	clock := fakeclock.New(day)
	midnight := day.Truncate(24 * time.Hour).Add(24 * time.Hour)
	args := p.copyArgs("--max-bytes-per-day-write", "1MB", "--batch-messages", "2", "--dest-sessions", "1", "--timezone", "UTC")

	first := runClocked(t, p.getenv, clock, args...)
	if a := first.report.Accounts[0]; first.code != exitOK || a.Copied != 6 || a.PausedUntil != nil {
		t.Fatalf("first run: exit %d, copied %d, paused until %v; want 6 copied under the quota\n%s", first.code, a.Copied, a.PausedUntil, first.stderr)
	}
	// Six more, the same day: 600 kB were written already, so about
	// 400 kB are left of the day's 1 MB, not a fresh 1 MB.
	for i, m := range msgs[6:] {
		if err := p.src.SeedMaildir("alice", "INBOX", m, "", time.Date(2021, 1, 1, 0, i, 0, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
	}
	clock.Set(day.Add(time.Hour))
	second := runClocked(t, p.getenv, clock, args...)
	a1, a2 := first.report.Accounts[0], second.report.Accounts[0]
	if second.code != exitOK || a2.Copied >= 6 || a2.PausedUntil == nil || !a2.PausedUntil.Equal(midnight) {
		t.Fatalf("second run the same day: exit %d, copied %d, paused until %v; want fewer than 6 copied and a pause until %v\n%s",
			second.code, a2.Copied, a2.PausedUntil, midnight, second.stderr)
	}
	if a1.Bytes+a2.Bytes > 1_000_000 {
		t.Errorf("the two runs of one day wrote %d + %d bytes under a daily quota of 1 MB", a1.Bytes, a2.Bytes)
	}
	// The next day: the rest.
	clock.Set(midnight.Add(time.Minute))
	third := runClocked(t, p.getenv, clock, args...)
	if a3 := third.report.Accounts[0]; third.code != exitOK || a2.Copied+a3.Copied != 6 || a3.PausedUntil != nil {
		t.Fatalf("next day: exit %d, copied %d (%d the day before), paused until %v; want the remaining %d\n%s",
			third.code, a3.Copied, a2.Copied, a3.PausedUntil, 6-a2.Copied, third.stderr)
	}
	assertSameMultiset(t, msgs, destBodies(destMessages(t, p, "INBOX")))
}

// TestTrafficBadInput: a malformed rate, timetable, quota or zone is a
// usage error (exit 2) naming where it is wrong, before anything connects:
// the character of a flag's value, the line and column of a config key.
func TestTrafficBadInput(t *testing.T) {
	getenv := func(string) string { return "" }
	state := filepath.Join(t.TempDir(), "state.db")
	copyArgs := func(extra ...string) []string {
		return append([]string{"copy", "pop3s://alice@127.0.0.1:1", "imaps://alice@127.0.0.1:2", "--state", state, "--progress", "none"}, extra...)
	}
	cfg := func(line string) string {
		path := filepath.Join(t.TempDir(), "migrate.toml")
		doc := line + "\n[source]\nurl = \"pop3s://127.0.0.1:1\"\n[destination]\nurl = \"imaps://127.0.0.1:2\"\n[[account]]\nsource_user = \"a\"\nsource_password = \"x\"\ndest_password = \"y\"\n"
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad unit in a flag", copyArgs("--bwlimit-write", "Mon-Fri 08:00,2X"), `--bwlimit-write "Mon-Fri 08:00,2X": at character 16: unknown unit "x"`},
		{"bad time in a flag", copyArgs("--bwlimit-read", "Mon-Fri 8:00,1M 24:00,off"), `at character 17: "24:00" is not a time of day`},
		{"bad day in a flag", copyArgs("--max-messages-per-second", "Mon-Fry 08:00,5"), `at character 5: "Fry" is not a day`},
		{"rate with a unit for messages", copyArgs("--max-messages-per-second", "5M"), `at character 2: "5M" is not a number of messages per second`},
		{"pause at all times", copyArgs("--bwlimit-write", "pause"), "pause at all times"},
		{"bad quota", copyArgs("--max-bytes-per-day", "lots"), `--max-bytes-per-day: invalid size "lots"`},
		{"bad zone", copyArgs("--timezone", "Mars/Olympus"), `--timezone: unknown time zone "Mars/Olympus"`},
		{"negative cap", copyArgs("--max-connections-per-user", "-1"), "must not be negative"},
		{"bad total flag", []string{"run", "-c", cfg(""), "--bwlimit-write-total", "08:00,1M 08:00,2M"}, `at character 10: Mon 08:00 is set twice`},
		{"bad timetable key", []string{"run", "-c", cfg(`bwlimit_write = "Mon-Fri 08:00,2M 18:00,of"`)}, `migrate.toml:1:41: bwlimit_write = "Mon-Fri 08:00,2M 18:00,of": at character 24: "of" is not a rate`},
		{"bad key in config check", []string{"config", "check", "-c", cfg(`max_messages_per_second_total = "Sat-Sun 10:00"`)}, `migrate.toml:1:47: max_messages_per_second_total = "Sat-Sun 10:00": at character 14: "10:00": a time needs a value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runInProcess(t, getenv, tt.args...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d\n%s", r.code, exitUsage, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, r.stderr)
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer for several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestE2EServiceTraffic: in service mode (run --every) the timetables and
// the daily quota hold across polls: a pause at the service's start is
// waited out before anything connects; a quota reached pauses the account
// until midnight, the polls until then copy nothing, and the first poll of
// the next day goes on.
func TestE2EServiceTraffic(t *testing.T) {
	p := startPair(t)
	seed(t, p, bigMessages(20, 100_000))
	served := sourceServed(t, p)
	state := filepath.Join(t.TempDir(), "state.db")
	cfg := trafficConfig(t, p, state, "INBOX", `every = "1s"
timezone = "UTC"
bwlimit_write = "Mon 10:00,pause 11:00,off"
max_bytes_per_day_write = "300KB"`, "")
	cfgText, _ := os.ReadFile(cfg)
	cfgText = bytes.Replace(cfgText, []byte("[destination]\n"), []byte("[destination]\nsessions = 1\nbatch_messages = 1\n"), 1)
	if err := os.WriteFile(cfg, cfgText, 0o600); err != nil {
		t.Fatal(err)
	}
	clock := fakeclock.New(monday0800.Add(2*time.Hour + 30*time.Minute)) // Monday 10:30: paused
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"run", "-c", cfg, "--progress", "none"},
			&env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: p.getenv, clock: clock})
	}()
	count := func() int { return len(destMessages(t, p, "INBOX")) }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30 s\n%s", what, stderr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	quota := `msg="account paused until the next quota window; the run goes on with the others"`
	waitFor("the first poll reaching the quota", func() bool { return strings.Contains(stderr.String(), quota) })
	log := stderr.String()
	if i, j := strings.Index(log, `msg="paused by the schedule; sessions closed"`), strings.Index(log, `msg="account listed"`); i < 0 || j < i {
		t.Fatalf("the schedule's pause was not waited out before the first poll listed the source:\n%s", log)
	}
	if got := clock.Now(); got.Before(monday0800.Add(3 * time.Hour)) {
		t.Errorf("the clock is at %v: the pause until 11:00 was not waited for", got)
	}
	first := count()
	if first < 2 || first > 4 {
		t.Fatalf("%d messages copied under a quota of 300 KB of 100 KB messages, want 2 to 4", first)
	}
	polls := strings.Count(stderr.String(), quota)
	waitFor("two more polls", func() bool { return strings.Count(stderr.String(), quota) >= polls+2 })
	if n := count(); n != first {
		t.Fatalf("polls on a day whose quota is reached copied %d more messages", n-first)
	}
	clock.Set(monday0800.Add(16*time.Hour + time.Minute)) // Tuesday 00:01
	waitFor("the next day's poll copying more", func() bool { return count() > first })
	cancel()
	select {
	case code := <-exited:
		if code != exitOK {
			t.Errorf("the service exited %d, want 0\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the service did not stop")
	}
	// The rest, in the days after, by single runs.
	for d := 2; d < 12 && count() < 20; d++ {
		clock.Set(monday0800.Add(time.Duration(d)*24*time.Hour - 8*time.Hour + time.Minute))
		if r := runClocked(t, p.getenv, clock, "run", "-c", cfg, "--every", "0", "--json", "--progress", "none"); r.code != exitOK {
			t.Fatalf("day %d: exit %d\n%s", d, r.code, r.stderr)
		}
	}
	assertSameMultiset(t, served, destBodies(destMessages(t, p, "INBOX")))
}
