package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/faultproxy"
	"github.com/mailferry/mailferry/internal/testkit/peakrss"
)

// The soak test: rounds of new mail (some of it arriving while mailferry
// runs) and random faults against two Dovecot instances with ten
// accounts, for as long as MAILFERRY_SOAK says, checking
// after every run that nothing was duplicated or lost and at the end that
// the test process's goroutines and heap and the child processes' peak
// RSS did not grow. It reuses the fault suite's machinery (source kinds,
// fault proxies, crashpoints, digest multisets); what it adds is time:
// the same accounts, ledgers and proxies across many rounds.
//
//	MAILFERRY_SOAK=D        run for D (e.g. 4m, 1h); unset: the test skips
//	MAILFERRY_SOAK_SEED=N   replay the draws of a run (printed at the start)
//	MAILFERRY_SOAK_VERBOSE=1  log every run of every round
//
// The draws (mail, faults, crashpoints) come from the seed; which
// connection a fault lands on also depends on the timing of the accounts
// running in parallel, so a replay repeats the plan, not every byte.

const (
	// soakCrashEvery: every this many rounds starts with a run in a child
	// process killed at a random crashpoint.
	soakCrashEvery = 2
	// soakGoroutineSlack is how many goroutines above the baseline taken
	// before the first round a round may leave behind.
	soakGoroutineSlack = 8
	// The growth allowed from the first third of the rounds to the last:
	// the last third's maximum may exceed the first third's by this
	// fraction plus this many bytes (the keep-source mailboxes grow all
	// the time, so listings and the ledger grow a little too).
	soakGrowthFraction = 0.25
	// soakFaultIdle is the idle timeout of the fault runs.
	soakFaultIdle = 3 * time.Second
	soakHeapSlack = 8 << 20
	soakRSSSlack  = 16 << 20
)

// soakGroup is one config file's accounts: one source kind, one
// --delete-source setting, one pair of fault proxies in front of the
// servers. A config has one [source] url and one delete_source, so ten
// accounts with both kinds and both settings are four groups run at once.
type soakGroup struct {
	name         string
	kind         sourceKind
	deleteSource bool
	plain        bool
	users        []string
	src, dst     *faultproxy.Proxy
	// faultConfig has short idle timeouts (stalls end quickly);
	// cleanConfig the same accounts, URLs and ledger with long ones.
	faultConfig, cleanConfig string
	batch                    int // batch_messages
	// srcLoad and dstLoad are what the proxies carried in the group's last
	// run: faults pick a connection and an offset within them.
	srcLoad, dstLoad proxyLoad
}

// proxyLoad is what one proxy carried in a run: its connections and the
// bytes per connection each way, indexed by faultproxy.Direction.
type proxyLoad struct {
	conns   int
	perConn [2]int64
}

func loadOf(p *faultproxy.Proxy) proxyLoad {
	n := max(1, p.Conns())
	s2c, c2s := p.Traffic()
	var l proxyLoad
	l.conns = n
	l.perConn[faultproxy.ServerToClient], l.perConn[faultproxy.ClientToServer] = s2c/int64(n), c2s/int64(n)
	return l
}

// soakAccount is what the test knows about one account.
type soakAccount struct {
	user  string
	group *soakGroup
	next  int // messages generated so far
	fresh int // messages delivered this round
	// history holds messages delivered before, candidates for identical
	// re-deliveries (a mailing list sending the same bytes twice).
	history [][]byte
	// done is the destination's multiset (by digest) after the last
	// complete round; want is what it must be after this round.
	done, want map[string]int
	// snapshot is what the source served at the start of the round.
	snapshot map[string]int
}

// soakTally is the soak's count, reported at the end (also on failure).
type soakTally struct {
	rounds, crashRuns, killed, faultRuns, fired, cleanRuns int
	delivered, verified, checks, lost, dups                int
	// lateSeen is second copies seen between fault runs (late APPENDs),
	// lateRemoved those the runs reported removing.
	lateSeen, lateRemoved int
	// onDest is the messages on all destinations after the last
	// complete round: with no loss and no duplicate, delivered.
	onDest                int
	goroutines, heap, rss []int64
	baseGoroutines        int
	rssKilled             int64
}

