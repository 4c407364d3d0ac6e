package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/account"
	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/hint"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/verify"
)

// inspectOptions are the flags verify, plan and status share: the
// connection and output flags of commonOptions, without the ones that only
// make sense for a copy (--dry-run, --delete-source, --progress, --report).
type inspectOptions struct {
	common      commonOptions
	cfgPath     string
	only        []string
	srcPassword passwordFlags
	dstPassword passwordFlags
	policy      policyFlags
	// folders select and map the folders of an IMAP source, as for copy.
	folders config.Folders
	// statePassword is the config's state_password_* (accounts sets it).
	statePassword config.SecretSource
}

func (o *inspectOptions) register(fs *pflag.FlagSet, withPolicy bool) {
	c := &o.common
	o.srcPassword, o.dstPassword = passwordFlags{side: "source"}, passwordFlags{side: "dest"}
	fs.StringVarP(&o.cfgPath, "config", "c", "", "the config file (see migrate.toml.example)")
	fs.StringSliceVar(&o.only, "only", nil, "only these accounts of the config file (by name)")
	fs.StringVar(&c.state, "state", "", "checkpoint (ledger), a file or a postgres:// URL; default: the config's state, else $XDG_STATE_HOME/mailferry/mailferry.db")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "PEM file of extra CA certificates to trust (both servers)")
	fs.BoolVar(&c.insecureSkipVerify, "insecure-skip-verify", false, "do not verify TLS certificates (dangerous)")
	fs.BoolVar(&c.allowPlaintext, "allow-plaintext", false, "allow passwords over connections without TLS (?tls=none URLs)")
	fs.BoolVar(&c.json, "json", false, "print one JSON document on stdout")
	fs.BoolVarP(&c.quiet, "quiet", "q", false, "only warnings and errors in the log")
	fs.BoolVarP(&c.verbose, "verbose", "v", false, "debug logging")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.BoolVar(&c.trace, "trace", false, "log protocol lines (credentials redacted, message bodies omitted)")
	fs.StringVar(&o.srcPassword.file, "source-password-file", "", "read the source password from the first line of this file")
	fs.StringVar(&o.srcPassword.command, "source-password-command", "", "run this shell command; its first output line is the source password")
	fs.StringVar(&o.dstPassword.file, "dest-password-file", "", "read the destination password from the first line of this file")
	fs.StringVar(&o.dstPassword.command, "dest-password-command", "", "run this shell command; its first output line is the destination password")
	if withPolicy {
		fs.StringSliceVar(&o.folders.Include, "folder", nil, "IMAP source: only these folders (as for copy)")
		fs.StringSliceVar(&o.folders.Exclude, "exclude-folder", nil, "IMAP source: not these folders (as for copy)")
		fs.BoolVar(&o.folders.SpecialUse, "special-use", true, "IMAP source: map folders by role (as for copy)")
		fs.Var((*daysDuration)(&o.folders.MaxAge), "max-age", "IMAP source: only messages younger than this (as for copy)")
		fs.Var((*daysDuration)(&o.folders.MinAge), "min-age", "IMAP source: only messages older than this (as for copy)")
		fs.StringVar(&o.folders.GmailLabels, "gmail-labels", config.GmailOneCopy, "Gmail source: how the copy copied its labels, one-copy or per-label (as for copy)")
		fs.StringVar(&o.policy.internalDate, "internal-date", "received", "the copy's internal-date policy for POP3 mail (SOURCE DEST form)")
		fs.StringVar(&o.policy.flags, "flags", "none", "the copy's flag policy for POP3 mail (SOURCE DEST form)")
		fs.StringVar(&o.policy.maxMessageSize, "max-message-size", "0", "the copy's --max-message-size (SOURCE DEST form)")
		fs.BoolVar(&o.policy.xUIDL, "x-uidl", false, "the copy's --x-uidl: it put an X-UIDL field before each message (SOURCE DEST form)")
	}
	o.policy.spoolMemory, o.policy.batchBytes, o.policy.batchMessages = "8MiB", "16MiB", 50
	o.policy.destSessions = 1 // verify and plan append nothing
}

func (o *inspectOptions) check() error {
	switch o.common.logFormat {
	case "text", "json":
	default:
		return usagef("--log-format must be text or json, not %q", o.common.logFormat)
	}
	return checkFolderFlags(&o.folders)
}

