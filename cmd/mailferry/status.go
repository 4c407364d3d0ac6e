package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/account"
	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/pop3src"
	"github.com/mailferry/mailferry/statuspage"
	"github.com/mailferry/mailferry/verify"
)

// namedAccount is an account's config name ("" when unknown), ledger key
// and spec (how the ledger names it), and its delete_after period (0 when
// none or unknown).
type namedAccount struct {
	name, key   string
	spec        checkpoint.AccountSpec
	deleteAfter time.Duration
	page        statuspage.Account // how the status page shows it
}

// statusMessage is one skipped or failed message.
type statusMessage struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// statusRun is a run as status reports it.
type statusRun struct {
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"` // nil: running (RunningIn), or stopped without finishing
	// RunningIn says where a run that has not finished is going on now;
	// nil with no Finished: it was stopped (killed, a crash, a restart)
	// and the account's next run resumes it.
	RunningIn *statusRunningIn `json:"running_in,omitempty"`
	Result    string           `json:"result"`
	Error     string           `json:"error,omitempty"`
	Copied    int              `json:"copied"`
	Skipped   int              `json:"skipped"`
	Failed    int              `json:"failed"`
}

// statusRunningIn is the process running an account now: its pid (on
// this machine, or on the fleet worker's) and, on a fleet, the worker.
type statusRunningIn struct {
	PID    int    `json:"pid"`
	Worker string `json:"worker,omitempty"`
}

// statusAccount is what the ledger knows about one account.
type statusAccount struct {
	Name     string `json:"name,omitempty"` // the config's account name
	Account  string `json:"account"`        // the ledger key
	NeverRun bool   `json:"never_run,omitempty"`
	Done     int    `json:"done"`
	Pending  int    `json:"pending"`
	Skipped  int    `json:"skipped"`
	Failed   int    `json:"failed"`
	// Gone are messages copied, then deleted at the source (by mailferry
	// or anyone): the checkpoint keeps them for ledger_retention.
	Gone int `json:"gone"`
	// Removed are those of Gone whose copies a mirror pass removed from
	// the destination; Mirroring the removals and moves a mirror pass
	// recorded and a crash left unconfirmed (the next run settles them).
	Removed   int `json:"removed,omitempty"`
	Mirroring int `json:"mirroring,omitempty"`
	// Bytes are the bytes moved (done entries).
	Bytes           int64           `json:"bytes"`
	SkipReasons     map[string]int  `json:"skip_reasons"`
	SkippedMessages []statusMessage `json:"skipped_messages"`
	FailedMessages  []statusMessage `json:"failed_messages"`
	LastRun         *statusRun      `json:"last_run,omitempty"`
	// Paused is set while the account is paused: by an operator (on the
	// status page or by Selector; until resumed, so no PausedUntil), or by
	// its last run, which a daily quota stopped until PausedUntil (then no
	// longer). PausedReason says why.
	Paused       bool       `json:"paused,omitempty"`
	PausedUntil  *time.Time `json:"paused_until,omitempty"`
	PausedReason string     `json:"paused_reason,omitempty"`
	// LastSuccess is when the last successful run or service poll ended;
	// LastError the last run or poll that ended with an error.
	LastSuccess *time.Time       `json:"last_success,omitempty"`
	LastError   *statusLastError `json:"last_error,omitempty"`
	// With delete_after (known from -c): the messages copied less than
	// that long ago, still kept at the source, and when the first of them
	// falls due (it is deleted by the first run after that).
	DeleteAfter   string     `json:"delete_after,omitempty"`
	DeleteWaiting int        `json:"delete_waiting,omitempty"`
	NextDeleteDue *time.Time `json:"next_delete_due,omitempty"`
}

// statusLastError is the newest run that ended with an error.
type statusLastError struct {
	Time  time.Time `json:"time"`
	Error string    `json:"error"`
}