func TestSoak(t *testing.T) {
	spec := os.Getenv("MAILFERRY_SOAK")
	if spec == "" {
		t.Skip("the soak test is opt-in: MAILFERRY_SOAK=1h go test -run TestSoak -timeout 2h -v ./cmd/mailferry (or scripts/soak.sh 1h)")
	}
	duration, err := time.ParseDuration(spec)
	if err != nil || duration <= 0 {
		t.Fatalf("MAILFERRY_SOAK=%q: want a duration such as 4m or 1h", spec)
	}
	seed := time.Now().UnixNano()
	if s := os.Getenv("MAILFERRY_SOAK_SEED"); s != "" {
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("MAILFERRY_SOAK_SEED=%q: %v", s, err)
		}
	}
	t.Logf("soak: %v, seed %d (replay with MAILFERRY_SOAK_SEED=%d)", duration, seed, seed)
	rng := rand.New(rand.NewSource(seed))

	groups := []*soakGroup{
		{name: "pop3-keep", kind: pop3Kind, plain: true},
		{name: "pop3-delete", kind: pop3Kind, deleteSource: true},
		{name: "imap-keep", kind: imapKind},
		{name: "imap-delete", kind: imapKind, deleteSource: true, plain: true},
	}
	sizes := []int{3, 2, 3, 2}
	var users []string
	var accounts []*soakAccount
	for i, g := range groups {
		for j := 1; j <= sizes[i]; j++ {
			u := fmt.Sprintf("soak-%s-%d", g.name, j)
			g.users = append(g.users, u)
			users = append(users, u)
			accounts = append(accounts, &soakAccount{user: u, group: g, done: map[string]int{}})
		}
	}
	env := startFaultEnv(t, users, dovecot.Options{})
	for _, g := range groups {
		g.setup(t, env, rng)
		t.Logf("group %s: accounts %s, plaintext %v, delete-source %v", g.name, strings.Join(g.users, " "), g.plain, g.deleteSource)
	}

	tally := &soakTally{}
	start := time.Now()
	t.Cleanup(func() { t.Log(tally.summary(seed, time.Since(start))) })
	runtime.GC()
	tally.baseGoroutines = runtime.NumGoroutine()

	for round := 1; time.Since(start) < duration; round++ {
		sr := &soakRound{t: t, env: env, rng: rng, round: round, seed: seed, groups: groups, accounts: accounts, tally: tally}
		sr.run()
		if os.Getenv("MAILFERRY_SOAK_VERBOSE") != "" {
			t.Logf("round %d runs:\n  %s", round, strings.Join(sr.history, "\n  "))
		}
		tally.rounds = round
		tally.sample(t, round)
	}
	tally.assertFlat(t)
}

