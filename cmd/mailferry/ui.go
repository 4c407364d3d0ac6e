package main

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/notify"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
	"github.com/mailferry/mailferry/statuspage"
)

// uiOptions are the status page's and the notifications' settings: the
// flags, else the config's keys.
type uiOptions struct {
	addr      string
	actions   bool
	tokenFile string
	webhook   string
	command   string
	dir       string // where notify_command runs: the config's directory
}

func (o *uiOptions) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.addr, "ui-addr", "", "serve the status page at http://ADDR/ (e.g. 127.0.0.1:8080; a port alone means 127.0.0.1)")
	fs.BoolVar(&o.actions, "ui-actions", false, "allow the page's actions (pause, resume, retry); needs --ui-token-file")
	fs.StringVar(&o.tokenFile, "ui-token-file", "", "the status page's token: the first line of this file (or MAILFERRY_UI_TOKEN)")
}

// merge fills what the command line left out from the config.
func (o *uiOptions) merge(fs *pflag.FlagSet, cfg *config.Config) {
	if cfg == nil {
		return
	}
	if !fs.Changed("ui-addr") {
		o.addr = cfg.UIAddr
	}
	if !fs.Changed("ui-actions") {
		o.actions = cfg.UIActions
	}
	if !fs.Changed("ui-token-file") {
		o.tokenFile = cfg.UITokenFile
	}
	o.webhook, o.command = cfg.NotifyWebhook, cfg.NotifyCommand
	if cfg.File != "" {
		o.dir = filepath.Dir(cfg.File)
	}
}

// token reads the page's token: the first line of --ui-token-file, else
// MAILFERRY_UI_TOKEN; the zero Value when neither is set.
func (o *uiOptions) token(getenv func(string) string) (secret.Value, error) {
	if o.tokenFile == "" {
		return secret.New(strings.TrimSpace(getenv("MAILFERRY_UI_TOKEN"))), nil
	}
	f, err := os.Open(o.tokenFile)
	if err != nil {
		return secret.Value{}, usagef("--ui-token-file: %v", err)
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if line = strings.TrimSpace(line); line == "" {
		return secret.Value{}, usagef("--ui-token-file %s: the first line is empty (%v)", o.tokenFile, err)
	}
	return secret.New(line), nil
}

// pageAccount is how the page shows a configured account.
func pageAccount(cfg *config.Config, a *config.Account, key string) statuspage.Account {
	pa := statuspage.Account{Name: a.Name, Key: key}
	if ep, err := cfg.SourceEndpoint(a); err == nil {
		pa.SourceHost = ep.Addr()
	}
	if ep, err := cfg.DestEndpoint(a); err == nil {
		pa.DestHost = ep.Addr()
	}
	return pa
}

// startPage serves the status page when an address is set (nil, nil
// otherwise). A bad setting or a taken port is a usage error (exit 2).
func startPage(o *uiOptions, e *env, ledger *checkpoint.Ledger, accounts []statuspage.Account, live *statuspage.Live,
	onRetry func(key string), log *slog.Logger) (*statuspage.Server, error) {
	if o.addr == "" {
		return nil, nil
	}
	token, err := o.token(e.getenv)
	if err != nil {
		return nil, err
	}
	page, err := statuspage.New(statuspage.Options{Addr: o.addr, Token: token, Actions: o.actions, Accounts: accounts,
		Ledger: statuspage.LedgerOf(ledger), Live: live, OnRetry: onRetry, Logger: log})
	if err != nil {
		return nil, &pageError{err}
	}
	if err := page.Start(); err != nil {
		return nil, &pageError{err}
	}
	return page, nil
}

// pageError is a status page that cannot be served as asked: exit 2,
// without the usage hint (the flags parsed; the address or token is
// wrong).
type pageError struct{ err error }

func (e *pageError) Error() string { return e.err.Error() }
func (e *pageError) Unwrap() error { return e.err }

// runExtras are what a run adds to the copy besides the terminal: the
// status page, the live view it reads, and the notifications.
type runExtras struct {
	page     *statuspage.Server
	live     *statuspage.Live
	notifier *notify.Notifier
	names    map[string]string // ledger key -> account name
	log      *slog.Logger
}

// startExtras starts the page and the notifications of a run over
// accounts (in the order of the jobs); nil without settings. A dry run
// sends no notifications: it changes nothing anywhere.
func startExtras(o *uiOptions, e *env, ledger *checkpoint.Ledger, accounts []statuspage.Account,
	dryRun bool, onRetry func(key string), log *slog.Logger) (*runExtras, error) {
	if o == nil {
		return nil, nil
	}
	x := &runExtras{names: map[string]string{}, log: log}
	keys := make([]string, len(accounts))
	for i, a := range accounts {
		x.names[a.Key], keys[i] = a.Name, a.Key
	}
	if o.addr != "" {
		x.live = statuspage.NewLive(nil)
		x.live.Queue(keys)
	}
	page, err := startPage(o, e, ledger, accounts, x.live, onRetry, log)
	if err != nil {
		return nil, err
	}
	x.page = page
	if dryRun {
		return x, nil
	}
	x.notifier, err = notify.New(notify.Options{Webhook: o.webhook, Command: o.command, Dir: o.dir, Logger: log})
	if err != nil {
		x.close()
		return nil, usagef("%v", err)
	}
	return x, nil
}

// progress is what the engine's progress events also go to.
func (x *runExtras) progress() []pipeline.Progress {
	var out []pipeline.Progress
	if x == nil {
		return nil
	}
	if x.live != nil {
		out = append(out, x.live)
	}
	if x.notifier != nil {
		out = append(out, x.notifier.Failures(x.names))
	}
	return out
}

// batchFinished announces the end of a run.
func (x *runExtras) batchFinished(rep *report) {
	if x == nil || x.notifier == nil {
		return
	}
	b := &notify.Batch{Command: rep.Command, ExitCode: rep.ExitCode, Accounts: rep.Totals.Accounts,
		AccountsFailed: rep.Totals.AccountsFailed, Copied: rep.Totals.Copied, Skipped: rep.Totals.Skipped,
		Failed: rep.Totals.Failed, Bytes: rep.Totals.Bytes, Seconds: rep.Totals.Seconds}
	for _, s := range rep.Accounts {
		if s.Paused {
			b.AccountsPaused++
		}
		if s.Error != "" {
			b.FailedAccounts = append(b.FailedAccounts, firstNonEmpty(x.names[s.LedgerKey], s.Account))
		}
	}
	x.notifier.Send(notify.Event{Type: notify.BatchFinished, Batch: b})
}

// close ends the live view, delivers what notifications it can within
// 15 s, and stops the page.
func (x *runExtras) close() {
	if x == nil {
		return
	}
	if x.live != nil {
		x.live.End()
	}
	if x.notifier != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		if err := x.notifier.Close(ctx); err != nil {
			x.log.Warn("notifications", "error", err)
		}
		cancel()
	}
	if x.page != nil {
		_ = x.page.Close()
	}
}

// pausedIn is Runner.Paused over the ledger: runs and polls leave alone
// the accounts an operator paused on the status page.
func pausedIn(ledger *checkpoint.Ledger) func(ctx context.Context, key string) (*pipeline.PausedError, error) {
	return func(ctx context.Context, key string) (*pipeline.PausedError, error) {
		c, err := ledger.Control(ctx, key)
		return c.Pause(), err
	}
}
