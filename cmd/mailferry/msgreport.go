package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/msgreport"
	"github.com/mailferry/mailferry/pipeline"
)

// runReport is `mailferry report`: the per-message report, from the
// checkpoint alone.
func runReport(ctx context.Context, args []string, e *env) (int, error) {
	var o inspectOptions
	fs := pflag.NewFlagSet("report", pflag.ContinueOnError)
	fs.StringVarP(&o.cfgPath, "config", "c", "", "the config file: its state file, and its accounts by name")
	fs.StringSliceVar(&o.only, "only", nil, "only these accounts of the config file (by name)")
	fs.StringVar(&o.common.state, "state", "", "checkpoint (ledger) file")
	fs.StringVar(&o.common.logFormat, "log-format", "text", "log format on stderr: text or json")
	format := fs.String("format", "csv", "csv or json")
	output := fs.StringP("output", "o", "", "write the report to this file (mode 0600) instead of stdout")
	if done, err := parseFlags(fs, args, e, reportHelp); done || err != nil {
		return helpOrUsage(done, err)
	}
	if err := o.check(); err != nil {
		return exitUsage, err
	}
	if fs.NArg() != 0 {
		return exitUsage, usagef("unexpected arguments %q", fs.Args())
	}
	f, err := msgreport.ParseFormat(*format)
	if err != nil {
		return exitUsage, usagef("--format: %v", err)
	}
	log := newLogger(&o.common, e.stderr)
	var configured []namedAccount
	state := o.common.state
	if o.cfgPath != "" {
		cfg, err := loadConfig(o.cfgPath, log)
		if err != nil {
			return exitUsage, err
		}
		state = firstNonEmpty(state, cfg.State)
		o.statePassword = cfg.StatePassword
		if configured, err = configuredAccounts(cfg, o.only); err != nil {
			return exitUsage, err
		}
	} else if len(o.only) > 0 {
		return exitUsage, usagef("--only needs -c FILE")
	}
	if state, err = o.statePath(state, e); err != nil {
		return exitUsage, err
	}
	ledger, err := openLedgerIfExists(ctx, e, state, o.statePassword, log)
	if err != nil {
		return exitFatal, err
	}
	if ledger == nil {
		return exitFatal, fmt.Errorf("no checkpoint at %s: nothing has run with this state file, so there is nothing to report", state)
	}
	defer ledger.Close()
	var accounts []msgreport.Account
	if o.cfgPath != "" {
		for _, a := range configured {
			accounts = append(accounts, msgreport.Account{Name: a.name, Key: a.key})
		}
	} else {
		keys, err := ledger.Accounts(ctx)
		if err != nil {
			return exitFatal, err
		}
		for _, k := range keys {
			accounts = append(accounts, msgreport.Account{Name: k, Key: k})
		}
	}
	var w io.Writer = e.stdout
	var file *os.File
	if *output != "" {
		if file, err = os.OpenFile(*output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return exitFatal, fmt.Errorf("writing the report: %w", err)
		}
		w = file
	}
	scan := func(ctx context.Context, key string, fn func(pipeline.Entry) error) error {
		return ledger.Each(ctx, key, checkpoint.ScanOptions{}, fn)
	}
	rows, err := msgreport.Write(ctx, w, f, accounts, scan)
	if file != nil {
		if cerr := file.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("writing the report %s: %w", *output, cerr)
		}
	}
	if err != nil {
		return exitFatal, err
	}
	log.Debug("report written", "rows", rows, "accounts", len(accounts))
	return exitOK, nil
}

const reportHelp = `mailferry report - one row per message: where it came from, where it went, what happened

USAGE
  mailferry report [-c migrate.toml [--only NAME,...] | --state FILE] [--format csv|json] [-o FILE]

For every message the checkpoint knows: the account (its name in the
config, else its checkpoint key), the source folder (empty for POP3) and
id (IMAP UIDVALIDITY and UID; POP3 UIDL), the destination folder,
UIDVALIDITY and UID, the size, the state (copied, skipped, failed, pending)
and its reason, and when. CSV has a header line; JSON is one array, one
message per line. Rows are written as they are read, so the report of a
huge checkpoint needs no more memory than a small one's. report only reads
the checkpoint; it connects to nothing. The status page (mailferry run or
status with ui_addr) offers the same report for download.

The checkpoint does not record deletions at the source (delete_source,
delete_after): a message deleted after it was copied is reported as copied.

FLAGS
  -c, --config FILE         the config file (its state file and accounts)
  --only NAME[,NAME...]     only these accounts (with -c)
  --state FILE              checkpoint file (default: the config's, else
                            $XDG_STATE_HOME/mailferry/mailferry.db)
  --format csv|json         csv (default) or json
  -o, --output FILE         write to FILE (mode 0600) instead of stdout
  --log-format FORMAT       text (default) or json

EXIT STATUS
  0    the report was written
  1    the checkpoint could not be read, there is none, or the report
       could not be written
  2    bad command line or configuration
`