// setup writes the group's password files and its two configs.
func (g *soakGroup) setup(t *testing.T, env *faultEnv, rng *rand.Rand) {
	t.Helper()
	srcTLS, srcPlain := g.kind.addrs(env.src)
	srcAddr, dstAddr := srcTLS, env.dst.IMAPSAddr()
	if g.plain {
		srcAddr, dstAddr = srcPlain, env.dst.IMAPAddr()
	}
	g.src, g.dst = startProxy(t, srcAddr), startProxy(t, dstAddr)
	g.srcLoad = proxyLoad{conns: len(g.users), perConn: [2]int64{2000, 1000}}
	g.dstLoad = proxyLoad{conns: 2 * len(g.users), perConn: [2]int64{1000, 2000}}
	dir := filepath.Join(env.dir, g.name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, pw := range map[string]string{"src.pw": srcPassword, "dst.pw": dstPassword} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srcURL := g.kind.url("u", g.src.Addr(), g.plain)
	srcURL = strings.Replace(srcURL, "u@", "", 1) // a config's url has no user
	dstURL := "imaps://" + g.dst.Addr()
	if g.plain {
		dstURL = "imap://" + g.dst.Addr() + "?tls=none"
	}
	g.batch = 1 + rng.Intn(8)
	sessions := 1 + rng.Intn(3)
	var accts strings.Builder
	for _, u := range g.users {
		fmt.Fprintf(&accts, "\n[[account]]\nsource_user = %q\nsource_password_file = \"src.pw\"\ndest_password_file = \"dst.pw\"\n", u)
	}
	write := func(name, idle string) string {
		server := fmt.Sprintf("tls_ca = %q\nallow_plaintext = %v\nidle_timeout = %q\n", env.src.CAFile(), g.plain, idle)
		cfg := fmt.Sprintf("state = \"state.db\"\nworkers = %d\ndelete_source = %v\n\n[source]\nurl = %q\n%s\n"+
			"[destination]\nurl = %q\n%sbatch_messages = %d\nsessions = %d\n%s",
			len(g.users), g.deleteSource, srcURL, server, dstURL, server, g.batch, sessions, accts.String())
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	g.faultConfig = write("fault.toml", soakFaultIdle.String())
	g.cleanConfig = write("clean.toml", "1m")
}

// soakRound is one round: new mail, fault runs, clean runs, checks.
type soakRound struct {
	t        *testing.T
	env      *faultEnv
	rng      *rand.Rand
	round    int
	seed     int64
	groups   []*soakGroup
	accounts []*soakAccount
	tally    *soakTally
	history  []string
	mu       sync.Mutex // guards the counts deliverOne keeps
	// newBytes is the mail delivered to each group this round.
	newBytes map[*soakGroup]int64
}

func (sr *soakRound) run() {
	t := sr.t
	t.Helper()
	sr.deliver()
	crash := sr.round%soakCrashEvery == 0
	if crash {
		sr.crashRun()
	}
	for i, n := 0, 1+sr.rng.Intn(2); i < n; i++ {
		sr.faultRun(i == 0 && sr.rng.Intn(2) == 0)
	}
	// Clean runs until every group completes; after a crash round the
	// first one is a child process too, whose peak RSS is a sample.
	// First the fault runs' connections must be gone: a stalled one may
	// still carry an APPEND mailferry gave up on, which Dovecot stores
	// when it arrives. The clean run must come after that, as any run
	// after a late copy removes it (pipeline.Resent); one that lands after
	// the last run of all stays until the next run.
	for _, g := range sr.groups {
		sr.setPlans(g, nil, nil)
		for _, p := range []*faultproxy.Proxy{g.src, g.dst} {
			if !p.WaitIdle(time.Minute) {
				sr.fail("group %s: a fault run's connection still open a minute after the runs ended", g.name)
			}
		}
	}
	pending := sr.groups
	for try := 1; len(pending) > 0; try++ {
		if try > 4 {
			sr.fail("groups %v did not complete in 4 clean runs", groupNames(pending))
		}
		child := crash && try == 1
		results := sr.runGroups(pending, func(g *soakGroup) soakRun {
			if child {
				return runSoakChild(g.cleanConfig, nil)
			}
			return runSoakInProcess(g.cleanConfig)
		})
		var left []*soakGroup
		var peak int64
		for i, g := range pending {
			r := results[i]
			peak = max(peak, r.peakKB)
			sr.history = append(sr.history, fmt.Sprintf("clean run %d (child %v) %s: %s", try, child, g.name, r))
			if r.err != nil {
				sr.fail("clean run of %s: %v", g.name, r.err)
			}
			if r.code != exitOK {
				left = append(left, g)
			}
		}
		if child {
			sr.tally.rss = append(sr.tally.rss, peak)
		}
		sr.tally.cleanRuns += len(pending)
		if len(left) > 0 {
			sr.check(false)
		}
		pending = left
	}
	sr.check(true)
	sr.tally.onDest = 0
	for _, a := range sr.accounts {
		sr.tally.onDest += countOf(a.done)
	}
}

// deliver puts new mail into some accounts' sources and takes the round's
// snapshot of every source, which must be the mail the destination got in
// earlier rounds (none with --delete-source) plus the new mail.
func (sr *soakRound) deliver() {
	t := sr.t
	t.Helper()
	sr.newBytes = map[*soakGroup]int64{}
	delivered := map[*soakAccount][][]byte{}
	for _, a := range sr.accounts {
		a.fresh = 0
		if sr.rng.Intn(10) < 3 {
			continue
		}
		for i, n := 0, 1+sr.rng.Intn(6); i < n; i++ {
			msg := sr.drawMessage(a)
			if err := sr.deliverOne(a, msg); err != nil {
				t.Fatal(err)
			}
			delivered[a] = append(delivered[a], msg)
		}
	}
	for _, a := range sr.accounts {
		a.snapshot = digestCount(a.group.kind.served(t, sr.env.src, a.user))
		before := a.done
		if a.group.deleteSource {
			before = nil
		}
		if m, x := diffCounts(addCounts(before, digestCount(delivered[a])), a.snapshot); m+x > 0 {
			sr.fail("%s: the source serves %d messages; %d of those expected are missing, %d are unexpected",
				a.user, countOf(a.snapshot), m, x)
		}
		a.want = addCounts(a.snapshot, nil)
		if a.group.deleteSource {
			a.want = addCounts(a.done, a.snapshot)
		}
	}
}

// drawMessage draws the next message for a: usually a new one, sometimes
// the same bytes as an earlier one.
func (sr *soakRound) drawMessage(a *soakAccount) (msg []byte) {
	if len(a.history) > 0 && sr.rng.Intn(12) == 0 {
		msg = a.history[sr.rng.Intn(len(a.history))]
	} else {
		msg = soakMessage(sr.rng, a.user, a.next)
		a.next++
		if len(a.history) < 20 && len(msg) < 4096 {
			a.history = append(a.history, msg)
		}
	}
	return msg
}

// deliverOne stores msg in a's source INBOX through Dovecot (doveadm
// save), as real mail arrives, and counts it. Not SeedMaildir: in a soak
// run that mixed both, two of five files written into cur/ behind
// Dovecot's back stayed invisible to the next POP3 session, before any
// mailferry run (most likely Dovecot's Maildir sync trusting a directory
// mtime it had recorded). It does not touch testing.T: mail also arrives
// while runs are going on.
func (sr *soakRound) deliverOne(a *soakAccount, msg []byte) error {
	if err := sr.env.src.Deliver(a.user, "INBOX", msg); err != nil {
		return fmt.Errorf("round %d: delivering to %s: %w", sr.round, a.user, err)
	}
	sr.mu.Lock()
	defer sr.mu.Unlock()
	sr.tally.delivered++
	a.fresh++
	sr.newBytes[a.group] += int64(len(msg))
	return nil
}

// arrivals delivers a few messages to random accounts while a run is going
// on, returning a function that waits for them and adds them to the
// round's snapshots.
func (sr *soakRound) arrivals() (wait func()) {
	type arrival struct {
		a     *soakAccount
		msg   []byte
		delay time.Duration
	}
	var plan []arrival
	for i, n := 0, 1+sr.rng.Intn(5); i < n; i++ {
		a := sr.accounts[sr.rng.Intn(len(sr.accounts))]
		plan = append(plan, arrival{a, sr.drawMessage(a), time.Duration(sr.rng.Int63n(int64(2 * time.Second)))})
	}
	done := make(chan error, 1)
	go func() {
		for _, ar := range plan {
			time.Sleep(ar.delay) // spread the arrivals over the run
			if err := sr.deliverOne(ar.a, ar.msg); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return func() {
		sr.t.Helper()
		if err := <-done; err != nil {
			sr.t.Fatal(err)
		}
		for _, ar := range plan {
			d := digests([][]byte{ar.msg})[0]
			ar.a.snapshot[d]++
			ar.a.want[d]++
		}
		sr.history = append(sr.history, fmt.Sprintf("%d messages arrived during the run", len(plan)))
	}
}

// soakMessage is message n of user: a few hundred bytes to a few KB, one
// in forty of 64 to 400 KB, some with lines that need dot-stuffing.
func soakMessage(rng *rand.Rand, user string, n int) []byte {
	size := 200 + rng.Intn(3000)
	if rng.Intn(40) == 0 {
		size = 64<<10 + rng.Intn(336<<10)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Received: from mx.soak.test by mx; Tue, 3 Mar 2020 %02d:%02d:%02d +0000\r\n"+
		"Message-ID: <%s-%d@soak.test>\r\nFrom: list@soak.test\r\nTo: %s@soak.test\r\nSubject: soak %s %d\r\n\r\n",
		n/3600%24, n/60%60, n%60, user, n, user, user, n)
	for line := 0; b.Len() < size; line++ {
		if rng.Intn(25) == 0 {
			b.WriteString(".\r\n..leading dots\r\n")
		}
		fmt.Fprintf(&b, "line %d of %s message %d %s\r\n", line, user, n, strings.Repeat("z", rng.Intn(60)))
	}
	return b.Bytes()
}

// crashRun runs every group once in a child process set to SIGKILL itself
// at a random crashpoint.
func (sr *soakRound) crashRun() {
	cps := map[*soakGroup]string{}
	for _, g := range sr.groups {
		sr.setPlans(g, nil, nil)
		points := []string{"pending", "appended", "committed"}
		if g.deleteSource {
			points = append(points, "deleted")
		}
		point := points[sr.rng.Intn(len(points))]
		nth := 1 + sr.rng.Intn(max(1, sr.batches(g)))
		if point == "deleted" {
			nth = 1 + sr.rng.Intn(len(g.users)) // one DELE round per account
		}
		cps[g] = fmt.Sprintf("%s:%d", point, nth)
	}
	results := sr.runGroups(sr.groups, func(g *soakGroup) soakRun {
		return runSoakChild(g.cleanConfig, []string{"MAILFERRY_TEST_CRASHPOINT=" + cps[g]})
	})
	for i, g := range sr.groups {
		r := results[i]
		sr.history = append(sr.history, fmt.Sprintf("crashpoint %s %s: %s", cps[g], g.name, r))
		if r.err != nil {
			sr.fail("crash run of %s: %v", g.name, r.err)
		}
		if r.code != -1 && r.code != exitOK {
			sr.fail("crashpoint %s in %s: exit %d, want a kill or success\n%s", cps[g], g.name, r.code, lastLines(r.stderr, 20))
		}
		sr.tally.crashRuns++
		if r.code == -1 {
			sr.tally.killed++
			sr.tally.rssKilled = max(sr.tally.rssKilled, r.peakKB)
		}
	}
	sr.check(false)
}

// batches is how many destination batches the group's new mail makes
// this round (more when sessions split an account's mail).
func (sr *soakRound) batches(g *soakGroup) int {
	n := 0
	for _, a := range sr.accounts {
		if a.group == g {
			n += (a.fresh + g.batch - 1) / g.batch
		}
	}
	return n
}

// faultRun runs every group in-process with one random proxy fault each,
// with new mail arriving meanwhile when arrive is set.
func (sr *soakRound) faultRun(arrive bool) {
	descs := map[*soakGroup]string{}
	attempts := map[*soakGroup]int{}
	for _, g := range sr.groups {
		side, faults, n := sr.drawFault(g)
		attempts[g] = n
		if side == "source" {
			sr.setPlans(g, faults, nil)
		} else {
			sr.setPlans(g, nil, faults)
		}
		descs[g] = fmt.Sprintf("%s fault %v", side, faults[0])
	}
	wait := func() {}
	if arrive {
		wait = sr.arrivals()
	}
	results := sr.runGroups(sr.groups, func(g *soakGroup) soakRun {
		return runSoakInProcess(g.faultConfig, "--attempts", strconv.Itoa(attempts[g]), "--retry-backoff", "200ms")
	})
	wait()
	for i, g := range sr.groups {
		r := results[i]
		fired := append(g.src.Events(), g.dst.Events()...)
		sr.history = append(sr.history, fmt.Sprintf("%s, attempts %d, %s: %s, fired %v", descs[g], attempts[g], g.name, r, fired))
		if r.err != nil {
			sr.fail("fault run of %s: %v", g.name, r.err)
		}
		if r.code != exitOK && r.code != exitFatal && r.code != exitPartial {
			sr.fail("%s in %s: exit %d\n%s", descs[g], g.name, r.code, lastLines(r.stderr, 20))
		}
		sr.tally.faultRuns++
		if len(fired) > 0 {
			sr.tally.fired++
		}
	}
	sr.check(false)
}

// drawFault draws one fault for one of the group's proxies, as the fault
// suite does: offsets within the bytes a run moves, lines to inject on
// plaintext connections, sometimes on every connection.
func (sr *soakRound) drawFault(g *soakGroup) (side string, faults []faultproxy.Fault, attempts int) {
	rng := sr.rng
	side = "source"
	load, lines := g.srcLoad, g.kind.lines
	if rng.Intn(2) == 0 {
		side, load, lines = "destination", g.dstLoad, dstLines
	}
	o := faultproxy.RandomOptions{Conn: 1 + rng.Intn(max(load.conns, len(g.users))), MaxStall: 1500 * time.Millisecond,
		MinRate: 16 << 10, MaxRate: 256 << 10,
		Kinds: []faultproxy.Kind{faultproxy.Cut, faultproxy.Cut, faultproxy.Reset, faultproxy.Stall, faultproxy.Slow}}
	if g.plain {
		o.Lines = lines
		o.Kinds = append(o.Kinds, faultproxy.Inject, faultproxy.Inject)
	}
	if rng.Intn(6) == 0 {
		o.Conn = 0 // every connection, retries included
	}
	if rng.Intn(8) == 0 {
		o.MaxStall = 0 // stall until the idle timeout ends it
	}
	faults = faultproxy.RandomFault(rng, o)
	// The offset falls within what a connection carried in the last run,
	// plus, in the direction of the bulk (server→client from the source,
	// client→server to the destination), an account's share of the new mail.
	dir := faults[0].Dir
	if faults[0].Kind == faultproxy.Inject {
		dir = faultproxy.ServerToClient
	}
	span := load.perConn[dir] + 200
	if (side == "source") == (dir == faultproxy.ServerToClient) {
		span += sr.newBytes[g] / int64(len(g.users))
	}
	after := rng.Int63n(span)
	for i := range faults { // an injected line and its cut share the offset
		faults[i].After = after
	}
	return side, faults, 1 + rng.Intn(3)
}

func (sr *soakRound) setPlans(g *soakGroup, src, dst []faultproxy.Fault) {
	sr.t.Helper()
	if err := g.src.SetPlan(faultproxy.Plan{Faults: src}); err != nil {
		sr.t.Fatal(err)
	}
	if err := g.dst.SetPlan(faultproxy.Plan{Faults: dst}); err != nil {
		sr.t.Fatal(err)
	}
}

// runGroups runs fn for every group at once and returns the results in
// the groups' order.
func (sr *soakRound) runGroups(groups []*soakGroup, fn func(g *soakGroup) soakRun) []soakRun {
	out := make([]soakRun, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			out[i] = fn(g)
			out[i].wall = time.Since(start)
		}()
	}
	wg.Wait()
	for _, g := range groups {
		g.srcLoad, g.dstLoad = loadOf(g.src), loadOf(g.dst)
	}
	for _, r := range out {
		sr.tally.lateRemoved += r.report.Totals.LateCopiesRemoved
	}
	return out
}

// check verifies every account after a run. Always: the destination holds
// nothing the source did not have (and nothing more often), and with
// --delete-source everything gone from the source is on the destination.
// When complete: the destination holds exactly the source's multiset, a
// --delete-source source is empty and any other source is as it was.
func (sr *soakRound) check(complete bool) {
	t := sr.t
	t.Helper()
	for _, a := range sr.accounts {
		got := digestCount(imapBodies(t, sr.env.dst, a.user, dstPassword, "INBOX"))
		sr.tally.checks++
		missing, extra := diffCounts(a.want, got)
		foreign := 0
		for d, n := range got {
			if a.want[d] == 0 {
				foreign += n
			}
		}
		switch {
		case extra > 0 && (complete || foreign > 0):
			sr.tally.dups += extra
			sr.fail("%s: the destination holds %d messages the source does not have, or more often", a.user, extra)
		case extra > 0:
			// A second copy of a message the source has, between fault
			// runs: an APPEND given up on may land late, after the
			// message was sent again; the next run removes it
			// (pipeline.Resent), which the complete check proves.
			sr.tally.lateSeen += extra
			sr.history = append(sr.history, fmt.Sprintf("%s: %d second copies on the destination, to be removed by the next run", a.user, extra))
		}
		var source map[string]int
		if a.group.deleteSource || complete {
			source = digestCount(a.group.kind.served(t, sr.env.src, a.user))
		}
		if a.group.deleteSource {
			gone := subtractCounts(a.snapshot, source) // in the snapshot, no longer at the source
			if lost, _ := diffCounts(addCounts(a.done, gone), got); lost > 0 {
				sr.tally.lost += lost
				sr.fail("%s: %d of the %d messages deleted at the source are not on the destination", a.user, lost, countOf(gone))
			}
		}
		if !complete {
			continue
		}
		if missing > 0 {
			sr.tally.lost += missing
			sr.fail("%s: after a complete run the destination lacks %d messages", a.user, missing)
		}
		if a.group.deleteSource && countOf(source) != 0 {
			sr.fail("%s: a complete --delete-source run left %d messages at the source", a.user, countOf(source))
		}
		if !a.group.deleteSource {
			if m, x := diffCounts(a.snapshot, source); m+x > 0 {
				sr.fail("%s: the source changed without --delete-source: %d messages gone, %d new", a.user, m, x)
			}
		}
		a.done = got
		sr.tally.verified += countOf(got)
	}
}

// fail ends the test with the round's story: seed, round, every run.
func (sr *soakRound) fail(format string, args ...any) {
	sr.t.Helper()
	sr.t.Fatalf("soak seed %d, round %d: %s\nruns this round:\n  %s", sr.seed, sr.round,
		fmt.Sprintf(format, args...), strings.Join(sr.history, "\n  "))
}

// sample records the goroutines and heap in use after the round, once
// the goroutines of the round's connections have ended.
func (tally *soakTally) sample(t *testing.T, round int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	n := runtime.NumGoroutine()
	for n > tally.baseGoroutines+soakGoroutineSlack && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // connections still closing; polled, bounded
		n = runtime.NumGoroutine()
	}
	if n > tally.baseGoroutines+soakGoroutineSlack {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Fatalf("round %d left %d goroutines, %d before the first round (slack %d):\n%s",
			round, n, tally.baseGoroutines, soakGoroutineSlack, b.String())
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	tally.goroutines = append(tally.goroutines, int64(n))
	tally.heap = append(tally.heap, int64(ms.HeapInuse))
	rss := "-"
	if round%soakCrashEvery == 0 {
		rss = fmt.Sprintf("%.1f MiB", float64(tally.rss[len(tally.rss)-1])/1024)
	}
	t.Logf("round %d done: %d delivered, %d verified so far; goroutines %d, heap %.1f MiB, child RSS %s",
		round, tally.delivered, tally.verified, n, float64(ms.HeapInuse)/(1<<20), rss)
}

// assertFlat fails when the heap or the children's peak RSS grew from the
// first third of the rounds to the last.
func (tally *soakTally) assertFlat(t *testing.T) {
	t.Helper()
	check := func(what string, series []int64, unit, slack int64) {
		t.Helper()
		if len(series) < 3 {
			t.Logf("%s: %d samples, too few for a trend (run longer)", what, len(series))
			return
		}
		third := len(series) / 3
		first, last := maxInt64(series[:third]), maxInt64(series[len(series)-third:])
		limit := int64(float64(first)*(1+soakGrowthFraction)) + slack/unit
		if last > limit {
			t.Errorf("%s grew: max %d over the first %d samples, %d over the last %d (limit %d)", what, first, third, last, third, limit)
		}
	}
	check("heap in use (bytes)", tally.heap, 1, soakHeapSlack)
	check("child peak RSS (KB)", tally.rss, 1024, soakRSSSlack)
}

func (tally *soakTally) summary(seed int64, d time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "soak summary (seed %d)\n", seed)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	row := func(name string, value any, note string) { fmt.Fprintf(tw, "  %s\t%v\t%s\n", name, value, note) }
	row("duration", d.Round(time.Second), "")
	row("rounds", tally.rounds, "")
	row("scenarios", tally.faultRuns+tally.crashRuns, fmt.Sprintf("%d proxy-fault runs (%d faults fired), %d crashpoint runs (%d killed)",
		tally.faultRuns, tally.fired, tally.crashRuns, tally.killed))
	row("clean runs", tally.cleanRuns, "")
	row("messages delivered", tally.delivered, "")
	row("messages verified", tally.onDest, fmt.Sprintf("on the destinations at the end; %d summed over the rounds, %d account checks",
		tally.verified, tally.checks))
	row("duplicates", tally.dups, "after the clean runs of a round, or of a message the source never had")
	row("late copies", tally.lateSeen, fmt.Sprintf("second copies seen between runs; %d removed by the runs (they report it)", tally.lateRemoved))
	row("lost", tally.lost, "")
	tw.Flush()

	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	mib := func(v, unit int64) string { return fmt.Sprintf("%.1f MiB", float64(v*unit)/(1<<20)) }
	series := func(name string, s []int64, format func(int64) string) {
		if len(s) == 0 {
			fmt.Fprintf(tw, "  %-30s\t-\t-\t-\t\n", name)
			return
		}
		fmt.Fprintf(tw, "  %-30s\t%s\t%s\t%s\t\n", name, format(s[0]), format(s[len(s)-1]), format(maxInt64(s)))
	}
	fmt.Fprintf(tw, "  %-30s\tfirst\tlast\tmax\t\n", "")
	series(fmt.Sprintf("goroutines (baseline %d)", tally.baseGoroutines), tally.goroutines, func(v int64) string { return strconv.FormatInt(v, 10) })
	series("heap in use", tally.heap, func(v int64) string { return mib(v, 1) })
	series("child peak RSS, complete runs", tally.rss, func(v int64) string { return mib(v, 1024) })
	fmt.Fprintf(tw, "  %-30s\t\t\t%s\t\n", "child peak RSS, killed runs", mib(tally.rssKilled, 1024))
	tw.Flush()
	return b.String()
}

// soakRun is one mailferry run of a group.
type soakRun struct {
	code   int
	report report
	stderr string
	peakKB int64 // child processes only
	wall   time.Duration
	err    error // the run could not be made or read, not mailferry's exit
}

func (r soakRun) String() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	var parts []string
	for _, a := range r.report.Accounts {
		s := fmt.Sprintf("%s copied %d", a.Account, a.Copied)
		if a.ErrorClass != "" {
			s += " (" + a.ErrorClass + ")"
		}
		parts = append(parts, s)
	}
	return fmt.Sprintf("exit %d in %v [%s]", r.code, r.wall.Round(10*time.Millisecond), strings.Join(parts, ", "))
}

// runSoakInProcess runs `mailferry run -c cfg` in the test process. It
// does not touch testing.T: it runs on a goroutine of its own.
func runSoakInProcess(cfg string, extra ...string) soakRun {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append([]string{"run", "-c", cfg, "--json", "--progress", "none"}, extra...)
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: passwords})
	r := soakRun{code: code, stderr: stderr.String()}
	if err := json.Unmarshal(stdout.Bytes(), &r.report); err != nil {
		r.err = fmt.Errorf("the --json report of %s does not parse (exit %d): %v\n%s", cfg, code, err, lastLines(r.stderr, 20))
	}
	return r
}

