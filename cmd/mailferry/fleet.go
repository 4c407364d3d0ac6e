package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/schedule"
)

// `mailferry run` on a PostgreSQL checkpoint is a worker of a fleet
// (docs/fleet.md): it puts its config's accounts in the shared queue
// (once: workers starting together join one pass), then claims them one
// by one, `workers` at a time, and runs each under the claim's lease,
// until the queue holds nothing more for it. A dead worker's account is
// claimed again once its lease runs out, so every worker stays while
// accounts it could run are running elsewhere.

// fleetWorker is one worker's state while it runs.
type fleetWorker struct {
	x      *execution
	ledger *checkpoint.Ledger
	runner *pipeline.Runner
	jobs   []pipeline.Job
	byID   map[pipeline.AccountID]int
	ids    []pipeline.AccountID
	// poll is how long an idle claimer waits before asking again.
	poll time.Duration

	draining atomic.Bool
	// lost is set once a hold was lost (the database out of reach): the
	// worker claims nothing more and exits 1 once its runs are settled.
	lost atomic.Bool

	// moved is what the runs moved since the last heartbeat.
	moved struct {
		sync.Mutex
		messages, bytes int64
	}

	mu    sync.Mutex // guards jobs, byID and ids too (reload adds to them)
	stats map[int]*pipeline.Stats
	order []int // jobs in the order they finished

	// reloaded is when the config's files were last read (reload).
	reloaded map[string]time.Time
}

// fleetPoll bounds how long an idle worker waits between claims.
const fleetPoll = 2 * time.Second

// claimErrors is how many claims in a row may fail (the database out of
// reach) before the worker gives up.
const claimErrors = 5

// AccountStarted, MessageDone, AccountPaused and AccountFinished make the
// worker a pipeline.Progress: it counts what it moved for the fleet's
// throughput.
func (w *fleetWorker) AccountStarted(string, int, int64) {}
func (w *fleetWorker) MessageDone(_ string, o pipeline.Outcome, bytes int64) {
	if o != pipeline.OutcomeCopied {
		return
	}
	w.moved.Lock()
	w.moved.messages++
	w.moved.bytes += bytes
	w.moved.Unlock()
}
func (w *fleetWorker) AccountPaused(string, *pipeline.PausedError) {}
func (w *fleetWorker) AccountFinished(string, *pipeline.Stats)     {}

// heartbeat registers the worker and renews its heartbeat, reporting what
// it moved; it reads whether an operator asked it to drain.
func (w *fleetWorker) heartbeat(ctx context.Context) error {
	w.moved.Lock()
	b := checkpoint.Beat{Version: version(), Messages: w.moved.messages, Bytes: w.moved.bytes}
	w.moved.messages, w.moved.bytes = 0, 0
	w.moved.Unlock()
	draining, err := w.ledger.Heartbeat(ctx, b)
	if err != nil {
		// Not lost: the next heartbeat reports it.
		w.moved.Lock()
		w.moved.messages += b.Messages
		w.moved.bytes += b.Bytes
		w.moved.Unlock()
		return err
	}
	if draining && !w.draining.Swap(true) {
		w.x.log.Info("asked to drain: finishing the accounts held, claiming no more", "worker", w.ledger.Worker())
	}
	return nil
}

// beat heartbeats every interval until done, and drains the worker at
// SIGUSR1.
func (w *fleetWorker) beat(ctx context.Context, interval time.Duration, done <-chan struct{}) {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-usr1:
			w.x.log.Info("SIGUSR1: draining: finishing the accounts held, claiming no more", "worker", w.ledger.Worker())
			w.draining.Store(true)
			if _, err := w.ledger.Drain(ctx, w.ledger.Worker()); err != nil {
				w.x.log.Warn("cannot record the drain in the checkpoint", "error", err)
			}
		case <-t.C:
			hctx, cancel := context.WithTimeout(ctx, interval)
			if err := w.heartbeat(hctx); err != nil && ctx.Err() == nil {
				w.x.log.Warn("the worker's heartbeat failed", "error", err)
			}
			cancel()
		}
	}
}