// accounts builds the accounts to inspect: from -c FILE, or from the two
// URLs. It returns the state file too (flag, config, default).
func (o *inspectOptions) accounts(args []string, e *env, log *slog.Logger) ([]*account.Account, string, error) {
	set := account.NewSet(o.common.accountOptions(e, log))
	if o.cfgPath != "" {
		if len(args) != 0 {
			return nil, "", usagef("unexpected arguments %q with -c (accounts come from the config file)", args)
		}
		cfg, err := loadConfig(o.cfgPath, log)
		if err != nil {
			return nil, "", err
		}
		accs, err := set.FromConfig(cfg, o.only)
		if err != nil {
			return nil, "", err
		}
		o.statePassword = cfg.StatePassword
		state, err := o.statePath(firstNonEmpty(o.common.state, cfg.State), e)
		return accs, state, err
	}
	if len(args) != 2 {
		return nil, "", usagef("want SOURCE and DEST URLs, or -c migrate.toml; got %s", plural(len(args), "argument"))
	}
	u, err := parseURLs(args[0], args[1])
	if err != nil {
		return nil, "", err
	}
	if u.Options, err = o.policy.pipelineOptions(); err != nil {
		return nil, "", err
	}
	u.Folders, u.XUIDL = o.folders, o.policy.xUIDL
	u.CreateFolders = o.common.createFolders != nil && *o.common.createFolders
	if u.SourceLogin, err = o.srcPassword.login(e, u.Source.String()); err != nil {
		return nil, "", err
	}
	if u.DestLogin, err = o.dstPassword.login(e, u.Dest.String()); err != nil {
		return nil, "", err
	}
	acc, err := set.FromURLs(u)
	if err != nil {
		return nil, "", err
	}
	state, err := o.statePath(o.common.state, e)
	return []*account.Account{acc}, state, err
}

func (o *inspectOptions) statePath(state string, e *env) (string, error) {
	if state != "" {
		return state, nil
	}
	return defaultStatePath(e.getenv)
}

// openLedgerIfExists opens the ledger at path only when the file exists,
// so that inspecting never creates one; it returns nil, nil when there is
// none. (checkpoint has no read-only mode: opening an existing file may
// bring its schema up to date, and nothing else is written.)
func openLedgerIfExists(ctx context.Context, e *env, path string, pw config.SecretSource, log *slog.Logger) (*checkpoint.Ledger, error) {
	if checkpoint.IsPostgres(path) {
		// A database is there or unreachable: Open says which.
	} else if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("opening the checkpoint %s: %w", path, err)
	}
	opts, err := ledgerOptions(ctx, e, path, pw, log)
	if err != nil {
		return nil, err
	}
	l, err := checkpoint.Open(ctx, path, opts)
	if err != nil {
		return nil, fmt.Errorf("opening the checkpoint: %w", err)
	}
	return l, nil
}

// verifyOptions are the flags of `mailferry verify`.
type verifyOptions struct {
	inspectOptions
	full     bool
	all      bool
	noLedger bool
	strict   bool
}

// verifyAccount is the JSON report of one account.
type verifyAccount struct {
	Account string `json:"account"`
	Key     string `json:"ledger_key"`
	Mode    string `json:"mode"` // "fast" or "full"
	// Ledger says whether ledger entries were used ("false": matched by
	// content only).
	Ledger bool                `json:"ledger"`
	Stats  verify.Stats        `json:"stats"`
	Items  []verify.Difference `json:"differences"`
	Error  string              `json:"error,omitempty"`
	// ErrorClass is "config" when Error is a folder the command line or
	// the config names that is not there (exit status 2).
	ErrorClass string `json:"error_class,omitempty"`
	// Hint says what the user can do about Error (hint.For), as copy's
	// summary does.
	Hint string `json:"hint,omitempty"`
	OK   bool   `json:"ok"`
}

type verifyReport struct {
	Command  string          `json:"command"`
	Accounts []verifyAccount `json:"accounts"`
	OK       bool            `json:"ok"`
	ExitCode int             `json:"exit_code"`
}

