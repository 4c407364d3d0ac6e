package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Job is one account to copy: how to connect to each side, and how to copy.
type Job struct {
	Options         Options
	OpenSource      func(ctx context.Context) (Source, error)
	OpenDestination func(ctx context.Context) (Destination, error)
	// Open, when set, opens an attempt's source and destination sessions
	// instead of OpenSource and OpenDestination (which the engine then
	// calls at the same time). An account with connection caps takes every
	// slot the attempt needs in one step here: two accounts that each held
	// one side's slots while waiting for the other side's would wait for
	// ever. Its errors say which side failed. On error it leaves nothing
	// open. o says what the engine expects of the attempt.
	Open func(ctx context.Context, o OpenOptions) (Source, Destination, error)
	// OpenExtraDestination opens the additional sessions of
	// Options.DestSessions. It must not wait for a connection slot (an
	// account holding one session while waiting for another can deadlock
	// with the other accounts): it fails at once instead, and the copy goes
	// on with fewer sessions. Nil: OpenDestination.
	OpenExtraDestination func(ctx context.Context) (Destination, error)
	// Notes, when set, returns what the account's sessions found worth
	// telling the user (optional features a server refused, folders that
	// went to a safe name); the command puts them in Stats.Notes.
	Notes func() []string
	// Hold, when set, is the account's hold already taken (a fleet
	// worker's claim from the queue): the runner uses it instead of
	// taking one, and leaves releasing it to the caller, who decides what
	// the queue does with the account next.
	Hold Hold
}

// OpenOptions is what the engine expects of an attempt when Job.Open
// opens its sessions.
type OpenOptions struct {
	// LikelyToCopy: the ledger holds no message done for the account (its
	// first run: a migration), so the attempt will most likely append. The
	// destination then opens ready to append (imapdst.Options.AppendAtDial:
	// the appender connection opens beside the control connection, instead
	// of when the first message is queued, after the source's listing, a
	// few round trips on the copy's critical path). Otherwise, a re-run
	// (usually with nothing new), it opens only when needed, saving a
	// login. Never in a dry run.
	LikelyToCopy bool
}

// Runner runs jobs against one ledger, retrying transient failures.
type Runner struct {
	Ledger Ledger
	// Attempts is how many times in a row an account is tried when
	// transient errors stop it (dropped connections, BYE, timeouts,
	// throttling) without progress; an attempt that copied messages starts
	// the count again (up to 100 attempts in all). 1: no retries. Default 4.
	Attempts int
	// Backoff is the wait before the second attempt; it doubles after each.
	// Default 2 s.
	Backoff time.Duration
	// DryRun reads the source and the ledger but writes nothing anywhere.
	DryRun bool
	// SkipLocked makes an account that another run holds (an overlapping
	// cron run) a quiet no-op instead of an error: Stats.Locked is set.
	SkipLocked bool
	Logger     *slog.Logger
	Progress   Progress
	// Stop, when closed, stops the runs gently (the first Ctrl-C): no new
	// message is fetched or sent, nothing is deleted and no new attempt or
	// phase starts (a listing under way goes on counting, so that the run
	// knows what is left), the batches already sent are finished and
	// committed, and RunAccount
	// returns an error wrapping ErrInterrupted, with Stats.NotYetCopied
	// counting the listed messages it did not get to. Cancelling ctx
	// instead stops at once: the batches in flight are left pending, for
	// the next run to reconcile. Nil: never.
	Stop <-chan struct{}
	// Paused, when set, is asked before each account starts: a pause that
	// is not the engine's own (Options.Traffic's), such as an operator's
	// from the status page, whose PausedError has no Until (until
	// resumed). An account it returns a pause for is not started (no
	// lock, no run recorded, no connection): it ends paused as after a
	// daily quota (Stats.Paused, PausedReason), which is no failure, and
	// Progress.AccountFinished is called. An error from it stops the
	// account like a ledger error.
	Paused func(ctx context.Context, account string) (*PausedError, error)
	// Explain, when set, says what went wrong and what fixes it for the
	// error that stopped an account: a class for people ("login",
	// "tls-certificate"; "" to keep the engine's) and a hint. Both are
	// recorded with the run (RunRecord.ErrorClass, Hint) and the hint is
	// Stats.Hint.
	Explain func(err error) (class, hint string)
	// CloseBehind lets RunAccount return while the sessions of the
	// account's last attempt still log out (LOGOUT, QUIT: a round trip
	// each on a distant server, more with TLS), so that a worker takes its
	// next account meanwhile; the caller calls WaitClosed once every
	// RunAccount has returned, before it reports and exits. Only closes
	// whose outcome nothing records go behind: a source with deletions
	// issued closes before RunAccount returns (POP3's QUIT commits them,
	// RFC 1939 §6; the ledger then records them as deleted at the
	// source), and so does every session once ctx has ended or the
	// account's hold is lost. A session's connection slots are given back
	// when it has closed (the adapters' OnClose), and the account's next
	// attempt (a retry, a service's next poll) opens its sessions only
	// once the previous ones have closed: a server that counts a user's
	// connections (Dovecot's mail_max_userip_connections) never sees the
	// account twice. A close's error is logged at debug level and changes
	// nothing: the account's outcome was decided before.
	CloseBehind bool
	// CloseWait bounds WaitClosed. Default DefaultCloseWait.
	CloseWait time.Duration
	closes    closesBehind
}

