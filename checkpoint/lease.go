package checkpoint

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mailferry/mailferry/pipeline"
)

// The PostgreSQL hold is a lease on the account's row (docs/ledger.md
// "Leases and fencing"): queue = 'running', lease_worker = this process,
// lease_epoch raised by every taker (the fencing token), lease_expires on
// the database's clock. It is renewed every quarter of its TTL; a process
// whose last successful renewal was sent more than half the TTL ago
// closes Lost, before anyone can take the account over. Every Commit
// starts by locking the row with this process's worker and epoch: a
// successor that took over an expired lease raised the epoch, so a
// process frozen past its lease writes nothing (ErrHoldLost), and a
// takeover waits for a Commit in progress, never the other way round.

// workerSeq tells apart the ledgers one process opens (tests open several,
// each as another worker would).
var workerSeq atomic.Int64

// pgEngine is the PostgreSQL ledger's lease keeper.
type pgEngine struct {
	l      *Ledger
	worker string
	ttl    time.Duration

	mu      sync.Mutex
	leases  map[pipeline.AccountID]*lease
	running bool
	stop    chan struct{}
	done    chan struct{}

	slots *Slots // the fleet-wide connection slots (slots.go)

	// outOfReach is, while the database does not answer (a lease went
	// unrenewed for half a TTL, and no renewal or claim went through
	// since), the expiry of the lease lost last: the deadline the
	// statements of a worker that stops share (final). Zero while it
	// answers.
	// lastAnswer is when the database last confirmed a renewal or a
	// claim: out of reach since then.
	reachMu    sync.Mutex
	outOfReach time.Time
	lastAnswer time.Time
}

func newPGEngine(opts *Options) *pgEngine {
	worker := opts.Worker
	if worker == "" {
		worker = workerName(os.Getpid(), time.Now(), workerSeq.Add(1))
	}
	ttl := opts.LeaseTTL
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	e := &pgEngine{worker: worker, ttl: ttl, leases: map[pipeline.AccountID]*lease{},
		stop: make(chan struct{}), done: make(chan struct{})}
	e.slots = &Slots{e: e, waiting: map[string]bool{}}
	return e
}

// Worker returns the name this ledger holds leases under ("" for SQLite).
func (l *Ledger) Worker() string { return l.workerID() }

// workerID is what runs record as their worker: "" in SQLite, whose hold
// is the process's flock.
func (l *Ledger) workerID() string {
	if l.pg == nil {
		return ""
	}
	return l.pg.worker
}

// lease is one held account's lease.
type lease struct {
	account pipeline.AccountID
	epoch   int64
	ttl     time.Duration

	lost     chan struct{}
	lostOnce sync.Once

	mu    sync.Mutex
	sent  time.Time   // when the last successful renewal (or the claim) was sent
	timer *time.Timer // closes lost half a TTL after sent (unrenewed)

	// unrenewed is told the lease's expiry when its timer closes lost.
	unrenewed func(expires time.Time)
}

// newLease starts the lease of a claim sent at sent.
func (e *pgEngine) newLease(account pipeline.AccountID, epoch int64, sent time.Time) *lease {
	le := &lease{account: account, epoch: epoch, ttl: e.ttl, lost: make(chan struct{}), sent: sent, unrenewed: e.unreached}
	le.timer = time.AfterFunc(e.ttl/2-time.Since(sent), le.unrenewedLost)
	return le
}

// unrenewedLost closes lost when no renewal was confirmed for half a TTL:
// the database is out of reach (or too slow to count on). The engine
// learns it first, so that the statements a worker makes once it sees
// Lost closed are bounded already.
func (le *lease) unrenewedLost() {
	le.mu.Lock()
	expires := le.sent.Add(le.ttl)
	le.mu.Unlock()
	le.unrenewed(expires)
	le.markLost()
}

func (le *lease) markLost() { le.lostOnce.Do(func() { close(le.lost) }) }

