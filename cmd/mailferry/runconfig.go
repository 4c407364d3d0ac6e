package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/account"
	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/statuspage"
)

// loadConfig loads and validates a config file, logging its warnings.
func loadConfig(path string, log *slog.Logger) (*config.Config, error) {
	if path == "" {
		return nil, usagef("-c/--config FILE is required")
	}
	cfg, warns, err := config.Load(path)
	for _, w := range warns {
		log.Warn(w.String())
	}
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func runConfig(ctx context.Context, args []string, e *env) (int, error) {
	var common commonOptions
	var cfgPath string
	var only []string
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	common.register(fs)
	fs.StringVarP(&cfgPath, "config", "c", "", "the config file (see migrate.toml.example)")
	fs.StringSliceVar(&only, "only", nil, "run only these accounts (by name; repeat or separate with commas)")
	workers := fs.Int("workers", 0, "accounts in parallel (default: the config's workers)")
	attempts := fs.Int("attempts", 4, "tries per account when connections drop or servers are unavailable")
	rerunFailed := fs.Bool("rerun-failed", false, "run only the accounts whose last run failed, was interrupted or left messages failed")
	noteCreateFolders := common.registerCreateFolders(fs)
	var svc serviceFlags
	svc.register(fs)
	var tf trafficFlags
	tf.register(fs, true)
	var ui uiOptions
	ui.register(fs)
	if done, err := parseFlags(fs, args, e, runHelp); done || err != nil {
		return helpOrUsage(done, err)
	}
	if err := common.check(); err != nil {
		return exitUsage, err
	}
	if err := tf.check(); err != nil {
		return exitUsage, err
	}
	if fs.NArg() != 0 {
		return exitUsage, usagef("unexpected arguments %q (accounts come from the config file)", fs.Args())
	}
	logOut := &logWriter{w: e.stderr}
	log := newLogger(&common, logOut)
	cfg, err := loadConfig(cfgPath, log)
	if err != nil {
		return exitUsage, err
	}
	// Command-line flags win over the file.
	if !fs.Changed("dry-run") {
		common.dryRun = cfg.DryRun
	}
	// The delete flags, when given, replace every account's policy.
	common.deleteFromFlags = fs.Changed("delete-source") || fs.Changed("delete-after")
	common.mirrorFromFlags = fs.Changed("mirror")
	noteCreateFolders()
	if !fs.Changed("on-locked") {
		common.onLocked = cfg.OnLocked
	}
	if !fs.Changed("lock-wait") {
		common.lockWait = cfg.LockWait
	}
	if !fs.Changed("log-format") && cfg.LogFormat != "" {
		common.logFormat = string(cfg.LogFormat)
		log = newLogger(&common, logOut)
	}
	state := common.state
	if state == "" {
		state = cfg.State
	}
	if state == "" {
		if state, err = defaultStatePath(e.getenv); err != nil {
			return exitUsage, err
		}
	}
	w := cfg.Workers
	if *workers > 0 {
		w = *workers
	}

	ui.merge(fs, cfg)
	aopts := common.accountOptions(e, log)
	if err := tf.apply(&aopts, cfg, e, log); err != nil {
		return exitUsage, err
	}
	set := account.NewSet(aopts)
	accs, err := set.FromConfig(cfg, only)
	if err != nil {
		return exitUsage, err
	}
	jobs := make([]pipeline.Job, len(accs))
	specs := make([]checkpoint.AccountSpec, len(accs))
	services := make([]serviceAccount, len(accs))
	pageAccounts := make([]statuspage.Account, len(accs))
	for i, acc := range accs {
		// Each account counts its own crash points, as it always did.
		if err := e.applyTestHooks(&acc.Options); err != nil {
			return exitUsage, err
		}
		acc.Options.RetrySkipped = common.retrySkipped
		jobs[i] = acc.Job()
		specs[i] = acc.LedgerSpec()
		services[i] = serviceAccount{name: acc.Name}
		if acc.SourceIsIMAP() {
			services[i].watch = acc.Watch
		}
		pageAccounts[i] = statuspage.Account{Name: acc.Name, Key: acc.Options.Name, SourceHost: acc.Source.Addr(), DestHost: acc.Dest.Addr()}
	}
	if every := svc.every(fs, cfg); every > 0 {
		if *rerunFailed || common.dryRun || common.retrySkipped {
			return exitUsage, usagef("--every runs a service: it cannot be combined with --rerun-failed, --dry-run or --retry-skipped")
		}
		if !fs.Changed("attempts") {
			*attempts = 1 // the service's backoff between polls is the retry
		}
		x := &execution{command: "run", opts: &common, env: e, log: log, logOut: logOut, state: state, workers: w, attempts: *attempts,
			retention: cfg.LedgerRetention, statePassword: cfg.StatePassword, ui: &ui, pageAccounts: pageAccounts, set: set}
		return x.serve(ctx, jobs, specs, services, svc.options(fs, cfg, every))
	}
	if *rerunFailed {
		if jobs, specs, err = onlyFailed(ctx, e, jobs, specs, state, cfg.StatePassword, log); err != nil {
			return exitFatal, err
		}
		log.Info("re-running the accounts whose last run failed or whose retry was asked for", "accounts", len(jobs))
		kept := map[string]bool{}
		for _, j := range jobs {
			kept[j.Options.Name] = true
		}
		pageAccounts = slices.DeleteFunc(pageAccounts, func(a statuspage.Account) bool { return !kept[a.Key] })
	}
	x := &execution{command: "run", opts: &common, env: e, log: log, logOut: logOut, state: state, workers: w, attempts: *attempts,
		retention: cfg.LedgerRetention, statePassword: cfg.StatePassword, ui: &ui, pageAccounts: pageAccounts, set: set,
		// On PostgreSQL, run is a worker of the shared queue (fleet.go);
		// a dry run and --rerun-failed run their accounts in order, each
		// under its lease, as on SQLite.
		fleet: checkpoint.IsPostgres(state) && !common.dryRun && !*rerunFailed}
	if x.fleet {
		// Accounts added to the queue while the worker runs: it reads
		// the config again, through the same set (its connection caps
		// and traffic limits cover the new accounts too).
		x.reloadFiles = []string{cfgPath}
		if cfg.AccountsFile != "" {
			x.reloadFiles = append(x.reloadFiles, cfg.AccountsFile)
		}
		x.reload = func() ([]pipeline.Job, []checkpoint.AccountSpec, error) {
			cfg, err := loadConfig(cfgPath, log)
			if err != nil {
				return nil, nil, err
			}
			accs, err := set.FromConfig(cfg, only)
			if err != nil {
				return nil, nil, err
			}
			jobs := make([]pipeline.Job, len(accs))
			specs := make([]checkpoint.AccountSpec, len(accs))
			for i, acc := range accs {
				if err := e.applyTestHooks(&acc.Options); err != nil {
					return nil, nil, err
				}
				acc.Options.RetrySkipped = common.retrySkipped
				jobs[i], specs[i] = acc.Job(), acc.LedgerSpec()
			}
			return jobs, specs, nil
		}
	}
	return x.run(ctx, jobs, specs)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func runConfigCmd(_ context.Context, args []string, e *env) (int, error) {
	if len(args) == 0 || (args[0] != "check" && args[0] != "--help" && args[0] != "-h") {
		return exitUsage, usagef("want 'mailferry config check -c FILE'")
	}
	if args[0] != "check" {
		fmt.Fprint(e.stdout, configHelp)
		return exitOK, nil
	}
	var cfgPath string
	fs := pflag.NewFlagSet("config check", pflag.ContinueOnError)
	fs.StringVarP(&cfgPath, "config", "c", "", "the config file")
	if done, err := parseFlags(fs, args[1:], e, configHelp); done || err != nil {
		return helpOrUsage(done, err)
	}
	log := newLogger(&commonOptions{logFormat: "text"}, e.stderr)
	cfg, err := loadConfig(cfgPath, log)
	if err != nil {
		return exitUsage, err
	}
	fmt.Fprintf(e.stdout, "%s: OK: %s, source %s, destination %s, state %s, %s\n",
		cfgPath, plural(len(cfg.Accounts), "account"), cfg.Source.URL, cfg.Destination.URL, checkpoint.Redact(firstNonEmpty(cfg.State, "(default)")), plural(cfg.Workers, "worker"))
	writeFolderUse(e.stdout, cfg)
	return exitOK, nil
}

// folderUseMax bounds the accounts config check describes one by one.
const folderUseMax = 10

// writeFolderUse says where each account's mail goes on the destination
// when the config names a folder for it (dest_folder, [destination]
// folder, [folders] root): POP3 mail into that folder, an IMAP source's
// folders under it; and whether a run may create it.
func writeFolderUse(w io.Writer, cfg *config.Config) {
	n := 0
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		key := cfg.DestFolderKey(a)
		if key == "" {
			continue
		}
		n++
		if n > folderUseMax {
			continue
		}
		src, err1 := cfg.SourceEndpoint(a)
		dst, err2 := cfg.DestEndpoint(a)
		if err1 != nil || err2 != nil {
			continue
		}
		if src.Protocol == config.IMAP {
			fmt.Fprintf(w, "  account %q: the source's folders go under %q (%s): %s/INBOX, %s/Sent, ...\n", a.Name, dst.Mailbox, key, dst.Mailbox, dst.Mailbox)
		} else {
			fmt.Fprintf(w, "  account %q: POP3 mail goes into %q (%s)\n", a.Name, dst.Mailbox, key)
		}
	}
	if n > folderUseMax {
		fmt.Fprintf(w, "  ... and %s more with a destination folder\n", plural(n-folderUseMax, "account"))
	}
	if n > 0 && !cfg.CreateFolders {
		fmt.Fprintln(w, "  a folder named that would be a new top-level folder on the destination is refused unless create_folders = true (or run --create-folders)")
	}
}

// onlyFailed keeps the jobs (and their specs) whose account's last run,
// per the checkpoint, failed, was interrupted, or ended with messages that
// failed, and those whose retry was asked for (on the status page) since
// their last run started.
func onlyFailed(ctx context.Context, e *env, jobs []pipeline.Job, specs []checkpoint.AccountSpec, state string, pw config.SecretSource, log *slog.Logger) ([]pipeline.Job, []checkpoint.AccountSpec, error) {
	ledger, err := openLedgerIfExists(ctx, e, state, pw, log)
	if err != nil || ledger == nil {
		return nil, nil, err // no checkpoint: nothing has run, so nothing failed
	}
	defer ledger.Close()
	var out []pipeline.Job
	var outSpecs []checkpoint.AccountSpec
	for i, j := range jobs {
		id, ok, err := ledger.LookupAccount(ctx, specs[i])
		if err != nil {
			return nil, nil, fmt.Errorf("reading the last run of %s: %w", j.Options.Name, err)
		}
		if !ok {
			continue // never ran
		}
		runs, err := ledger.Runs(ctx, id, 1)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the last run of %s: %w", j.Options.Name, err)
		}
		ctl, err := ledger.Control(ctx, j.Options.Name)
		if err != nil {
			return nil, nil, err
		}
		retry := !ctl.RetryRequested.IsZero() && (len(runs) == 0 || ctl.RetryRequested.After(runs[0].Started))
		if retry || len(runs) == 1 && (runs[0].Result == "failed" || runs[0].Result == "interrupted" || runs[0].Finished.IsZero() || runs[0].Failed > 0) {
			out = append(out, j)
			outSpecs = append(outSpecs, specs[i])
		}
	}
	return out, outSpecs, nil
}