func runVerify(ctx context.Context, args []string, e *env) (int, error) {
	var o verifyOptions
	fs := pflag.NewFlagSet("verify", pflag.ContinueOnError)
	o.register(fs, true)
	fs.BoolVar(&o.full, "full", false, "download both sides and compare SHA-256 digests, not only sizes")
	fs.BoolVar(&o.all, "all", false, "also list matching messages (\"= key\")")
	fs.BoolVar(&o.noLedger, "no-ledger", false, "ignore the checkpoint: match messages by Message-ID, size and digest (downloads both sides)")
	fs.BoolVar(&o.strict, "strict", false, "destination messages that are no source message (extras) are differences too (exit 3)")
	if done, err := parseFlags(fs, args, e, verifyHelp); done || err != nil {
		return helpOrUsage(done, err)
	}
	if err := o.check(); err != nil {
		return exitUsage, err
	}
	log := newLogger(&o.common, e.stderr)
	accs, state, err := o.accounts(fs.Args(), e, log)
	if err != nil {
		return exitUsage, err
	}
	var ledger *checkpoint.Ledger
	if !o.noLedger {
		if ledger, err = openLedgerIfExists(ctx, e, state, o.statePassword, log); err != nil {
			return exitFatal, err
		}
		if ledger != nil {
			defer ledger.Close()
		}
	}
	rep := verifyReport{Command: "verify", OK: true}
	fatal, misnamed := false, false
	for _, a := range accs {
		va := o.verifyOne(ctx, a, ledger, log)
		if va.Error != "" {
			fatal = true
			misnamed = misnamed || va.ErrorClass == classConfig
			log.Error("verifying account failed", "account", a.Name, "error", va.Error)
		}
		rep.OK = rep.OK && va.OK
		rep.Accounts = append(rep.Accounts, va)
		if !o.common.json {
			writeVerifyText(e.stdout, va, o.all)
		}
		if ctx.Err() != nil {
			break
		}
	}
	switch {
	case ctx.Err() != nil:
		rep.ExitCode = exitInterrupted
	case misnamed:
		// A folder the command line or the config names is not there.
		rep.ExitCode = exitUsage
	case fatal:
		rep.ExitCode = exitFatal
	case !rep.OK:
		rep.ExitCode = exitPartial
	}
	rep.OK = rep.OK && rep.ExitCode == exitOK
	if o.common.json {
		if err := writeJSON(e.stdout, rep); err != nil {
			return exitFatal, fmt.Errorf("writing the JSON report: %w", err)
		}
	} else if len(accs) > 1 {
		fmt.Fprintf(e.stdout, "%s: %s\n", plural(len(accs), "account"), map[bool]string{true: "OK", false: "DIFFERENCES FOUND"}[rep.OK])
	}
	return rep.ExitCode, nil
}

// verifyOne checks one account; errors go into the result.
func (o *verifyOptions) verifyOne(ctx context.Context, a *account.Account, ledger *checkpoint.Ledger, log *slog.Logger) verifyAccount {
	va := verifyAccount{Account: a.Name, Key: a.Options.Name, Mode: map[bool]string{true: "full", false: "fast"}[o.full]}
	fail := func(err error) verifyAccount {
		va.Error, va.Hint = err.Error(), hint.For(err).Fix
		if isFolderError(err) {
			va.ErrorClass = classConfig
		}
		return va
	}
	entries, err := accountEntries(ctx, ledger, a)
	if err != nil {
		return fail(err)
	}
	va.Ledger = len(entries) > 0
	src, folders, err := a.OpenSourceMapped(ctx)
	if err != nil {
		return fail(err)
	}
	// Close without commit: nothing was deleted, and POP3 servers must not
	// even update their state (RFC 1939 §6: only QUIT does).
	defer src.Close(false)
	var vsrc verify.Source = src
	var mailboxOf func(pipeline.SourceMessage) string
	if folders != nil {
		dests := pipeline.MappedFolders(folders)
		vsrc = mappedSource{Source: src, dests: dests}
		mailboxOf = func(m pipeline.SourceMessage) string { d, _ := dests.Dest(m); return d }
	}
	dst, err := a.OpenReader(ctx)
	if err != nil {
		return fail(&pipeline.SideError{Side: "destination", Err: err})
	}
	defer dst.Close()
	res, err := verify.Check(ctx, vsrc, dst, verify.Options{
		Mailbox: a.Options.Mailbox, MailboxOf: mailboxOf, Ledger: entries, Full: o.full,
		FlagPolicy: a.Options.FlagPolicy, DatePolicy: a.Options.DatePolicy, Spool: a.Options.Spool, AddHeader: a.Options.AddHeader,
		Strict: o.strict,
		Logger: log.With("account", a.Name),
	})
	if err != nil {
		return fail(err)
	}
	va.Stats, va.OK = res.Stats, res.OK()
	for _, it := range res.Items {
		if it.Kind != verify.Match || o.all {
			va.Items = append(va.Items, it)
		}
	}
	if va.Items == nil {
		va.Items = []verify.Difference{}
	}
	return va
}