// ErrInterrupted ends an account that Runner.Stop stopped. The next run
// resumes it: nothing is pending, the messages not yet copied are copied
// then.
var ErrInterrupted = errors.New("interrupted")

// haltOn returns a channel closed when stop or lost is (either may be
// nil), and the function that ends its watch.
func haltOn(stop, lost <-chan struct{}) (<-chan struct{}, func()) {
	if lost == nil {
		return stop, func() {}
	}
	if stop == nil {
		return lost, func() {}
	}
	halt := make(chan struct{})
	done := make(chan struct{})
	go func() {
		select {
		case <-stop:
			close(halt)
		case <-lost:
			close(halt)
		case <-done:
		}
	}()
	return halt, func() { close(done) }
}

// endedBy returns ctx, ended also when end is closed (nil: never), and
// the function that ends its watch and the context. (A watch that ended
// only with ctx would stay for the life of a service's process, one per
// poll.)
func endedBy(ctx context.Context, end <-chan struct{}) (context.Context, context.CancelFunc) {
	if end == nil {
		return ctx, func() {}
	}
	ectx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-end:
		case <-ectx.Done():
		}
		cancel()
	}()
	return ectx, cancel
}

// stopped reports whether stop is closed.
func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// Bounds of the retry loop: the longest wait between attempts, and how
// many attempts an account may make in all while each one makes progress.
const (
	maxBackoff              = 5 * time.Minute
	maxAttemptsWithProgress = 100
)

func (r *Runner) initialBackoff() time.Duration {
	if r.Backoff > 0 {
		return r.Backoff
	}
	return 2 * time.Second
}

// accountRun is what one account's run remembers across attempts: counts
// and the few messages that need a name (skipped, gone), never a record of
// every message.
type accountRun struct {
	// unsettled is how many listed messages were neither done nor skipped
	// after the last attempt that listed the whole source (less what later
	// attempts settled): Stats.Failed.
	unsettled     int
	skipped       map[string]bool // reported as skipped (by this run, or recorded earlier)
	gone          map[string]bool // listed, then gone from the source before it was fetched
	deletePending int             // deletions issued in the last attempt, committed at Close
	refusedInARow int             // per-message refusals since the last message stored
}

// noteAttempt takes an attempt's counts: a complete listing says how many
// messages are still to copy; an attempt cut short only settles some of
// those.
func (run *accountRun) noteAttempt(a *attempt) {
	a.mu.Lock()
	defer a.mu.Unlock()
	left := a.listed - a.settled - a.finished
	if a.complete {
		run.unsettled = left
		return
	}
	run.unsettled = max(run.unsettled-a.finished, left, 0)
}

// progress counts what a run has settled so far: an attempt that moved it
// made progress.
func (st *Stats) progress() int {
	return st.Copied + st.Reconciled + st.Rematched + st.LateCopiesAdopted + st.Matched + st.Skipped
}