func (le *lease) isLost() bool {
	select {
	case <-le.lost:
		return true
	default:
		return false
	}
}

// renewed records a renewal sent at sent that the database confirmed.
func (le *lease) renewed(sent time.Time) {
	le.mu.Lock()
	defer le.mu.Unlock()
	if le.isLost() || sent.Before(le.sent) {
		return
	}
	le.sent = sent
	le.timer.Reset(le.ttl/2 - time.Since(sent))
}

// lostAt is when the lease counts as lost unless renewed before: half a
// TTL after the last renewal was sent, half a TTL before the database may
// hand the account to another worker.
func (le *lease) lostAt() time.Time {
	le.mu.Lock()
	defer le.mu.Unlock()
	return le.sent.Add(le.ttl / 2)
}

func (le *lease) end() {
	le.mu.Lock()
	defer le.mu.Unlock()
	le.timer.Stop()
}

// holdLease takes account's lease: free (idle or queued) or expired. With
// Options.LockWait it retries while another worker holds a live lease.
func (l *Ledger) holdLease(ctx context.Context, account pipeline.AccountID) (pipeline.Hold, error) {
	h, err := l.waitHeld(ctx, "#"+strconv.FormatInt(int64(account), 10), func() (*hold, error) { return l.tryLease(ctx, account) })
	if err != nil {
		return nil, err
	}
	return h, nil
}

// tryLease makes one attempt at account's lease.
func (l *Ledger) tryLease(ctx context.Context, account pipeline.AccountID) (*hold, error) {
	e := l.pg
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	if _, ok := l.held[account]; ok {
		l.mu.Unlock()
		return nil, fmt.Errorf("holding account %d: held by another goroutine of this process: %w", account, ErrLocked)
	}
	// Reserve the account in this process while the claim is in flight.
	h := &hold{l: l, id: account, paused: make(chan struct{})}
	l.held[account] = h
	l.mu.Unlock()
	unreserve := func() {
		l.mu.Lock()
		if l.held != nil && l.held[account] == h {
			delete(l.held, account)
		}
		l.mu.Unlock()
	}

	sent := time.Now()
	var epoch int64
	var paused, retry bool
	claim := func(dead string) error {
		// The row lock serializes two workers claiming at once: the
		// second re-reads the row the first committed and finds it
		// running.
		return l.w.QueryRowContext(ctx, `UPDATE accounts SET queue = 'running', lease_worker = $1,
				lease_epoch = lease_epoch + 1, lease_expires = `+pgNow+` + $2
			WHERE id = $3 AND (queue <> 'running' OR lease_expires < `+pgNow+` OR lease_worker = $4)
			RETURNING ident, lease_epoch, paused, retry_skipped`,
			e.worker, e.ttl.Nanoseconds(), account, dead).Scan(&h.ident, &epoch, &paused, &retry)
	}
	err := claim("") // only accounts that are not running have no worker
	if errors.Is(err, sql.ErrNoRows) {
		holder, why := l.whyLocked(ctx, account)
		pid, dead := deadLocalWorker(holder)
		if !dead {
			unreserve()
			return nil, why
		}
		// A worker of this machine that died (kill -9, a crash) holds
		// it: it can write nothing more, so the account need not wait
		// for its lease to run out (a restarted cron job).
		if err = claim(holder); err == nil {
			l.log.Info("took over the lease of a worker of this machine that is gone", "account", h.ident, "pid", pid, "worker", holder)
		} else if errors.Is(err, sql.ErrNoRows) {
			unreserve()
			_, why = l.whyLocked(ctx, account)
			return nil, why
		}
	}
	if err != nil {
		unreserve()
		return nil, fmt.Errorf("holding account %d in %s: %w", account, l.path, explainConnect(err))
	}
	h.retrySkipped = retry
	if paused {
		h.markPaused()
	}
	e.answered()
	le := e.newLease(account, epoch, sent)
	l.mu.Lock()
	h.lease = le // under the lock: holdOf hands out only holds with theirs
	l.mu.Unlock()
	if err := e.add(h.lease); err != nil {
		// Closed meanwhile: give the lease back.
		_ = l.endLease(context.Background(), h.lease, leaseEnd{})
		unreserve()
		return nil, err
	}
	l.log.Debug("account lease taken", "account", h.ident, "worker", e.worker, "epoch", epoch)
	return h, nil
}