// runSoakChild runs `mailferry run -c cfg` as a child process (the test
// binary in main mode) and reads its peak RSS from /proc while it runs.
func runSoakChild(cfg string, envs []string) soakRun {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "run", "-c", cfg, "--json", "--progress", "none")
	cmd.Env = append(append(os.Environ(), "MAILFERRY_E2E_AS_MAIN=1"), envs...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return soakRun{err: fmt.Errorf("starting mailferry: %w", err)}
	}
	hwm := peakrss.Watch(cmd.Process.Pid)
	err := cmd.Wait()
	r := soakRun{stderr: stderr.String(), peakKB: hwm()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode() // -1 when killed by a signal
	case err != nil:
		r.err = fmt.Errorf("running mailferry: %w", err)
		return r
	}
	if r.code >= 0 {
		if err := json.Unmarshal(stdout.Bytes(), &r.report); err != nil {
			r.err = fmt.Errorf("the --json report of %s does not parse (exit %d): %v\n%s", cfg, r.code, err, lastLines(r.stderr, 20))
		}
	}
	return r
}

// digestCount is a multiset of messages by digest.
func digestCount(bodies [][]byte) map[string]int {
	out := map[string]int{}
	for _, d := range digests(bodies) {
		out[d]++
	}
	return out
}

// diffCounts returns how many of want got lacks and how many of got are
// not in want (or more often than there).
func diffCounts(want, got map[string]int) (missing, extra int) {
	for d, n := range want {
		missing += max(0, n-got[d])
	}
	for d, n := range got {
		extra += max(0, n-want[d])
	}
	return missing, extra
}

func addCounts(a, b map[string]int) map[string]int {
	out := make(map[string]int, len(a)+len(b))
	for d, n := range a {
		out[d] += n
	}
	for d, n := range b {
		out[d] += n
	}
	return out
}

// subtractCounts is a minus b, never below zero.
func subtractCounts(a, b map[string]int) map[string]int {
	out := map[string]int{}
	for d, n := range a {
		if left := n - b[d]; left > 0 {
			out[d] = left
		}
	}
	return out
}

func countOf(m map[string]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

func maxInt64(s []int64) int64 {
	m := s[0]
	for _, v := range s[1:] {
		m = max(m, v)
	}
	return m
}

func groupNames(groups []*soakGroup) []string {
	out := make([]string, len(groups))
	for i, g := range groups {
		out[i] = g.name
	}
	return out
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