// RunAccount copies one account and returns its stats. Stats.Error is set
// when the account did not complete; the returned error is the same error,
// for callers that branch on it (errors.Is(err, context.Canceled)).
func (r *Runner) RunAccount(ctx context.Context, job Job) (*Stats, error) {
	opts := job.Options.withDefaults()
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	prog := r.Progress
	if prog == nil {
		prog = nopProgress{}
	}
	ledger := r.Ledger
	if r.DryRun {
		ledger = dryRunLedger{ledger}
	}
	st := &Stats{Account: opts.Label, LedgerKey: opts.Name, DryRun: r.DryRun}
	if r.Paused != nil {
		pe, err := r.Paused(ctx, opts.Name)
		if err != nil {
			err = fatal(fmt.Errorf("reading whether account %q is paused: %w", opts.Name, err))
			st.Error, st.ErrorClass = err.Error(), ClassOf(err).String()
			prog.AccountFinished(opts.Name, st)
			return st, err
		}
		if pe != nil {
			st.setPaused(pe)
			log.Info("account paused; not started", "account", opts.Name, "because", pe.Reason)
			prog.AccountFinished(opts.Name, st)
			return st, nil
		}
	}
	start := time.Now()
	err := r.runLocked(ctx, job, opts, ledger, log, prog, st)
	st.Duration = time.Since(start)
	st.Seconds = st.Duration.Seconds()
	if err != nil {
		st.Error = err.Error()
		st.ErrorClass = engineClass(ctx, err)
		if r.Explain != nil {
			_, st.Hint = r.Explain(err)
		}
	}
	prog.AccountFinished(opts.Name, st)
	return st, err
}