// whyLocked explains a claim that found no claimable row: an unknown
// account, or who holds it until when.
// It returns the holding worker too ("" when none).
func (l *Ledger) whyLocked(ctx context.Context, account pipeline.AccountID) (string, error) {
	var ident, worker string
	var left int64
	err := l.r.QueryRowContext(ctx, `SELECT ident, lease_worker, lease_expires - `+pgNow+` FROM accounts WHERE id = $1`, account).
		Scan(&ident, &worker, &left)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("holding account %d in %s: %w", account, l.path, ErrUnknownAccount)
	}
	if err != nil {
		return "", fmt.Errorf("holding account %d in %s: %w", account, l.path, explainConnect(err))
	}
	return worker, fmt.Errorf("holding account %q: leased by worker %s for %s more: %w", ident, worker,
		time.Duration(max(left, 0)).Round(time.Millisecond), ErrLocked)
}

// machineToken tells this machine's processes apart from another's with
// the same host name and pids (containers): the boot and the pid
// namespace. "" when unknown: then no worker is taken for dead early.
var machineToken = sync.OnceValue(func() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(string(boot)) + "\x00" + ns))
	return hex.EncodeToString(sum[:6])
})

// workerName is "<host>:<pid>:<start>.<seq>[.<machine token>]".
func workerName(pid int, start time.Time, seq int64) string {
	name := hostname() + ":" + strconv.Itoa(pid) + ":" + strconv.FormatInt(start.UnixNano(), 36) + "." + strconv.FormatInt(seq, 10)
	if t := machineToken(); t != "" {
		name += "." + t
	}
	return name
}

// deadLocalWorker reports whether worker names a process of this machine
// (same host name, boot and pid namespace), not this one, that no longer
// exists. A pid reused since is alive: its lease then runs out as any.
func deadLocalWorker(worker string) (int, bool) {
	parts := strings.Split(worker, ":")
	token := machineToken()
	if len(parts) != 3 || parts[0] != hostname() || token == "" || !strings.HasSuffix(parts[2], "."+token) {
		return 0, false
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return 0, false
	}
	return pid, errors.Is(unix.Kill(pid, 0), unix.ESRCH)
}

// leaseEnd says what the queue does with an account whose lease ends:
// idle (a batch run's end), or queued again (service mode) from notBefore.
type leaseEnd struct {
	queued    bool
	notBefore time.Time
}

// releaseLease ends h's lease and drops the hold.
func (l *Ledger) releaseLease(h *hold, end leaseEnd) error {
	le := h.lease
	l.pg.remove(le)
	l.mu.Lock()
	if l.held != nil && l.held[h.id] == h {
		delete(l.held, h.id)
	}
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), l.pg.ttl)
	defer cancel()
	ctx, cancelFinal := l.pg.final(ctx, "the account was not given back to the queue")
	defer cancelFinal()
	return outOfReach(ctx, l.endLease(ctx, le, end))
}

// endLease gives le's account back to the queue, unless another worker
// took it over meanwhile (then there is nothing to give back).
func (l *Ledger) endLease(ctx context.Context, le *lease, end leaseEnd) error {
	le.end()
	queue := "idle"
	if end.queued {
		queue = "queued"
	}
	res, err := l.w.ExecContext(ctx, `UPDATE accounts SET queue = $1, not_before = CASE WHEN $2 THEN $3 ELSE not_before END,
			queued_at = CASE WHEN $2 THEN `+pgNow+` ELSE queued_at END, lease_worker = '', lease_expires = 0
		WHERE id = $4 AND lease_worker = $5 AND lease_epoch = $6`,
		queue, end.queued, nanos(end.notBefore), le.account, l.pg.worker, le.epoch)
	if err != nil {
		return fmt.Errorf("releasing account %d in %s: %w", le.account, l.path, explainConnect(outOfReach(ctx, err)))
	}
	n, err := res.RowsAffected()
	if err == nil && n == 0 && !le.isLost() {
		return fmt.Errorf("releasing account %d in %s: another worker took it over: %w", le.account, l.path, ErrHoldLost)
	}
	if n == 0 || end.queued {
		return nil
	}
	return l.closePass(ctx, le.account)
}

