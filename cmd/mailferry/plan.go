package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/account"
	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/imapsrc"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/verify"
)

// Plan sampling: the estimate downloads at most this many of the messages
// to move, stopping early past planSampleBytes.
const (
	planSampleMessages = 5
	planSampleBytes    = 4 << 20
	planDefaultWorkers = 4
	// planListMax bounds the messages to skip listed per account in text.
	planListMax = 10
)

// planSkip is a message the copy would skip.
type planSkip struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	Reason string `json:"reason"`
}

// planQuota is the destination's storage quota against the bytes to move.
type planQuota struct {
	Root       string `json:"root"`
	UsedBytes  int64  `json:"used_bytes"`
	LimitBytes int64  `json:"limit_bytes"`
	FreeBytes  int64  `json:"free_bytes"`
	Enough     bool   `json:"enough"`
}

// planEstimate is the measured sample and what it predicts.
type planEstimate struct {
	SampleMessages int           `json:"sample_messages"`
	SampleBytes    int64         `json:"sample_bytes"`
	SampleTime     time.Duration `json:"sample_ns"`
	Estimate       time.Duration `json:"estimate_ns"`
	Method         string        `json:"method"`
}

// planAccount is the preflight of one account.
type planAccount struct {
	Account string `json:"account"`
	Key     string `json:"ledger_key"`
	// SourceCaps and DestCaps are the capabilities that matter, true when
	// offered. SourceCaps comes from CAPA before login (RFC 2449 §5).
	SourceCaps map[string]bool `json:"source_capabilities,omitempty"`
	DestCaps   map[string]bool `json:"destination_capabilities,omitempty"`
	// AppendLimit is the destination's limit (mailbox, else server); 0: none.
	AppendLimit int64 `json:"append_limit,omitempty"`
	// Folders maps source folders to destination mailboxes.
	Folders []planFolder `json:"folders,omitempty"`
	// Listed is every source message; AlreadyDone and SkippedBefore are the
	// ledger's; ToMove what a run would copy, Skips what it would skip.
	Listed        int           `json:"listed"`
	AlreadyDone   int           `json:"already_done"`
	SkippedBefore int           `json:"skipped_before"`
	ToMove        int           `json:"to_move"`
	ToMoveBytes   int64         `json:"to_move_bytes"`
	Skips         []planSkip    `json:"skips"`
	Quota         *planQuota    `json:"quota,omitempty"`
	Estimate      *planEstimate `json:"estimate,omitempty"`
	// Problems are what would make a run fail or be partial.
	Problems []string `json:"problems"`
	OK       bool     `json:"ok"`
	// SourceListed says the source was listed: the counts mean something.
	SourceListed bool `json:"source_listed"`
}

type planFolder struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Exists      bool   `json:"exists"`
	Messages    uint32 `json:"messages"`
	// ToMove and ToMoveBytes are what a run would copy from this source
	// folder (IMAP sources; for POP3 the account's totals say it).
	ToMove      int   `json:"to_move,omitempty"`
	ToMoveBytes int64 `json:"to_move_bytes,omitempty"`
}

type planReport struct {
	Command  string        `json:"command"`
	Accounts []planAccount `json:"accounts"`
	ToMove   int           `json:"to_move"`
	Bytes    int64         `json:"to_move_bytes"`
	Estimate time.Duration `json:"estimate_ns"`
	Workers  int           `json:"workers"`
	OK       bool          `json:"ok"`
	ExitCode int           `json:"exit_code"`
}

func runPlan(ctx context.Context, args []string, e *env) (int, error) {
	var o inspectOptions
	fs := pflag.NewFlagSet("plan", pflag.ContinueOnError)
	o.register(fs, true)
	workers := fs.Int("workers", planDefaultWorkers, "accounts inspected in parallel")
	if done, err := parseFlags(fs, args, e, planHelp); done || err != nil {
		return helpOrUsage(done, err)
	}
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
	ledger, err := openLedgerIfExists(ctx, state, log)
	if err != nil {
		return exitFatal, err
	}
	if ledger != nil {
		defer ledger.Close()
	}

	out := make([]planAccount, len(accs))
	sem := make(chan struct{}, *workers)
	var wg sync.WaitGroup
	for i := range accs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				out[i] = planAccount{Account: accs[i].Name, Key: accs[i].Options.Account, Problems: []string{ctx.Err().Error()}}
				return
			}
			defer func() { <-sem }()
			out[i] = planOne(ctx, accs[i], ledger, log)
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
	switch {
	case ctx.Err() != nil:
		rep.ExitCode = exitInterrupted
	case !rep.OK:
		rep.ExitCode = exitPartial
	}
	if o.common.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return exitFatal, fmt.Errorf("writing the JSON report: %w", err)
		}
	} else {
		writePlanText(e.stdout, rep)
	}
	return rep.ExitCode, nil
}

