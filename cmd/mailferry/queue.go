package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/pipeline"
)

// `mailferry queue` operates a migration through its checkpoint: adds a
// config's accounts to a running fleet's queue, pauses, resumes and
// retries accounts (both engines: the same ledger controls as the status
// page), and drains a worker (docs/fleet.md).

const queueHelp = `mailferry queue - add accounts to a running migration, pause, resume or retry them, drain a worker

USAGE
  mailferry queue add -c migrate.toml [--only NAMES]
  mailferry queue pause  NAME... | --failed | --all   (-c FILE | --state STATE)
  mailferry queue resume NAME... | --failed | --all   (-c FILE | --state STATE)
  mailferry queue retry  NAME... | --failed | --all [--skipped] (-c FILE | --state STATE)
  mailferry queue drain  WORKER                       (-c FILE | --state STATE)

add (PostgreSQL checkpoint) puts the config's accounts in the open pass of
the queue: the accounts a running migration does not have yet are queued,
and the workers running that config claim them (a worker reads its config
again when the queue holds accounts it does not know). Add the accounts to
the config or its accounts file first.

pause stops an account: a run holding it finishes the batches in flight
and stops; no run or worker starts it until resume. retry makes the
accounts run as soon as possible (on PostgreSQL: queued again, for the
running workers), with --skipped trying their skipped messages again.
NAME is an account's name in the config, or its checkpoint key; --failed
picks every account whose last run failed or left messages failed.

drain (PostgreSQL checkpoint) tells a worker to claim nothing new and to
exit once the accounts it holds are done. WORKER is its HOST:PID, as
'mailferry status' lists the workers (or its full name). SIGUSR1 sent to a
worker does the same.

FLAGS
  -c, --config FILE   the config file: its state, and its accounts (add)
      --state STATE   checkpoint: a file or a postgres:// URL (default: the config's)
      --only NAMES    add: only these accounts of the config
      --failed        every account whose last run failed
      --all           every account
      --skipped       retry: try the skipped messages again too
      --reason TEXT   pause: why (shown by status)

EXIT STATUS
  0    done (the accounts or the worker changed, or already were so)
  1    the checkpoint could not be read or written, or there is none
  2    bad command line or configuration, an unknown account or worker;
       nothing was touched
`

