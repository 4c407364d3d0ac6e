package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/faultproxy"
)

// service is a `mailferry run --every` subprocess with JSON logs.
type service struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []map[string]any
	stderr bytes.Buffer
	exited chan int
}

func startService(t *testing.T, args ...string) *service {
	t.Helper()
	s := &service{t: t, exited: make(chan int, 1)}
	s.cmd = exec.Command(os.Args[0], append(args, "--log-format", "json", "-v")...)
	s.cmd.Env = append(os.Environ(), "MAILFERRY_E2E_AS_MAIN=1", "T_SRC_PW="+srcPassword, "T_DST_PW="+dstPassword)
	pr, pw := io.Pipe()
	s.cmd.Stderr = pw
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var m map[string]any
			s.mu.Lock()
			s.stderr.WriteString(sc.Text() + "\n")
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				s.lines = append(s.lines, m)
			}
			s.mu.Unlock()
		}
	}()
	go func() {
		err := s.cmd.Wait()
		pw.Close()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		s.exited <- code
	}()
	t.Cleanup(func() { _ = s.cmd.Process.Kill() })
	return s
}

// logs returns the log lines with message msg (and account, when set).
func (s *service) logs(msg, account string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range s.lines {
		if l["msg"] == msg && (account == "" || l["account"] == account) {
			out = append(out, l)
		}
	}
	return out
}

// servicePoll is a successful poll, from its log line.
type servicePoll struct {
	started, ended time.Time
	copied         int
}

// polls returns account's successful polls, in the order they ended.
func (s *service) polls(account string) []servicePoll {
	s.t.Helper()
	var out []servicePoll
	for _, l := range s.logs("poll", account) {
		ended := logTime(s.t, l)
		c, _ := l["copied"].(float64)
		out = append(out, servicePoll{started: ended.Add(-logDuration(s.t, l, "duration")), ended: ended, copied: int(c)})
	}
	return out
}

// copiedIn is how many messages polls copied in all.
func copiedIn(polls []servicePoll) int {
	n := 0
	for _, pl := range polls {
		n += pl.copied
	}
	return n
}