// planOne inspects one account, writing nothing: the POP3 session ends
// without QUIT, an IMAP source is only EXAMINEd and read with BODY.PEEK,
// its folders are mapped as the copy maps them without creating any, the
// destination is only listed, STATUSed and asked for its quota, and the
// ledger is only read.
func planOne(ctx context.Context, a *account.Account, ledger *checkpoint.Ledger, log *slog.Logger) (pa planAccount) {
	pa = planAccount{Account: a.Name, Key: a.Options.Account, Skips: []planSkip{}, Problems: []string{}}
	problem := func(format string, args ...any) { pa.Problems = append(pa.Problems, fmt.Sprintf(format, args...)) }
	defer func() {
		pa.OK = len(pa.Problems) == 0
		log.Debug("account inspected", "account", a.Name, "to_move", pa.ToMove, "problems", len(pa.Problems))
	}()

	// Destination: log in, capabilities, the mailbox, the quota. An IMAP
	// source's folders go to several mailboxes; the limits and the quota
	// are read on INBOX, which always exists.
	isIMAP := a.SourceIsIMAP()
	quotaMailbox := a.Options.Mailbox
	if isIMAP || quotaMailbox == "" {
		quotaMailbox = "INBOX"
	}
	dst, derr := a.OpenReader(ctx)
	if derr != nil {
		problem("destination %s: %v", a.Dest, derr)
	} else {
		defer dst.Close()
		pa.DestCaps = map[string]bool{}
		for _, c := range []string{"MULTIAPPEND", "LITERAL+", "UIDPLUS", "APPENDLIMIT", "SPECIAL-USE", "QUOTA", "IDLE"} {
			pa.DestCaps[c] = dst.HasCapability(c)
		}
		if !pa.DestCaps["APPENDLIMIT"] {
			// RFC 7889 §3: APPENDLIMIT=N is advertised with its value.
			pa.DestCaps["APPENDLIMIT"] = dst.AppendLimit() > 0
		}
		st, err := dst.Status(ctx, quotaMailbox)
		if err != nil {
			problem("destination mailbox %q: %v", quotaMailbox, err)
		}
		pa.AppendLimit = st.AppendLimit
		if !isIMAP {
			pa.Folders = []planFolder{{Source: "(POP3 maildrop)", Destination: a.Options.Mailbox, Exists: st.Exists, Messages: st.Messages}}
		}
	}

	// Source: capabilities before login, then a session to list and sample.
	srcMsgs, sample, folders, serr := planSource(ctx, a, &pa, ledger)
	// folderOf is the planned folder of a message to move (IMAP sources).
	folderOf := func(pipeline.SourceMessage) *planFolder { return nil }
	if serr != nil {
		problem("source %s: %v", a.Source, serr)
	}
	if serr == nil && isIMAP {
		// The folder mapping, source → destination, in source order.
		idx := map[string]int{}
		for _, f := range folders {
			idx[f.Source] = len(pa.Folders)
			pf := f
			if derr == nil {
				st, err := dst.Status(ctx, f.Destination)
				if err != nil {
					problem("destination mailbox %q: %v", f.Destination, err)
				}
				pf.Exists, pf.Messages = st.Exists, st.Messages
			}
			pa.Folders = append(pa.Folders, pf)
		}
		folderOf = func(m pipeline.SourceMessage) *planFolder {
			if i, ok := idx[m.Mailbox]; ok {
				return &pa.Folders[i]
			}
			return nil
		}
	}
	if serr == nil {
		limit := a.Options.MaxMessageBytes
		if pa.AppendLimit > 0 && (limit == 0 || pa.AppendLimit < limit) {
			limit = pa.AppendLimit
		}
		for _, m := range srcMsgs {
			if limit > 0 && m.Size > limit {
				why := "larger than --max-message-size"
				if limit == pa.AppendLimit {
					why = "larger than the destination's APPENDLIMIT"
				}
				pa.Skips = append(pa.Skips, planSkip{Key: verify.DisplayKey(m.Key), Size: m.Size,
					Reason: fmt.Sprintf("too big: %d bytes, %s (%d)", m.Size, why, limit)})
				continue
			}
			pa.ToMove++
			pa.ToMoveBytes += m.Size
			if f := folderOf(m); f != nil {
				f.ToMove++
				f.ToMoveBytes += m.Size
			}
		}
		if len(pa.Skips) > 0 {
			problem("%d messages would be skipped as too big", len(pa.Skips))
		}
		if sample.SampleMessages > 0 {
			pa.Estimate = &sample
			scale := max(float64(pa.ToMove)/float64(sample.SampleMessages), float64(pa.ToMoveBytes)/float64(max(sample.SampleBytes, 1)))
			pa.Estimate.Estimate = time.Duration(float64(sample.SampleTime) * scale).Round(time.Millisecond)
		}
	}
	if derr == nil && serr == nil {
		qs, err := dst.Quota(ctx, quotaMailbox)
		if err != nil {
			problem("destination quota: %v", err)
		}
		for _, q := range qs {
			if q.LimitBytes <= 0 {
				continue
			}
			pq := &planQuota{Root: q.Root, UsedBytes: q.UsedBytes, LimitBytes: q.LimitBytes, FreeBytes: max(q.LimitBytes-q.UsedBytes, 0)}
			pq.Enough = pa.ToMoveBytes <= pq.FreeBytes
			if pa.Quota == nil || pq.FreeBytes < pa.Quota.FreeBytes {
				pa.Quota = pq
			}
		}
		if pa.Quota != nil && !pa.Quota.Enough {
			problem("destination quota too small: %s free (quota root %q), %s to move",
				humanBytes(pa.Quota.FreeBytes), pa.Quota.Root, humanBytes(pa.ToMoveBytes))
		}
	}
	return pa
}