type statusReport struct {
	Command string `json:"command"`
	State   string `json:"state"`
	// Size is the checkpoint's size in bytes, Entries how many messages
	// it holds (DECISIONS: the ledger must not grow without bound).
	Size     int64           `json:"size_bytes"`
	Entries  int64           `json:"entries"`
	Accounts []statusAccount `json:"accounts"`
	// Fleet is the queue and workers of a PostgreSQL checkpoint.
	Fleet *statusFleet `json:"fleet,omitempty"`
}

// statusListMax bounds the skipped and failed messages listed per account
// in the text table (the JSON lists them all).
const statusListMax = 20

func runStatus(ctx context.Context, args []string, e *env) (int, error) {
	var o inspectOptions
	fs := pflag.NewFlagSet("status", pflag.ContinueOnError)
	fs.StringVarP(&o.cfgPath, "config", "c", "", "the config file: its state file, and its accounts by name")
	fs.StringSliceVar(&o.only, "only", nil, "only these accounts of the config file (by name)")
	fs.StringVar(&o.common.state, "state", "", "checkpoint (ledger): a file or a postgres:// URL")
	fs.BoolVar(&o.common.json, "json", false, "print one JSON document on stdout")
	fs.StringVar(&o.common.logFormat, "log-format", "text", "log format on stderr: text or json")
	exportMap := fs.String("export-map", "", "write a CSV of every copied message: account, source key, POP3 UIDL, destination mailbox, UIDVALIDITY, UID")
	serve := fs.Bool("serve", false, "serve the status page (--ui-addr) from the checkpoint until interrupted")
	var ui uiOptions
	ui.register(fs)
	if done, err := parseFlags(fs, args, e, statusHelp); done || err != nil {
		return helpOrUsage(done, err)
	}
	if err := o.check(); err != nil {
		return exitUsage, err
	}
	if fs.NArg() != 0 {
		return exitUsage, usagef("unexpected arguments %q", fs.Args())
	}
	log := newLogger(&o.common, e.stderr)

	// With a config, its accounts are listed (never-run ones too) by name.
	var configured []namedAccount
	state := o.common.state
	if o.cfgPath != "" {
		cfg, err := loadConfig(o.cfgPath, log)
		if err != nil {
			return exitUsage, err
		}
		ui.merge(fs, cfg)
		state = firstNonEmpty(state, cfg.State)
		o.statePassword = cfg.StatePassword
		if configured, err = configuredAccounts(cfg, o.only); err != nil {
			return exitUsage, err
		}
	} else if len(o.only) > 0 {
		return exitUsage, usagef("--only needs -c FILE")
	}
	state, err := o.statePath(state, e)
	if err != nil {
		return exitUsage, err
	}
	if !*serve && fs.Changed("ui-addr") {
		return exitUsage, usagef("--ui-addr serves the page with --serve")
	}
	if *serve && (o.common.json || *exportMap != "") {
		return exitUsage, usagef("--serve cannot be combined with --json or --export-map")
	}
	ledger, err := openLedgerIfExists(ctx, e, state, o.statePassword, log)
	if err != nil {
		return exitFatal, err
	}
	if *serve {
		return serveStatus(ctx, &ui, e, ledger, state, configured, o.cfgPath != "", log)
	}
	if ledger == nil && o.cfgPath == "" {
		return exitFatal, fmt.Errorf("no checkpoint at %s: nothing has run with this state file (use --state or -c)", state)
	}
	rep := statusReport{Command: "status", State: checkpoint.Redact(state), Accounts: []statusAccount{}}
	// The accounts' ledger numbers: a configured account the ledger does
	// not know has never run.
	ids := make([]pipeline.AccountID, len(configured))
	// found holds every listed account's status, read in one call: each
	// call reads all accounts, so one per account would take minutes at
	// 10,000 accounts (issue 18). Holders are looked up only for accounts
	// whose last run has not finished, to tell a run going on now from
	// one that was killed.
	found := map[pipeline.AccountID]checkpoint.AccountStatus{}
	if ledger != nil {
		defer ledger.Close()
		if rep.Size, rep.Entries, err = ledger.Size(ctx); err != nil {
			return exitFatal, err
		}
		var st []checkpoint.AccountStatus
		if configured == nil {
			if st, err = ledger.Status(ctx, checkpoint.Selector{All: true}); err != nil {
				return exitFatal, err
			}
			configured = make([]namedAccount, 0, len(st))
			ids = make([]pipeline.AccountID, 0, len(st))
			for _, a := range st {
				configured = append(configured, namedAccount{name: a.Name, key: a.Ident})
				ids = append(ids, a.ID)
			}
		} else {
			specs := make([]checkpoint.AccountSpec, len(configured))
			for i, a := range configured {
				specs[i] = a.spec
			}
			if ids, err = ledger.LookupAccounts(ctx, specs); err != nil {
				return exitFatal, err
			}
			var known []pipeline.AccountID
			for _, id := range ids {
				if id != 0 {
					known = append(known, id)
				}
			}
			if len(known) > 0 {
				if st, err = ledger.Status(ctx, checkpoint.Selector{IDs: known}); err != nil {
					return exitFatal, err
				}
			}
		}
		for _, a := range st {
			found[a.ID] = a
		}
	}
	// With many accounts holding skipped or failed entries, those are read
	// for all accounts at once, not a Scan per state and account.
	var problems map[pipeline.AccountID]*statusAccount
	if n := 0; ledger != nil {
		for _, a := range found {
			if a.Counts[pipeline.StateSkipped].Messages+a.Counts[pipeline.StateFailed].Messages > 0 {
				n++
			}
		}
		if n > manyProblems {
			problems = map[pipeline.AccountID]*statusAccount{}
			err := ledger.Problems(ctx, func(id pipeline.AccountID, e pipeline.Entry) error {
				p := problems[id]
				if p == nil {
					p = &statusAccount{}
					problems[id] = p
				}
				m := statusMessage{Key: verify.DisplayKey(e.Key), Reason: e.Reason}
				if e.State == pipeline.StateSkipped {
					p.SkippedMessages = append(p.SkippedMessages, m)
				} else {
					p.FailedMessages = append(p.FailedMessages, m)
				}
				return nil
			})
			if err != nil {
				return exitFatal, err
			}
		}
	}
	rep.Accounts = make([]statusAccount, 0, len(configured))
	for i, a := range configured {
		sa := statusAccount{Name: a.name, Account: a.key, NeverRun: true, SkipReasons: map[string]int{},
			SkippedMessages: []statusMessage{}, FailedMessages: []statusMessage{}}
		if st, ok := found[ids[i]]; ok {
			if err := fillStatus(ctx, ledger, st, &sa, problems); err != nil {
				return exitFatal, err
			}
			if err := fillDeleteWaiting(ctx, ledger, ids[i], &sa, a.deleteAfter, time.Now()); err != nil {
				return exitFatal, err
			}
		}
		rep.Accounts = append(rep.Accounts, sa)
	}
	if ledger != nil && checkpoint.IsPostgres(state) {
		if rep.Fleet, err = fleetStatus(ctx, ledger, rep.Accounts); err != nil {
			return exitFatal, err
		}
	}
	if *exportMap != "" {
		if ledger == nil {
			return exitFatal, fmt.Errorf("no checkpoint at %s: no map to export", state)
		}
		if err := writeUIDMap(ctx, ledger, configured, ids, *exportMap); err != nil {
			return exitFatal, err
		}
	}
	if o.common.json {
		if err := writeStatusJSON(e.stdout, rep); err != nil {
			return exitFatal, fmt.Errorf("writing the JSON report: %w", err)
		}
		return exitOK, nil
	}
	writeStatusText(e.stdout, rep)
	return exitOK, nil
}