func (r *Runner) runLocked(ctx context.Context, job Job, opts Options, ledger Ledger, log *slog.Logger, prog Progress, st *Stats) error {
	switch {
	case opts.DeleteAfter < 0:
		return fatal(fmt.Errorf("account %q: DeleteAfter %v is negative", opts.Name, opts.DeleteAfter))
	case opts.DeleteAfter > 0 && opts.DeleteSource:
		return fatal(fmt.Errorf("account %q: DeleteSource and DeleteAfter exclude each other", opts.Name))
	}
	hold := job.Hold
	if hold == nil {
		var err error
		hold, err = ledger.Hold(ctx, opts.Account)
		if err != nil && errors.Is(err, ErrLocked) && r.SkipLocked {
			st.Locked = true
			log.Info("another run is working on this account; skipped", "account", opts.Name)
			return nil
		}
		if err != nil {
			return fatal(fmt.Errorf("locking account %q: %w", opts.Name, err))
		}
		defer func() {
			if err := hold.Release(context.WithoutCancel(ctx)); err != nil {
				log.Warn("giving the account back to the ledger", "account", opts.Name, "error", err)
			}
		}()
	}
	// A hold that is lost (a lease this worker could not renew: the
	// checkpoint's database is out of reach) stops the copy as an
	// interrupt does, at once: no new message is fetched or sent, the
	// batches sent are finished; their commits then fail, and the worker
	// that takes the account over reconciles them (DECISIONS #13: stop
	// appending before the lease can expire).
	halt, endHalt := haltOn(r.Stop, hold.Lost())
	defer endHalt()
	// The loss also ends the attempt's context: nothing the attempt could
	// still do would be recorded, and what it waits for then (a ledger read
	// on the database that does not answer, a batch with a server) must not
	// keep the account's mail connections open until their fleet-wide
	// connection slots expire and another worker opens new ones in their
	// place (checkpoint/slots.go).
	actx, endAttempt := endedBy(ctx, hold.Lost())
	defer endAttempt()
	started := time.Now()
	runID, err := ledger.StartRun(ctx, opts.Account, started)
	if err != nil {
		return fatal(fmt.Errorf("recording the run of %q: %w", opts.Name, err))
	}

	attempts := r.Attempts
	if attempts <= 0 {
		attempts = 4
	}
	backoff := r.initialBackoff()
	run := &accountRun{skipped: map[string]bool{}, gone: map[string]bool{}}
	var paused *PausedError // the account stopped for a time the run does not wait for
	for i, tries := 1, 1; ; i++ {
		if t := opts.Traffic; t != nil {
			// Before any session opens: a timetable's pause is waited out
			// here, with no connection held.
			rctx, endReady := endedBy(ctx, halt)
			err = t.Ready(rctx)
			endReady()
			if err != nil {
				if pe, ok := isPaused(err); ok {
					paused, err = pe, nil
				}
				break
			}
		}
		st.Attempts = i
		before := st.progress()
		if stopped(hold.Lost()) {
			break
		}
		err = r.attempt(actx, job, opts, ledger, hold, halt, log, prog, st, run)
		if pe, ok := serverQuota(opts.Traffic, err, time.Now()); ok && ctx.Err() == nil {
			log.Warn("the server refused more of this account today; pausing it until the next quota window",
				"account", opts.Name, "until", pe.Until.Format(time.RFC3339), "error", err)
			err = pe
		}
		if pe, ok := isPaused(err); ok && ctx.Err() == nil && !stopped(r.Stop) {
			// A pause is no failure and uses up no try: what was in
			// flight is committed; the next attempt goes on after it.
			if !pe.Wait {
				paused, err = pe, nil
				break
			}
			st.Pauses++
			log.Info("account paused; its sessions are closed until it goes on", "account", opts.Name,
				"until", pe.Until.Format(time.RFC3339), "because", pe.Reason)
			prog.AccountPaused(opts.Name, pe)
			i--
			continue
		}
		if err == nil || ctx.Err() != nil || stopped(halt) || ClassOf(err) != ClassTransient {
			break
		}
		// An attempt that moved messages before it failed does not use up
		// the budget: a long run on a flaky link or a throttling server
		// goes on while it makes progress.
		if attempts > 1 && st.progress() > before && i < maxAttemptsWithProgress {
			tries, backoff = 1, r.initialBackoff()
		} else if tries++; tries > attempts {
			break
		}
		wait := backoff
		if ra := retryAfter(err); ra > wait {
			wait = ra // the server said how long
		}
		log.Warn("account attempt failed, retrying", "account", opts.Name, "attempt", i,
			"retry_in", wait, "error", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		case <-halt:
		}
		if ctx.Err() != nil || stopped(halt) {
			break
		}
		backoff = min(backoff*2, maxBackoff)
	}
	interrupted := false
	switch {
	case stopped(hold.Lost()) && ctx.Err() == nil:
		// Its sessions are closed by now (TestE2EFleetWorkers times this
		// line against the expiry of the fleet's connection slots).
		if err != nil && !errors.Is(err, ErrInterrupted) && !errors.Is(err, ErrHoldLost) {
			log.Warn("account stopped by the loss of its hold", "account", opts.Name, "error", err)
		} else {
			log.Warn("account stopped by the loss of its hold", "account", opts.Name)
		}
		err = fatal(fmt.Errorf("account %q: stopped sending: this worker could not renew its lease in time (the checkpoint's database is out of reach, or another worker took the account over); what it sent last is left pending for the worker that takes the account over: %w",
			opts.Name, ErrHoldLost))
	case ctx.Err() != nil && err != nil:
		err = fmt.Errorf("interrupted: %w", ctx.Err())
		interrupted = true
	case stopped(r.Stop) && err != nil:
		// Whatever the attempt was doing when it stopped (a transient
		// error waiting for its retry included), the run ends here.
		if !errors.Is(err, ErrInterrupted) {
			log.Info("account stopped by the interrupt", "account", opts.Name, "error", err)
		}
		err = fmt.Errorf("%w: run the same command again to resume", ErrInterrupted)
		interrupted = true
	}
	st.Failed = run.unsettled
	if interrupted && !errors.Is(err, context.Canceled) {
		// Stopped gently: every batch sent was committed, and what is
		// left was never tried. Only the destination's refusals failed.
		st.Failed = min(run.unsettled, refusedCount(st.Failures))
		st.NotYetCopied = run.unsettled - st.Failed
	}
	if paused != nil {
		// What is left waits for the pause to end: only the messages the
		// destination refused count as failed.
		st.Waiting = max(0, st.Failed-refusedCount(st.Failures))
		st.Failed -= st.Waiting
		st.setPaused(paused)
		log.Info("account paused until the next quota window; the run goes on with the others", "account", opts.Name,
			"until", paused.Until.Format(time.RFC3339), "because", paused.Reason, "waiting", st.Waiting)
	}

	rec := RunRecord{Started: started, Finished: time.Now(), Copied: st.Copied, Skipped: st.Skipped, Failed: st.Failed,
		Found: st.Reconciled + st.Rematched + st.LateCopiesAdopted + st.Matched, Listed: st.Listed, Gone: st.SourceGone,
		Deleted: st.Deleted, Bytes: st.Bytes, Moved: st.Moved, Removed: st.Removed, Mirror: opts.Mirror, Result: "ok"}
	switch {
	case errors.Is(err, errPaused):
		rec.Result, err = "paused", nil
		st.Paused = true
		log.Info("account paused by an admin; its batches in flight are committed", "account", opts.Name)
	case paused != nil && err == nil:
		// A daily quota: the checkpoint records when it resumes.
		rec.Result, rec.Error, rec.ResumeAt = "paused", PausedRecord(paused.Until, paused.Reason), paused.Until
	case err != nil && interrupted:
		rec.Result, rec.Error, rec.ErrorClass = "interrupted", err.Error(), "interrupted"
	case err != nil:
		rec.Result, rec.Error, rec.ErrorClass = "failed", err.Error(), ClassOf(err).String()
	case st.Skipped > 0 || st.MirrorHeld > 0 || len(st.MirrorUnsure) > 0:
		rec.Result = "partial"
	}
	if err != nil {
		rec.ErrorClass = engineClass(ctx, err)
		if r.Explain != nil {
			class, hint := r.Explain(err)
			rec.Hint = hint
			if class != "" && !interrupted {
				rec.ErrorClass = class
			}
		}
	}
	if ferr := ledger.FinishRun(context.WithoutCancel(ctx), runID, rec); ferr != nil {
		if err == nil {
			return fatal(fmt.Errorf("recording the end of the run: %w", ferr))
		}
		// The run failed already (a lost hold: the ledger out of reach);
		// what its end could not record is said, not dropped.
		log.Warn("the run's end could not be recorded", "account", opts.Name, "error", ferr)
	}
	return err
}