// planSource reads the source's capabilities (POP3) or folder mapping
// (IMAP), lists it, removes what the ledger has as done or skipped, and
// times the download of the first few messages to move. It returns the
// messages to move and, for an IMAP source, the folders the copy would copy
// in source order.
func planSource(ctx context.Context, a *account.Account, pa *planAccount, ledger *checkpoint.Ledger) ([]pipeline.SourceMessage, planEstimate, []planFolder, error) {
	var est planEstimate
	isIMAP := a.SourceIsIMAP()
	if !isIMAP {
		caps, err := a.SourceCapabilities(ctx)
		if err != nil {
			return nil, est, nil, err
		}
		pa.SourceCaps = map[string]bool{}
		for _, c := range []string{"UIDL", "PIPELINING", "STLS", "USER", "TOP"} {
			pa.SourceCaps[c] = caps.Has(c)
		}
		pa.SourceCaps["SASL PLAIN"] = caps.HasSASL("PLAIN")
	}
	// The copy's folder mapping, creating nothing.
	src, mapped, err := openInspected(ctx, a)
	if err != nil {
		return nil, est, nil, err
	}
	// No commit: nothing is deleted or expunged at the source (for POP3 no
	// QUIT, RFC 1939 §6).
	defer src.Close(false)
	var folders []planFolder
	if isIMAP {
		all, err := src.(*imapsrc.Source).Folders(ctx)
		if err != nil {
			return nil, est, nil, fmt.Errorf("listing source folders: %w", err)
		}
		for _, f := range all {
			if d, ok := mapped[f.Name]; ok {
				folders = append(folders, planFolder{Source: f.Name, Destination: d})
			}
		}
	}
	msgs, err := src.List(ctx)
	if err != nil {
		return nil, est, nil, err
	}
	if isIMAP {
		msgs = slices.DeleteFunc(msgs, func(m pipeline.SourceMessage) bool { return mapped[m.Mailbox] == "" })
	}
	pa.Listed = len(msgs)
	pa.SourceListed = true
	var entries map[string]pipeline.Entry
	if ledger != nil {
		if entries, err = ledger.Entries(ctx, a.Options.Account); err != nil {
			return nil, est, nil, err
		}
	}
	var todo []pipeline.SourceMessage
	for _, m := range msgs {
		switch entries[m.Key].State {
		case pipeline.StateDone:
			pa.AlreadyDone++
		case pipeline.StateSkipped:
			pa.SkippedBefore++
		default:
			todo = append(todo, m)
		}
	}
	est.Method = "time to download (RETR or UID FETCH BODY.PEEK[]) the first messages to move, scaled by the larger of the message-count and byte ratios; the destination side is not measured, since plan appends nothing"
	start := time.Now()
	for _, m := range todo {
		if est.SampleMessages >= planSampleMessages || est.SampleBytes >= planSampleBytes {
			break
		}
		n, err := src.Fetch(ctx, m, io.Discard)
		if err != nil {
			return nil, est, nil, fmt.Errorf("sampling message %s: %w", verify.DisplayKey(m.Key), err)
		}
		est.SampleMessages++
		est.SampleBytes += n
	}
	est.SampleTime = time.Since(start)
	return todo, est, folders, nil
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
		if a.SourceCaps != nil {
			fmt.Fprintf(w, "  source:        %s\n", capLine([]string{"UIDL", "PIPELINING", "STLS", "USER", "SASL PLAIN"}, a.SourceCaps))
		}
		if a.DestCaps != nil {
			line := capLine([]string{"MULTIAPPEND", "LITERAL+", "UIDPLUS", "APPENDLIMIT", "SPECIAL-USE", "QUOTA", "IDLE"}, a.DestCaps)
			if a.AppendLimit > 0 {
				line += fmt.Sprintf(" (limit %s)", humanBytes(a.AppendLimit))
			}
			fmt.Fprintf(w, "  destination:   %s\n", line)
		}
		for _, f := range a.Folders {
			state := fmt.Sprintf("exists, %d messages", f.Messages)
			if !f.Exists {
				state = "will be created"
			}
			if f.ToMove > 0 {
				state += fmt.Sprintf("; %d to move, %s", f.ToMove, humanBytes(f.ToMoveBytes))
			}
			fmt.Fprintf(w, "  folder:        %s -> %s (%s)\n", f.Source, f.Destination, state)
		}
		if a.SourceListed || a.SourceCaps != nil {
			fmt.Fprintf(w, "  to move:       %d messages, %s (of %d listed; %d already done, %d skipped by earlier runs)\n",
				a.ToMove, humanBytes(a.ToMoveBytes), a.Listed, a.AlreadyDone, a.SkippedBefore)
		}
		for i, s := range a.Skips {
			if i == planListMax {
				fmt.Fprintf(w, "  ... and %d more to skip (see --json)\n", len(a.Skips)-i)
				break
			}
			fmt.Fprintf(w, "  will skip:     %s: %s\n", s.Key, s.Reason)
		}
		if q := a.Quota; q != nil {
			fmt.Fprintf(w, "  quota:         %s free of %s (root %q): %s\n", humanBytes(q.FreeBytes), humanBytes(q.LimitBytes), q.Root,
				map[bool]string{true: "enough", false: "NOT ENOUGH"}[q.Enough])
		} else if a.DestCaps != nil && (a.SourceListed || a.SourceCaps != nil) {
			fmt.Fprintln(w, "  quota:         none reported")
		}
		if est := a.Estimate; est != nil {
			fmt.Fprintf(w, "  estimate:      %s (%d messages, %s downloaded in %s; source side only)\n",
				fmtDuration(est.Estimate), est.SampleMessages, humanBytes(est.SampleBytes), est.SampleTime.Round(time.Millisecond))
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
	fmt.Fprintf(w, "%d accounts, %d messages (%s) to move, estimated %s with %d accounts in parallel (downloads only)\n",
		len(rep.Accounts), rep.ToMove, humanBytes(rep.Bytes), fmtDuration(rep.Estimate), rep.Workers)
	if bad > 0 {
		fmt.Fprintf(w, "%d accounts have problems: %s\n", bad, strings.Join(names, ", "))
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

For every account (several at once, --workers) plan logs in to both servers
and reports:
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
A wrong password, an unreachable server, a quota too small or messages that
would be skipped are reported as problems of that account; the other
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
  --flags POLICY, --internal-date POLICY, --max-message-size SIZE
                            the copy's policies (SOURCE DEST form)
  --folder, --exclude-folder, --special-use, --max-age, --min-age
                            IMAP source: the copy's folder settings
  --tls-ca FILE, --insecure-skip-verify, --allow-plaintext
  --source-password-file FILE, --source-password-command CMD
  --dest-password-file FILE, --dest-password-command CMD
  --json                    one JSON document on stdout
  -q, --quiet, -v, --verbose, --log-format FORMAT, --trace

EXIT STATUS
  0    every account can be moved as planned
  1    the checkpoint could not be read
  2    bad command line or configuration
  3    some accounts have problems (the report says which)
  130  interrupted
`