// mappedSource hides the messages of folders the copy does not copy (the
// folder mapping skips them), as the pipeline does.
type mappedSource struct {
	pipeline.Source
	dests pipeline.FolderPlan
}

func (s mappedSource) List(ctx context.Context, page func([]pipeline.SourceMessage) error) error {
	return s.Source.List(ctx, func(msgs []pipeline.SourceMessage) error {
		msgs = slices.DeleteFunc(msgs, func(m pipeline.SourceMessage) bool { _, ok := s.dests.Dest(m); return !ok })
		if len(msgs) == 0 {
			return nil
		}
		return page(msgs)
	})
}

func writeVerifyText(w io.Writer, va verifyAccount, all bool) {
	fmt.Fprintf(w, "account %s\n", va.Account)
	if va.Error != "" {
		fmt.Fprintf(w, "  ERROR: %s\n", va.Error)
		if va.Hint != "" {
			fmt.Fprintf(w, "  hint: %s\n", va.Hint)
		}
		return
	}
	for _, it := range va.Items {
		if it.Kind == verify.Match && !all {
			continue
		}
		line := it.Kind.Symbol() + " " + it.Name()
		if it.Detail != "" {
			line += "\t" + it.Detail
		}
		fmt.Fprintln(w, line)
	}
	s := va.Stats
	how := "sizes, by the checkpoint"
	switch {
	case va.Mode == "full" && va.Ledger:
		how = "SHA-256 digests, by the checkpoint"
	case !va.Ledger:
		how = "Message-ID, size and SHA-256 digest (no checkpoint)"
	}
	fmt.Fprintf(w, "%d source messages", s.SourceMessages)
	if s.LedgerOnly > 0 {
		fmt.Fprintf(w, " (+%d moved and deleted at the source)", s.LedgerOnly)
	}
	fmt.Fprintf(w, ", %d on the destination, compared by %s:\n", s.DestMessage, how)
	fmt.Fprintf(w, "  %d match, %d missing (-), %d differ (*), %d flags differ (!), %d dates differ (~), %s (D), %d extra on the destination (+)",
		s.Matched, s.Missing, s.Differs, s.FlagsDiffer, s.DateDiffers, plural(s.Duplicates, "duplicate"), s.Extra)
	if s.Changed > 0 {
		fmt.Fprintf(w, ", %d changed as the server documents it (%%)", s.Changed)
	}
	fmt.Fprintln(w)
	switch {
	case va.OK && s.Extra > 0:
		fmt.Fprintf(w, "  OK: every source message is on the destination, once; %s there %s from no source message (--strict counts %s as a difference)\n",
			plural(s.Extra, "message"), map[bool]string{true: "is", false: "are"}[s.Extra == 1], map[bool]string{true: "it", false: "them"}[s.Extra == 1])
	case va.OK:
		fmt.Fprintln(w, "  OK: every source message is on the destination, once")
	default:
		fmt.Fprintln(w, "  DIFFERENCES FOUND")
	}
}

