package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/postgres"
)

// The checkpoint in PostgreSQL (docs/fleet.md), end to end against
// Dovecot: a private PostgreSQL from testkit/postgres, its password given
// as MAILFERRY_STATE_PASSWORD or state_password_env, never in the URL.
// Without PostgreSQL installed these skip, except under CI=true.

// pgPair is a Dovecot pair and a PostgreSQL ledger database.
type pgPair struct {
	*pair
	pg    *postgres.Server
	dbURL string
}

func startPGPair(t *testing.T) *pgPair {
	t.Helper()
	pg := postgres.Start(t, postgres.Options{})
	p := &pgPair{pair: startPair(t), pg: pg, dbURL: postgres.Database(t, pg)}
	p.state = p.dbURL // copyArgs passes --state p.state
	return p
}

func (p *pgPair) getenv(k string) string {
	if k == statePasswordEnv {
		return p.pg.Password()
	}
	return p.pair.getenv(k)
}

// TestE2EPostgresCopyRerunAndCrash: copy with the checkpoint in
// PostgreSQL, killed after an APPEND's OK and before its commit, then
// resumed: every message once (the resume reconciles what the killed run
// sent); a re-run copies nothing; `run -c` with state_password_env finds
// the same account done; plan and verify read it; status reads the counts
// from the database.
func TestE2EPostgresCopyRerunAndCrash(t *testing.T) {
	p := startPGPair(t)
	seed(t, p.pair, simpleMessages(40))
	served := sourceServed(t, p.pair)
	args := p.copyArgs("--batch-messages", "10")
	pgEnv := []string{statePasswordEnv + "=" + p.pg.Password()}

	r := runSubprocess(t, p.pair, append(pgEnv, "MAILFERRY_TEST_CRASHPOINT=appended:2"), args...)
	if r.code != -1 || !strings.Contains(r.stderr, "crashpoint") {
		t.Fatalf("the run was not killed after its second APPEND: exit %d\n%s", r.code, r.stderr)
	}
	before := len(destMessages(t, p.pair, "INBOX"))
	r = runSubprocess(t, p.pair, pgEnv, args...)
	if r.code != exitOK {
		t.Fatalf("resume exited %d:\n%s", r.code, r.stderr)
	}
	assertSameMultiset(t, served, destBodies(destMessages(t, p.pair, "INBOX")))
	a := r.report.Accounts[0]
	t.Logf("killed with %d on the destination; resume: copied %d, already done %d, reconciled %d", before, a.Copied, a.AlreadyDone, a.Reconciled)
	if a.Reconciled == 0 {
		t.Error("killed after APPEND's OK, yet the resume reconciled nothing")
	}
	if strings.Contains(r.stderr, p.pg.Password()) {
		t.Error("the database password appears in the log")
	}

	// A re-run moves nothing and says so.
	r = runInProcess(t, p.getenv, args...)
	if r.code != exitOK || r.report.Totals.Copied != 0 || r.report.Totals.AlreadyDone != 40 {
		t.Fatalf("re-run: exit %d, copied %d, already done %d, want 0, 0, 40\n%s", r.code, r.report.Totals.Copied, r.report.Totals.AlreadyDone, r.stderr)
	}
	if n := len(destMessages(t, p.pair, "INBOX")); n != 40 {
		t.Fatalf("destination holds %d messages after the re-run, want 40", n)
	}

	// A dry run reads the database and writes nothing.
	r = runInProcess(t, p.getenv, append(args, "--dry-run")...)
	if r.code != exitOK || r.report.Totals.Copied != 0 || r.report.Totals.AlreadyDone != 40 {
		t.Fatalf("dry run: exit %d, copied %d, already done %d, want 0, 0, 40\n%s", r.code, r.report.Totals.Copied, r.report.Totals.AlreadyDone, r.stderr)
	}

	// The same account through a config: the state URL, its password by
	// state_password_env.
	cfg := ledgerConfig(t, p.pair, p.src.POP3SAddr(), `state_password_env = "MAILFERRY_TEST_PG_PW"`, "")
	t.Setenv("MAILFERRY_TEST_PG_PW", p.pg.Password())
	r = runInProcess(t, p.configEnv, "run", "-c", cfg, "--json", "--progress", "none")
	if r.code != exitOK || r.report.Totals.Copied != 0 {
		t.Fatalf("run -c: exit %d, copied %d, want 0 and 0\n%s", r.code, r.report.Totals.Copied, r.stderr)
	}
	for _, cmd := range []string{"plan", "verify"} {
		if r := runInProcess(t, p.configEnv, cmd, "-c", cfg); r.code != exitOK {
			t.Errorf("%s -c: exit %d\n%s%s", cmd, r.code, r.stdout, r.stderr)
		}
	}
	rep := statusOf(t, p.configEnv, "-c", cfg)
	if len(rep.Accounts) != 1 || rep.Accounts[0].Done != 40 || rep.State != p.dbURL {
		t.Errorf("status -c: %+v", rep)
	}
	assertSameMultiset(t, served, destBodies(destMessages(t, p.pair, "INBOX")))
}