// errPaused ends an attempt whose account an admin paused (Hold.Paused):
// the run stops after committing what is in flight, without an error.
var errPaused = errors.New("the account was paused")

// engineClass is the engine's class of the error that stopped an account:
// "interrupted" when ctx ended or Runner.Stop stopped it, else ClassOf's.
func engineClass(ctx context.Context, err error) string {
	if ctx.Err() != nil || errors.Is(err, ErrInterrupted) {
		return "interrupted"
	}
	return ClassOf(err).String()
}

// refusedCount counts the messages of failures (the destination's
// refusals), each once.
func refusedCount(failures []Skip) int {
	seen := map[string]bool{}
	for _, f := range failures {
		seen[f.Key] = true
	}
	return len(seen)
}

func (r *Runner) attempt(ctx context.Context, job Job, opts Options, ledger Ledger, hold Hold, halt <-chan struct{}, log *slog.Logger, prog Progress, st *Stats, run *accountRun) error {
	// The account's sessions that an earlier attempt left closing
	// behind (CloseBehind) close before new ones open.
	account := accountKey{opts.Account, opts.Name}
	if err := r.closes.waitAccount(ctx, account); err != nil {
		return err
	}
	var src Source
	var dst Destination
	var err error
	if job.Open != nil {
		var o OpenOptions
		if o.LikelyToCopy, err = r.likelyToCopy(ctx, ledger, opts); err != nil {
			return err
		}
		src, dst, err = job.Open(ctx, o)
	} else {
		src, dst, err = OpenBoth(ctx, job.OpenSource, job.OpenDestination)
	}
	if err != nil {
		return err
	}
	rawSrc, rawDst := src, dst
	if r.DryRun {
		src, dst = dryRunSource{Source: src, log: log, account: opts.Name}, &dryRunDestination{Destination: dst}
	}
	a := &attempt{run: run, src: src, dst: dst, ledger: ledger, hold: hold, opts: opts, log: log, prog: prog, st: st,
		rawSrc: rawSrc, rawDst: rawDst, create: !r.DryRun, dry: r.DryRun, halt: halt, crawl: &crawlWatch{rule: opts.Crawl.withDefaults()}}
	openExtra := job.OpenExtraDestination
	if openExtra == nil {
		openExtra = job.OpenDestination
	}
	a.openDst = func(ctx context.Context) (Destination, error) {
		d, err := openExtra(ctx)
		if err != nil || !r.DryRun {
			return d, err
		}
		return &dryRunDestination{Destination: d}, nil
	}
	err = a.do(ctx)
	st.noteCreated(rawDst)
	run.deletePending = a.deleted
	// QUIT (which commits POP3 deletions) only after a clean attempt (a
	// pause is one: its batches were finished and committed); every
	// deletion issued is of a message the ledger has as done, but a session
	// cut short commits nothing, which is the safe side.
	_, paused := isPaused(err)
	commit := err == nil || paused || errors.Is(err, errPaused)
	// The destination logs out while the source does (each LOGOUT or QUIT
	// waits a round trip on a distant server), and so do the extra
	// destination sessions (closeLater).
	closeAll := func() (srcErr, dstErr error) {
		dstClosed := make(chan struct{})
		go func() {
			defer close(dstClosed)
			dstErr = dst.Close()
			a.closing.Wait()
		}()
		srcErr = src.Close(commit)
		<-dstClosed
		return srcErr, dstErr
	}
	if r.CloseBehind && a.deleted == 0 && ctx.Err() == nil && !stopped(hold.Lost()) {
		// Nothing waits on these closes: no deletion to commit, nothing
		// for the ledger to record. The worker goes on meanwhile.
		r.closes.start(account, func() {
			srcErr, dstErr := closeAll()
			if srcErr != nil || dstErr != nil {
				log.Debug("closing the account's sessions after its copy", "account", opts.Name,
					"source_error", srcErr, "destination_error", dstErr)
			}
		})
		return connectionAborted(ctx, err)
	}
	cerr, _ := closeAll()
	if cerr != nil && commit {
		err = fmt.Errorf("closing the source session: %w", cerr)
	} else if commit && run.deletePending > 0 {
		st.Deleted += run.deletePending
		// The source confirmed the deletions: their entries are gone now
		// (as ReasonDeleted: mailferry's own, never mirrored away).
		if cerr := ledger.Commit(context.WithoutCancel(ctx), opts.Account, Changes{ConfirmDeleted: true}); cerr != nil {
			err = fmt.Errorf("recording %d messages deleted at the source: %w", run.deletePending, fatal(cerr))
		}
	}
	return connectionAborted(ctx, err)
}