const verifyHelp = `mailferry verify - compare a source and a destination, message by message

USAGE
  mailferry verify SOURCE DEST [flags]
  mailferry verify -c migrate.toml [--only NAME,...] [flags]

Prints one line per difference, then a summary per account:
  - KEY    missing on the destination
  * KEY    on the destination with another size (or, with --full, other bytes)
  ! KEY    flags differ
  ~ KEY    internal date differs
  D MAILBOX/;UID=N   on the destination a second time: the same bytes as a
                   source message another destination message stands for
  + MAILBOX/;UID=N   on the destination, from no source message (information
                   only, unless --strict: a live INBOX also gets other mail)
  % KEY    on the destination, changed as its server documents it: header
           fields of mbox storage, 8-bit header bytes replaced, line ends,
           or a source that serves other bytes on each read (not a failure;
           docs/servers.md)
  = KEY    matches (only with --all)
A KEY is the source's UIDL (POP3) or MAILBOX;UIDVALIDITY=V;UID=U (IMAP).

By default verify is fast: it lists the source, reads the checkpoint and
lists the destination's UIDs, sizes, flags, dates and a few header fields;
nothing is downloaded but the destination messages no source message claims
that have the size (and Message-ID) of one that is there: each is hashed
with that copy, and is a duplicate when the bytes are the same, else an
extra. A message is missing when the checkpoint does not have
it as copied or its destination UID is gone, and differs when the sizes
disagree. --full downloads both sides and compares SHA-256 digests (after
the CRLF normalisation the copy does, and with the X-UIDL field of
--x-uidl or policy.x_uidl). Without a checkpoint (--no-ledger, or
none for the account) messages are matched by Message-ID, size and digest,
so verify can check a migration made by another tool.

POP3 has no flags or dates: the expected ones are what the copy's policies
(--flags, --internal-date, or the config's [policy]) give for the message's
header; a date that could only come from the time of transfer is not
checked. \Recent is ignored. A message read or flagged at the destination
after the copy shows as "flags differ".

IMAP messages carry their own flags and internal dates. Each source folder
is checked in the destination folder the copy's folder mapping gives it
(DEST's path, --folder, --exclude-folder, --special-use, --max-age and
--min-age as for copy; with -c the config's [folders]); nothing is created.
A keyword the destination refused at copy time (PERMANENTFLAGS: the
checkpoint does not record it and the destination lacks it) is not reported.

verify writes nothing: the source session ends without QUIT or EXPUNGE, the destination
is opened read-only (EXAMINE, BODY.PEEK), and no checkpoint is created.

FLAGS
  -c, --config FILE         the config file; accounts, servers and policies
  --only NAME[,NAME...]     only these accounts
  --full                    download and hash both sides
  --all                     also list matching messages
  --no-ledger               ignore the checkpoint; match by content
  --strict                  extras on the destination are differences too
  --state FILE              checkpoint file (default: the config's, else
                            $XDG_STATE_HOME/mailferry/mailferry.db)
  --flags none|seen|status, --internal-date received|date|now,
  --max-message-size SIZE, --x-uidl
                            the copy's policies (SOURCE DEST form); with
                            --x-uidl the source's messages are compared with
                            the X-UIDL field the copy put before them
  --folder, --exclude-folder, --special-use, --max-age, --min-age,
  --gmail-labels MODE       IMAP source: the copy's folder settings
  --tls-ca FILE, --insecure-skip-verify, --allow-plaintext
  --source-password-file FILE, --source-password-command CMD
  --dest-password-file FILE, --dest-password-command CMD
  --json                    one JSON document on stdout
  -q, --quiet, -v, --verbose, --log-format FORMAT, --trace

EXIT STATUS
  0    every source message is on the destination, identical or changed
       as its server documents it
  1    a server or the checkpoint could not be read
  2    bad command line or configuration, or a source folder it names (in
       SOURCE, --folder or folders.include) is not there
  3    differences found (missing, differing, flags, dates, duplicates;
       with --strict extras too)
  130  interrupted
`

// accountEntries reads every entry of the account (verify compares the
// whole account with both sides), page by page; none when the ledger (nil:
// none) does not know the account. It creates nothing.
func accountEntries(ctx context.Context, ledger *checkpoint.Ledger, a *account.Account) (map[string]pipeline.Entry, error) {
	out := map[string]pipeline.Entry{}
	if ledger == nil {
		return out, nil
	}
	id, ok, err := ledger.LookupAccount(ctx, a.LedgerSpec())
	if err != nil || !ok {
		return out, err
	}
	q := pipeline.Query{}
	for {
		page, next, err := ledger.Scan(ctx, id, q)
		if err != nil {
			return nil, fmt.Errorf("reading the checkpoint: %w", err)
		}
		for _, e := range page {
			out[e.Key] = e
		}
		if next == "" {
			return out, nil
		}
		q.After = next
	}
}
