package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/pipeline"
)

// The ledger at scale (issue 18, item 5): a real account's no-op re-run
// and `mailferry status` inside a ledger of -flat-ledger entries over
// ledgerAccounts accounts. The largest flat mailbox of each path, once
// copied and re-run, has its ledger topped up with POP3 accounts like a
// migration's (each with its entries and one run) to -flat-ledger entries;
// then mailferry runs again over that mailbox with nothing new, and
// `mailferry status` reads every account.

// ledgerAccounts is how many accounts the topped-up ledger holds, the
// real one included.
const ledgerAccounts = 10000

// ledgerScale is what the ledger at scale measured.
type ledgerScale struct {
	entries, accounts int64
	bytes             int64
	pad               time.Duration
	rerun             mailferryRun // the real account again, nothing new
	status            time.Duration
	statusCPU         float64 // the status process's CPU seconds
}

// share is account a's share of entries spread over accounts: the shares
// differ by at most one and add up to entries.
func share(entries, accounts, a int) int {
	return entries*(a+1)/accounts - entries*a/accounts
}

// padLedger writes entries done entries spread over accounts POP3
// accounts (user00000, user00001, …), each with one finished run, and
// returns how many accounts it wrote.
func padLedger(ctx context.Context, l *checkpoint.Ledger, entries, accounts int, log interface{ Info(string, ...any) }) (int, error) {
	start := time.Now()
	for a := range accounts {
		user := fmt.Sprintf("user%05d", a)
		spec := checkpoint.AccountSpec{Endpoint: "pop3://" + user + "@pop.old.example:995 -> imap://" + user + "@imap.new.example:993/INBOX",
			SourceProto: "pop3", SourceUser: user, DestUser: user, DestFolder: "INBOX", KeyScheme: "pop3"}
		n := share(entries, accounts, a)
		if err := writeLedgerAccount(ctx, l, spec, n, func(i int) string { return fmt.Sprintf("%08X%08X", i+1, 1700000000+a) },
			func(int) string { return "INBOX" }); err != nil {
			return a, err
		}
		id, _, err := l.LookupAccount(ctx, spec)
		if err != nil {
			return a, err
		}
		run, err := l.StartRun(ctx, id, time.Now())
		if err != nil {
			return a, err
		}
		if err := l.FinishRun(ctx, run, pipeline.RunRecord{Result: "ok", Listed: n, Copied: n}); err != nil {
			return a, err
		}
		if a%1000 == 0 {
			log.Info("building the ledger", "accounts", a, "took", time.Since(start).Round(time.Second))
		}
	}
	return accounts, nil
}

// ledgerAtScale tops up the ledger of cmd, whose account holds n entries,
// to e.cfg.flatLedger entries over ledgerAccounts accounts, runs cmd again
// (it must find all n done) and times `mailferry status` over the ledger.
func (e *env) ledgerAtScale(ctx context.Context, cmd copyCommand, n int) (*ledgerScale, error) {
	ls := &ledgerScale{}
	l, err := checkpoint.Open(ctx, cmd.state, nil)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	_, err = padLedger(ctx, l, e.cfg.flatLedger-n, ledgerAccounts-1, e.log)
	ls.pad = time.Since(start)
	if err == nil {
		ls.bytes, ls.entries, err = l.Size(ctx)
	}
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("topping up the ledger %s: %w", cmd.state, err)
	}
	ls.accounts = ledgerAccounts
	e.log.Info("running mailferry in the large ledger", "entries", ls.entries, "source", cmd.sourceURL)
	if ls.rerun, err = e.measure(ctx, cmd); err != nil {
		return nil, err
	}
	if ls.rerun.copied != 0 || ls.rerun.done != n {
		return nil, fmt.Errorf("mailferry's run in the large ledger copied %d and found %d done, want 0 and %d", ls.rerun.copied, ls.rerun.done, n)
	}
	status := exec.CommandContext(ctx, cmd.bin, "status", "--state", cmd.state, "--json")
	status.Stdout = io.Discard
	var stderr bytes.Buffer
	status.Stderr = &stderr
	start = time.Now()
	if err := status.Run(); err != nil {
		return nil, fmt.Errorf("mailferry status --state %s: %w: %s", cmd.state, err, tail(stderr.String(), 10))
	}
	ls.status = time.Since(start)
	ls.statusCPU = childCPU(status.ProcessState)
	return ls, nil
}

// printLedgerScale prints the ledger at scale of one flat mailbox.
func printLedgerScale(w io.Writer, path string, messages int, ls *ledgerScale) {
	fmt.Fprintf(w, "  %-34s %7d messages inside a ledger of %d entries over %d accounts (topped up in %.0f s): %.0f bytes per entry (%.0f MB); "+
		"again, nothing new %.2f s %s (mailferry %.2f CPU-s, peak RSS %.1f MB); status of every account %.2f s %s (%.2f CPU-s)\n",
		path, messages, ls.entries, ls.accounts, ls.pad.Seconds(), float64(ls.bytes)/float64(max(ls.entries, 1)), float64(ls.bytes)/1e6,
		ls.rerun.wall.Seconds(), verdict(ls.rerun.wall < 2*time.Second), ls.rerun.cpuSeconds, float64(ls.rerun.peakRSSKB)/1024,
		ls.status.Seconds(), verdict(ls.status < time.Second), ls.statusCPU)
}