// waitFor polls cond until it holds or the time is up.
func (s *service) waitFor(what string, within time.Duration, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.t.Fatalf("%s: not within %v\n%s", what, within, s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and returns the exit status.
func (s *service) stop() int {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case code := <-s.exited:
		return code
	case <-time.After(30 * time.Second):
		s.t.Fatal("the service did not exit within 30s of SIGTERM")
		return -1
	}
}

func (s *service) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// serviceConfig writes a config for the pair's alice (and extra accounts).
func serviceConfig(t *testing.T, p *pair, srcURL, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`state = %q
workers = 2
[source]
url = %q
tls_ca = %q
[destination]
url = "imaps://%s"
tls_ca = %q
batch_messages = 5
[[account]]
name = "alice"
source_user = "alice"
source_password_env = "T_SRC_PW"
dest_password_env = "T_DST_PW"
%s`, p.state, srcURL, p.src.CAFile(), p.dst.IMAPSAddr(), p.src.CAFile(), extra)
	path := filepath.Join(p.dir, "fetch.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestE2EServicePOP3 runs the service on a POP3 source every second: mail
// delivered while it runs arrives within a poll; the metrics endpoint
// counts it; status shows the last success; SIGTERM exits 0.
func TestE2EServicePOP3(t *testing.T) {
	p := startPair(t)
	msgs := simpleMessages(5)
	seed(t, p, msgs[:3])
	cfg := serviceConfig(t, p, "pop3s://"+p.src.POP3SAddr(), "")
	s := startService(t, "run", "-c", cfg, "--every", "1s", "--metrics-addr", "127.0.0.1:0")
	s.waitFor("first poll", time.Minute, func() bool { return len(s.logs("poll", "alice")) > 0 })
	for _, m := range msgs[3:] {
		if err := p.src.Deliver("alice", "INBOX", m); err != nil {
			t.Fatal(err)
		}
	}
	delivered := time.Now()
	s.waitFor("delivered mail copied", time.Minute, func() bool { return copiedIn(s.polls("alice")) == 5 })
	t.Logf("mail delivered during the service arrived after %v", time.Since(delivered).Round(time.Millisecond))
	// Within a poll: by the end of the first poll that started after the
	// delivery (an earlier one may have listed it already). Counted in
	// polls, not seconds, which a loaded machine stretches.
	var upTo []servicePoll
	for _, pl := range s.polls("alice") {
		upTo = append(upTo, pl)
		if pl.started.After(delivered) {
			break
		}
	}
	if n := copiedIn(upTo); n != 5 {
		t.Errorf("%d of 5 messages copied by the first poll that started after the delivery, want all", n)
	}
	if n, err := p.dst.MailboxCount("alice", "INBOX"); err != nil || n != 5 {
		t.Fatalf("the destination holds %d messages (%v), want 5", n, err)
	}
	// Each poll logs the checkpoint's size: a fetch job's stays level.
	polls := s.logs("poll", "alice")
	if l := polls[len(polls)-1]; l["checkpoint_entries"] != float64(5) || l["checkpoint_bytes"] == nil || l["checkpoint_bytes"] == float64(0) {
		t.Errorf("the last poll's log line gives the checkpoint as %v entries of %v bytes, want 5 of some", l["checkpoint_entries"], l["checkpoint_bytes"])
	}

	// Metrics, scraped over HTTP.
	var url string
	for _, l := range s.logs("serving metrics", "") {
		url, _ = l["url"].(string)
	}
	if url == "" {
		t.Fatalf("no metrics URL logged\n%s", s.log())
	}
	s.waitFor("metrics counting 5 copies", time.Minute, func() bool {
		return strings.Contains(scrape(t, url), `mailferry_messages_copied_total{account="alice"} 5`)
	})
	body := scrape(t, url)
	for _, want := range []string{`mailferry_polls_total{account="alice"}`, `mailferry_poll_failures_total{account="alice"} 0`,
		`mailferry_last_success_timestamp_seconds{account="alice"} 1.`, `mailferry_last_poll_duration_seconds{account="alice"}`,
		`mailferry_bytes_copied_total{account="alice"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, srcPassword) || strings.Contains(body, p.src.POP3SAddr()) {
		t.Error("metrics expose a password or a server address")
	}
	if code := s.stop(); code != exitOK {
		t.Fatalf("exit %d after SIGTERM, want 0\n%s", code, s.log())
	}
	if !strings.Contains(s.log(), "service stopped") {
		t.Errorf("no 'service stopped' log line\n%s", s.log())
	}
	var excerpt []string
	for _, l := range strings.Split(s.log(), "\n") {
		for _, m := range []string{`"service started"`, `"msg":"poll"`, `"serving metrics"`, `"service stopped"`, `interrupted`} {
			if strings.Contains(l, m) {
				excerpt = append(excerpt, l)
				break
			}
		}
	}
	t.Logf("service log excerpt:\n%s", strings.Join(excerpt, "\n"))
	assertSameMultiset(t, sourceServed(t, p), destBodies(destMessages(t, p, "INBOX")))

	r := runInProcess(t, func(string) string { return "" }, "status", "-c", cfg)
	if r.code != exitOK || !strings.Contains(r.stdout, "last success: ") {
		t.Errorf("status after the service: exit %d, want a last success\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("status:\n%s", r.stdout)
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %s", url, resp.Status)
	}
	return string(b)
}

// TestE2EServiceIDLE polls an IMAP source only every hour: mail delivered
// to its INBOX arrives within seconds, which only IDLE can explain.
func TestE2EServiceIDLE(t *testing.T) {
	p := imapPair(t)
	cfg := serviceConfig(t, p, "imaps://"+p.src.IMAPSAddr(), "")
	s := startService(t, "run", "-c", cfg, "--every", "1h")
	s.waitFor("first poll and IDLE", time.Minute, func() bool {
		return len(s.logs("poll", "alice")) > 0 && len(s.logs("watching the source with IDLE", "alice")) > 0
	})
	first := s.logs("poll", "alice")[0]
	hourly := logTime(t, first).Add(logDuration(t, first, "next_in")) // the interval's next poll
	if err := p.src.Deliver("alice", "INBOX", simpleMessages(1)[0]); err != nil {
		t.Fatal(err)
	}
	delivered := time.Now()
	// A minute bounds the wait, not the claim: the claim is that a poll
	// long before the hourly one copied the mail, after IDLE announced it.
	s.waitFor("mail announced by IDLE copied", time.Minute, func() bool { return copiedIn(s.polls("alice")) == 1 })
	t.Logf("with --every 1h, mail arrived %v after delivery", time.Since(delivered).Round(time.Millisecond))
	var copier servicePoll
	for _, pl := range s.polls("alice") {
		if pl.copied > 0 {
			copier = pl
		}
	}
	if !copier.started.Before(hourly) {
		t.Errorf("the poll that copied the mail started at %v, not before the hourly one (%v)", copier.started, hourly)
	}
	announced := false
	for _, l := range s.logs("IDLE: new mail announced", "alice") {
		at := logTime(t, l)
		announced = announced || !at.Before(delivered) && !at.After(copier.ended)
	}
	if !announced {
		t.Errorf("no IDLE announcement between the delivery and the poll that copied the mail\n%s", s.log())
	}
	if n, err := p.dst.MailboxCount("alice", "INBOX"); err != nil || n != 1 {
		t.Fatalf("the destination holds %d messages (%v), want 1", n, err)
	}
	if code := s.stop(); code != exitOK {
		t.Fatalf("exit %d after SIGTERM, want 0\n%s", code, s.log())
	}
}

// TestE2EServiceSIGTERMMidBatch stops the service while it copies: exit 0,
// and the next run copies exactly the rest (what a batch in flight had
// appended is reconciled), nothing lost and nothing twice.
// The source is read through a proxy that forwards its replies at 8 KB/s,
// so the 300 messages take many seconds and the SIGTERM, sent once 20 are
// on the destination, lands mid-run.
func TestE2EServiceSIGTERMMidBatch(t *testing.T) {
	const total = 300
	p := startPair(t)
	seed(t, p, simpleMessages(total))
	served := sourceServed(t, p)
	proxy := startProxy(t, p.src.POP3SAddr())
	if err := proxy.SetPlan(faultproxy.Plan{Faults: []faultproxy.Fault{
		{Kind: faultproxy.Slow, Dir: faultproxy.ServerToClient, BytesPerSecond: 8 << 10}}}); err != nil {
		t.Fatal(err)
	}
	cfg := serviceConfig(t, p, "pop3s://"+proxy.Addr(), "")
	s := startService(t, "run", "-c", cfg, "--every", "1h")
	s.waitFor("some messages copied", 60*time.Second, func() bool {
		n, _ := p.dst.MailboxCount("alice", "INBOX")
		return n >= 20
	})
	if code := s.stop(); code != exitOK {
		t.Fatalf("exit %d after SIGTERM mid-batch, want 0\n%s", code, s.log())
	}
	n, err := p.dst.MailboxCount("alice", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 || n >= total {
		t.Fatalf("SIGTERM with %d of %d on the destination: the service was not stopped mid-run\n%s", n, total, s.log())
	}
	t.Logf("SIGTERM with %d of %d on the destination", n, total)
	if err := proxy.SetPlan(faultproxy.Plan{}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("T_SRC_PW", srcPassword)
	t.Setenv("T_DST_PW", dstPassword)
	// What is on the destination was committed, or appended by a batch
	// still in flight at the signal: the next run finds it (reconciled)
	// and copies exactly the rest.
	r := runInProcess(t, func(string) string { return "" }, "run", "-c", cfg, "--progress", "none", "--json")
	tot := r.report.Totals
	if r.code != exitOK || tot.Copied != total-n || tot.AlreadyDone+tot.Reconciled != n {
		t.Fatalf("run after SIGTERM: exit %d, copied %d, already done %d, reconciled %d; want %d, %d, and %d done or reconciled\n%s",
			r.code, tot.Copied, tot.AlreadyDone, tot.Reconciled, exitOK, total-n, n, r.stderr)
	}
	assertSameMultiset(t, served, destBodies(destMessages(t, p, "INBOX")))
}

// TestE2EServiceBackoff: bob's source server is down, so his polls fail
// and back off, 2 s then 4 s, while alice keeps polling every second and
// gets her new mail (see also schedule.TestBackoffDoesNotDelayOthers).
//
// It checks the schedule from the service's own log, not by counting polls
// in a wall-clock window: under load a poll takes longer and fewer fit in
// one, while what the scheduler decides stays the same. Each of alice's
// polls plans the next one a second later, and it starts when planned,
// not after bob's backoff; bob's waits double.
func TestE2EServiceBackoff(t *testing.T) {
	p := startPair(t)
	// bob's source server is down: its address is a port nobody listens on
	// (a per-account override of the section's url).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	cfg := serviceConfig(t, p, "pop3s://"+p.src.POP3SAddr(), fmt.Sprintf(`[[account]]
name = "bob"
source_user = "bob"
source_password_env = "T_SRC_PW"
dest_user = "alice"
dest_password_env = "T_DST_PW"
dest_folder = "Bob"
[account.source]
url = "pop3s://%s"
`, down))
	s := startService(t, "run", "-c", cfg, "--every", "1s")
	s.waitFor("two failed polls of bob", time.Minute, func() bool { return len(s.logs("poll failed", "bob")) >= 2 })
	if err := p.src.Deliver("alice", "INBOX", simpleMessages(1)[0]); err != nil {
		t.Fatal(err)
	}
	// From bob's first failure on he is backing off: alice's polls since
	// then are polls while he backs off.
	bobFailed := logTime(t, s.logs("poll failed", "bob")[0])
	s.waitFor("alice's mail, and three polls of hers while bob backs off", time.Minute, func() bool {
		polls, n := s.polls("alice"), 0
		for _, pl := range polls {
			if pl.started.After(bobFailed) {
				n++
			}
		}
		return n >= 3 && copiedIn(polls) == 1
	})
	if code := s.stop(); code != exitOK {
		t.Fatalf("exit %d after SIGTERM, want 0\n%s", code, s.log())
	}
	if n, err := p.dst.MailboxCount("alice", "INBOX"); err != nil || n != 1 {
		t.Fatalf("alice's INBOX holds %d messages (%v), want 1", n, err)
	}

	// Waits are next_in, logged when a poll ends: what the scheduler
	// planned, less the moment it took to log it.
	const logging = 100 * time.Millisecond
	var waits []time.Duration
	for _, l := range s.logs("poll failed", "bob") {
		waits = append(waits, logDuration(t, l, "next_in"))
	}
	// 2 s then 4 s, ±10 % jitter.
	if len(waits) < 2 || waits[0] < 1800*time.Millisecond-logging || waits[0] > 2200*time.Millisecond ||
		waits[1] < 3600*time.Millisecond-logging || waits[1] > 4400*time.Millisecond {
		t.Errorf("bob's waits after failures %v, want about 2s then 4s", waits)
	}
	// Alice's waits stay a second, and each poll starts when the one
	// before planned it: bob's backoff, at least 1.8 s, would show as a
	// wait or a start that late. The slack is for a loaded machine
	// waking the scheduler late.
	const late = time.Second
	lines, polls := s.logs("poll", "alice"), s.polls("alice")
	var aliceWaits, lateness []time.Duration
	for i, l := range lines {
		w := logDuration(t, l, "next_in")
		aliceWaits = append(aliceWaits, w)
		if w < 900*time.Millisecond-logging || w > 1100*time.Millisecond {
			t.Errorf("alice's poll %d planned the next in %v, want 1s ±10%%", i+1, w)
		}
		if i == 0 {
			continue
		}
		planned, started := polls[i-1].ended.Add(aliceWaits[i-1]), polls[i].started
		lateness = append(lateness, started.Sub(planned).Round(time.Millisecond))
		if started.Sub(planned) > late {
			t.Errorf("alice's poll %d started %v after it was planned (%v), want within %v",
				i+1, started.Sub(planned), planned.Format(time.RFC3339Nano), late)
		}
	}
	t.Logf("bob's waits %v; alice's %v, her polls started %v after planned", waits, aliceWaits, lateness)
}

// logTime is the time of a JSON log line.
func logTime(t *testing.T, l map[string]any) time.Time {
	t.Helper()
	s, _ := l["time"].(string)
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("log line time %v: %v", l["time"], err)
	}
	return tm
}

// logDuration is a duration attribute of a JSON log line (slog writes
// nanoseconds).
func logDuration(t *testing.T, l map[string]any, key string) time.Duration {
	t.Helper()
	ns, ok := l[key].(float64)
	if !ok {
		t.Fatalf("%s %v is not a number of nanoseconds", key, l[key])
	}
	return time.Duration(ns)
}
