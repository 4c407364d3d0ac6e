package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
	"github.com/mailferry/mailferry/spool"
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
	var svc serviceFlags
	svc.register(fs)
	var ui uiOptions
	ui.register(fs)
	if done, err := parseFlags(fs, args, e, runHelp); done || err != nil {
		return helpOrUsage(done, err)
	}
	if err := common.check(); err != nil {
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

	selected := map[string]bool{}
	found := map[string]bool{} // not deleted from selected: an emptied selected would select every later account
	for _, n := range only {
		selected[n] = true
	}
	ui.merge(fs, cfg)
	var jobs []pipeline.Job
	var accounts []serviceAccount
	var pageAccounts []statuspage.Account
	masters := &masterPasswords{}
	limits := &hostLimits{}
	caps := connectionCaps(cfg)
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		if len(selected) > 0 && !selected[a.Name] {
			continue
		}
		found[a.Name] = true
		job, watch, err := buildJob(ctx, cfg, a, masters, limits, caps, &common, e, log)
		if err != nil {
			return exitUsage, err
		}
		jobs = append(jobs, job)
		accounts = append(accounts, serviceAccount{name: a.Name, watch: watch})
		pageAccounts = append(pageAccounts, pageAccount(cfg, a, job.Options.Account))
	}
	for n := range selected {
		if found[n] {
			continue
		}
		return exitUsage, usagef("--only %q: no such account in %s", n, cfgPath)
	}
	if every := svc.every(fs, cfg); every > 0 {
		if *rerunFailed || common.dryRun {
			return exitUsage, usagef("--every runs a service: it cannot be combined with --rerun-failed or --dry-run")
		}
		if !fs.Changed("attempts") {
			*attempts = 1 // the service's backoff between polls is the retry
		}
		x := &execution{command: "run", opts: &common, env: e, log: log, logOut: logOut, state: state, workers: w, attempts: *attempts,
			ui: &ui, pageAccounts: pageAccounts}
		return x.serve(ctx, jobs, accounts, svc.options(fs, cfg, every))
	}
	if *rerunFailed {
		if jobs, err = onlyFailed(ctx, jobs, state, log); err != nil {
			return exitFatal, err
		}
		log.Info("re-running the accounts whose last run failed or whose retry was asked for", "accounts", len(jobs))
		kept := map[string]bool{}
		for _, j := range jobs {
			kept[j.Options.Account] = true
		}
		pageAccounts = slices.DeleteFunc(pageAccounts, func(a statuspage.Account) bool { return !kept[a.Key] })
	}
	x := &execution{command: "run", opts: &common, env: e, log: log, logOut: logOut, state: state, workers: w, attempts: *attempts,
		ui: &ui, pageAccounts: pageAccounts}
	return x.run(ctx, jobs)
}

// buildJob turns one configured account into a pipeline job and, for an
// IMAP source, a function that opens an IDLE watcher on its INBOX (the
// service uses it between polls).
func buildJob(ctx context.Context, cfg *config.Config, a *config.Account, masters *masterPasswords, limits *hostLimits, caps connCaps, common *commonOptions, e *env, log *slog.Logger) (pipeline.Job, watchFunc, error) {
	srcEp, err := cfg.SourceEndpoint(a)
	if err != nil {
		return pipeline.Job{}, nil, fmt.Errorf("account %q: source: %w", a.Name, err)
	}
	dstEp, err := cfg.DestEndpoint(a)
	if err != nil {
		return pipeline.Job{}, nil, fmt.Errorf("account %q: destination: %w", a.Name, err)
	}
	creds, warns, err := a.ResolveSecrets(ctx)
	for _, w := range warns {
		log.Warn(w.String())
	}
	if err != nil {
		return pipeline.Job{}, nil, usagef("%v", err)
	}
	var popts pipeline.Options
	if popts.DatePolicy, err = mapping.ParseDatePolicy(string(cfg.Policy.InternalDate)); err != nil {
		return pipeline.Job{}, nil, usagef("policy.internal_date: %v", err)
	}
	if popts.FlagPolicy, err = mapping.ParseFlagPolicy(string(cfg.Policy.Flags)); err != nil {
		return pipeline.Job{}, nil, usagef("policy.flags: %v", err)
	}
	fo := folderOptions{include: cfg.Folders.Include, exclude: cfg.Folders.Exclude, root: cfg.Folders.Root,
		rename: cfg.Folders.Rename, syncFlags: cfg.Folders.SyncFlags, specialUse: cfg.Folders.SpecialUse,
		maxAge: cfg.Folders.MaxAge, minAge: cfg.Folders.MinAge}
	if srcEp.Protocol == config.IMAP {
		imapJobOptions(&popts, fo, log.With("account", a.Name))
	}
	if cfg.Policy.XUIDL {
		popts.AddHeader = xUIDLHeader
	}
	popts.Account = accountKey(srcEp, dstEp)
	popts.Mailbox = mapping.DestFolder(dstEp.Mailbox)
	policy := cfg.DeletePolicyOf(a)
	if common.deleteFromFlags {
		policy = config.DeletePolicy{DeleteSource: common.deleteSource, DeleteAfter: common.deleteAfter}
	}
	popts.DeleteSource, popts.DeleteAfter = policy.DeleteSource, policy.DeleteAfter
	if popts.Crashpoint, err = crashpointFromEnv(e.getenv); err != nil {
		return pipeline.Job{}, nil, err
	}
	if popts.Now, err = testNowFromEnv(e.getenv); err != nil {
		return pipeline.Job{}, nil, err
	}
	popts.MaxMessageBytes = cfg.Policy.MaxMessageBytes
	popts.Spool = spool.Options{MemoryBytes: cfg.Policy.SpoolMemoryBytes, Buffers: &spool.Buffers{}}
	srcSrv, dstSrv := cfg.SourceFor(a), cfg.DestinationFor(a)
	popts.BatchMessages = dstSrv.BatchMessages
	popts.DestSessions = dstSrv.Sessions
	popts.BatchBytes = dstSrv.BatchBytes

	trace := traceWriter(common, e)
	sides := accountSides{account: a, common: common, masters: masters, folders: fo, trace: trace, log: log}
	src, err := sides.setup(ctx, &srcSrv.Server, srcEp, creds.Source, a.SourcePassword, "source token")
	if err != nil {
		return pipeline.Job{}, nil, usagef("account %q: source: %v", a.Name, err)
	}
	dst, err := sides.setup(ctx, &dstSrv.Server, dstEp, creds.Dest, a.DestPassword, "destination token")
	if err != nil {
		return pipeline.Job{}, nil, usagef("account %q: destination: %v", a.Name, err)
	}
	job := pipeline.Job{Options: popts}
	if job.OpenSource, err = src.openSource(); err != nil {
		return job, nil, fmt.Errorf("account %q: %w", a.Name, err)
	}
	if job.OpenDestination, err = dst.openDestination(popts.BatchMessages, popts.BatchBytes); err != nil {
		return job, nil, fmt.Errorf("account %q: %w", a.Name, err)
	}
	open := job.OpenDestination
	// The caps are per host (the effective one, after the account's
	// overrides), the smallest any account gives for it.
	srcCap, dstCap := caps.source[srcEp.Addr()], caps.dest[dstEp.Addr()]
	job.OpenSource = limits.limitSource(job.OpenSource, srcEp.Addr(), srcCap)
	job.OpenDestination = limits.limitDestination(open, dstEp.Addr(), dstCap)
	job.OpenExtraDestination = limits.limitExtraDestination(open, dstEp.Addr(), dstCap)
	var watch watchFunc
	if srcEp.Protocol == config.IMAP {
		if watch, err = src.openWatcher(); err != nil {
			return job, nil, fmt.Errorf("account %q: %w", a.Name, err)
		}
	}
	return job, watch, nil
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
	fmt.Fprintf(e.stdout, "%s: OK: %d accounts, source %s, destination %s, state %s, %d workers\n",
		cfgPath, len(cfg.Accounts), cfg.Source.URL, cfg.Destination.URL, firstNonEmpty(cfg.State, "(default)"), cfg.Workers)
	return exitOK, nil
}

