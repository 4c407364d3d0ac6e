package main

import (
	"encoding/csv"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/faultproxy"
	"github.com/mailferry/mailferry/internal/testkit/postgres"
)

// The fleet (docs/fleet.md): `mailferry run` on a PostgreSQL checkpoint
// is a worker of the shared account queue. These tests start workers as
// processes (the test binary in main mode) with short leases
// (MAILFERRY_TEST_LEASE_TTL, which the release binary does not read).

// fleetLeaseTTL is the workers' lease in these tests: renewed every
// quarter, lost after half, taken over after all of it.
const fleetLeaseTTL = 4 * time.Second

// fleetSetup is a fleet's servers, config and what each account's source
// serves.
type fleetSetup struct {
	src, dst *dovecot.Server
	pg       *postgres.Server
	dbURL    string
	cfg      string
	dir      string
	users    []string
	srcPW    map[string]string
	dstPW    map[string]string
	served   map[string][][]byte
	// quota is an account's max_bytes_per_day ("" none).
	quota map[string]string
	// popAddr, imapAddr and dstAddr are the addresses the config and the
	// accounts name: the servers' own, or their counting proxies'.
	popAddr, imapAddr, dstAddr string
	// proxies count the connections to each server address, by what it
	// serves (fleetCaps); nil without caps.
	proxies map[string]*faultproxy.Proxy
}

// fleetCaps are the connection caps of a capped fleet: max_connections of
// the source (each of its POP3 and IMAP addresses) and of the destination.
type fleetCaps struct{ source, dest int }

// listAccounts writes the accounts file with the first k accounts, each
// named by its user.
func (f *fleetSetup) listAccounts(t *testing.T, k int) {
	t.Helper()
	fh, err := os.Create(filepath.Join(f.dir, "users.csv"))
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(fh)
	w.Write([]string{"name", "source_user", "source_password", "dest_user", "dest_password", "source_url", "max_bytes_per_day"})
	for i, u := range f.users[:k] {
		url := "pop3s://" + f.popAddr
		if i%2 == 1 {
			url = "imaps://" + f.imapAddr
		}
		w.Write([]string{u, u, f.srcPW[u], u, f.dstPW[u], url, f.quota[u]})
	}
	w.Flush()
	if err := fh.Close(); err != nil || w.Error() != nil {
		t.Fatal(err, w.Error())
	}
}

// startFleet starts the servers and writes a config of n accounts, the
// even ones on POP3, the odd ones on IMAP, perAccount messages each.
func startFleet(t *testing.T, n, perAccount int, extra string) *fleetSetup {
	t.Helper()
	return startCappedFleet(t, n, perAccount, extra, nil)
}