func runQueue(ctx context.Context, args []string, e *env) (int, error) {
	var o inspectOptions
	var failed, all, skipped bool
	var reason string
	fs := pflag.NewFlagSet("queue", pflag.ContinueOnError)
	fs.StringVarP(&o.cfgPath, "config", "c", "", "the config file: its state, and its accounts (add)")
	fs.StringVar(&o.common.state, "state", "", "checkpoint (ledger): a file or a postgres:// URL")
	fs.StringSliceVar(&o.only, "only", nil, "add: only these accounts of the config file (by name)")
	fs.BoolVar(&failed, "failed", false, "every account whose last run failed or left messages failed")
	fs.BoolVar(&all, "all", false, "every account")
	fs.BoolVar(&skipped, "skipped", false, "retry: try the skipped messages again too")
	fs.StringVar(&reason, "reason", "", "pause: why, shown by status")
	if done, err := parseFlags(fs, args, e, queueHelp); done || err != nil {
		return helpOrUsage(done, err)
	}
	if fs.NArg() == 0 {
		return exitUsage, usagef("want an action: add, pause, resume, retry or drain")
	}
	action, names := fs.Arg(0), fs.Args()[1:]
	log := newLogger(&commonOptions{logFormat: "text"}, e.stderr)
	var cfg *config.Config
	state := o.common.state
	if o.cfgPath != "" {
		var err error
		if cfg, err = loadConfig(o.cfgPath, log); err != nil {
			return exitUsage, err
		}
		state = firstNonEmpty(state, cfg.State)
		o.statePassword = cfg.StatePassword
	}
	sel := checkpoint.Selector{Names: names, Failed: failed, All: all}
	switch action {
	case "add":
		if cfg == nil {
			return exitUsage, usagef("queue add needs -c FILE: the accounts come from the config")
		}
		if len(names) > 0 || failed || all {
			return exitUsage, usagef("queue add takes its accounts from the config (--only NAMES), not %q", strings.Join(names, " "))
		}
	case "pause", "resume", "retry":
		if len(names) == 0 && !failed && !all {
			return exitUsage, usagef("queue %s: name the accounts, or give --failed or --all", action)
		}
		if len(o.only) > 0 {
			return exitUsage, usagef("--only is for queue add; name the accounts instead")
		}
	case "drain":
		if len(names) != 1 || failed || all {
			return exitUsage, usagef("queue drain: name one worker (HOST:PID, as status lists it)")
		}
	default:
		return exitUsage, usagef("unknown action %q: want add, pause, resume, retry or drain", action)
	}
	if skipped && action != "retry" {
		return exitUsage, usagef("--skipped is for queue retry")
	}
	if reason != "" && action != "pause" {
		return exitUsage, usagef("--reason is for queue pause")
	}
	state, err := o.statePath(state, e)
	if err != nil {
		return exitUsage, err
	}
	if (action == "add" || action == "drain") && !checkpoint.IsPostgres(state) {
		return exitUsage, usagef("queue %s needs a PostgreSQL checkpoint (state = \"postgres://...\"): a run on %s runs its own config's accounts", action, state)
	}
	ledger, err := openLedgerIfExists(ctx, e, state, o.statePassword, log)
	if err != nil {
		return exitFatal, err
	}
	if ledger == nil {
		return exitFatal, fmt.Errorf("no checkpoint at %s: nothing has run with this state file (use --state or -c)", state)
	}
	defer ledger.Close()
	var changed []string
	switch action {
	case "add":
		return queueAdd(ctx, e, ledger, cfg, o.only)
	case "drain":
		ws, err := ledger.Drain(ctx, names[0])
		if errors.Is(err, checkpoint.ErrUnknownWorker) {
			return exitUsage, err
		}
		if err != nil {
			return exitFatal, err
		}
		for _, w := range ws {
			fmt.Fprintf(e.stdout, "draining worker %s: it claims nothing new and exits once the accounts it holds are done\n", w)
		}
		return exitOK, nil
	case "pause":
		changed, err = ledger.Pause(ctx, sel, firstNonEmpty(reason, "paused with mailferry queue pause"))
	case "resume":
		changed, err = ledger.Resume(ctx, sel)
	case "retry":
		changed, err = ledger.Retry(ctx, sel, skipped)
	}
	if errors.Is(err, checkpoint.ErrUnknownAccount) {
		return exitUsage, err
	}
	if err != nil {
		return exitFatal, err
	}
	past := map[string]string{"pause": "paused", "resume": "resumed", "retry": "to be retried"}[action]
	if len(changed) == 0 {
		fmt.Fprintf(e.stdout, "no account changed (none selected was not %s already)\n", past)
		return exitOK, nil
	}
	for _, n := range changed {
		fmt.Fprintf(e.stdout, "%s: %s\n", n, past)
	}
	return exitOK, nil
}

// queueAdd names the config's accounts in the checkpoint and queues them
// in the open pass.
func queueAdd(ctx context.Context, e *env, ledger *checkpoint.Ledger, cfg *config.Config, only []string) (int, error) {
	accs, err := configuredAccounts(cfg, only)
	if err != nil {
		return exitUsage, err
	}
	ids := make([]pipeline.AccountID, 0, len(accs))
	for _, a := range accs {
		res, err := ledger.ResolveAccount(ctx, a.spec)
		if err != nil {
			return exitFatal, fmt.Errorf("naming account %s in the checkpoint: %w", firstNonEmpty(a.name, a.key), err)
		}
		ids = append(ids, res.Account)
	}
	before, err := ledger.Left(ctx, ids)
	if err != nil {
		return exitFatal, err
	}
	pass, err := ledger.Enqueue(ctx, ids)
	if err != nil {
		return exitFatal, err
	}
	left, err := ledger.Left(ctx, ids)
	if err != nil {
		return exitFatal, err
	}
	added := (left.Queued + left.Waiting + left.Paused + left.Running) - (before.Queued + before.Waiting + before.Paused + before.Running)
	fmt.Fprintf(e.stdout, "pass %d: %s queued now; of the config's %s, %d queued, %d running, the rest done in this pass or paused\n",
		pass, plural(max(added, 0), "account"), plural(len(ids), "account"), left.Queued+left.Waiting, left.Running)
	return exitOK, nil
}
