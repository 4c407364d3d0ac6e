package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/config"
)

const ledgerHelp = `mailferry ledger migrate - copy a checkpoint into another (SQLite <-> PostgreSQL)

USAGE
  mailferry ledger migrate --from STATE --to STATE [--replace]

Copies every table of what was done (accounts, their aliases, folders,
messages, runs, resent records, usage, passes, throughput) from one
checkpoint into another: a SQLite file into a PostgreSQL database, so that
a migration started on one machine continues on a fleet, or back. STATE is
a file path or a postgres:// URL without a password; a PostgreSQL
checkpoint's password comes from MAILFERRY_STATE_PASSWORD.

The source is read in one snapshot and the target written in one
transaction, checked before it is committed: every table's rows and every
account's counts must match, or nothing is written. A target that holds
accounts is refused unless --replace. No password is copied (the
checkpoint holds none; the accounts' recorded configs name where their
secrets come from). Stop the runs on both first: a checkpoint with
accounts held by running workers is refused.

FLAGS
  --from STATE              the checkpoint to copy (required)
  --to STATE                the checkpoint to copy into: created when new,
                            else it must be empty (required)
  --replace                 delete what the target holds before copying

EXIT STATUS
  0    copied and checked
  1    not copied (unreachable, target not empty, accounts held, counts
       that do not match); the target is as it was
  2    bad command line
`

const ledgerUpgradeHelp = `mailferry ledger upgrade - bring a checkpoint to this version's schema

USAGE
  mailferry ledger upgrade --state STATE

Upgrades a checkpoint written by an earlier release in place, in one
transaction, and copies nothing again (schema 5 to 6: one column added to
the messages table, no row rewritten). Runs never upgrade a PostgreSQL
checkpoint by themselves, since other workers may be using it: stop every
worker, run this once, then start the workers of this version. A
checkpoint with accounts held by running workers is refused. A SQLite
file is upgraded by the first run that opens it; this command does the
same without a run. STATE is a file path or a postgres:// URL without a
password; a PostgreSQL checkpoint's password comes from
MAILFERRY_STATE_PASSWORD.

FLAGS
  --state STATE             the checkpoint to upgrade (required)

EXIT STATUS
  0    upgraded, or already of this schema
  1    not upgraded (unreachable, accounts held, a newer schema, not a
       checkpoint); the checkpoint is as it was
  2    bad command line
`

// runLedger is 'mailferry ledger migrate' and 'mailferry ledger upgrade'.
func runLedger(ctx context.Context, args []string, e *env) (int, error) {
	if len(args) == 0 || (args[0] != "migrate" && args[0] != "upgrade" && args[0] != "--help" && args[0] != "-h") {
		return exitUsage, usagef("want 'mailferry ledger migrate --from STATE --to STATE' or 'mailferry ledger upgrade --state STATE'")
	}
	if args[0] == "upgrade" {
		return runLedgerUpgrade(ctx, args[1:], e)
	}
	if args[0] != "migrate" {
		fmt.Fprint(e.stdout, ledgerHelp+"\n"+ledgerUpgradeHelp)
		return exitOK, nil
	}
	var from, to string
	var replace bool
	fs := pflag.NewFlagSet("ledger migrate", pflag.ContinueOnError)
	fs.StringVar(&from, "from", "", "the checkpoint to copy: a file or a postgres:// URL")
	fs.StringVar(&to, "to", "", "the checkpoint to copy into: created when new, else it must be empty")
	fs.BoolVar(&replace, "replace", false, "delete what the target holds before copying")
	if done, err := parseFlags(fs, args[1:], e, ledgerHelp); done || err != nil {
		return helpOrUsage(done, err)
	}
	if from == "" || to == "" || fs.NArg() > 0 {
		return exitUsage, usagef("want --from STATE and --to STATE, and no other arguments")
	}
	log := newLogger(&commonOptions{logFormat: "text"}, e.stderr)
	opts := func(state string) (*checkpoint.Options, error) {
		return ledgerOptions(ctx, e, state, config.SecretSource{}, log)
	}
	fromOpts, err := opts(from)
	if err != nil {
		return exitFatal, err
	}
	toOpts, err := opts(to)
	if err != nil {
		return exitFatal, err
	}
	res, err := checkpoint.Migrate(ctx, from, to, checkpoint.MigrateOptions{From: fromOpts, To: toOpts, Replace: replace})
	if err != nil {
		if errors.Is(err, checkpoint.ErrTargetNotEmpty) {
			return exitFatal, err
		}
		return exitFatal, fmt.Errorf("copying %s into %s: %w", checkpoint.Redact(from), checkpoint.Redact(to), err)
	}
	fmt.Fprintf(e.stdout, "copied %s into %s:\n", checkpoint.Redact(from), checkpoint.Redact(to))
	for _, t := range res.Tables {
		fmt.Fprintf(e.stdout, "  %-16s %d\n", t.Table, t.Rows)
	}
	if res.Scrubbed > 0 {
		fmt.Fprintf(e.stdout, "%s removed from the accounts' recorded configs (a checkpoint should hold none)\n", plural(res.Scrubbed, "secret"))
	}
	fmt.Fprintln(e.stdout, "every table's rows and every account's counts match")
	return exitOK, nil
}

// runLedgerUpgrade is 'mailferry ledger upgrade': checkpoint.Upgrade, which
// upgrades a PostgreSQL ledger with every worker stopped (a SQLite file is
// upgraded by opening it).
func runLedgerUpgrade(ctx context.Context, args []string, e *env) (int, error) {
	var state string
	fs := pflag.NewFlagSet("ledger upgrade", pflag.ContinueOnError)
	fs.StringVar(&state, "state", "", "the checkpoint to upgrade: a file or a postgres:// URL")
	if done, err := parseFlags(fs, args, e, ledgerUpgradeHelp); done || err != nil {
		return helpOrUsage(done, err)
	}
	if state == "" || fs.NArg() > 0 {
		return exitUsage, usagef("want --state STATE, and no other arguments")
	}
	log := newLogger(&commonOptions{logFormat: "text"}, e.stderr)
	opts, err := ledgerOptions(ctx, e, state, config.SecretSource{}, log)
	if err != nil {
		return exitFatal, err
	}
	from, to, err := checkpoint.Upgrade(ctx, state, opts)
	if err != nil {
		return exitFatal, err
	}
	if from == to {
		fmt.Fprintf(e.stdout, "%s is of schema %d already: nothing to upgrade\n", checkpoint.Redact(state), to)
		return exitOK, nil
	}
	fmt.Fprintf(e.stdout, "upgraded %s from schema %d to %d; nothing will be copied again\n", checkpoint.Redact(state), from, to)
	return exitOK, nil
}