// fence starts a Commit's transaction: it locks the account's row and
// reads its pause flag, provided this process still holds it. SQLite: the
// flock is the hold, and the row only says whether it is paused.
func (l *Ledger) fence(ctx context.Context, tx *sql.Tx, account pipeline.AccountID, h *hold) (bool, error) {
	var paused bool
	var err error
	if l.pg != nil && h.lease == nil {
		return false, fmt.Errorf("the account is still being claimed: %w", ErrHoldLost)
	}
	if h.lease == nil {
		err = tx.QueryRowContext(ctx, l.d.q(`SELECT paused FROM accounts WHERE id = ?`), account).Scan(&paused)
		if errors.Is(err, sql.ErrNoRows) {
			return false, fmt.Errorf("no such account: %w", ErrHoldLost)
		}
		return paused, err
	}
	err = tx.QueryRowContext(ctx, `SELECT paused FROM accounts
		WHERE id = $1 AND lease_worker = $2 AND lease_epoch = $3 AND queue = 'running' FOR NO KEY UPDATE`,
		account, l.pg.worker, h.lease.epoch).Scan(&paused)
	if errors.Is(err, sql.ErrNoRows) {
		h.lease.markLost()
		return false, fmt.Errorf("the lease (epoch %d) was taken over by another worker: %w", h.lease.epoch, ErrHoldLost)
	}
	if err != nil {
		return false, explainConnect(err)
	}
	return paused, nil
}

// bound returns the context a Commit runs in: a lost lease writes nothing,
// and a Commit waiting on an unreachable database gives up when the lease
// counts as lost, so that no Commit returns (and no APPEND follows its
// intent) later than half a TTL before another worker may take over.
func (h *hold) bound(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if h.lease == nil {
		return ctx, func() {}, nil
	}
	if h.lease.isLost() {
		return nil, nil, fmt.Errorf("the lease was not renewed in time: %w", ErrHoldLost)
	}
	ctx, cancel := context.WithDeadline(ctx, h.lease.lostAt())
	return ctx, cancel, nil
}

// unreached records that a lease expiring at expires went unrenewed for
// half a TTL: the database is out of reach.
func (e *pgEngine) unreached(expires time.Time) {
	e.reachMu.Lock()
	defer e.reachMu.Unlock()
	if expires.After(e.outOfReach) {
		e.outOfReach = expires
	}
}

// answered records that the database confirmed a renewal or a claim.
func (e *pgEngine) answered() {
	e.reachMu.Lock()
	defer e.reachMu.Unlock()
	e.outOfReach, e.lastAnswer = time.Time{}, time.Now()
}

// final bounds ctx for a statement of a worker that stops (FinishRun, a
// lease's release, Close). While the database is out of reach, they share
// one deadline, the expiry of the lease lost last, instead of waiting a
// reply timeout (a TTL) each, one after another: the cut worker exits
// within half a TTL of the loss (TestE2EFleetWorkers took 15-17 s at a
// TTL of 4 s). Past it, the lease has run out in the database and another
// worker may take the account over: nothing those statements would write
// is needed for that (a lease not given back runs out; a run not finished
// stays unfinished, its entries as the Commits left them).
//
// meaning says what is not written when the statement gives up, and the
// error then (outOfReach) says so instead of "context deadline exceeded".
func (e *pgEngine) final(ctx context.Context, meaning string) (context.Context, context.CancelFunc) {
	e.reachMu.Lock()
	by, since := e.outOfReach, e.lastAnswer
	e.reachMu.Unlock()
	if by.IsZero() {
		return ctx, func() {}
	}
	return context.WithDeadlineCause(ctx, by, &OutOfReachError{Since: since, LeaseEnds: by, Meaning: meaning})
}

