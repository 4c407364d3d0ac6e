package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/postgres"
	"github.com/mailferry/mailferry/pipeline"
)

// The PostgreSQL engine's own tests: leases and fencing between workers,
// the checks a shared database needs, and passwords kept out of messages.
// The rules every engine keeps are in ledgertest
// (conformance_postgres_test.go). One private server serves every case,
// each case its own database.
func TestPostgres(t *testing.T) {
	srv := postgres.Start(t, postgres.Options{})
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, srv *postgres.Server, dbURL string)
	}{
		{"ClaimRace", testPGClaimRace},
		{"FencedAfterTakeover", testPGFencedAfterTakeover},
		{"LostBeforeExpiry", testPGLostBeforeExpiry},
		{"SlotsGivenBackWhileCut", testPGSlotsGivenBackWhileCut},
		{"LostHoldRequeued", testPGLostHoldRequeued},
		{"CutWorkerEndsQuickly", testPGCutWorkerEndsQuickly},
		{"PausedAtRenewal", testPGPausedAtRenewal},
		{"DeadLocalWorker", testPGDeadLocalWorker},
		{"ConcurrentResolve", testPGConcurrentResolve},
		{"QueueClaims", testPGQueueClaims},
		{"PassesPruned", testPGPassesPruned},
		{"QueueTakesOverExpired", testPGQueueTakesOverExpired},
		{"Refusals", testPGRefusals},
		{"UpgradeSchema5", testPGUpgradeSchema5},
		{"PasswordsNeverShown", testPGPasswordsNeverShown},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, srv, postgres.Database(t, srv)) })
	}
	// The status page's queries, written as SQLite tests, on PostgreSQL.
	pgFresh = func(t testing.TB, opts *Options) *Ledger {
		t.Helper()
		o := Options{}
		if opts != nil {
			o = *opts
		}
		o.Password = srv.Password()
		l, err := Open(context.Background(), postgres.Database(t, srv), &o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	defer func() { pgFresh = nil }()
	for name, fn := range map[string]func(*testing.T){
		"ControlPauseResume": TestControlPauseResume,
		"RequestRetry":       TestRequestRetry,
		"Each":               TestEach,
		"DoneHistory":        TestDoneHistory,
	} {
		t.Run(name, fn)
	}
}

// openPG opens the ledger at dbURL as one worker and closes it at the end.
func openPG(t *testing.T, srv *postgres.Server, dbURL, worker string, ttl time.Duration) *Ledger {
	t.Helper()
	l, err := Open(context.Background(), dbURL, &Options{Password: srv.Password(), Worker: worker, LeaseTTL: ttl})
	if err != nil {
		t.Fatalf("opening %s as %s: %v", dbURL, worker, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// testPGClaimRace: workers on their own connections claiming one account
// at the same moment, round after round: exactly one gets it each time,
// and its epoch is higher than every earlier holder's.
func testPGClaimRace(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	const workers, rounds = 6, 15
	ls := make([]*Ledger, workers)
	for i := range ls {
		ls[i] = openPG(t, srv, dbURL, "w"+string(rune('a'+i)), 0)
	}
	res, err := ls[0].ResolveAccount(ctx, testSpec("alice"))
	if err != nil {
		t.Fatal(err)
	}
	lastEpoch := int64(0)
	for round := range rounds {
		var wg sync.WaitGroup
		start := make(chan struct{})
		holds := make([]pipeline.Hold, workers)
		errs := make([]error, workers)
		for i := range ls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				holds[i], errs[i] = ls[i].Hold(ctx, res.Account)
			}()
		}
		close(start)
		wg.Wait()
		var winner *hold
		for i := range ls {
			switch {
			case errs[i] == nil && winner != nil:
				t.Fatalf("round %d: two workers hold the account", round)
			case errs[i] == nil:
				winner = holds[i].(*hold)
			case !errors.Is(errs[i], ErrLocked):
				t.Fatalf("round %d: worker %d: %v, want ErrLocked", round, i, errs[i])
			}
		}
		if winner == nil {
			t.Fatalf("round %d: nobody got the account: %v", round, errs)
		}
		if winner.lease.epoch <= lastEpoch {
			t.Fatalf("round %d: epoch %d after %d", round, winner.lease.epoch, lastEpoch)
		}
		lastEpoch = winner.lease.epoch
		if err := winner.l.Commit(ctx, res.Account, pipeline.Changes{Put: []pipeline.Entry{{Key: "k", State: pipeline.StateDone, Size: int64(round)}}}); err != nil {
			t.Fatalf("round %d: the holder's Commit: %v", round, err)
		}
		if err := winner.Release(ctx); err != nil {
			t.Fatalf("round %d: Release: %v", round, err)
		}
	}
}

// testPGFencedAfterTakeover: a worker frozen past its lease (it never
// noticed: no renewal failed yet) is taken over; its next Commit writes
// nothing and fails with ErrHoldLost, and its Lost closes. The successor
// writes, and releasing the old hold does not free the successor's.
func testPGFencedAfterTakeover(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	a := openPG(t, srv, dbURL, "frozen", time.Minute)
	b := openPG(t, srv, dbURL, "successor", time.Minute)
	id, ha := held(t, a, "alice")
	if err := a.Commit(ctx, id, pipeline.Changes{Put: []pipeline.Entry{{Key: "before", State: pipeline.StatePending}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Hold(ctx, id); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "frozen") {
		t.Fatalf("Hold of a live lease: %v, want ErrLocked naming the holder", err)
	}
	st, err := b.Status(ctx, Selector{IDs: []pipeline.AccountID{id}})
	if err != nil || len(st) != 1 || st[0].Worker != "frozen" || st[0].Holder == 0 {
		t.Fatalf("status of a leased account: %+v, %v", st, err)
	}
	// The lease runs out while its holder is frozen (the database's clock
	// moved past it).
	name, _ := dbName(dbURL)
	if err := srv.Exec(ctx, name, `UPDATE mailferry.accounts SET lease_expires = 1 WHERE id = $1`, int64(id)); err != nil {
		t.Fatal(err)
	}
	hb, err := b.Hold(ctx, id)
	if err != nil {
		t.Fatalf("taking over an expired lease: %v", err)
	}
	if hb.(*hold).lease.epoch <= ha.(*hold).lease.epoch {
		t.Errorf("takeover epoch %d, old %d", hb.(*hold).lease.epoch, ha.(*hold).lease.epoch)
	}
	err = a.Commit(ctx, id, pipeline.Changes{Put: []pipeline.Entry{{Key: "late", State: pipeline.StateDone}}, Delete: []string{"before"}})
	if !errors.Is(err, ErrHoldLost) {
		t.Fatalf("Commit under the old epoch: %v, want ErrHoldLost", err)
	}
	select {
	case <-ha.Lost():
	default:
		t.Error("a fenced-off hold is not lost")
	}
	if err := b.Commit(ctx, id, pipeline.Changes{Put: []pipeline.Entry{{Key: "before", State: pipeline.StateDone}}}); err != nil {
		t.Fatalf("the successor's Commit: %v", err)
	}
	page, _, err := b.Scan(ctx, id, pipeline.Query{})
	if err != nil || len(page) != 1 || page[0].Key != "before" || page[0].State != pipeline.StateDone {
		t.Fatalf("entries after the fenced Commit: %+v, %v", page, err)
	}
	if err := ha.Release(ctx); err != nil {
		t.Errorf("releasing a lost hold: %v", err)
	}
	if _, err := a.Hold(ctx, id); !errors.Is(err, ErrLocked) {
		t.Errorf("the old holder's release freed the successor's lease: %v", err)
	}
}

// cutAndDirect opens two workers of the ledger at dbURL with lease TTL
// ttl: a, "cut-off", through a proxy the test can cut, and b, "other",
// straight to the server.
func cutAndDirect(t *testing.T, srv *postgres.Server, dbURL string, ttl time.Duration) (a, b *Ledger, cut *postgres.Proxy) {
	t.Helper()
	cut = postgres.CutProxy(t, srv)
	u, _ := url.Parse(dbURL)
	u.Host = cut.Addr()
	return openPG(t, srv, u.String(), "cut-off", ttl), openPG(t, srv, dbURL, "other", ttl), cut
}

// testPGSlotsGivenBackWhileCut: a worker cut from the database gives its
// connection slots back as its sessions close without waiting for the
// database: an account closes its destination sessions before its
// source, and each give-back waiting half a TTL kept the source connection
// open past its slot's expiry (TestE2EFleetWorkers saw 3 connections at a
// cap of 2). The rows stay live until they expire, so nobody else takes
// them meanwhile, and Close does not wait on the give-backs either.
func testPGSlotsGivenBackWhileCut(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	const ttl, scope, size = 2 * time.Second, "pop.example:995", 3
	a, b, cut := cutAndDirect(t, srv, dbURL, ttl)
	rel, err := a.Slots().Take(ctx, scope, size, 3)
	if err != nil {
		t.Fatal(err)
	}
	cut.Cut()
	start := time.Now()
	for _, r := range rel {
		r()
	}
	// Each waits giveWait (125 ms) at most; before, half a TTL (3 s for
	// the three).
	if d := time.Since(start); d > ttl/2 {
		t.Errorf("giving back 3 slots with the database out of reach took %v, want at most %v each (the sessions close one after another)", d, giveWait(ttl))
	}
	if n, err := b.Slots().InUse(ctx, scope); err != nil || n != 3 {
		t.Errorf("slots in use right after the cut worker gave them back: %d, %v; want its 3, live until they expire", n, err)
	}
	start = time.Now()
	_ = a.Close()
	if d := time.Since(start); d > 3*ttl/2 {
		t.Errorf("Close of the cut worker took %v, want at most its one TTL deadline", d)
	}
}

// testPGLostHoldRequeued: a worker that lost its lease while the database
// was out of reach, which answers again by the time the run ends, leaves
// the account queued and due: another worker claims it at once. Released
// idle (as before), no worker claimed it again: a service stopped
// polling it (TestE2EFleetService failed so under load, its lease
// renewals timing out), a pass ended without it.
func testPGLostHoldRequeued(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	const ttl = 2 * time.Second
	a, b, cut := cutAndDirect(t, srv, dbURL, ttl)
	res, err := a.ResolveAccount(ctx, testSpec("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Enqueue(ctx, []pipeline.AccountID{res.Account}); err != nil {
		t.Fatal(err)
	}
	_, h, err := a.ClaimAmong(ctx, []pipeline.AccountID{res.Account})
	if err != nil {
		t.Fatal(err)
	}
	cut.Cut()
	select {
	case <-h.Lost():
	case <-time.After(2 * ttl):
		t.Fatal("the hold was not lost with the database out of reach")
	}
	cut.Heal()
	if err := h.Release(ctx); err != nil {
		t.Fatalf("releasing the lost hold once the database answers again: %v", err)
	}
	id, hb, err := b.ClaimAmong(ctx, []pipeline.AccountID{res.Account})
	if err != nil || id != res.Account {
		t.Fatalf("another worker claiming the account right after: %v, %v; want it claimable at once", id, err)
	}
	if from, _, ok := TakenOver(hb); ok {
		t.Errorf("the claim took the account over from %s, want it given back by the worker that lost it", from)
	}
}

// testPGCutWorkerEndsQuickly: a worker cut from the database, once its
// hold is lost, ends the run (FinishRun), gives the hold back (Release),
// reads the ledger's size for its report and closes (Close) within one
// shared deadline, the expiry of the lease
// in the database, half a TTL after the loss: not a TTL per statement one
// after another (TestE2EFleetWorkers' cut worker took 15-17 s to exit at
// a TTL of 4 s). Nothing of it is written: the run stays unfinished, and
// another worker takes the account over once the lease ran out.
func testPGCutWorkerEndsQuickly(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	const ttl = 2 * time.Second
	a, b, cut := cutAndDirect(t, srv, dbURL, ttl)
	id, h := held(t, a, "alice")
	run, err := a.StartRun(ctx, id, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Slots().Take(ctx, "pop.example:995", 2, 1); err != nil {
		t.Fatal(err) // Close has a slot to give back
	}
	cut.Cut()
	select {
	case <-h.Lost():
	case <-time.After(2 * ttl):
		t.Fatal("the hold was not lost with the database out of reach")
	}
	lost := time.Now()
	ferr := a.FinishRun(ctx, run, pipeline.RunRecord{Result: "failed", Error: "cut off"})
	rerr := h.Release(ctx)
	_, _, serr := a.Size(ctx)
	cerr := a.Close()
	took := time.Since(lost)
	t.Logf("FinishRun, Release, Size and Close after the loss: %v (TTL %v): %v; %v; %v; %v", took.Round(time.Millisecond), ttl, ferr, rerr, serr, cerr)
	// The lease expires half a TTL after the loss; before, each of the
	// four waited a TTL for its reply (8 s here).
	if took > ttl {
		t.Errorf("FinishRun, Release, Size and Close of a worker cut from the database took %v after the loss of its hold, want at most %v (the lease's expiry, half a TTL after it, and some slack)", took, ttl)
	}
	if ferr == nil || rerr == nil {
		t.Errorf("FinishRun (%v) or Release (%v) through a cut connection succeeded", ferr, rerr)
	}
	// Their errors say what happened and what it means, not "context
	// deadline exceeded".
	for _, c := range []struct {
		what string
		err  error
		says string
	}{
		{"FinishRun", ferr, "the run's end was not recorded"},
		{"Release", rerr, "the account was not given back"},
		{"Size", serr, "size is left out of the report"},
		{"Close", cerr, "slots and accounts were not given back"},
	} {
		var oor *OutOfReachError
		if c.err == nil {
			continue // it went through before the deadline (Size, Close: nothing to write)
		}
		msg := c.err.Error()
		if !errors.As(c.err, &oor) || !strings.Contains(msg, "ledger out of reach since ") || !strings.Contains(msg, c.says) ||
			!strings.Contains(msg, "nothing was lost") || strings.Contains(msg, "deadline exceeded") ||
			oor.LeaseEnds.Before(lost) || oor.LeaseEnds.After(lost.Add(ttl)) {
			t.Errorf("%s's error after the cut: %q; want an *OutOfReachError saying %q, the lease's end within a TTL of the loss, nothing lost", c.what, msg, c.says)
		}
	}
	if ferr != nil && !strings.HasPrefix(ferr.Error(), fmt.Sprintf("finishing run %d in ", run)) {
		t.Errorf("FinishRun's error %q does not say which run", ferr)
	}
	cut.Heal()
	runs, err := b.Runs(ctx, id, 1)
	if err != nil || len(runs) != 1 || !runs[0].Finished.IsZero() || runs[0].Result != "" {
		t.Errorf("the cut worker's run: %+v, %v; want it unfinished", runs, err)
	}
	deadline := time.Now().Add(2 * ttl)
	for {
		hb, err := b.Hold(ctx, id)
		if err == nil {
			hb.Release(ctx)
			break
		}
		if !errors.Is(err, ErrLocked) || time.Now().After(deadline) {
			t.Fatalf("taking over the cut worker's account once its lease ran out: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testPGLostBeforeExpiry: a worker cut from the database (a proxy that
// stops answering) closes Lost half a TTL after its last renewal, while
// the lease is still live in the database, so it stops before anyone can
// take over; its Commits fail; another worker takes over once the lease
// expired.
func testPGLostBeforeExpiry(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	const ttl = 3 * time.Second
	a, b, cut := cutAndDirect(t, srv, dbURL, ttl)
	id, ha := held(t, a, "alice")
	time.Sleep(ttl / 2) // a renewal or two go through
	select {
	case <-ha.Lost():
		t.Fatal("lost while renewals go through")
	default:
	}
	cut.Cut()
	cutAt := time.Now()
	select {
	case <-ha.Lost():
	case <-time.After(ttl):
		t.Fatal("Lost not closed a whole TTL after the database became unreachable")
	}
	lostAfter := time.Since(cutAt)
	if _, err := b.Hold(ctx, id); !errors.Is(err, ErrLocked) {
		t.Fatalf("the lease was claimable when its holder noticed the loss (%v after the cut): %v", lostAfter, err)
	}
	if err := a.Commit(ctx, id, pipeline.Changes{Put: []pipeline.Entry{{Key: "k", State: pipeline.StateDone}}}); !errors.Is(err, ErrHoldLost) {
		t.Errorf("Commit after Lost: %v, want ErrHoldLost", err)
	}
	// Any other statement, with a context that never ends, gives up
	// within about a TTL instead of waiting for the network.
	asked := time.Now()
	if _, err := a.Counts(ctx, id); err == nil {
		t.Error("a read through the cut connection succeeded")
	} else if waited := time.Since(asked); waited > 2*ttl {
		t.Errorf("a read through the cut connection gave up after %v, want within about %v", waited, ttl)
	}
	var hb pipeline.Hold
	deadline := time.Now().Add(2 * ttl)
	for {
		var err error
		if hb, err = b.Hold(ctx, id); err == nil {
			break
		}
		if !errors.Is(err, ErrLocked) || time.Now().After(deadline) {
			t.Fatalf("taking over the cut-off worker's account: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("Lost closed %v after the cut; taken over %v after the cut (TTL %v)", lostAfter.Round(time.Millisecond),
		time.Since(cutAt).Round(time.Millisecond), ttl)
	if err := b.Commit(ctx, id, pipeline.Changes{Put: []pipeline.Entry{{Key: "k", State: pipeline.StateDone}}}); err != nil {
		t.Fatal(err)
	}
	hb.Release(ctx)
}

// testPGPausedAtRenewal: a pause reaches a running worker at its next
// lease renewal, without a Commit.
func testPGPausedAtRenewal(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	a := openPG(t, srv, dbURL, "runner", 400*time.Millisecond)
	admin := openPG(t, srv, dbURL, "admin", 0)
	id, h := held(t, a, "alice")
	if _, err := admin.Pause(ctx, Selector{IDs: []pipeline.AccountID{id}}, "by a test"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Paused():
	case <-time.After(5 * time.Second):
		t.Fatal("the pause did not reach the worker at its lease renewals")
	}
}

// testPGDeadLocalWorker: a lease held by a process of this machine that
// no longer exists is taken at once (a cron job restarted after kill -9
// does not wait out the TTL); one held by a live process, or by a
// process of another machine with the same host name, is not.
func testPGDeadLocalWorker(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	l := openPG(t, srv, dbURL, "", 0)
	res, err := l.ResolveAccount(ctx, testSpec("alice"))
	if err != nil {
		t.Fatal(err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	deadPID := gone.Process.Pid
	if machineToken() == "" {
		// Linux always has both; CI runs there, so there it is a failure.
		if os.Getenv("CI") == "true" {
			t.Fatal("no boot id or pid namespace to tell this machine by (CI=true: the same-machine takeover must be tested)")
		}
		t.Skip("no boot id or pid namespace to tell this machine by")
	}
	name, _ := dbName(dbURL)
	leaseTo := func(worker string) {
		t.Helper()
		if err := srv.Exec(ctx, name, `UPDATE mailferry.accounts SET queue = 'running', lease_worker = $1,
			lease_epoch = lease_epoch + 1, lease_expires = 9000000000000000000 WHERE id = $2`, worker, int64(res.Account)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name, worker string
		takes        bool
	}{
		{"dead process of this machine", workerName(deadPID, time.Now(), 1), true},
		{"live process of this machine", workerName(os.Getppid(), time.Now(), 1), false},
		{"this very process", workerName(os.Getpid(), time.Now(), 1), false},
		{"same host name, another machine", strings.TrimSuffix(workerName(deadPID, time.Now(), 1), machineToken()) + "0123456789ab", false},
		{"a name without pid", "worker-7", false},
	} {
		leaseTo(c.worker)
		h, err := l.Hold(ctx, res.Account)
		if c.takes != (err == nil) {
			t.Errorf("%s: Hold = %v, want taken %v", c.name, err, c.takes)
		}
		if err == nil {
			h.Release(ctx)
		} else if !errors.Is(err, ErrLocked) {
			t.Errorf("%s: %v, want ErrLocked", c.name, err)
		}
	}
}

// testPGConcurrentResolve: workers starting at once resolve a new
// account to one ledger account, none failing.
func testPGConcurrentResolve(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	const workers = 6
	ls := make([]*Ledger, workers)
	for i := range ls {
		ls[i] = openPG(t, srv, dbURL, "", 0)
	}
	for round := range 5 {
		sp := testSpec("user" + strconv.Itoa(round))
		ids := make([]pipeline.AccountID, workers)
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for i := range ls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var r Resolution
				r, errs[i] = ls[i].ResolveAccount(ctx, sp)
				ids[i] = r.Account
			}()
		}
		wg.Wait()
		for i := range ls {
			if errs[i] != nil || ids[i] != ids[0] {
				t.Fatalf("round %d: worker %d resolved %d (%v), worker 0 %d", round, i, ids[i], errs[i], ids[0])
			}
		}
	}
}

// testPGQueueClaims: 8 workers, 4 goroutines each, claiming from a queue
// of 120 accounts at once (FOR UPDATE SKIP LOCKED): every account is
// claimed exactly once, each claim writes under its lease, paused
// accounts are not claimed, and the pass closes when the last running
// account is released.
// testPGPassesPruned: opening a pass keeps the newest 100 passes (a
// service opens one per poll: 105,000 a year at 5 minutes), the open one
// among them.
func testPGPassesPruned(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	l := openPG(t, srv, dbURL, "", 0)
	res, err := l.ResolveAccount(ctx, testSpec("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.w.ExecContext(ctx, `INSERT INTO passes (started, finished) SELECT s, s + 1 FROM generate_series(1, 150) AS s`); err != nil {
		t.Fatal(err)
	}
	pass, err := l.Enqueue(ctx, []pipeline.AccountID{res.Account})
	if err != nil {
		t.Fatal(err)
	}
	var n, oldest, open int64
	if err := l.w.QueryRowContext(ctx, `SELECT count(*), min(id), count(*) FILTER (WHERE finished IS NULL) FROM passes`).Scan(&n, &oldest, &open); err != nil {
		t.Fatal(err)
	}
	if n != keepPasses || oldest != pass-keepPasses+1 || open != 1 {
		t.Errorf("after opening pass %d: %d passes from id %d, %d open; want the newest %d, from id %d, the new one open",
			pass, n, oldest, open, keepPasses, pass-keepPasses+1)
	}
}

func testPGQueueClaims(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	const workers, per, accounts = 8, 4, 120
	ls := make([]*Ledger, workers)
	for i := range ls {
		ls[i] = openPG(t, srv, dbURL, "", 0)
	}
	var ids []pipeline.AccountID
	for i := range accounts {
		res, err := ls[0].ResolveAccount(ctx, testSpec("user"+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Account)
	}
	paused := ids[:3]
	if _, err := ls[0].Pause(ctx, Selector{IDs: paused}, "not now"); err != nil {
		t.Fatal(err)
	}
	pass, err := ls[0].Enqueue(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := ls[1].Enqueue(ctx, ids); err != nil || again != pass {
		t.Fatalf("a second worker loading the same accounts: pass %d (%v), want the open pass %d", again, err, pass)
	}
	var mu sync.Mutex
	claimed := map[pipeline.AccountID]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers*per)
	start := time.Now()
	for _, l := range ls {
		for range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					id, h, err := l.Claim(ctx)
					if errors.Is(err, ErrNothingToClaim) {
						return
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					claimed[id]++
					mu.Unlock()
					if err := l.Commit(ctx, id, pipeline.Changes{Put: []pipeline.Entry{{Key: "k", State: pipeline.StateDone}}}); err != nil {
						errs <- err
					}
					if err := h.Release(ctx); err != nil {
						errs <- err
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d workers × %d claimed %d accounts in %v", workers, per, len(claimed), time.Since(start).Round(time.Millisecond))
	for _, id := range ids {
		want := 1
		if slices.Contains(paused, id) {
			want = 0
		}
		if claimed[id] != want {
			t.Errorf("account %d claimed %d times, want %d", id, claimed[id], want)
		}
	}
	if p, open, err := ls[0].OpenPass(ctx); err != nil || open {
		t.Errorf("the pass is still open after every claimable account ran: %+v, %v", p, err)
	}
	// The next load opens the next pass; the paused accounts join it.
	if next, err := ls[0].Enqueue(ctx, ids); err != nil || next == pass {
		t.Errorf("loading after the pass finished: pass %d (%v), want a new one", next, err)
	}
}

// testPGQueueTakesOverExpired: an account claimed by a worker whose lease
// ran out (it died) is claimed again, with a higher epoch, and the old
// claim writes nothing.
func testPGQueueTakesOverExpired(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	a := openPG(t, srv, dbURL, "dies", 0)
	b := openPG(t, srv, dbURL, "lives", 0)
	res, err := a.ResolveAccount(ctx, testSpec("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Enqueue(ctx, []pipeline.AccountID{res.Account}); err != nil {
		t.Fatal(err)
	}
	id, ha, err := a.Claim(ctx)
	if err != nil || id != res.Account {
		t.Fatalf("Claim: %d, %v", id, err)
	}
	if _, _, err := b.Claim(ctx); !errors.Is(err, ErrNothingToClaim) {
		t.Fatalf("claiming a live claim: %v, want ErrNothingToClaim", err)
	}
	name, _ := dbName(dbURL)
	if err := srv.Exec(ctx, name, `UPDATE mailferry.accounts SET lease_expires = 1 WHERE id = $1`, int64(id)); err != nil {
		t.Fatal(err)
	}
	id2, hb, err := b.Claim(ctx)
	if err != nil || id2 != id || hb.(*hold).lease.epoch <= ha.(*hold).lease.epoch {
		t.Fatalf("claiming an expired claim: %d, %v", id2, err)
	}
	if err := a.Commit(ctx, id, pipeline.Changes{Put: []pipeline.Entry{{Key: "k", State: pipeline.StateDone}}}); !errors.Is(err, ErrHoldLost) {
		t.Errorf("the dead claim's Commit: %v, want ErrHoldLost", err)
	}
	hb.Release(ctx)
}

// testPGRefusals: a database the ledger must not use is refused with what
// is wrong, and nothing is written to it.
func testPGRefusals(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	opts := func() *Options { return &Options{Password: srv.Password()} }
	name, _ := dbName(dbURL)

	l, err := Open(ctx, dbURL, opts())
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := srv.Exec(ctx, name, `UPDATE mailferry.meta SET value = '7' WHERE key = 'schema'`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dbURL, opts()); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("schema 7: %v, want ErrSchemaTooNew", err)
	}
	if err := srv.Exec(ctx, name, `UPDATE mailferry.meta SET value = '4' WHERE key = 'schema'`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dbURL, opts()); !errors.Is(err, ErrSchemaTooOld) || !strings.Contains(err.Error(), "stop every worker") {
		t.Errorf("schema 4: %v, want ErrSchemaTooOld saying what to do", err)
	}

	other := postgres.Database(t, srv)
	otherName, _ := dbName(other)
	if err := srv.Exec(ctx, otherName, `CREATE SCHEMA mailferry; CREATE TABLE mailferry.orders (id int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, other, opts()); !errors.Is(err, ErrNotLedger) {
		t.Errorf("another application's schema: %v, want ErrNotLedger", err)
	}
	if n, err := srv.QueryInt(ctx, otherName, `SELECT count(*) FROM pg_tables WHERE schemaname = 'mailferry'`); err != nil || n != 1 {
		t.Errorf("another application's schema now holds %d tables (%v), want its 1", n, err)
	}

	async := postgres.Database(t, srv)
	asyncName, _ := dbName(async)
	if err := srv.Exec(ctx, "postgres", `ALTER DATABASE `+asyncName+` SET synchronous_commit = off`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, async, opts()); err == nil || !strings.Contains(err.Error(), "synchronous_commit") {
		t.Errorf("synchronous_commit = off: %v, want a refusal naming it", err)
	}
}

// testPGPasswordsNeverShown: a password in the URL is refused without
// being repeated; a wrong password and an unreachable server are
// explained, with where it tried and no password.
func testPGPasswordsNeverShown(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	const secret = "s3cr3t-Pa55"
	u, _ := url.Parse(dbURL)
	u.User = url.UserPassword(u.User.Username(), secret)
	_, err := Open(ctx, u.String(), nil)
	if !errors.Is(err, ErrPasswordInURL) || strings.Contains(err.Error(), secret) {
		t.Errorf("password in the URL: %v", err)
	}
	_, err = Open(ctx, dbURL+"&password="+secret, nil)
	if !errors.Is(err, ErrPasswordInURL) || strings.Contains(err.Error(), secret) {
		t.Errorf("password in the query: %v", err)
	}
	_, err = Open(ctx, dbURL, &Options{Password: secret})
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "refused the login") {
		t.Errorf("wrong password: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	u, _ = url.Parse(dbURL)
	u.Host = closed
	_, err = Open(ctx, u.String(), &Options{Password: secret, ConnectTimeout: 2 * time.Second})
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), closed) {
		t.Errorf("unreachable database: %v, want where it tried and no password", err)
	}
}

func dbName(dbURL string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(u.Path, "/"), nil
}

// testPGUpgradeSchema5: a PostgreSQL ledger of schema 5 (this schema
// without the entries' source_emailid, meta schema 5: what schema 5 as
// released created) is refused by Open, which names the command, until
// Upgrade adds the column in place: every entry as it was, the table not
// rewritten (its file is the same), EMAILIDs taken after.
// A second Upgrade finds nothing to do.
func testPGUpgradeSchema5(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	opts := func() *Options { return &Options{Password: srv.Password()} }
	name, _ := dbName(dbURL)
	l, err := Open(ctx, dbURL, opts())
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.ResolveAccount(ctx, testSpec("alice"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := l.Hold(ctx, res.Account)
	if err != nil {
		t.Fatal(err)
	}
	var put []pipeline.Entry
	for i := 1; i <= 300; i++ {
		put = append(put, pipeline.Entry{Key: fmt.Sprintf("INBOX\x00%d\x00%d", 7, i), State: pipeline.StateDone,
			Digest: fmt.Sprintf("%064x", i), Size: int64(i), DestMailbox: "INBOX", DestUIDValidity: 9, DestUID: uint32(i),
			Flags: []string{`\Seen`}, Updated: time.Unix(1700000000, 0), DoneAt: time.Unix(1700000000, 0)})
	}
	if err := l.Commit(ctx, res.Account, pipeline.Changes{Put: put}); err != nil {
		t.Fatal(err)
	}
	h.Release(ctx)
	l.Close()
	if err := srv.Exec(ctx, name, `ALTER TABLE mailferry.messages DROP COLUMN source_emailid;
		UPDATE mailferry.meta SET value = '5' WHERE key = 'schema'`); err != nil {
		t.Fatal(err)
	}
	// What the rows hold, hashed, and the table's file: a table
	// rewritten gets a new one.
	places := func() [2]int64 {
		h, err := srv.QueryInt(ctx, name, `SELECT hashtext(string_agg(md5(row(account_id, source_key, state, reason_class, reason, digest, size, message_id,
			dest_folder_id, dest_uidvalidity, dest_uid, dest_uidnext, move_to_folder_id, flags, updated, done_at, gone_at)::text), ',' ORDER BY source_key))::bigint
			FROM mailferry.messages`)
		if err != nil {
			t.Fatal(err)
		}
		file, err := srv.QueryInt(ctx, name, `SELECT pg_relation_filenode('mailferry.messages')::bigint`)
		if err != nil {
			t.Fatal(err)
		}
		return [2]int64{h, file}
	}
	before := places()

	if _, err := Open(ctx, dbURL, opts()); !errors.Is(err, ErrSchemaTooOld) || !strings.Contains(err.Error(), "mailferry ledger upgrade") {
		t.Fatalf("Open of schema 5: %v, want ErrSchemaTooOld naming 'mailferry ledger upgrade'", err)
	}
	from, to, err := Upgrade(ctx, dbURL, opts())
	if err != nil || from != 5 || to != 6 {
		t.Fatalf("Upgrade = %d, %d, %v; want 5, 6", from, to, err)
	}
	if after := places(); after != before {
		t.Errorf("messages (rows' hash, file) = %v before the upgrade, %v after: changed or rewritten", before, after)
	}
	if from, to, err := Upgrade(ctx, dbURL, opts()); err != nil || from != 6 || to != 6 {
		t.Errorf("Upgrade again = %d, %d, %v; want 6, 6", from, to, err)
	}
	l, err = Open(ctx, dbURL, opts())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Check(ctx); err != nil {
		t.Error(err)
	}
	if _, entries, err := l.Size(ctx); err != nil || entries != 300 {
		t.Errorf("%d entries after the upgrade (%v), want 300", entries, err)
	}
	h, err = l.Hold(ctx, res.Account)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(ctx)
	e := put[0]
	e.EmailID = "M02630f48bc34ecea8538ea09"
	if err := l.Commit(ctx, res.Account, pipeline.Changes{Put: []pipeline.Entry{e}}); err != nil {
		t.Fatal(err)
	}
	var got pipeline.Entry
	l.Lookup(ctx, res.Account, []string{e.Key}, func(x pipeline.Entry) error { got = x; return nil })
	if got.EmailID != e.EmailID || got.DestUID != 1 {
		t.Errorf("entry after the upgrade and a Put with an EMAILID: %+v", got)
	}
}
