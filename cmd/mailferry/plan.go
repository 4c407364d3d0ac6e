package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/preflight"
)

// planDefaultWorkers is how many accounts plan inspects at once;
// planListMax bounds the messages to skip listed per account in text.
const (
	planDefaultWorkers = 4
	planListMax        = 10
)

type planReport struct {
	Command  string             `json:"command"`
	Accounts []preflight.Result `json:"accounts"`
	ToMove   int                `json:"to_move"`
	Bytes    int64              `json:"to_move_bytes"`
	Estimate time.Duration      `json:"estimate_ns"`
	Workers  int                `json:"workers"`
	OK       bool               `json:"ok"`
	ExitCode int                `json:"exit_code"`
}

func runPlan(ctx context.Context, args []string, e *env) (int, error) {
	var o inspectOptions
	fs := pflag.NewFlagSet("plan", pflag.ContinueOnError)
	o.register(fs, true)
	workers := fs.Int("workers", planDefaultWorkers, "accounts inspected in parallel")
	noteCreateFolders := o.common.registerCreateFolders(fs)
	if done, err := parseFlags(fs, args, e, planHelp); done || err != nil {
		return helpOrUsage(done, err)
	}
	noteCreateFolders()
	if err := o.check(); err != nil {
		return exitUsage, err
	}
	if *workers < 1 {
		return exitUsage, usagef("--workers must be at least 1")
	}
	log := newLogger(&o.common, e.stderr)
	accs, state, err := o.accounts(fs.Args(), e, log)
	if err != nil {
		return exitUsage, err
	}
	ledger, err := openLedgerIfExists(ctx, e, state, o.statePassword, log)
	if err != nil {
		return exitFatal, err
	}
	if ledger != nil {
		defer ledger.Close()
	}

	out := make([]preflight.Result, len(accs))
	sem := make(chan struct{}, *workers)
	var wg sync.WaitGroup
	for i := range accs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				out[i] = preflight.Result{Account: accs[i].Name, Key: accs[i].Options.Name, Problems: []string{ctx.Err().Error()}}
				return
			}
			defer func() { <-sem }()
			out[i] = preflight.Inspect(ctx, accs[i], ledger, log)
		}()
	}
	wg.Wait()

	rep := planReport{Command: "plan", Accounts: out, OK: true, Workers: min(*workers, len(accs))}
	var total time.Duration
	for _, a := range out {
		rep.OK = rep.OK && a.OK
		rep.ToMove += a.ToMove
		rep.Bytes += a.ToMoveBytes
		if a.Estimate != nil {
			total += a.Estimate.Estimate
		}
	}
	if rep.Workers > 0 {
		rep.Estimate = total / time.Duration(rep.Workers)
	}
	misnamed := false
	for _, a := range out {
		misnamed = misnamed || len(a.FolderErrors) > 0
	}
	switch {
	case ctx.Err() != nil:
		rep.ExitCode = exitInterrupted
	case misnamed:
		// A folder the command line or the config names is not there: a
		// run would refuse the account.
		rep.ExitCode = exitUsage
	case !rep.OK:
		rep.ExitCode = exitPartial
	}
	if o.common.json {
		if err := writeJSON(e.stdout, rep); err != nil {
			return exitFatal, fmt.Errorf("writing the JSON report: %w", err)
		}
	} else {
		writePlanText(e.stdout, rep)
	}
	return rep.ExitCode, nil
}