// configuredAccounts are the accounts of cfg (only those named in only,
// when given) with their ledger keys and specs, as status and report list
// them.
func configuredAccounts(cfg *config.Config, only []string) ([]namedAccount, error) {
	selected, err := account.Select(cfg, only)
	if err != nil {
		return nil, usagef("--only: %v", err)
	}
	out := make([]namedAccount, 0, len(selected))
	for _, a := range selected {
		sp, err := account.SpecOf(cfg, a)
		if err != nil {
			return nil, err
		}
		sp.Name = a.Name
		out = append(out, namedAccount{a.Name, sp.Endpoint, sp, cfg.DeletePolicyOf(a).DeleteAfter, pageAccount(cfg, a, sp.Endpoint)})
	}
	return out, nil
}

// serveStatus serves the status page from the checkpoint until ctx ends
// (SIGINT, SIGTERM). With a config, its accounts are shown by name;
// without, every account of the checkpoint by its name or ident.
func serveStatus(ctx context.Context, ui *uiOptions, e *env, ledger *checkpoint.Ledger, state string,
	configured []namedAccount, withConfig bool, log *slog.Logger) (int, error) {
	if ledger != nil {
		defer ledger.Close()
	}
	if ui.addr == "" {
		return exitUsage, usagef("--serve needs --ui-addr (ui_addr in the config), e.g. --ui-addr 127.0.0.1:8080")
	}
	if ledger == nil {
		return exitFatal, fmt.Errorf("no checkpoint at %s: nothing has run with this state file yet, so there is nothing to serve", state)
	}
	accounts := []statuspage.Account{}
	if withConfig {
		for _, a := range configured {
			accounts = append(accounts, a.page)
		}
	} else {
		// One row per ledger account (Summaries answers by every key
		// that names one: aliases, name, ident).
		all, err := ledger.Status(ctx, checkpoint.Selector{All: true})
		if err != nil {
			return exitFatal, err
		}
		for _, a := range all {
			accounts = append(accounts, statuspage.Account{Name: firstNonEmpty(a.Name, a.Ident), Key: a.Ident})
		}
	}
	page, err := startPage(ui, e, ledger, accounts, nil, nil, log)
	if err != nil {
		return exitUsage, err
	}
	defer page.Close()
	<-ctx.Done()
	log.Info("status page stopped")
	return exitOK, nil
}

