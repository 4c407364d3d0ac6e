package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/mailferry/mailferry/account"
	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/hint"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/statuspage"
)

// newLogger builds the stderr logger from the common flags; w is usually
// the command's logWriter, so that a progress bar can take the logs over.
func newLogger(o *commonOptions, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	switch {
	case o.verbose || o.trace:
		level = slog.LevelDebug
	case o.quiet:
		level = slog.LevelWarn
	}
	hopts := &slog.HandlerOptions{Level: level}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, hopts))
	}
	return slog.New(slog.NewTextHandler(w, hopts))
}

// defaultStatePath is $XDG_STATE_HOME/mailferry/mailferry.db, or
// ~/.local/state/mailferry/mailferry.db.
func defaultStatePath(getenv func(string) string) (string, error) {
	dir := getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("finding the default state file: %w (use --state)", err)
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "mailferry", "mailferry.db"), nil
}

// isTerminal reports whether w is a terminal. Ask it of env.rawStderr,
// not of the syncWriter around it.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// execution is a run of several jobs against one ledger.
type execution struct {
	command  string
	opts     *commonOptions
	env      *env
	log      *slog.Logger
	logOut   *logWriter // where log lines go, so a progress bar can carry them
	state    string
	workers  int
	attempts int
	// retention is ledger_retention (0: the checkpoint's default).
	retention time.Duration
	// statePassword is where a PostgreSQL checkpoint's password comes
	// from (state_password_env, state_password_file); zero: the
	// environment's MAILFERRY_STATE_PASSWORD.
	statePassword config.SecretSource
	// ui, when set, configures the status page and notifications for
	// the accounts pageAccounts (run).
	ui           *uiOptions
	pageAccounts []statuspage.Account
	// fleet: run as a worker of the checkpoint's queue (run on a
	// PostgreSQL checkpoint, fleet.go) rather than over jobs in order.
	fleet bool
	// reload, for a fleet worker, reads the config's accounts again
	// (accounts added to a running migration); reloadFiles are the files
	// it reads, whose changes it watches.
	reload      func() ([]pipeline.Job, []checkpoint.AccountSpec, error)
	reloadFiles []string
	// set is the accounts' Set: on a PostgreSQL checkpoint its connection
	// caps are shared with the fleet (shareCaps).
	set *account.Set
}

// shareCaps makes the connection caps hold across every process on a
// PostgreSQL checkpoint (docs/fleet.md "Connection caps across the
// fleet"). A dry run writes nothing to the checkpoint, slots neither: its
// caps stay its own.
func (x *execution) shareCaps(ledger *checkpoint.Ledger) {
	if s := ledger.Slots(); s != nil && x.set != nil && !x.opts.dryRun {
		x.set.ShareCaps(s)
	}
}

// resolve gives each job its account's number in the ledger (specs[i] is
// how the ledger names jobs[i]'s account). A dry run only reads: an
// account the ledger does not know yet runs as account 0, which reads as
// empty.
func (x *execution) resolve(ctx context.Context, ledger *checkpoint.Ledger, jobs []pipeline.Job, specs []checkpoint.AccountSpec) error {
	for i := range jobs {
		sp := specs[i]
		if x.opts.dryRun {
			id, _, err := ledger.LookupAccount(ctx, sp)
			if err != nil {
				return err
			}
			jobs[i].Options.Account = id
			continue
		}
		res, err := ledger.ResolveAccount(ctx, sp)
		if err != nil {
			return err
		}
		jobs[i].Options.Account = res.Account
		if res.Provisional && len(res.Candidates) > 0 {
			to, err := x.proveIdentity(ctx, ledger, jobs[i], sp, res)
			switch {
			case err != nil && ctx.Err() != nil:
				return err
			case err != nil:
				// Proved by a later run; this one goes on as a new
				// history, and destination matching finds what the
				// destination already holds.
				x.log.Warn("cannot tell whether renamed servers reach an account the checkpoint knows; going on as a new history",
					"account", jobs[i].Options.Name, "error", err)
			case to != 0:
				jobs[i].Options.Account = to
			}
		}
	}
	return nil
}