// TestE2EPostgresOverlappingRuns: two processes copying the same account
// at once through one PostgreSQL ledger (two workers of a fleet): the
// lease lets one run it at a time, and every message is on the
// destination exactly once.
func TestE2EPostgresOverlappingRuns(t *testing.T) {
	for _, mode := range []string{"wait", "skip"} {
		t.Run(mode, func(t *testing.T) {
			p := startPGPair(t)
			seed(t, p.pair, simpleMessages(200))
			served := sourceServed(t, p.pair)
			args := p.copyArgs("--batch-messages", "5", "--on-locked", mode)
			env := []string{statePasswordEnv + "=" + p.pg.Password()}
			results := make(chan runResult, 2)
			for range 2 {
				go func() { results <- runSubprocess(t, p.pair, env, args...) }()
			}
			a, b := <-results, <-results
			if a.code != exitOK || b.code != exitOK {
				t.Fatalf("exits %d and %d, want 0 and 0\n%s\n%s", a.code, b.code, a.stderr, b.stderr)
			}
			if copied := a.report.Totals.Copied + b.report.Totals.Copied; copied != 200 {
				t.Errorf("the two runs copied %d + %d, want 200 in all", a.report.Totals.Copied, b.report.Totals.Copied)
			}
			if mode == "skip" && !a.report.Accounts[0].Locked && !b.report.Accounts[0].Locked {
				t.Error("neither run reports that it skipped a locked account")
			}
			assertSameMultiset(t, served, destBodies(destMessages(t, p.pair, "INBOX")))
		})
	}
}