// manyProblems is how many accounts with skipped or failed entries status
// reads those of one by one (a Scan per state and account); beyond, all
// at once (Ledger.Problems).
const manyProblems = 64

// fillStatus fills in one account's counts and last runs from its status
// a, and its skipped and failed entries: from problems when they were
// read for every account (nil: read here, page by page: a few, normally).
func fillStatus(ctx context.Context, l *checkpoint.Ledger, a checkpoint.AccountStatus, sa *statusAccount, problems map[pipeline.AccountID]*statusAccount) error {
	id := a.ID
	c := a.Counts
	sa.Done, sa.Pending, sa.Skipped, sa.Failed = int(c[pipeline.StateDone].Messages), int(c[pipeline.StatePending].Messages),
		int(c[pipeline.StateSkipped].Messages), int(c[pipeline.StateFailed].Messages)
	sa.Gone = int(c[pipeline.StateGone].Messages + c[pipeline.StateRemoved].Messages)
	sa.Removed = int(c[pipeline.StateRemoved].Messages)
	sa.Mirroring = int(c[pipeline.StateRemoving].Messages + c[pipeline.StateMoving].Messages)
	sa.Bytes = c[pipeline.StateDone].Bytes + c[pipeline.StateGone].Bytes
	sa.SkipReasons = a.SkipReasons
	if r := a.LastRun; r != nil {
		sa.LastRun = &statusRun{Started: r.Started, Result: r.Result, Error: r.Error,
			Copied: r.Copied, Skipped: r.Skipped, Failed: r.Failed}
		if !r.Finished.IsZero() {
			f := r.Finished
			sa.LastRun.Finished = &f
		} else if a.Holder != 0 || a.Worker != "" {
			sa.LastRun.RunningIn = &statusRunningIn{PID: a.Holder, Worker: a.Worker}
		}
	}
	// The operator's pause first: it holds until resumed, whatever a
	// quota says.
	var pause *pipeline.PausedError
	if a.Paused {
		pause = checkpoint.Control{Paused: true, Reason: a.PauseReason}.Pause()
	} else {
		pause = a.LastRun.PausedAt(time.Now())
	}
	if pause != nil {
		sa.Paused, sa.PausedReason = true, pause.Reason
		if !pause.Until.IsZero() {
			until := pause.Until
			sa.PausedUntil = &until
		}
	}
	total := 0
	for _, n := range c {
		total += int(n.Messages)
	}
	sa.NeverRun = a.LastRun == nil && total == 0
	if r := a.LastOK; r != nil && !r.Finished.IsZero() {
		f := r.Finished
		sa.LastSuccess = &f
	}
	if r := a.LastError; r != nil {
		sa.LastError = &statusLastError{Time: firstTime(r.Finished, r.Started), Error: r.Error}
	}
	for _, l2 := range []struct {
		state pipeline.State
		dst   *[]statusMessage
	}{{pipeline.StateSkipped, &sa.SkippedMessages}, {pipeline.StateFailed, &sa.FailedMessages}} {
		if c[l2.state].Messages == 0 {
			continue
		}
		if problems != nil {
			if p := problems[id]; p != nil {
				read := p.SkippedMessages
				if l2.state == pipeline.StateFailed {
					read = p.FailedMessages
				}
				*l2.dst = append(*l2.dst, read...)
			}
			sort.Slice(*l2.dst, func(i, j int) bool { return (*l2.dst)[i].Key < (*l2.dst)[j].Key })
			continue
		}
		q := pipeline.Query{States: []pipeline.State{l2.state}}
		for {
			page, next, err := l.Scan(ctx, id, q)
			if err != nil {
				return err
			}
			for _, e := range page {
				*l2.dst = append(*l2.dst, statusMessage{Key: verify.DisplayKey(e.Key), Reason: e.Reason})
			}
			if next == "" {
				break
			}
			q.After = next
		}
		sort.Slice(*l2.dst, func(i, j int) bool { return (*l2.dst)[i].Key < (*l2.dst)[j].Key })
	}
	return nil
}

