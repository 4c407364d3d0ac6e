package main

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/account"
	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/internal/suggest"
)

// commonOptions are the flags copy and run share.
type commonOptions struct {
	state              string
	tlsCA              string
	insecureSkipVerify bool
	allowPlaintext     bool
	dryRun             bool
	json               bool
	quiet              bool
	verbose            bool
	logFormat          string
	trace              bool
	deleteSource       bool
	deleteAfter        time.Duration
	progress           string
	report             string
	onLocked           string
	lockWait           time.Duration
	retryBackoff       time.Duration
	retrySkipped       bool
	deleteFromFlags    bool // run: --delete-source or --delete-after replace every account's policy
	mirror             bool
	mirrorFromFlags    bool // run: --mirror replaces every account's mirror key
	maxDelete          int
	maxDeletePercent   int
	mirrorAllowEmpty   []string
	// createFolders is --create-folders when it was given (it then
	// replaces a config's create_folders); nil otherwise.
	createFolders *bool
	// noMatchExisting is --no-match-existing.
	noMatchExisting bool
}

// createFoldersUsage is the help of --create-folders (copy, run, plan).
const createFoldersUsage = "create the destination folder named (DEST's path, dest_folder, [destination] folder, [folders] root) when it is a new top-level folder; without it such a name is refused, as a typo would be (folders mapped from an IMAP source are always created)"

// registerCreateFolders adds --create-folders; note records it in o once
// the flags are parsed.
func (o *commonOptions) registerCreateFolders(fs *pflag.FlagSet) (note func()) {
	v := fs.Bool("create-folders", false, createFoldersUsage)
	return func() {
		if fs.Changed("create-folders") {
			o.createFolders = v
		}
	}
}

func (o *commonOptions) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.state, "state", "", "checkpoint (ledger): a file, or a postgres:// URL (password from MAILFERRY_STATE_PASSWORD); default $XDG_STATE_HOME/mailferry/mailferry.db")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "PEM file of extra CA certificates to trust (both servers)")
	fs.BoolVar(&o.insecureSkipVerify, "insecure-skip-verify", false, "do not verify TLS certificates (dangerous)")
	fs.BoolVar(&o.allowPlaintext, "allow-plaintext", false, "allow passwords over connections without TLS (?tls=none URLs)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "read the source and the ledger, write nothing anywhere, report what would happen")
	fs.BoolVar(&o.json, "json", false, "print one JSON report on stdout at the end instead of the text summary")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress and only warnings and errors in the log")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "debug logging")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.BoolVar(&o.trace, "trace", false, "log protocol lines (credentials redacted, message bodies omitted)")
	fs.BoolVar(&o.deleteSource, "delete-source", false, "delete at the source what the destination confirmed and the ledger recorded")
	fs.Var((*daysDuration)(&o.deleteAfter), "delete-after", "delete at the source what was copied at least this long ago (e.g. 30d), at the next run after that; excludes --delete-source")
	fs.BoolVar(&o.mirror, "mirror", false, "make the destination follow the source for what mailferry copied: remove copies of messages deleted there, move copies of messages moved between folders (docs/mirror.md)")
	fs.IntVar(&o.maxDelete, "max-delete", 0, "with --mirror: a pass that would remove more than this many copies of an account removes nothing and exits 3 (default: 10% of its copied messages, at least 50)")
	fs.IntVar(&o.maxDeletePercent, "max-delete-percent", 0, "with --mirror: the same cap as a percentage of the account's copied messages (the smaller cap wins when both are given)")
	fs.StringArrayVar(&o.mirrorAllowEmpty, "mirror-allow-empty", nil, "with --mirror: this source folder (as the report's 'cannot tell' names it) was emptied at the source on purpose: remove the copies of its messages within the caps (repeat for more folders)")
	fs.StringVar(&o.progress, "progress", "auto", "progress display: auto (a bar on a terminal, log lines otherwise), bar, lines or none")
	fs.StringVar(&o.report, "report", "", "also write the JSON report to this file")
	fs.StringVar(&o.onLocked, "on-locked", "fail", "when another run is working on an account (overlapping cron runs): fail, skip, or wait")
	fs.DurationVar(&o.lockWait, "lock-wait", 10*time.Minute, "with --on-locked wait: how long to wait for the other run")
	fs.DurationVar(&o.retryBackoff, "retry-backoff", 2*time.Second, "wait before retrying an account after a dropped connection or throttling; doubles each time (a server's suggested wait wins)")
	fs.BoolVar(&o.noMatchExisting, "no-match-existing", false, "do not match what a destination folder the checkpoint knows nothing of already holds: send every message not in the checkpoint, even when the folder has its exact bytes (the config's match_existing = false)")
	fs.BoolVar(&o.retrySkipped, "retry-skipped", false, "send again the messages earlier runs skipped for good (too big, NUL bytes without BINARY, refused by the server), after you changed what stopped them")
}