// startCappedFleet is startFleet with caps (nil: none): the config sets
// them, and the workers reach every server address through a counting
// proxy (faultproxy, no faults), whose MaxOpen tells the most connections
// the server saw at once.
func startCappedFleet(t *testing.T, n, perAccount int, extra string, caps *fleetCaps) *fleetSetup {
	t.Helper()
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	f := &fleetSetup{dir: t.TempDir(), dstPW: map[string]string{}, served: map[string][][]byte{}}
	srcUsers := map[string]string{}
	for i := range n {
		u := fmt.Sprintf("fu%02d", i)
		f.users = append(f.users, u)
		srcUsers[u], f.dstPW[u] = "Src-"+u+"-pw9", "Dst-"+u+"-pw7"
	}
	f.pg = postgres.Start(t, postgres.Options{})
	f.dbURL = postgres.Database(t, f.pg)
	f.src = dovecot.Start(t, dovecot.Options{Name: "mf-fsrc", CA: ca, Users: srcUsers})
	f.dst = dovecot.Start(t, dovecot.Options{Name: "mf-fdst", CA: ca, Users: f.dstPW})
	base := time.Date(2022, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, u := range f.users {
		for j, m := range simpleMessages(perAccount) {
			m = append([]byte("X-Account: "+u+"\r\n"), m...)
			f.served[u] = append(f.served[u], m)
			if err := f.src.SeedMaildir(u, "INBOX", m, "", base.Add(time.Duration(j)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.srcPW = srcUsers
	f.popAddr, f.imapAddr, f.dstAddr = f.src.POP3SAddr(), f.src.IMAPSAddr(), f.dst.IMAPSAddr()
	srcCap, dstCap := "", ""
	if caps != nil {
		f.proxies = map[string]*faultproxy.Proxy{
			"source POP3": startProxy(t, f.popAddr), "source IMAP": startProxy(t, f.imapAddr), "destination IMAP": startProxy(t, f.dstAddr),
		}
		f.popAddr, f.imapAddr, f.dstAddr = f.proxies["source POP3"].Addr(), f.proxies["source IMAP"].Addr(), f.proxies["destination IMAP"].Addr()
		srcCap, dstCap = fmt.Sprintf("max_connections = %d\n", caps.source), fmt.Sprintf("max_connections = %d\n", caps.dest)
	}
	f.listAccounts(t, n)
	f.cfg = filepath.Join(f.dir, "migrate.toml")
	body := fmt.Sprintf(`state = %q
workers = 2
accounts_file = "users.csv"
%s
[source]
url = "pop3s://%s"
tls_ca = %q
%s[destination]
url = "imaps://%s"
tls_ca = %q
batch_messages = 2
%s`, f.dbURL, extra, f.popAddr, f.src.CAFile(), srcCap, f.dstAddr, f.src.CAFile(), dstCap)
	if err := os.WriteFile(f.cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(statePasswordEnv, f.pg.Password())
	t.Setenv("MAILFERRY_TEST_LEASE_TTL", fleetLeaseTTL.String())
	return f
}

// assertEveryAccountOnce compares each account's destination INBOX with
// what its source serves: every message exactly once, byte for byte.
func (f *fleetSetup) assertEveryAccountOnce(t *testing.T) {
	t.Helper()
	for _, u := range f.users {
		got := imapBodies(t, f.dst, u, f.dstPW[u], "INBOX")
		if missing, extra := multisetDiff(f.served[u], got); missing+extra > 0 {
			t.Errorf("%s: the destination holds %d messages, %d missing and %d extra or duplicated", u, len(got), missing, extra)
		}
	}
}

// slotsOf returns how many fleet-wide connection slots worker holds in
// the checkpoint and how far ahead (on the database's clock) the latest
// of them expires.
func (f *fleetSetup) slotsOf(t *testing.T, worker string) (int64, time.Duration) {
	t.Helper()
	u, err := url.Parse(f.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	db := strings.TrimPrefix(u.Path, "/")
	n, err := f.pg.QueryInt(t.Context(), db, `SELECT count(*) FROM mailferry.slots WHERE worker = $1`, worker)
	if err != nil {
		t.Fatal(err)
	}
	ahead, err := f.pg.QueryInt(t.Context(), db, `SELECT COALESCE(max(expires), 0) - CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000000 AS BIGINT)
		FROM mailferry.slots WHERE worker = $1`, worker)
	if err != nil {
		t.Fatal(err)
	}
	return n, time.Duration(ahead)
}

// workerName is the name a worker process logged at its start.
func workerName(t *testing.T, s *service) string {
	t.Helper()
	s.waitFor("the worker's start", time.Minute, func() bool { return len(s.logs("worker started", "")) > 0 })
	name, _ := s.logs("worker started", "")[0]["worker"].(string)
	return name
}

// claims counts the accounts a worker claimed or took over.
func claims(s *service) int {
	return len(s.logs("claimed an account", "")) + len(s.logs("account taken over from a worker whose lease ran out; reconciling what it had in flight", ""))
}

// exitWithin waits for a worker's exit status.
func exitWithin(t *testing.T, s *service, d time.Duration, what string) int {
	t.Helper()
	select {
	case code := <-s.exited:
		return code
	case <-time.After(d):
		t.Fatalf("%s did not exit within %v\n%s", what, d, s.log())
		return 0
	}
}

// TestE2EFleetWorkers: three worker processes run 60 POP3 and IMAP
// accounts from one PostgreSQL queue. One is killed (SIGKILL) while it
// copies, another is cut from PostgreSQL by a proxy that goes silent: the
// cut one stops sending, settles what was in flight and exits 1; the
// survivor (4 accounts at once) takes both workers' accounts over once
// their leases ran out (the time after expiry is logged) and finishes
// them; every account's destination holds its source's messages exactly
// once; status shows the fleet. The connection caps hold across the
// fleet: counting proxies in front of the source's POP3 and IMAP and the
// destination's IMAP never see more connections at once than the
// server's max_connections, which the three workers (8 accounts at once,
// each 1 source and 2 to 4 destination connections) would pass with caps
// per process only. A dead worker's slots come free when they expire,
// two (short) lease TTLs after their last renewal; a worker cut from the
// database closes its connections before then.
func TestE2EFleetWorkers(t *testing.T) {
	const accounts, perAccount = 60, 8
	caps := fleetCaps{source: 2, dest: 8}
	f := startCappedFleet(t, accounts, perAccount, `max_messages_per_second = 4`, &caps)
	proxy := postgres.CutProxy(t, f.pg)
	viaProxy := strings.Replace(f.dbURL, f.pg.Addr(), proxy.Addr(), 1)

	started := time.Now()
	killed := startService(t, "run", "-c", f.cfg, "--progress", "none")
	survivor := startService(t, "run", "-c", f.cfg, "--progress", "none", "--workers", "4")
	cut := startService(t, "run", "-c", f.cfg, "--progress", "none", "--state", viaProxy)
	killedName, cutName := workerName(t, killed), workerName(t, cut)
	workerName(t, survivor)

	// Mid-account: a fourth claim (the first two are at once), then a
	// while into its 2 s copy.
	// It is killed while it holds connection slots (its accounts may wait
	// for the fleet's caps a while): they stay taken until they expire,
	// after the workers' lease TTL, not the release binary's 30 s.
	killed.waitFor("the first worker's fourth claim", 2*time.Minute, func() bool { return claims(killed) >= 4 })
	time.Sleep(700 * time.Millisecond)
	var held int64
	var ahead time.Duration
	killed.waitFor("the first worker's connection slots", time.Minute, func() bool {
		held, ahead = f.slotsOf(t, killedName)
		return held > 0
	})
	if err := killed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	t.Logf("the killed worker left %d connection slots, free in %v at the latest", held, ahead.Round(time.Millisecond))
	if ahead > 2*fleetLeaseTTL {
		t.Errorf("the killed worker's connection slots expire in %v, want within two lease TTLs (%v)", ahead, 2*fleetLeaseTTL)
	}
	cut.waitFor("the third worker's fourth claim", 2*time.Minute, func() bool { return claims(cut) >= 4 })
	time.Sleep(700 * time.Millisecond)
	proxy.Cut()
	cutAt := time.Now()

	if code := exitWithin(t, killed, 30*time.Second, "the killed worker"); code != -1 {
		t.Errorf("the killed worker exited %d, want -1 (killed)", code)
	}
	code := exitWithin(t, cut, 10*fleetLeaseTTL, "the worker cut from PostgreSQL")
	exitedAfter := time.Since(cutAt)
	t.Logf("the cut worker exited %d %v after the cut (lease TTL %v)", code, exitedAfter.Round(time.Millisecond), fleetLeaseTTL)
	// Its hold lost half a TTL after its last renewal at the latest, its
	// last statements (FinishRun, the release, Close) share one deadline,
	// the lease's expiry half a TTL later, and a claim in flight gives up
	// after a TTL: about a TTL after the cut. Each waiting a TTL of its
	// own, it took 15-17 s.
	if exitedAfter > 3*fleetLeaseTTL {
		t.Errorf("the worker cut from PostgreSQL exited %v after the cut, want within %v", exitedAfter, 3*fleetLeaseTTL)
	}
	// Its accounts closed their mail connections when the hold was lost
	// (half a TTL after the last renewal), before the slots standing for
	// them expire: two TTLs after their last renewal, which is at most a
	// quarter TTL before the cut. A connection still open then passes
	// the cap once another worker takes its slot; the cap check below
	// catches that only when another worker happens to be waiting.
	expiry := 2*fleetLeaseTTL - fleetLeaseTTL/4
	for _, l := range cut.logs("account stopped by the loss of its hold", "") {
		after := logTime(t, l).Sub(cutAt)
		t.Logf("the cut worker's %v closed its sessions %v after the cut", l["account"], after.Round(time.Millisecond))
		if after >= expiry {
			t.Errorf("the cut worker's %v closed its sessions %v after the cut, want before its connection slots may expire (%v after it)",
				l["account"], after.Round(time.Millisecond), expiry)
		}
	}
	if code != exitFatal {
		t.Errorf("the worker cut from PostgreSQL exited %d, want 1\n%s", code, cut.log())
	}
	if !strings.Contains(cut.log(), "lost its hold") {
		t.Errorf("the cut worker does not say why it stopped\n%s", cut.log())
	}
	if code := exitWithin(t, survivor, 5*time.Minute, "the surviving worker"); code != exitOK {
		t.Fatalf("the surviving worker exited %d, want 0\n%s", code, survivor.log())
	}
	t.Logf("60 accounts × %d messages, 3 workers (2, 4 and 2 accounts at once), one killed, one cut: %.1f s", perAccount, time.Since(started).Seconds())

	// The servers never saw more connections at once than their caps.
	for what, p := range f.proxies {
		limit := caps.source
		if strings.HasPrefix(what, "destination") {
			limit = caps.dest
		}
		peak := p.MaxOpen(20 * time.Millisecond)
		t.Logf("%s: at most %d connections at once (max_connections = %d), %d in all", what, peak, limit, p.Conns())
		if peak > limit {
			t.Errorf("the %s server saw %d connections at once, max_connections = %d across the fleet", what, peak, limit)
		}
	}

	// The survivor took over what the two others held.
	from := map[string]int{}
	for _, l := range survivor.logs("account taken over from a worker whose lease ran out; reconciling what it had in flight", "") {
		w, _ := l["from"].(string)
		after, _ := l["after_lease_expiry"].(float64)
		from[w]++
		t.Logf("took over %v from %s %v after its lease ran out (%v after the kill, %v after the cut)", l["account"], w,
			time.Duration(after).Round(time.Millisecond), logTime(t, l).Sub(killedAt).Round(time.Millisecond), logTime(t, l).Sub(cutAt).Round(time.Millisecond))
		// The survivor claims when one of its slots is free: after the
		// account it runs there ends (2 s), or its next poll.
		if time.Duration(after) > 4*fleetLeaseTTL {
			t.Errorf("an account was taken over %v after its lease ran out, want within 4 lease TTLs (%v)", time.Duration(after), 4*fleetLeaseTTL)
		}
	}
	if from[killedName] == 0 || from[cutName] == 0 {
		t.Errorf("takeovers by worker: %v; want some from the killed %s and from the cut %s", from, killedName, cutName)
	}
	f.assertEveryAccountOnce(t)

	// status shows the fleet: every account done, no worker running; the
	// two that went away stay listed with their last heartbeat.
	rep := statusOf(t, os.Getenv, "-c", f.cfg)
	if rep.Fleet == nil || rep.Fleet.Done != accounts || rep.Fleet.Queued+rep.Fleet.Running+rep.Fleet.Failed != 0 {
		t.Errorf("status: fleet %+v, want %d done and nothing queued, running or failed", rep.Fleet, accounts)
	}
	if r := runInProcess(t, os.Getenv, "status", "-c", f.cfg); !strings.Contains(r.stdout, fmt.Sprintf("fleet: 0 queued, 0 running, %d done, 0 failed", accounts)) ||
		!strings.Contains(r.stdout, "workers:") {
		t.Errorf("status's text does not show the fleet:\n%s", r.stdout)
	}
	if rep.Fleet != nil {
		names := map[string]bool{}
		for _, w := range rep.Fleet.Workers {
			names[w.ID] = true
		}
		if len(rep.Fleet.Workers) != 2 || !names[killedName] || !names[cutName] {
			t.Errorf("status lists the workers %+v, want the killed and the cut one (the survivor left)", rep.Fleet.Workers)
		}
		if rep.Fleet.MessagesTotal < accounts*perAccount/2 {
			t.Errorf("status: the fleet's throughput counts %d messages, want most of the %d", rep.Fleet.MessagesTotal, accounts*perAccount)
		}
	}
}

// TestE2EFleetOperate: operating a running migration. `queue add` loads 6
// accounts into the queue and `queue pause` pauses one; two workers run
// the others, and `queue drain` drains the first worker after its first
// claim (it finishes that account, claims nothing more and exits 0); two
// accounts appended to the accounts file and queued with `queue add` are
// claimed by the running worker, which reads its config again. status
// shows 7 done and 1 paused; the paused account is untouched. `queue
// resume` and two new workers (one drained at once by SIGUSR1) finish
// it: every account exactly once. A worker stopped by SIGTERM gives the
// account it copies back to the queue, and the next worker claims it at
// once (not after its lease ran out) and finishes it.
func TestE2EFleetOperate(t *testing.T) {
	const perAccount = 8
	f := startFleet(t, 8, perAccount, `max_messages_per_second = 4`)
	f.listAccounts(t, 6)
	queue := func(args ...string) runResult {
		t.Helper()
		r := runInProcess(t, os.Getenv, append([]string{"queue"}, append(args, "-c", f.cfg)...)...)
		if r.code != exitOK {
			t.Fatalf("queue %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		return r
	}
	// Loaded into the queue before any worker starts, so that one can be
	// paused before it is claimed.
	if r := queue("add"); !strings.Contains(r.stdout, "6 accounts queued now") {
		t.Errorf("queue add: %s", r.stdout)
	}
	if r := queue("pause", "fu05", "--reason", "mailbox under legal hold"); !strings.Contains(r.stdout, "fu05: paused") {
		t.Errorf("queue pause: %s", r.stdout)
	}
	a := startService(t, "run", "-c", f.cfg, "--progress", "none", "--workers", "1")
	b := startService(t, "run", "-c", f.cfg, "--progress", "none", "--workers", "1")
	aName := workerName(t, a)
	workerName(t, b)
	a.waitFor("the first worker's first claim", time.Minute, func() bool { return claims(a) >= 1 })
	if r := queue("drain", checkpoint.WorkerHost(aName)); !strings.Contains(r.stdout, "draining worker "+aName) {
		t.Errorf("queue drain: %s", r.stdout)
	}
	f.listAccounts(t, 8)
	if r := queue("add"); !strings.Contains(r.stdout, "2 accounts queued now") {
		t.Errorf("queue add: %s", r.stdout)
	}
	if code := exitWithin(t, a, 2*time.Minute, "the drained worker"); code != exitOK {
		t.Errorf("the drained worker exited %d, want 0\n%s", code, a.log())
	}
	if n := claims(a); n > 2 || len(a.logs("asked to drain: finishing the accounts held, claiming no more", "")) == 0 {
		t.Errorf("the drained worker claimed %d accounts, want 1 (2 at most, if it claimed as the drain came), and says it drains\n%s", n, a.log())
	}
	if code := exitWithin(t, b, 2*time.Minute, "the second worker"); code != exitOK {
		t.Fatalf("the second worker exited %d, want 0\n%s", code, b.log())
	}
	if len(b.logs("read the config again: accounts added to the migration", "")) == 0 {
		t.Errorf("the running worker did not read its config again\n%s", b.log())
	}
	rep := statusOf(t, os.Getenv, "-c", f.cfg)
	if rep.Fleet == nil || rep.Fleet.Done != 7 || rep.Fleet.Paused != 1 || rep.Fleet.Queued+rep.Fleet.Running != 0 {
		t.Errorf("status: fleet %+v, want 7 done and 1 paused", rep.Fleet)
	}
	if got := imapBodies(t, f.dst, "fu05", f.dstPW["fu05"], "INBOX"); len(got) != 0 {
		t.Errorf("the paused account's destination holds %d messages, want none", len(got))

	}

	queue("resume", "fu05")
	if r := queue("retry", "--failed"); !strings.Contains(r.stdout, "no account changed") {
		t.Errorf("queue retry --failed with nothing failed: %s", r.stdout)
	}
	c := startService(t, "run", "-c", f.cfg, "--progress", "none")
	d := startService(t, "run", "-c", f.cfg, "--progress", "none")
	workerName(t, c)
	if err := c.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*service{c, d} {
		if code := exitWithin(t, w, 2*time.Minute, "a worker of the second pass"); code != exitOK {
			t.Fatalf("a worker of the second pass exited %d, want 0\n%s", code, w.log())
		}
	}
	if len(c.logs("SIGUSR1: draining: finishing the accounts held, claiming no more", "")) == 0 {
		t.Errorf("SIGUSR1 did not drain the worker\n%s", c.log())
	}
	f.assertEveryAccountOnce(t)

	// A worker stopped by SIGTERM while it copies gives its account back
	// to the queue, at once, for another worker to finish.
	for j, m := range simpleMessages(16)[8:] {
		m = append([]byte("X-Account: fu00\r\n"), m...)
		f.served["fu00"] = append(f.served["fu00"], m)
		if err := f.src.SeedMaildir("fu00", "INBOX", m, "", time.Date(2023, 1, 1, 0, j, 0, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
	}
	e := startService(t, "run", "-c", f.cfg, "--progress", "none")
	e.waitFor("fu00 claimed", time.Minute, func() bool { return len(e.logs("claimed an account", "fu00")) > 0 })
	time.Sleep(700 * time.Millisecond)
	if code := e.stop(); code != exitInterrupted {
		t.Errorf("the worker stopped by SIGTERM exited %d, want %d\n%s", code, exitInterrupted, e.log())
	}
	g := startService(t, "run", "-c", f.cfg, "--progress", "none")
	started := time.Now()
	g.waitFor("fu00 claimed by the next worker", fleetLeaseTTL, func() bool { return len(g.logs("claimed an account", "fu00")) > 0 })
	t.Logf("the next worker claimed the account given back %v after it started", time.Since(started).Round(time.Millisecond))
	if code := exitWithin(t, g, 2*time.Minute, "the next worker"); code != exitOK {
		t.Fatalf("the next worker exited %d, want 0\n%s", code, g.log())
	}
	f.assertEveryAccountOnce(t)
}

// TestE2EFleetService: two `run --every 1s` workers of one PostgreSQL
// queue poll each account once per interval between them, one at a time
// (the other finds it polled and skips it), and copy the mail delivered
// while they run exactly once.
func TestE2EFleetService(t *testing.T) {
	const accounts, every = 4, time.Second
	f := startFleet(t, accounts, 3, "")
	workers := []*service{
		startService(t, "run", "-c", f.cfg, "--every", every.String(), "--idle=false"),
		startService(t, "run", "-c", f.cfg, "--every", every.String(), "--idle=false"),
	}
	started := time.Now()
	copied := func(u string) int {
		n := 0
		for _, w := range workers {
			n += copiedIn(w.polls(u))
		}
		return n
	}
	workers[0].waitFor("the first polls", time.Minute, func() bool {
		for _, u := range f.users {
			if copied(u) < 3 {
				return false
			}
		}
		return true
	})
	more := simpleMessages(6)[3:]
	for _, u := range f.users {
		for _, m := range more {
			m = append([]byte("X-Account: "+u+"\r\n"), m...)
			f.served[u] = append(f.served[u], m)
			if err := f.src.Deliver(u, "INBOX", m); err != nil {
				t.Fatal(err)
			}
		}
	}
	workers[0].waitFor("the delivered mail", time.Minute, func() bool {
		for _, u := range f.users {
			if copied(u) < 6 {
				return false
			}
		}
		return true
	})
	time.Sleep(3 * every)
	for _, w := range workers {
		if code := w.stop(); code != exitOK {
			t.Fatalf("a service worker exited %d at SIGTERM\n%s", code, w.log())
		}
	}
	elapsed := time.Since(started)
	f.assertEveryAccountOnce(t)
	for _, u := range f.users {
		type span struct{ from, to time.Time }
		var ran []span
		skipped := 0
		for _, w := range workers {
			for _, l := range w.logs("poll", u) {
				if l["locked"] == true {
					skipped++
					continue
				}
				end := logTime(t, l)
				ran = append(ran, span{end.Add(-logDuration(t, l, "duration")), end})
			}
		}
		for i := range ran {
			for j := range i {
				if ran[i].from.Before(ran[j].to) && ran[j].from.Before(ran[i].to) {
					t.Errorf("%s was polled by two workers at once: %v-%v and %v-%v", u, ran[j].from, ran[j].to, ran[i].from, ran[i].to)
				}
			}
		}
		// Once per interval less its jitter, between the two workers: not
		// once per interval by each.
		if most := int(elapsed/(every*9/10)) + 2; len(ran) > most {
			t.Errorf("%s was polled %d times in %v by the two workers, want at most %d", u, len(ran), elapsed.Round(time.Millisecond), most)
		}
		if skipped == 0 {
			t.Errorf("%s: no poll found the account polled by the other worker", u)
		}
		t.Logf("%s: %d polls in %v, %d skipped as polled by the other worker", u, len(ran), elapsed.Round(time.Millisecond), skipped)
	}
}

// TestE2EFleetQuotaWaits: an account that reaches its daily quota goes
// back in the queue for the next window: the worker exits 0 (a quota is
// no failure), status counts it waiting, and the pass stays open for it,
// so that the next run joins that pass and runs nothing else again.
func TestE2EFleetQuotaWaits(t *testing.T) {
	f := startFleet(t, 2, 8, "")
	f.quota = map[string]string{"fu01": "600B"}
	f.listAccounts(t, 2)
	w := startService(t, "run", "-c", f.cfg, "--progress", "none")
	if code := exitWithin(t, w, 2*time.Minute, "the worker"); code != exitOK {
		t.Fatalf("the worker exited %d, want 0\n%s", code, w.log())
	}
	rep := statusOf(t, os.Getenv, "-c", f.cfg)
	if rep.Fleet == nil || rep.Fleet.Waiting != 1 || rep.Fleet.Done != 1 || rep.Fleet.PassFinished != nil {
		t.Fatalf("status: fleet %+v, want 1 done, 1 waiting, the pass open", rep.Fleet)
	}
	got := imapBodies(t, f.dst, "fu01", f.dstPW["fu01"], "INBOX")
	if len(got) >= 8 {
		t.Errorf("the account over its quota holds all %d messages", len(got))
	}
	// The next run joins the open pass: the account done in it is not
	// run again, the waiting one not before its time.
	w = startService(t, "run", "-c", f.cfg, "--progress", "none")
	if code := exitWithin(t, w, 2*time.Minute, "the next worker"); code != exitOK {
		t.Fatalf("the next worker exited %d, want 0\n%s", code, w.log())
	}
	if n := claims(w); n != 0 {
		t.Errorf("the next worker claimed %d accounts, want none (one done in this pass, one waiting)", n)
	}
}