// TestE2EPostgresBadState: a state URL with a password is refused by
// config check without repeating it; a wrong password and an unreachable
// database fail with exit 1, saying what and where, never the password.
func TestE2EPostgresBadState(t *testing.T) {
	p := startPGPair(t)
	seed(t, p.pair, simpleMessages(3))
	const secret = "Wr0ng-Secret-9"

	withPW := strings.Replace(p.dbURL, "mailferry@", "mailferry:"+secret+"@", 1)
	cfg := filepath.Join(p.dir, "bad.toml")
	body := fmt.Sprintf("state = %q\n[source]\nurl = %q\n[destination]\nurl = %q\n[[account]]\nsource_user = \"alice\"\n",
		withPW, "pop3s://"+p.src.POP3SAddr(), "imaps://"+p.dst.IMAPSAddr())
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runInProcess(t, p.configEnv, "config", "check", "-c", cfg)
	if r.code != exitUsage || !strings.Contains(r.stderr, "holds a password") || strings.Contains(r.stdout+r.stderr, secret) {
		t.Errorf("config check of a state URL with a password: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	wrong := func(k string) string {
		if k == statePasswordEnv {
			return secret
		}
		return p.pair.getenv(k)
	}
	r = runInProcess(t, wrong, p.copyArgs()...)
	if r.code != exitFatal || !strings.Contains(r.stderr, "refused the login") || strings.Contains(r.stderr, secret) {
		t.Errorf("wrong database password: exit %d\n%s", r.code, r.stderr)
	}
	if n := len(destMessages(t, p.pair, "INBOX")); n != 0 {
		t.Errorf("%d messages copied without a checkpoint", n)
	}

	p.pg.Stop()
	r = runInProcess(t, p.getenv, p.copyArgs()...)
	addr := p.pg.Addr()
	if r.code != exitFatal || !strings.Contains(r.stderr, addr) || strings.Contains(r.stderr, p.pg.Password()) {
		t.Errorf("database down: exit %d, want 1 naming %s\n%s", r.code, addr, r.stderr)
	}
}

// TestE2EPostgresService: `run --every` with the checkpoint in
// PostgreSQL polls the account, copies mail delivered while it runs, once
// each, and stops cleanly at SIGTERM.
func TestE2EPostgresService(t *testing.T) {
	p := startPGPair(t)
	msgs := simpleMessages(5)
	seed(t, p.pair, msgs[:3])
	cfg := serviceConfig(t, p.pair, "pop3s://"+p.src.POP3SAddr(), "")
	t.Setenv(statePasswordEnv, p.pg.Password())
	s := startService(t, "run", "-c", cfg, "--every", "1s")
	s.waitFor("first poll", time.Minute, func() bool { return copiedIn(s.polls("alice")) == 3 })
	for _, m := range msgs[3:] {
		if err := p.src.Deliver("alice", "INBOX", m); err != nil {
			t.Fatal(err)
		}
	}
	s.waitFor("delivered mail copied", time.Minute, func() bool { return copiedIn(s.polls("alice")) == 5 })
	if code := s.stop(); code != exitOK {
		t.Fatalf("the service exited %d at SIGTERM\n%s", code, s.log())
	}
	if n, err := p.dst.MailboxCount("alice", "INBOX"); err != nil || n != 5 {
		t.Fatalf("the destination holds %d messages (%v), want 5", n, err)
	}
	if strings.Contains(s.log(), p.pg.Password()) {
		t.Error("the database password appears in the service's log")
	}
}

// TestE2EPostgresCutOff: a copy whose PostgreSQL checkpoint goes silent
// mid-run (a proxy that drops everything, as a cut network does) stops
// and exits 1 within a few lease TTLs instead of hanging; what it sent is
// on the destination at most once, and the next run, with the database
// back, ends with every message exactly once.
func TestE2EPostgresCutOff(t *testing.T) {
	p := startPGPair(t)
	seed(t, p.pair, simpleMessages(150))
	served := sourceServed(t, p.pair)
	proxy := postgres.CutProxy(t, p.pg)
	viaProxy := strings.Replace(p.dbURL, p.pg.Addr(), proxy.Addr(), 1)
	const ttl = 2 * time.Second
	args := []string{"copy", p.srcURL(), p.dstURL(), "--tls-ca", p.src.CAFile(), "--state", viaProxy,
		"--progress", "none", "--batch-messages", "5", "--max-messages-per-second", "25"}
	var stdout, stderr strings.Builder
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: p.getenv, testHooks: testHooks, leaseTTL: ttl}
	done := make(chan int, 1)
	go func() { done <- run(context.Background(), args, e) }()

	deadline := time.Now().Add(time.Minute)
	for len(destMessages(t, p.pair, "INBOX")) < 15 {
		if time.Now().After(deadline) {
			t.Fatal("the copy did not get going")
		}
		time.Sleep(100 * time.Millisecond)
	}
	proxy.Cut()
	cutAt := time.Now()
	var code int
	select {
	case code = <-done:
	case <-time.After(20 * ttl):
		t.Fatalf("the copy still runs %v after its checkpoint went silent", 20*ttl)
	}
	exitedAfter := time.Since(cutAt)
	t.Logf("exit %d %v after the cut (lease TTL %v); %d of 150 on the destination", code, exitedAfter.Round(time.Millisecond),
		ttl, len(destMessages(t, p.pair, "INBOX")))
	// The hold is lost half a TTL after the last renewal at the latest;
	// the run's last statements (FinishRun, the release, the report's size,
	// Close) share the lease's expiry, half a TTL later, as their deadline.
	if exitedAfter > 3*ttl {
		t.Errorf("the copy exited %v after its checkpoint went silent, want within %v", exitedAfter, 3*ttl)
	}
	if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); len(lines) > 0 {
		t.Logf("its last words: %s", lines[len(lines)-1])
	}
	// What its last statements could not write is said in words, not as
	// "context deadline exceeded".
	if !strings.Contains(stderr.String(), "ledger out of reach since ") || !strings.Contains(stderr.String(), "nothing was lost") ||
		!strings.Contains(stderr.String(), "the run's end was not recorded") {
		t.Errorf("the log does not say that the ledger went out of reach and nothing was lost:\n%s", stderr.String())
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, "deadline exceeded") && (strings.Contains(line, "finishing run") || strings.Contains(line, "releasing account") ||
			strings.Contains(line, "the size of") || strings.Contains(line, "connection slots")) {
			t.Errorf("a last statement's error says only that a deadline passed: %s", line)
		}
	}
	if code != exitFatal {
		t.Errorf("exit %d after losing the checkpoint, want 1\n%s", code, stderr.String())
	}
	if strings.Contains(stderr.String(), p.pg.Password()) {
		t.Error("the database password appears in the log")
	}
	seen := map[string]bool{}
	for _, d := range digests(destBodies(destMessages(t, p.pair, "INBOX"))) {
		if seen[d] {
			t.Errorf("message %s is on the destination twice after the cut", d[:12])
		}
		seen[d] = true
	}

	r := runInProcess(t, p.getenv, p.copyArgs()...)
	if r.code != exitOK {
		t.Fatalf("the run after the cut exited %d\n%s", r.code, r.stderr)
	}
	assertSameMultiset(t, served, destBodies(destMessages(t, p.pair, "INBOX")))
}