// run executes the jobs, prints the report and returns the exit status.
// specs[i] names jobs[i]'s account in the ledger.
func (x *execution) run(ctx context.Context, jobs []pipeline.Job, specs []checkpoint.AccountSpec) (int, error) {
	started := time.Now()
	state := x.state
	if _, err := os.Stat(state); x.opts.dryRun && !checkpoint.IsPostgres(state) && errors.Is(err, os.ErrNotExist) {
		// A dry run writes nothing, not even a new checkpoint file: with
		// none yet, it reads an empty one in a private temp directory.
		dir, err := os.MkdirTemp("", "mailferry-dry-run-")
		if err != nil {
			return exitFatal, fmt.Errorf("creating a temporary checkpoint for the dry run: %w", err)
		}
		defer os.RemoveAll(dir)
		state = filepath.Join(dir, "empty.db")
	}
	lopts, err := ledgerOptions(ctx, x.env, state, x.statePassword, x.log)
	if err != nil {
		return exitFatal, err
	}
	lopts.Retention = x.retention
	if x.opts.onLocked == "wait" {
		lopts.LockWait = x.opts.lockWait
	}
	ledger, err := checkpoint.Open(ctx, state, lopts)
	if err != nil {
		return exitFatal, fmt.Errorf("opening the checkpoint: %w", err)
	}
	defer ledger.Close()
	x.shareCaps(ledger)
	if err := x.resolve(ctx, ledger, jobs, specs); err != nil {
		return exitUsage, fmt.Errorf("naming the accounts in the checkpoint: %w", err)
	}
	if err := carryPauses(ctx, ledger, jobs, x.now()); err != nil {
		return exitFatal, fmt.Errorf("reading the checkpoint: %w", err)
	}
	extras, err := startExtras(x.ui, x.env, ledger, x.pageAccounts, x.opts.dryRun, nil, x.log)
	if err != nil {
		return exitUsage, err
	}
	defer extras.close()

	mode := x.opts.progress
	if mode == "auto" {
		mode = "lines"
		if isTerminal(x.env.rawStderr()) {
			mode = "bar"
		}
	}
	if x.opts.quiet {
		mode = "none"
	}
	rows := 0
	if x.workers > 1 && len(jobs) > 1 {
		rows = min(x.workers, len(jobs))
	}
	view := newProgressView(mode, x.env.stderr, x.log, 10*time.Second, rows)
	view.setNames(jobs)
	if x.logOut != nil && view.bar != nil {
		x.logOut.setBar(view.bar)
	}
	runner := &pipeline.Runner{Ledger: ledger, DryRun: x.opts.dryRun, Logger: x.log,
		Progress: pipeline.TeeProgress(append([]pipeline.Progress{view}, extras.progress()...)...),
		Attempts: x.attempts, SkipLocked: x.opts.onLocked == "skip", Backoff: x.opts.retryBackoff,
		Explain: hint.Explain, Paused: pausedIn(ledger), Stop: x.env.interrupted,
		// A worker takes its next account while the last one's sessions
		// log out; `copy`, with one account, closes them as it goes.
		CloseBehind: len(jobs) > 1 || x.fleet}
	finished := make(chan struct{})
	defer close(finished)
	go x.announceInterrupt(finished)
	if x.fleet {
		return x.runFleet(ctx, ledger, runner, jobs, view, extras, started)
	}

	stats := make([]*pipeline.Stats, len(jobs))
	workers := max(1, min(x.workers, len(jobs)))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				st, err := runner.RunAccount(ctx, jobs[i])
				if isFolderError(err) {
					st.ErrorClass = classConfig
				}
				if jobs[i].Notes != nil {
					st.Notes = jobs[i].Notes()
				}
				if err != nil && ctx.Err() == nil && !errors.Is(err, pipeline.ErrInterrupted) {
					x.log.Error("account failed", "account", st.Account, "error", err)
				}
				stats[i] = st
			}
		}()
	}
feed:
	for i := range jobs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		case <-x.env.interrupted:
			break feed
		}
	}
	close(next)
	wg.Wait()
	runner.WaitClosed(ctx)
	if x.logOut != nil {
		x.logOut.setBar(nil)
	}
	view.close()

	var ran []*pipeline.Stats
	for _, st := range stats {
		if st != nil {
			ran = append(ran, st)
		}
	}
	interrupted := errors.Is(ctx.Err(), context.Canceled) || isClosed(x.env.interrupted)
	rep := newReport(x.command, x.opts.dryRun, started, ran, interrupted)
	rep.Totals.AccountsNotStarted = len(jobs) - len(ran)
	if state == x.state {
		// Not the empty stand-in of a dry run without a checkpoint.
		// The run's work is committed: a failure to read the size only
		// leaves it out of the report.
		if bytes, entries, err := ledger.Size(context.WithoutCancel(ctx)); err != nil {
			x.log.Warn("reading the checkpoint's size", "error", err)
		} else {
			rep.Checkpoint = &checkpointSize{Bytes: bytes, Entries: entries}
		}
	}
	extras.batchFinished(rep)
	return x.writeReport(rep)
}

// writeReport prints the report (JSON or text), writes --report's file,
// and returns the report's exit status.
func (x *execution) writeReport(rep *report) (int, error) {
	if x.opts.json {
		if err := rep.writeJSON(x.env.stdout); err != nil {
			return exitFatal, err
		}
	} else {
		rep.writeText(x.env.stdout, terminalWidth(x.env.stdout, x.env.getenv))
	}
	if x.opts.report != "" {
		if err := rep.writeFile(x.opts.report); err != nil {
			return exitFatal, err
		}
	}
	return rep.ExitCode, nil
}

// announceInterrupt says, through the log (above a progress bar), that the
// first signal arrived and what happens now.
func (x *execution) announceInterrupt(finished <-chan struct{}) {
	select {
	case <-x.env.interrupted:
	case <-finished:
		return
	}
	var w io.Writer = x.env.stderr
	if x.logOut != nil {
		w = x.logOut
	}
	fmt.Fprintln(w, "mailferry: interrupted: starting no more messages; the batches in flight finish and are committed (send the signal again to stop at once)")
}

// isClosed reports whether ch is closed; a nil channel never is.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// now is the time of the traffic control's clock.
func (x *execution) now() time.Time {
	if x.env.clock != nil {
		return x.env.clock.Now()
	}
	return time.Now()
}