// fillDeleteWaiting counts the account's messages still waiting out their
// delete_after period at now.
func fillDeleteWaiting(ctx context.Context, l *checkpoint.Ledger, id pipeline.AccountID, sa *statusAccount, deleteAfter time.Duration, now time.Time) error {
	if deleteAfter <= 0 {
		return nil
	}
	n, earliest, err := l.DoneSince(ctx, id, now.Add(-deleteAfter))
	if err != nil {
		return err
	}
	sa.DeleteAfter, sa.DeleteWaiting = formatDays(deleteAfter), n
	if n > 0 {
		due := earliest.Add(deleteAfter)
		sa.NextDeleteDue = &due
	}
	return nil
}

// formatDays prints whole days as the config spells them ("30d").
func formatDays(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}

func writeStatusText(out io.Writer, rep statusReport) {
	// Buffered: the table and the accounts' lines are many small writes,
	// each a system call on a terminal or file (170,000 of them for 10,000
	// accounts, issue 18).
	w := bufio.NewWriter(out)
	defer w.Flush()
	fmt.Fprintf(w, "checkpoint %s", rep.State)
	if rep.Entries > 0 || rep.Size > 0 {
		fmt.Fprintf(w, ": %s, %d entries", config.FormatByteSize(rep.Size), rep.Entries)
	}
	fmt.Fprint(w, "\n\n")
	if len(rep.Accounts) == 0 {
		fmt.Fprintln(w, "no accounts")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "DONE\tPENDING\tSKIPPED\tFAILED\tBYTES\tLAST RUN\t ACCOUNT")
	for _, a := range rep.Accounts {
		last := "never"
		if a.LastRun != nil {
			last = a.LastRun.Result
			if last == "" {
				last = "unfinished"
			}
		}
		name := a.Account
		if a.Name != "" {
			name = a.Name + "  (" + a.Account + ")"
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%s\t %s\n", a.Done, a.Pending, a.Skipped, a.Failed, config.FormatByteSize(a.Bytes), last, name)
	}
	tw.Flush()
	if rep.Fleet != nil {
		writeFleetText(w, rep.Fleet)
	}
	for _, a := range rep.Accounts {
		if a.LastRun == nil && len(a.SkippedMessages)+len(a.FailedMessages) == 0 && a.DeleteWaiting == 0 && a.Gone == 0 && !a.Paused {
			continue
		}
		fmt.Fprintf(w, "\n%s\n", firstNonEmpty(a.Name, a.Account))
		if r := a.LastRun; r != nil {
			fin := "not finished: stopped (killed, crashed or the machine restarted); the next run resumes it"
			switch {
			case r.RunningIn != nil && r.RunningIn.Worker != "":
				fin = "not finished: running now on worker " + r.RunningIn.Worker
			case r.RunningIn != nil:
				fin = fmt.Sprintf("not finished: running now in pid %d", r.RunningIn.PID)
			}
			if r.Finished != nil {
				fin = r.Finished.Local().Format(time.DateTime) + " (" + r.Finished.Sub(r.Started).Round(time.Millisecond).String() + ")"
			}
			fmt.Fprintf(w, "  last run: started %s, finished %s, result %s: %d copied, %d skipped, %d failed\n",
				r.Started.Local().Format(time.DateTime), fin, firstNonEmpty(r.Result, "unknown"), r.Copied, r.Skipped, r.Failed)
			if r.Error != "" && r.Result != "paused" {
				fmt.Fprintf(w, "  last error: %s\n", r.Error)
			}
		}
		switch {
		case a.PausedUntil != nil:
			fmt.Fprintf(w, "  paused until %s: %s\n", a.PausedUntil.Local().Format("2006-01-02 15:04 MST"), a.PausedReason)
		case a.Paused:
			fmt.Fprintf(w, "  paused: %s\n", a.PausedReason)
		}
		if a.LastSuccess != nil {
			fmt.Fprintf(w, "  last success: %s\n", a.LastSuccess.Local().Format(time.DateTime))
		} else if a.LastRun != nil {
			fmt.Fprintln(w, "  last success: never")
		}
		if e := a.LastError; e != nil && (a.LastRun == nil || a.LastRun.Error != e.Error || a.LastRun.Finished == nil || !a.LastRun.Finished.Equal(e.Time)) {
			fmt.Fprintf(w, "  last failure: %s: %s\n", e.Time.Local().Format(time.DateTime), e.Error)
		}
		if a.DeleteWaiting > 0 {
			fmt.Fprintf(w, "  delete_after %s: %d messages kept at the source until their period ends (the first at %s)\n",
				a.DeleteAfter, a.DeleteWaiting, a.NextDeleteDue.Local().Format(time.DateTime))
		}
		if a.Gone > 0 {
			fmt.Fprintf(w, "  %d copied messages since deleted at the source (the checkpoint keeps them for ledger_retention, default 30 days)\n", a.Gone)
		}
		if a.Removed > 0 {
			fmt.Fprintf(w, "  %d of them removed from the destination by mirror passes\n", a.Removed)
		}
		if a.Mirroring > 0 {
			fmt.Fprintf(w, "  %d mirror removals or moves left unconfirmed by an interrupted run (the next run settles them)\n", a.Mirroring)
		}
		for _, l := range []struct {
			what string
			ms   []statusMessage
		}{{"skipped", a.SkippedMessages}, {"failed", a.FailedMessages}} {
			for i, m := range l.ms {
				if i == statusListMax {
					fmt.Fprintf(w, "  ... and %d more %s (see --json)\n", len(l.ms)-i, l.what)
					break
				}
				fmt.Fprintf(w, "  %s %s: %s\n", l.what, m.Key, m.Reason)
			}
		}
	}
}

// firstTime returns the first non-zero time.
func firstTime(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

const statusHelp = `mailferry status - what the checkpoint knows, per account

USAGE
  mailferry status [-c migrate.toml [--only NAME,...] | --state FILE] [--json]
  mailferry status -c migrate.toml --serve --ui-addr 127.0.0.1:8080

For each account: messages done (copied and confirmed), pending (an
interrupted run left them to be reconciled), skipped (with the reason: too
big, NUL bytes, refused by the server; not retried) and failed (retried by
the next run), the bytes moved, and the last run's start, end, result and
error, when the last successful run (or service poll) ended, and the last
error with its time. With -c, every account of the config is listed,
including those that never ran, and for accounts with delete_after the
messages still kept at the source until their period ends. status only
reads the checkpoint; it connects to nothing and never creates a
checkpoint file.

FLAGS
  -c, --config FILE         the config file (its state file and accounts)
  --only NAME[,NAME...]     only these accounts (with -c)
  --state FILE              checkpoint file (default: the config's, else
                            $XDG_STATE_HOME/mailferry/mailferry.db)
  --json                    one JSON document on stdout
  --export-map FILE         write the cutover map as CSV: for every copied
                            message its account, source key, POP3 UIDL,
                            destination mailbox, UIDVALIDITY and UID
  --log-format FORMAT       text (default) or json
  --serve                   serve the status page (docs/status-page.md) from
                            the checkpoint until interrupted: for a run in
                            another process, or after it ended
  --ui-addr HOST:PORT       where (ui_addr; a port alone means 127.0.0.1)
  --ui-actions              allow pause, resume and retry (ui_actions)
  --ui-token-file FILE      the page's token (ui_token_file; or
                            MAILFERRY_UI_TOKEN); needed for actions and for
                            any address other than loopback

EXIT STATUS
  0    the checkpoint was read (--serve: the page served until interrupted)
  1    the checkpoint could not be read, or there is none (without -c;
       with --serve)
  2    bad command line or configuration; --serve: the address is taken,
       or it is not loopback and there is no token
`

// writeUIDMap writes the cutover map: for every message the checkpoint has
// as copied, where it went. Admins use it to move POP3 clients' state or
// to audit a migration. The entries are read page by page (in key order),
// never an account at once.
func writeUIDMap(ctx context.Context, l *checkpoint.Ledger, accounts []namedAccount, ids []pipeline.AccountID, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("writing the map: %w", err)
	}
	w := csv.NewWriter(f)
	w.Write([]string{"account", "source_key", "uidl", "dest_mailbox", "dest_uidvalidity", "dest_uid"})
	for i, a := range accounts {
		if ids[i] == 0 {
			continue
		}
		key := a.key
		q := pipeline.Query{States: []pipeline.State{pipeline.StateDone}}
		for {
			page, next, err := l.Scan(ctx, ids[i], q)
			if err != nil {
				f.Close()
				return err
			}
			for _, e := range page {
				uidl := ""
				if strings.HasPrefix(key, "pop3://") {
					uidl, _ = pop3src.UIDLOfKey(e.Key)
				}
				w.Write([]string{key, verify.DisplayKey(e.Key), uidl, e.DestMailbox,
					strconv.FormatUint(uint64(e.DestUIDValidity), 10), strconv.FormatUint(uint64(e.DestUID), 10)})
			}
			if next == "" {
				break
			}
			q.After = next
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return fmt.Errorf("writing the map %s: %w", path, err)
	}
	return f.Close()
}