// outOfReach returns err, the error of a statement bounded by final, as
// an *OutOfReachError when final's deadline ended it; else err (also one
// that already is).
func outOfReach(ctx context.Context, err error) error {
	var cause, already *OutOfReachError
	if err == nil || ctx.Err() == nil || !errors.As(context.Cause(ctx), &cause) || errors.As(err, &already) {
		return err
	}
	e := *cause
	e.Err = err
	return &e
}

// OutOfReachError is the error of a statement of a worker that stops
// (FinishRun, the release of a lease, Size, Close) given up on because
// the PostgreSQL ledger stopped answering: its lease ran out meanwhile.
// Nothing is lost: what was committed stays, a run not finished stays
// unfinished and the next run of the account resumes it; the lease runs
// out by itself at LeaseEnds.
type OutOfReachError struct {
	Since     time.Time // the database's last answer (zero: none since the ledger was opened)
	LeaseEnds time.Time // when the lease lost last runs out in the database
	Meaning   string    // what was not written
	Err       error     // the statement's own error (its deadline)
}

func (e *OutOfReachError) Error() string {
	since := "the ledger was opened"
	if !e.Since.IsZero() {
		since = e.Since.Format("15:04:05")
	}
	return fmt.Sprintf("ledger out of reach since %s: %s; the lease runs out at %s, then another worker may take the account over; nothing was lost",
		since, e.Meaning, e.LeaseEnds.Format("15:04:05"))
}

func (e *OutOfReachError) Unwrap() error { return e.Err }

// add registers a lease for renewal, starting the renewer with the first.
func (e *pgEngine) add(le *lease) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	select {
	case <-e.stop:
		return ErrClosed
	default:
	}
	e.leases[le.account] = le
	if !e.running {
		e.running = true
		go e.renew()
	}
	return nil
}

func (e *pgEngine) remove(le *lease) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.leases[le.account] == le {
		delete(e.leases, le.account)
	}
}

// renew renews this worker's leases every quarter of the TTL, in one
// statement, until close. A lease the database no longer gives this
// worker is lost at once; one that is not renewed is lost half a TTL
// after its last renewal was sent (its timer).
func (e *pgEngine) renew() {
	defer close(e.done)
	e.everyQuarterTTL(func() {
		e.mu.Lock()
		held := make(map[pipeline.AccountID]*lease, len(e.leases))
		ids := make([]int64, 0, len(e.leases))
		for id, le := range e.leases {
			held[id] = le
			ids = append(ids, int64(id))
		}
		e.mu.Unlock()
		if len(ids) == 0 {
			return
		}
		if err := e.renewOnce(held, ids); err != nil {
			e.l.log.Warn("renewing account leases failed; the accounts stop if this goes on", "database", e.l.path, "error", err)
		}
	})
}

// everyQuarterTTL calls fn every quarter of the lease TTL until the ledger
// closes: the renewers of the leases and of the connection slots.
func (e *pgEngine) everyQuarterTTL(fn func()) {
	t := time.NewTicker(e.ttl / 4)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			fn()
		}
	}
}