// stopping reports whether the worker claims no more accounts.
func (w *fleetWorker) stopping(ctx context.Context) bool {
	return ctx.Err() != nil || isClosed(w.x.env.interrupted) || w.draining.Load() || w.lost.Load()
}

// sleep waits d, or less when the worker stops meanwhile.
func (w *fleetWorker) sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	case <-w.x.env.interrupted:
	}
}

// claimLoop claims and runs accounts until nothing is left for the
// worker or it stops; it returns an error only when the queue cannot be
// read.
func (w *fleetWorker) claimLoop(ctx context.Context) error {
	failures := 0
	for !w.stopping(ctx) {
		w.mu.Lock()
		ids := w.ids
		w.mu.Unlock()
		id, hold, err := w.ledger.ClaimAmong(ctx, ids)
		if errors.Is(err, checkpoint.ErrNothingToClaim) {
			if w.reload(ctx, ids) {
				continue
			}
			left, lerr := w.ledger.Left(ctx, ids)
			if lerr == nil && left.Queued+left.Running == 0 {
				return nil // nothing left that this worker could run
			}
			err = lerr
			if err == nil {
				failures = 0
				// Accounts running elsewhere: if their worker dies, one of
				// us takes them over when their lease runs out.
				w.sleep(ctx, w.poll)
				continue
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if failures++; failures >= claimErrors {
				return fmt.Errorf("claiming accounts from the queue: %w", err)
			}
			w.x.log.Warn("claiming an account failed; trying again", "error", err)
			w.sleep(ctx, w.poll)
			continue
		}
		failures = 0
		w.runClaimed(ctx, id, hold)
	}
	return nil
}

// runClaimed runs one claimed account and gives it back to the queue.
func (w *fleetWorker) runClaimed(ctx context.Context, id pipeline.AccountID, hold pipeline.Hold) {
	w.mu.Lock()
	i := w.byID[id]
	job := w.jobs[i]
	w.mu.Unlock()
	job.Hold = hold
	if from, after, ok := checkpoint.TakenOver(hold); ok {
		w.x.log.Info("account taken over from a worker whose lease ran out; reconciling what it had in flight",
			"account", job.Options.Label, "from", from, "after_lease_expiry", after.Round(time.Millisecond))
	} else {
		w.x.log.Info("claimed an account", "account", job.Options.Label)
	}
	st, err := w.runner.RunAccount(ctx, job)
	if isFolderError(err) {
		st.ErrorClass = classConfig
	}
	if job.Notes != nil {
		st.Notes = job.Notes()
	}
	lost := isClosed(hold.Lost())
	if lost {
		w.lost.Store(true)
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, pipeline.ErrInterrupted) {
		w.x.log.Error("account failed", "account", st.Account, "error", err)
	}
	// A paused account goes back in the queue, paused: resuming it lets
	// a worker claim it again; one a daily quota stopped goes back for
	// when the quota allows. One this worker's stop interrupted goes back
	// for another worker to finish. The others end idle until the next
	// pass (or a retry, which queues them again).
	var rerr error
	switch {
	case lost:
		// Queued again, due at once, if the database answers by now and
		// nobody took the account over; else its lease runs out.
		_ = hold.Release(context.WithoutCancel(ctx))
	case st.Paused && st.PausedUntil == nil,
		errors.Is(err, pipeline.ErrInterrupted), ctx.Err() != nil:
		rerr = w.ledger.Requeue(hold, time.Time{})
	case st.Paused:
		// A daily quota: queued for when it resumes, so that the pass
		// stays open for it and a worker running then finishes it.
		rerr = w.ledger.Requeue(hold, *st.PausedUntil)
	default:
		rerr = hold.Release(context.WithoutCancel(ctx))
	}
	if rerr != nil && !lost {
		w.x.log.Warn("giving the account back to the queue failed; it is claimable again when its lease runs out", "account", st.Account, "error", rerr)
	}
	w.mu.Lock()
	if _, again := w.stats[i]; !again {
		w.order = append(w.order, i)
	}
	w.stats[i] = st
	w.mu.Unlock()
}

// reload reads the config again when the queue holds claimable accounts
// this worker does not know (added with `mailferry queue add` after it
// started) and the config's files changed since it read them; it reports
// whether it added accounts.
func (w *fleetWorker) reload(ctx context.Context, known []pipeline.AccountID) bool {
	if w.x.reload == nil {
		return false
	}
	all, err := w.ledger.Left(ctx, nil)
	if err != nil || all.Queued == 0 {
		return false
	}
	mine, err := w.ledger.Left(ctx, known)
	if err != nil || all.Queued <= mine.Queued {
		return false
	}
	w.mu.Lock()
	changed := false
	for _, f := range w.x.reloadFiles {
		if fi, err := os.Stat(f); err == nil && !fi.ModTime().Equal(w.reloaded[f]) {
			changed = true
		}
	}
	w.mu.Unlock()
	if !changed {
		return false
	}
	// The times before the read: a change made while it reads is read
	// again next time.
	times := map[string]time.Time{}
	for _, f := range w.x.reloadFiles {
		if fi, err := os.Stat(f); err == nil {
			times[f] = fi.ModTime()
		}
	}
	jobs, specs, err := w.x.reload()
	if err != nil {
		w.x.log.Warn("reading the config again for the accounts added to the queue failed; going on with the accounts read at the start", "error", err)
		w.mu.Lock()
		w.reloaded = times
		w.mu.Unlock()
		return false
	}
	if err := w.x.resolve(ctx, w.ledger, jobs, specs); err != nil {
		w.x.log.Warn("naming the accounts added to the config failed; going on with the accounts read at the start", "error", err)
		return false
	}
	if err := carryPauses(ctx, w.ledger, jobs, w.x.now()); err != nil {
		w.x.log.Warn("reading the accounts added to the config failed; going on with the accounts read at the start", "error", err)
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reloaded = times
	added := 0
	for _, j := range jobs {
		if _, ok := w.byID[j.Options.Account]; ok {
			continue
		}
		w.byID[j.Options.Account] = len(w.jobs)
		w.jobs = append(w.jobs, j)
		w.ids = append(w.ids[:len(w.ids):len(w.ids)], j.Options.Account)
		added++
	}
	if added > 0 {
		w.x.log.Info("read the config again: accounts added to the migration", "added", added, "accounts", len(w.jobs))
	}
	return added > 0
}

// runFleet runs this worker's share of the queue and reports what it ran.
func (x *execution) runFleet(ctx context.Context, ledger *checkpoint.Ledger, runner *pipeline.Runner, jobs []pipeline.Job, view *progressView, extras *runExtras, started time.Time) (int, error) {
	w := &fleetWorker{x: x, ledger: ledger, runner: runner, jobs: jobs, byID: map[pipeline.AccountID]int{},
		stats: map[int]*pipeline.Stats{}, poll: fleetPoll}
	ttl := x.env.leaseTTL
	if ttl <= 0 {
		ttl = checkpoint.DefaultLeaseTTL
	}
	w.poll = min(fleetPoll, ttl/8)
	for i, j := range jobs {
		w.byID[j.Options.Account] = i
		w.ids = append(w.ids, j.Options.Account)
	}
	w.reloaded = map[string]time.Time{}
	for _, f := range x.reloadFiles {
		if fi, err := os.Stat(f); err == nil {
			w.reloaded[f] = fi.ModTime()
		}
	}
	runner.Progress = pipeline.TeeProgress(runner.Progress, w)
	if err := w.heartbeat(ctx); err != nil {
		return exitFatal, fmt.Errorf("registering this worker: %w", err)
	}
	pass, err := ledger.Enqueue(ctx, w.ids)
	if err != nil {
		return exitFatal, err
	}
	x.log.Info("worker started", "worker", ledger.Worker(), "pass", pass, "accounts", len(jobs), "at_once", max(1, x.workers))
	beatDone := make(chan struct{})
	var beats sync.WaitGroup
	beats.Add(1)
	go func() {
		defer beats.Done()
		w.beat(ctx, ttl/4, beatDone)
	}()

	errs := make([]error, max(1, min(x.workers, len(jobs))))
	var wg sync.WaitGroup
	for k := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = w.claimLoop(ctx)
		}()
	}
	wg.Wait()
	// Before the worker leaves the fleet: its sessions' connection slots
	// are given back as they close.
	runner.WaitClosed(ctx)
	close(beatDone)
	beats.Wait()
	if x.logOut != nil {
		x.logOut.setBar(nil)
	}
	view.close()
	if !w.lost.Load() {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ttl/4)
		if err := ledger.LeaveFleet(lctx); err != nil {
			x.log.Warn("cannot remove this worker from the checkpoint's workers", "error", err)
		}
		cancel()
	}

	ran := make([]*pipeline.Stats, 0, len(w.order))
	for _, i := range w.order {
		ran = append(ran, w.stats[i])
	}
	interrupted := errors.Is(ctx.Err(), context.Canceled) || isClosed(x.env.interrupted)
	rep := newReport(x.command, x.opts.dryRun, started, ran, interrupted)
	extras.batchFinished(rep)
	code, err := x.writeReport(rep)
	if err != nil {
		return code, err
	}
	if qerr := errors.Join(errs...); qerr != nil {
		return exitFatal, qerr
	}
	if w.lost.Load() {
		return exitFatal, errors.New("this worker lost its hold on an account (the checkpoint's database out of reach): it stopped sending, settled what was in flight, and left the account to the worker that takes it over")
	}
	if w.draining.Load() {
		x.log.Info("drained: the accounts this worker held are done", "worker", ledger.Worker())
	}
	if left, err := ledger.Left(ctx, w.ids); err == nil {
		x.log.Info("worker finished", "worker", ledger.Worker(), "ran", len(ran), "config_accounts", len(w.ids),
			"still_queued", left.Queued+left.Waiting, "paused", left.Paused, "running_elsewhere", left.Running)
	}
	return code, nil
}

