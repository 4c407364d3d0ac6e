package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/hint"
	"github.com/mailferry/mailferry/imapsrc"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/schedule"
)

// serviceFlags are run's flags for service mode.
type serviceFlags struct {
	everyFlag   time.Duration
	idle        bool
	metricsAddr string
	idleRestart time.Duration
}

func (f *serviceFlags) register(fs *pflag.FlagSet) {
	fs.DurationVar(&f.everyFlag, "every", 0, "run as a service: poll each account at this interval (with ±10% jitter) until SIGTERM")
	fs.BoolVar(&f.idle, "idle", true, "service: keep an IMAP IDLE on IMAP sources' INBOX and poll as soon as new mail arrives")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "service: serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464)")
	// Re-issuing IDLE sooner is for tests; RFC 2177 wants it under 29 min.
	fs.DurationVar(&f.idleRestart, "idle-restart", imapsrc.DefaultIdleRestart, "service: re-issue IDLE after this long")
	_ = fs.MarkHidden("idle-restart")
}

// every is the service interval: the flag, else the config's; 0: run once.
func (f *serviceFlags) every(fs *pflag.FlagSet, cfg *config.Config) time.Duration {
	if fs.Changed("every") {
		return f.everyFlag
	}
	return cfg.Every
}

// serviceOptions configure a service run.
type serviceOptions struct {
	every       time.Duration
	idle        bool
	metricsAddr string
	idleRestart time.Duration
}

func (f *serviceFlags) options(fs *pflag.FlagSet, cfg *config.Config, every time.Duration) serviceOptions {
	o := serviceOptions{every: every, idle: cfg.Idle, metricsAddr: cfg.MetricsAddr, idleRestart: f.idleRestart}
	if fs.Changed("idle") {
		o.idle = f.idle
	}
	if fs.Changed("metrics-addr") {
		o.metricsAddr = f.metricsAddr
	}
	return o
}

// watchFunc opens an IDLE watcher on an IMAP source's INBOX.
type watchFunc func(ctx context.Context, restart time.Duration) (*imapsrc.Watcher, error)

// serviceAccount is what the service knows of an account besides its job.
type serviceAccount struct {
	name  string    // the config's account name: logs and metric labels
	watch watchFunc // nil: not an IMAP source
}