// connCaps are the connection caps (max_connections) per host:port.
type connCaps struct{ source, dest map[string]int }

// connectionCaps returns, per server address, the smallest positive
// max_connections of the accounts that use it: the cap is per host, and an
// account's override of the host or of the cap must not let the accounts
// sharing that host exceed the strictest setting.
func connectionCaps(cfg *config.Config) connCaps {
	caps := connCaps{source: map[string]int{}, dest: map[string]int{}}
	add := func(m map[string]int, addr string, n int) {
		if n > 0 && (m[addr] == 0 || n < m[addr]) {
			m[addr] = n
		}
	}
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		if ep, err := cfg.SourceEndpoint(a); err == nil {
			add(caps.source, ep.Addr(), cfg.SourceFor(a).MaxConnections)
		}
		if ep, err := cfg.DestEndpoint(a); err == nil {
			add(caps.dest, ep.Addr(), cfg.DestinationFor(a).MaxConnections)
		}
	}
	return caps
}

// masterPasswords resolves each master password once per run, however many
// accounts use it (a password command runs once). It is keyed by where the
// password comes from, since accounts that override the server settings
// each hold their own copy of the section.
type masterPasswords struct {
	resolved map[config.SecretSource]secret.Value
}

func (m *masterPasswords) resolve(ctx context.Context, s *config.Server, log *slog.Logger) (secret.Value, error) {
	if v, ok := m.resolved[s.MasterPassword]; ok {
		return v, nil
	}
	pw, warns, err := s.MasterPassword.Resolve(ctx)
	for _, w := range warns {
		log.Warn(w.String())
	}
	if err != nil {
		return secret.Value{}, fmt.Errorf("master user %q: %w", s.MasterUser, err)
	}
	if m.resolved == nil {
		m.resolved = map[config.SecretSource]secret.Value{}
	}
	m.resolved[s.MasterPassword] = pw
	return pw, nil
}

// onlyFailed keeps the jobs whose account's last run, per the checkpoint,
// failed, was interrupted, or ended with messages that failed, and those
// whose retry was asked for (on the status page) since their last run
// started.
func onlyFailed(ctx context.Context, jobs []pipeline.Job, state string, log *slog.Logger) ([]pipeline.Job, error) {
	ledger, err := openLedgerIfExists(ctx, state, log)
	if err != nil || ledger == nil {
		return nil, err // no checkpoint: nothing has run, so nothing failed
	}
	defer ledger.Close()
	var out []pipeline.Job
	for _, j := range jobs {
		runs, err := ledger.Runs(ctx, j.Options.Account, 1)
		if err != nil {
			return nil, fmt.Errorf("reading the last run of %s: %w", j.Options.Account, err)
		}
		ctl, err := ledger.Control(ctx, j.Options.Account)
		if err != nil {
			return nil, err
		}
		retry := !ctl.RetryRequested.IsZero() && (len(runs) == 0 || ctl.RetryRequested.After(runs[0].Started))
		if retry || len(runs) == 1 && (runs[0].Result == "failed" || runs[0].Result == "interrupted" || runs[0].Finished.IsZero() || runs[0].Failed > 0) {
			out = append(out, j)
		}
	}
	return out, nil
}