// fleetPollGap is how long a service worker's poll keeps its account from
// the other workers: the shortest wait the schedule draws (the interval
// less its jitter), so that whichever worker comes due first after it
// polls next.
func fleetPollGap(every time.Duration) time.Duration {
	return time.Duration(float64(every) * (1 - schedule.DefaultJitter))
}

// startFleetService queues a service's accounts (claimable at once) and
// registers the worker, heartbeating until ctx ends.
func startFleetService(ctx context.Context, x *execution, ledger *checkpoint.Ledger, jobs []pipeline.Job) error {
	ids := make([]pipeline.AccountID, len(jobs))
	for i, j := range jobs {
		ids[i] = j.Options.Account
	}
	w := &fleetWorker{x: x, ledger: ledger}
	if err := w.heartbeat(ctx); err != nil {
		return fmt.Errorf("registering this worker: %w", err)
	}
	if _, err := ledger.Enqueue(ctx, ids); err != nil {
		return err
	}
	ttl := x.env.leaseTTL
	if ttl <= 0 {
		ttl = checkpoint.DefaultLeaseTTL
	}
	go func() {
		t := time.NewTicker(ttl / 4)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-x.env.interrupted:
				lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ttl/4)
				_ = ledger.LeaveFleet(lctx)
				cancel()
				return
			case <-t.C:
				hctx, cancel := context.WithTimeout(ctx, ttl/4)
				if err := w.heartbeat(hctx); err != nil && ctx.Err() == nil {
					x.log.Warn("the worker's heartbeat failed", "error", err)
				}
				cancel()
			}
		}
	}()
	x.log.Info("service worker of the queue", "worker", ledger.Worker(), "accounts", len(ids))
	return nil
}