func writePlanText(w io.Writer, rep planReport) {
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	capLine := func(names []string, caps map[string]bool) string {
		var parts []string
		for _, n := range names {
			parts = append(parts, n+" "+yes(caps[n]))
		}
		return strings.Join(parts, ", ")
	}
	for _, a := range rep.Accounts {
		fmt.Fprintf(w, "account %s\n", a.Account)
		if a.Key != a.Account {
			fmt.Fprintf(w, "  checkpoint key: %s\n", a.Key)
		}
		for _, t := range a.OAuth2 {
			state := "token obtained"
			if !t.OK {
				state = "NO TOKEN (see PROBLEM)"
			}
			fmt.Fprintf(w, "  oauth2:        %s: %s: %s\n", t.Side, t.Login, state)
		}
		if a.SourceCaps != nil {
			fmt.Fprintf(w, "  source:        %s\n", capLine([]string{"UIDL", "PIPELINING", "STLS", "USER", "SASL PLAIN"}, a.SourceCaps))
		}
		if a.DestCaps != nil {
			line := capLine([]string{"MULTIAPPEND", "LITERAL+", "UIDPLUS", "APPENDLIMIT", "SPECIAL-USE", "QUOTA", "IDLE"}, a.DestCaps)
			if a.AppendLimit > 0 {
				line += fmt.Sprintf(" (limit %s)", config.FormatByteSize(a.AppendLimit))
			}
			fmt.Fprintf(w, "  destination:   %s\n", line)
		}
		for _, f := range a.Folders {
			state := fmt.Sprintf("exists, %d messages", f.Messages)
			if !f.Exists {
				state = "will be created"
			}
			if f.ToMove > 0 {
				state += fmt.Sprintf("; %d to move, %s", f.ToMove, config.FormatByteSize(f.ToMoveBytes))
			}
			fmt.Fprintf(w, "  folder:        %s -> %s (%s)\n", f.Source, f.Destination, state)
		}
		if a.SourceListed || a.SourceCaps != nil {
			fmt.Fprintf(w, "  to move:       %d messages, %s (of %d listed; %d already done, %d skipped by earlier runs)\n",
				a.ToMove, config.FormatByteSize(a.ToMoveBytes), a.Listed, a.AlreadyDone, a.SkippedBefore)
		}
		for i, s := range a.Skips {
			if i == planListMax {
				fmt.Fprintf(w, "  ... and %d more to skip (see --json)\n", len(a.Skips)-i)
				break
			}
			fmt.Fprintf(w, "  will skip:     %s: %s\n", s.Key, s.Reason)
		}
		if q := a.Quota; q != nil {
			fmt.Fprintf(w, "  quota:         %s free of %s (root %q): %s\n", config.FormatByteSize(q.FreeBytes), config.FormatByteSize(q.LimitBytes), q.Root,
				map[bool]string{true: "enough", false: "NOT ENOUGH"}[q.Enough])
		} else if a.DestCaps != nil && (a.SourceListed || a.SourceCaps != nil) {
			fmt.Fprintln(w, "  quota:         none reported")
		}
		if est := a.Estimate; est != nil {
			fmt.Fprintf(w, "  estimate:      %s (%d messages, %s downloaded in %s; source side only)\n",
				fmtDuration(est.Estimate), est.SampleMessages, config.FormatByteSize(est.SampleBytes), est.SampleTime.Round(time.Millisecond))
		}
		for _, n := range a.Notes {
			fmt.Fprintf(w, "  note:          %s\n", n)
		}
		if len(a.Problems) == 0 {
			fmt.Fprintln(w, "  OK")
		}
		for _, p := range a.Problems {
			fmt.Fprintf(w, "  PROBLEM:       %s\n", p)
		}
		fmt.Fprintln(w)
	}
	bad := 0
	names := []string{}
	for _, a := range rep.Accounts {
		if !a.OK {
			bad++
			names = append(names, a.Account)
		}
	}
	sort.Strings(names)
	fmt.Fprintf(w, "%s, %s (%s) to move, estimated %s with %s in parallel (downloads only)\n",
		plural(len(rep.Accounts), "account"), plural(rep.ToMove, "message"), config.FormatByteSize(rep.Bytes), fmtDuration(rep.Estimate), plural(rep.Workers, "account"))
	if bad > 0 {
		fmt.Fprintf(w, "%s %s problems: %s\n", plural(bad, "account"), map[bool]string{true: "has", false: "have"}[bad == 1], strings.Join(names, ", "))
	} else {
		fmt.Fprintln(w, "no problems found")
	}
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

const planHelp = `mailferry plan - preflight: what a run would do, without doing it

USAGE
  mailferry plan -c migrate.toml [--only NAME,...] [flags]
  mailferry plan SOURCE DEST [flags]

For every account (several at once, --workers) plan first obtains a token
for each side that logs in with an OAuth2 grant (oauth2 in the config),
before connecting to any mail server: a grant the token endpoint refuses is
a problem that names the grant and the setting to check (consent,
delegation, the client secret), and that side is not connected to. Then it
logs in to both servers and reports:
  - the capabilities that matter: UIDL, PIPELINING, STLS at a POP3 source;
    MULTIAPPEND, LITERAL+, UIDPLUS, APPENDLIMIT, SPECIAL-USE, QUOTA, IDLE at
    the destination;
  - the folder mapping, and whether the destination folder exists; for an
    IMAP source every folder the copy would copy, where it goes (as copy
    maps it) and its messages to move;
  - how many messages and bytes a run would copy (the source listing minus
    what the checkpoint has as done or skipped);
  - the messages a run would skip, and why (larger than APPENDLIMIT or
    --max-message-size / policy.max_message_size);
  - the destination's storage quota (GETQUOTAROOT) against the bytes to move;
  - an estimated duration: the time to download the first few messages to
    move (up to 5, or 4 MB), scaled by the larger of the message-count and
    byte ratios. The destination side is not measured: plan appends nothing.
A wrong password, an unreachable server, a quota too small, messages that
would be skipped, or a folder named that is not there (with the nearest
existing names) are reported as problems of that account; the other
accounts are still inspected.

plan writes nothing anywhere: the POP3 sessions end without QUIT and IMAP
sources are only read (so nothing is deleted or marked), the destination is
only read (no folder is created), and no checkpoint file is created.

FLAGS
  -c, --config FILE         the config file
  --only NAME[,NAME...]     only these accounts
  --workers N               accounts inspected in parallel (default 4)
  --state FILE              checkpoint file (default: the config's, else
                            $XDG_STATE_HOME/mailferry/mailferry.db)
  --flags none|seen|status, --internal-date received|date|now,
  --max-message-size SIZE, --x-uidl
                            the copy's policies (SOURCE DEST form)
  --folder, --exclude-folder, --special-use, --max-age, --min-age,
  --gmail-labels MODE       IMAP source: the copy's folder settings
  --create-folders          as for copy and run: may a run create the new
                            top-level destination folder named?
  --tls-ca FILE, --insecure-skip-verify, --allow-plaintext
  --source-password-file FILE, --source-password-command CMD
  --dest-password-file FILE, --dest-password-command CMD
  --json                    one JSON document on stdout
  -q, --quiet, -v, --verbose, --log-format FORMAT, --trace

EXIT STATUS
  0    every account can be moved as planned
  1    the checkpoint could not be read
  2    bad command line or configuration, or a folder it names is not there
       (a source folder, or a new top-level destination folder without
       --create-folders): a run would refuse that account
  3    some accounts have problems (the report says which)
  130  interrupted
`