// connectionAborted returns err, an attempt's error, said to be a
// transport abort when it is a context error that is not ctx's.
func connectionAborted(ctx context.Context, err error) error {
	if err != nil && errors.Is(err, context.Canceled) && ctx.Err() == nil {
		return fmt.Errorf("connection aborted: %w", err)
	}
	return err
}

// likelyToCopy is OpenOptions.LikelyToCopy for an attempt on the account:
// the ledger's counts (one row per state) hold no message done.
func (r *Runner) likelyToCopy(ctx context.Context, ledger Ledger, opts Options) (bool, error) {
	if r.DryRun {
		return false, nil
	}
	counts, err := ledger.Counts(ctx, opts.Account)
	if err != nil {
		return false, fmt.Errorf("reading the ledger's counts of %q: %w", opts.Name, fatal(err))
	}
	return counts[StateDone].Messages == 0, nil
}

// OpenBoth opens a source and a destination session at the same time: on
// distant servers each costs several round trips (TCP, TLS, greeting,
// login). Its errors say which side failed ("connecting to the source:
// ..."); on error it closes the side that opened.
func OpenBoth(ctx context.Context, openSrc func(context.Context) (Source, error), openDst func(context.Context) (Destination, error)) (Source, Destination, error) {
	var (
		dst    Destination
		dstErr error
		opened = make(chan struct{})
	)
	go func() {
		defer close(opened)
		dst, dstErr = openDst(ctx)
	}()
	src, err := openSrc(ctx)
	<-opened
	if err != nil {
		if dstErr == nil {
			dst.Close()
		}
		return nil, nil, &SideError{Side: "source", Err: err}
	}
	if dstErr != nil {
		src.Close(false)
		return nil, nil, &SideError{Side: "destination", Err: dstErr}
	}
	return src, dst, nil
}

// SideError is a failure to open one side of an account, "source" or
// "destination" (OpenBoth's errors), so that what to check can name that
// side's settings only. errors.Is and errors.As see through it to Err.
type SideError struct {
	Side string
	Err  error
}

func (e *SideError) Error() string { return "connecting to the " + e.Side + ": " + e.Err.Error() }
func (e *SideError) Unwrap() error { return e.Err }