// serve runs the jobs as a long-running service: every account polls on
// its own schedule (package schedule) until the first SIGTERM or SIGINT
// (or until ctx ends); then no new poll starts, the polls in flight finish
// and commit the batches they sent, and the service exits 0. The config is read once, at start: changes need a
// restart.
func (x *execution) serve(ctx context.Context, jobs []pipeline.Job, specs []checkpoint.AccountSpec, accounts []serviceAccount, so serviceOptions) (int, error) {
	log := x.log
	lopts, err := ledgerOptions(ctx, x.env, x.state, x.statePassword, log)
	if err != nil {
		return exitFatal, err
	}
	lopts.Retention = x.retention
	if x.opts.onLocked == "wait" {
		lopts.LockWait = x.opts.lockWait
	}
	ledger, err := checkpoint.Open(ctx, x.state, lopts)
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

	names := make([]string, len(accounts))
	for i, a := range accounts {
		names[i] = a.name
	}
	m := newMetrics(names)
	if so.metricsAddr != "" {
		stop, err := serveMetrics(so.metricsAddr, m, log)
		if err != nil {
			return exitFatal, err
		}
		defer stop()
	}
	runner := &pipeline.Runner{Ledger: ledger, Logger: log, Attempts: x.attempts,
		SkipLocked: x.opts.onLocked == "skip", Backoff: x.opts.retryBackoff, Explain: hint.Explain,
		Paused: pausedIn(ledger), Stop: x.env.interrupted, CloseBehind: true}
	// The first SIGTERM or SIGINT ends the schedule and the IDLE watches
	// (sctx); the polls in flight stop gently (runner.Stop) and commit
	// their batches. ctx ends only with the caller's.
	sctx, stopService := context.WithCancel(ctx)
	defer stopService()
	go func() {
		select {
		case <-x.env.interrupted:
			log.Info("stopping: no new poll starts; the polls in flight finish the batches they sent and commit them (send the signal again to stop at once)")
			stopService()
		case <-sctx.Done():
		}
	}()
	shuttingDown := func() bool { return sctx.Err() != nil }

	// On PostgreSQL the polls go through the shared queue (docs/fleet.md):
	// a poll claims its account only when it is due there, and puts it
	// back due after most of an interval, so that the workers running
	// this config poll each account once per interval between them, one
	// at a time.
	fleet := checkpoint.IsPostgres(x.state)
	if fleet {
		if err := startFleetService(ctx, x, ledger, jobs); err != nil {
			return exitFatal, err
		}
	}
	stats := make([]*pipeline.Stats, len(jobs))
	poll := func(_ context.Context, i int) error {
		job := jobs[i]
		if fleet {
			_, hold, err := ledger.ClaimAmong(ctx, []pipeline.AccountID{job.Options.Account})
			if errors.Is(err, checkpoint.ErrNothingToClaim) {
				// Polled by another worker within this interval, or now.
				stats[i] = &pipeline.Stats{Account: names[i], LedgerKey: job.Options.Name, Locked: true}
				return nil
			}
			if err != nil {
				stats[i] = &pipeline.Stats{Account: names[i], LedgerKey: job.Options.Name}
				return err
			}
			job.Hold = hold
			defer func() {
				if isClosed(hold.Lost()) {
					// Due at once for any worker (the poll failed), if
					// the database answers by now; else its lease runs out.
					_ = hold.Release(context.WithoutCancel(ctx))
					return
				}
				if err := ledger.Requeue(hold, time.Now().Add(fleetPollGap(so.every))); err != nil {
					log.Warn("putting the account back in the queue failed; it is polled again when its lease runs out", "account", names[i], "error", err)
				}
			}()
		}
		st, err := runner.RunAccount(ctx, job)
		stats[i] = st
		if !shuttingDown() {
			m.observe(names[i], st, err, time.Now())
		}
		return err
	}
	report := func(r schedule.Result) {
		st := stats[r.Account]
		attrs := []any{"account", names[r.Account], "copied", st.Copied, "duration", r.Duration.Round(time.Millisecond)}
		switch {
		case r.Err != nil && shuttingDown():
			log.Info("poll stopped by shutdown; its last batch is committed", append(attrs, "error", r.Err)...)
		case r.Err != nil:
			log.Warn("poll failed", append(attrs, "error", r.Err, "failures_in_a_row", r.Failures,
				"next", r.Next.Format(time.RFC3339), "next_in", time.Until(r.Next).Round(time.Millisecond))...)
		default:
			if st.Failed > 0 || st.Skipped > 0 {
				attrs = append(attrs, "failed", st.Failed, "skipped", st.Skipped)
			}
			if st.Locked {
				attrs = append(attrs, "locked", true)
			}
			if st.Paused {
				attrs = append(attrs, "paused", st.PausedReason)
				if st.PausedUntil != nil {
					attrs = append(attrs, "paused_until", st.PausedUntil.Format(time.RFC3339))
				}
			}
			// The checkpoint's size: under a long-running fetch job it
			// levels off (gone entries are pruned after ledger_retention).
			if bytes, entries, err := ledger.Size(ctx); err == nil {
				attrs = append(attrs, "checkpoint_bytes", bytes, "checkpoint_entries", entries)
			}
			log.Info("poll", append(attrs, "next", r.Next.Format(time.RFC3339),
				"next_in", time.Until(r.Next).Round(time.Millisecond))...)
		}
	}
	sched := schedule.New(len(jobs), poll, report, schedule.Options{Every: so.every, Workers: x.workers})
	// A retry asked for on the status page polls the account at once.
	index := map[string]int{}
	for i, j := range jobs {
		index[j.Options.Name] = i
	}
	extras, err := startExtras(x.ui, x.env, ledger, x.pageAccounts, false,
		func(key string) {
			if i, ok := index[key]; ok {
				sched.Trigger(i)
			}
		}, log)
	if err != nil {
		return exitUsage, err
	}
	defer extras.close()
	runner.Progress = pipeline.TeeProgress(extras.progress()...)

	var wg sync.WaitGroup
	watching := 0
	for i, a := range accounts {
		if a.watch == nil || !so.idle {
			continue
		}
		watching++
		wg.Add(1)
		go func() {
			defer wg.Done()
			watchLoop(sctx, a, so.idleRestart, func() {
				if fleet {
					if err := ledger.DueNow(sctx, jobs[i].Options.Account); err != nil {
						log.Warn("cannot make the account due in the queue", "account", a.name, "error", err)
					}
				}
				sched.Trigger(i)
			}, log)
		}()
	}
	log.Info("service started", "accounts", len(jobs), "every", so.every, "jitter", "±10%",
		"workers", x.workers, "idle_watches", watching, "metrics", firstNonEmpty(so.metricsAddr, "off"), "pid", os.Getpid())
	_ = sched.Run(sctx)
	wg.Wait()
	runner.WaitClosed(ctx)
	log.Info("service stopped")
	return exitOK, nil
}

// watchLoop keeps an IDLE watcher on one account's source and calls
// trigger whenever it announces new mail. A server without IDLE, or a
// fatal error (refused login), ends the watch: the account is polled on
// its interval only. Dropped connections are reopened with a backoff
// (1 s doubling up to 5 min); after a reconnection the account polls at
// once, since mail may have come in unannounced.
func watchLoop(ctx context.Context, a serviceAccount, restart time.Duration, trigger func(), log *slog.Logger) {
	const maxWait = 5 * time.Minute
	wait := time.Second
	log = log.With("account", a.name)
	for first := true; ctx.Err() == nil; first = false {
		w, err := a.watch(ctx, restart)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return
			case errors.Is(err, imapsrc.ErrNoIdle):
				log.Info("the source offers no IDLE: polling on the interval only")
				return
			case pipeline.ClassOf(err) == pipeline.ClassFatal:
				log.Warn("cannot watch the source with IDLE: polling on the interval only", "error", err)
				return
			}
			log.Debug("IDLE watch: cannot connect, trying again", "error", err, "retry_in", wait)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
			wait = min(2*wait, maxWait)
			continue
		}
		wait = time.Second
		log.Debug("watching the source with IDLE")
		if !first {
			trigger()
		}
		for {
			if err = w.Wait(ctx); err != nil {
				break
			}
			log.Debug("IDLE: new mail announced")
			trigger()
		}
		_ = w.Close()
		if ctx.Err() == nil {
			log.Debug("IDLE watch ended, reconnecting", "error", err)
		}
	}
}