func (e *pgEngine) renewOnce(held map[pipeline.AccountID]*lease, ids []int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), e.ttl/4)
	defer cancel()
	sent := time.Now()
	rows, err := e.l.w.QueryContext(ctx, `UPDATE accounts SET lease_expires = `+pgNow+` + $1
		WHERE lease_worker = $2 AND queue = 'running' AND id = ANY($3)
		RETURNING id, lease_epoch, paused`, e.ttl.Nanoseconds(), e.worker, ids)
	if err != nil {
		return explainConnect(err)
	}
	defer rows.Close()
	seen := map[pipeline.AccountID]bool{}
	for rows.Next() {
		var id pipeline.AccountID
		var epoch int64
		var paused bool
		if err := rows.Scan(&id, &epoch, &paused); err != nil {
			return err
		}
		le := held[id]
		if le == nil || le.epoch != epoch {
			continue
		}
		seen[id] = true
		le.renewed(sent)
		if paused {
			if h := e.l.holdOf(id); h != nil && h.lease == le {
				h.markPaused()
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	e.answered()
	for id, le := range held {
		if !seen[id] {
			e.l.log.Warn("account lease taken by another worker", "account", id, "worker", e.worker)
			le.markLost()
		}
	}
	return nil
}

// close stops renewing and gives back the leases still held, so that
// another worker can take their accounts at once rather than after the
// TTL.
func (e *pgEngine) close(held map[pipeline.AccountID]*hold) error {
	e.mu.Lock()
	close(e.stop)
	running := e.running
	e.leases = map[pipeline.AccountID]*lease{}
	e.mu.Unlock()
	if running {
		<-e.done
	}
	// One deadline for all: a database that does not answer does not
	// make Close wait a TTL per account; out of reach, the one of the
	// statements of a worker that stops (final).
	ctx, cancel := context.WithTimeout(context.Background(), e.ttl)
	defer cancel()
	ctx, cancelFinal := e.final(ctx, "this worker's connection slots and accounts were not given back")
	defer cancelFinal()
	var errs []error
	if err := e.closeSlots(ctx); err != nil {
		errs = append(errs, outOfReach(ctx, err))
	}
	for _, h := range held {
		e.l.mu.Lock()
		le := h.lease // set under the lock; nil: still being claimed (it gives itself back)
		e.l.mu.Unlock()
		if le == nil {
			continue
		}
		h.release.Do(func() { h.releaseErr = outOfReach(ctx, e.l.endLease(ctx, le, leaseEnd{})) })
		if h.releaseErr != nil {
			errs = append(errs, h.releaseErr)
		}
	}
	return errors.Join(errs...)
}

// requeue puts the selected accounts that are not running back in the
// queue, claimable now (Retry).
func (l *Ledger) requeue(ctx context.Context, sel Selector) error {
	ids, err := l.selectAccounts(ctx, l.r, sel)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	arr := make([]int64, len(ids))
	for i, id := range ids {
		arr[i] = int64(id)
	}
	if _, err := l.w.ExecContext(ctx, `UPDATE accounts SET queue = 'queued', queued_at = `+pgNow+`, not_before = 0
		WHERE id = ANY($1) AND queue = 'idle'`, arr); err != nil {
		return fmt.Errorf("queueing accounts again in %s: %w", l.path, explainConnect(err))
	}
	return nil
}

// leaseHolders fills in Worker and Holder of the accounts with a live
// lease (Status).
func (l *Ledger) leaseHolders(ctx context.Context, tx *sql.Tx, out []AccountStatus, want map[pipeline.AccountID]int) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, lease_worker FROM accounts WHERE queue = 'running' AND lease_expires > `+pgNow)
	if err != nil {
		return fmt.Errorf("reading the leases of %s: %w", l.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id pipeline.AccountID
		var worker string
		if err := rows.Scan(&id, &worker); err != nil {
			return fmt.Errorf("reading the leases of %s: %w", l.path, err)
		}
		if i, ok := want[id]; ok {
			out[i].Worker = worker
			out[i].Holder = workerPID(worker)
		}
	}
	return rows.Err()
}

// workerPID is the pid in a worker's name "<host>:<pid>:<start>", or 1
// when the name was given (Options.Worker) without one: the account is
// held all the same.
func workerPID(worker string) int {
	parts := strings.Split(worker, ":")
	if len(parts) >= 3 {
		if pid, err := strconv.Atoi(parts[len(parts)-2]); err == nil && pid > 0 {
			return pid
		}
	}
	return 1
}