// accountOptions are the command line's settings for every account: the
// TLS and plaintext flags and the protocol trace.
func (o *commonOptions) accountOptions(e *env, log *slog.Logger) account.Options {
	opts := account.Options{Logger: log, Trace: traceWriter(o, e), TLSCA: o.tlsCA,
		InsecureSkipVerify: o.insecureSkipVerify, AllowPlaintext: o.allowPlaintext}
	if o.deleteFromFlags {
		opts.Delete = &config.DeletePolicy{DeleteSource: o.deleteSource, DeleteAfter: o.deleteAfter}
	}
	if o.mirrorFromFlags {
		mirror := o.mirror
		opts.Mirror = &mirror
	}
	opts.MaxDelete, opts.MaxDeletePercent = o.maxDelete, o.maxDeletePercent
	opts.MirrorAllowEmpty = o.mirrorAllowEmpty
	opts.CreateFolders = o.createFolders
	opts.NoMatchExisting = o.noMatchExisting
	return opts
}

func (o *commonOptions) check() error {
	if o.deleteSource && o.deleteAfter > 0 {
		return usagef("--delete-source and --delete-after exclude each other: delete at once or after a period")
	}
	if o.maxDelete < 0 {
		return usagef("--max-delete must be at least 1 (use --dry-run to see what a mirror pass would remove without removing it)")
	}
	if o.maxDeletePercent < 0 || o.maxDeletePercent > 100 {
		return usagef("--max-delete-percent must be between 0 and 100, not %d", o.maxDeletePercent)
	}
	switch o.logFormat {
	case "text", "json":
	default:
		return usagef("--log-format must be text or json, not %q", o.logFormat)
	}
	switch o.onLocked {
	case "fail", "skip", "wait":
	default:
		return usagef("--on-locked must be fail, skip or wait, not %q", o.onLocked)
	}
	switch o.progress {
	case "auto", "bar", "lines", "none":
	default:
		return usagef("--progress must be auto, bar, lines or none, not %q", o.progress)
	}
	return nil
}

// applyEnv fills flags not given on the command line from MAILFERRY_*
// variables spelled like the flag (--dry-run ↔ MAILFERRY_DRY_RUN).
func applyEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil || f.Name == "help" {
			return
		}
		name := envName(f.Name)
		if v := getenv(name); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = usagef("%s=%q: %v", name, v, serr)
			}
		}
	})
	return err
}

func envName(flag string) string {
	return "MAILFERRY_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// parseFlags parses args, applying MAILFERRY_* variables; it returns
// errHelp after printing help when asked.
func parseFlags(fs *pflag.FlagSet, args []string, e *env, help string) (bool, error) {
	fs.SetOutput(e.stderr)
	fs.Usage = func() {}
	showHelp := fs.BoolP("help", "h", false, "show this help")
	if e.describeFlags != nil {
		e.describeFlags(fs)
		return true, nil
	}
	if err := fs.Parse(args); err != nil {
		return false, usagef("%v%s", err, didYouMean(fs, err))
	}
	if *showHelp {
		fmt.Fprint(e.stdout, help)
		return true, nil
	}
	return false, applyEnv(fs, e.getenv)
}

// didYouMean suggests the flags of fs nearest to the unknown one err
// names ("unknown flag: --dry-rn"): "; did you mean --dry-run?", or "".
func didYouMean(fs *pflag.FlagSet, err error) string {
	name, ok := strings.CutPrefix(err.Error(), "unknown flag: --")
	if !ok {
		return ""
	}
	name, _, _ = strings.Cut(name, "=")
	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	})
	near := suggest.Closest(name, names, 3)
	if len(near) == 0 {
		return ""
	}
	for i, n := range near {
		near[i] = "--" + n
	}
	return "; did you mean " + strings.Join(near, " or ") + "?"
}

// helpOrUsage is the result of a command whose flags asked for help (exit 0)
// or failed to parse (exit 2).
func helpOrUsage(helped bool, err error) (int, error) {
	if helped {
		return exitOK, nil
	}
	return exitUsage, err
}

// daysDuration is a duration flag that also takes days, as the config file
// does: "30d", "1d12h", "90m". Negative durations are refused.
type daysDuration time.Duration

func (d *daysDuration) Set(s string) error {
	v, err := config.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", s)
	}
	*d = daysDuration(v)
	return nil
}

func (d *daysDuration) String() string { return time.Duration(*d).String() }

func (d *daysDuration) Type() string { return "duration" }
