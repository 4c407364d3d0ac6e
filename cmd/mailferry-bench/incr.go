package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The incr workload (issue 18): re-runs of a big IMAP account whose source
// offers CONDSTORE. An account of -incr-folders (50 folders of 2,000
// messages) is copied once; then, IMAP → IMAP over TLS, with the same
// ledger: a re-run with nothing new on loopback and through the delay
// proxies (-delay each way), a re-run after -incr-flags flag changes
// spread over -incr-changed folders on loopback and through the proxies,
// and, for the ratio in the same run, the same flag changes re-run with
// those folders' marks taken out of the ledger (they are then listed whole,
// as every changed folder was before listing by changes). Every run goes
// through the proxies (the account is known by its servers' addresses),
// with no delay for the loopback figures. The round trips
// of a run through the proxies are estimated as (its time − the same run's
// time on loopback) ÷ the round trip.

// incrUser is the source user of the incr workload.
const incrUser = "incr"

// seedIncr writes the incr account.
func (e *env) seedIncr() error {
	f := e.cfg.incrFolders
	start := time.Now()
	for k := range f.count {
		if err := e.src.SeedMaildirBulk(incrUser, flatFolder(k), f.each, func(i int) []byte {
			return flatMessage(e.cfg.seed, k*f.each+i)
		}); err != nil {
			return err
		}
	}
	e.log.Info("seeded incr account", "user", incrUser, "folders", f.count, "each", f.each, "took", time.Since(start).Round(time.Second))
	return nil
}

// incrRun is one measured re-run of the incr workload.
type incrRun struct {
	what          string
	loopback, rtt mailferryRun
	hasRTT        bool
}

// incr runs the incr workload and prints its summary.
func (e *env) incr(ctx context.Context, out io.Writer) error {
	f := e.cfg.incrFolders
	n := f.count * f.each
	user, err := e.freshDest()
	if err != nil {
		return err
	}
	defer e.dropDest(user)
	kind := sourceKinds[1] // IMAP
	// Every run goes through the proxies, without delay on loopback:
	// the account is known by its servers' addresses, which must stay
	// the same for the re-runs to be re-runs.
	srcProxy, err := newDelayProxy(e.srcAddr(kind), 0)
	if err != nil {
		return err
	}
	defer srcProxy.Close()
	dstProxy, err := newDelayProxy(e.dstAddr(), 0)
	if err != nil {
		return err
	}
	defer dstProxy.Close()
	e.runs++
	cmd := copyCommand{
		bin:       e.bin,
		sourceURL: "imaps://" + incrUser + "@" + srcProxy.Addr(),
		destURL:   "imaps://" + user + "@" + dstProxy.Addr(),
		caFile:    e.src.CAFile(),
		state:     filepath.Join(e.dir, fmt.Sprintf("state-%d.db", e.runs)),
		srcPW:     e.srcPW,
		dstPW:     e.dstPW,
		extra:     e.cfg.extra,
	}
	near := func() { srcProxy.SetDelay(0); dstProxy.SetDelay(0) }
	far := func() { srcProxy.SetDelay(e.cfg.delay); dstProxy.SetDelay(e.cfg.delay) }
	name := fmt.Sprintf("incr %dx%d", f.count, f.each)
	rtt := 2 * e.cfg.delay

	e.log.Info("running mailferry", "workload", name, "source", cmd.sourceURL, "dest", cmd.destURL)
	near()
	first, err := e.measure(ctx, cmd)
	if err != nil {
		return err
	}
	if first.copied != n {
		return fmt.Errorf("mailferry copied %d of %d messages of %s", first.copied, n, incrUser)
	}
	e.add(first.row(name, "imap→imap", "mailferry"))
	again := func(distant bool, what string) (mailferryRun, error) {
		near()
		if distant {
			far()
		}
		r, err := e.measure(ctx, cmd)
		if err != nil {
			return r, err
		}
		if r.copied != 0 || r.done != n {
			return r, fmt.Errorf("%s: mailferry copied %d and found %d done, want 0 and %d", what, r.copied, r.done, n)
		}
		return r, nil
	}
	var runs []incrRun
	// Nothing new: -trials times each, medians.
	nothing := incrRun{what: "nothing new", hasRTT: true}
	var loop, distant []mailferryRun
	for range e.cfg.trials {
		r, err := again(false, "nothing new")
		if err != nil {
			return err
		}
		loop = append(loop, r)
		if r, err = again(true, "nothing new at "+rtt.String()); err != nil {
			return err
		}
		distant = append(distant, r)
	}
	nothing.loopback, nothing.rtt = medianRun(loop), medianRun(distant)
	runs = append(runs, nothing)

	// Flag changes: each round flips \Flagged on the same messages, so
	// that every round changes them.
	round := 0
	changeFlags := func() error {
		round++
		op := "add"
		if round%2 == 0 {
			op = "remove"
		}
		per := max(e.cfg.incrFlags/e.cfg.incrChanged, 1)
		for k := range e.cfg.incrChanged {
			if _, err := e.src.Doveadm("flags", op, "-u", incrUser, `\Flagged`, "mailbox", flatFolder(k*f.count/e.cfg.incrChanged),
				"uid", fmt.Sprintf("1:%d", per)); err != nil {
				return fmt.Errorf("changing flags in the incr account: %w", err)
			}
		}
		return nil
	}
	flags := incrRun{what: fmt.Sprintf("after %d flag changes in %d folders", e.cfg.incrFlags, e.cfg.incrChanged), hasRTT: true}
	if err := changeFlags(); err != nil {
		return err
	}
	if flags.loopback, err = again(false, "flag changes"); err != nil {
		return err
	}
	if err := changeFlags(); err != nil {
		return err
	}
	if flags.rtt, err = again(true, "flag changes at "+rtt.String()); err != nil {
		return err
	}
	runs = append(runs, flags)
	// The same, with the changed folders listed whole.
	whole := incrRun{what: flags.what + ", those folders listed whole (no marks)"}
	if err := changeFlags(); err != nil {
		return err
	}
	if err := forgetMarks(ctx, cmd.state, e.cfg.incrChanged, f.count); err != nil {
		return err
	}
	if whole.loopback, err = again(false, "flag changes, listed whole"); err != nil {
		return err
	}
	runs = append(runs, whole)
	for _, r := range runs {
		e.add(r.loopback.row(name, "imap→imap again, "+r.what, "mailferry rerun"))
		if r.hasRTT {
			e.add(r.rtt.row(name, fmt.Sprintf("imap→imap again, %s (%v RTT)", r.what, rtt), "mailferry rerun"))
		}
	}
	printIncr(out, name, n, first, runs, rtt)
	return nil
}

// forgetMarks takes the marks out of the ledger's records of the source
// folders the flag changes touch, as a ledger written before listing by
// changes holds them: those folders are listed whole by the next run.
func forgetMarks(ctx context.Context, state string, changed, count int) error {
	db, err := sql.Open("sqlite", state)
	if err != nil {
		return err
	}
	defer db.Close()
	var names []string
	for k := range changed {
		names = append(names, "'"+flatFolder(k*count/changed)+"'")
	}
	_, err = db.ExecContext(ctx, "UPDATE folders SET uidnext = 0, highestmodseq = 0 WHERE side = 'src' AND name IN ("+strings.Join(names, ",")+")")
	if err != nil {
		return fmt.Errorf("taking the marks out of %s: %w", state, err)
	}
	return nil
}

// medianRun is the run of median wall time.
func medianRun(rs []mailferryRun) mailferryRun {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b mailferryRun) int { return int(a.wall - b.wall) })
	return s[len(s)/2]
}

func printIncr(w io.Writer, name string, n int, first mailferryRun, runs []incrRun, rtt time.Duration) {
	fmt.Fprintf(w, "\nINCREMENTAL IMAP RE-RUNS (issue 18): %s, %d messages, IMAP → IMAP over TLS; first run %.1f s\n", name, n, first.wall.Seconds())
	for _, r := range runs {
		fmt.Fprintf(w, "  %-70s loopback %5.2f s (mailferry %.2f CPU-s)", r.what, r.loopback.wall.Seconds(), r.loopback.cpuSeconds)
		if r.hasRTT {
			fmt.Fprintf(w, "; %v RTT %5.2f s (%.2f × loopback, ≈ %.0f round trips)", rtt, r.rtt.wall.Seconds(),
				r.rtt.wall.Seconds()/r.loopback.wall.Seconds(), (r.rtt.wall-r.loopback.wall).Seconds()/rtt.Seconds())
		}
		fmt.Fprintln(w)
	}
	if len(runs) >= 3 {
		fmt.Fprintf(w, "  flag changes listed by their changes ÷ listed whole, loopback: %.2f ×\n",
			runs[1].loopback.wall.Seconds()/runs[2].loopback.wall.Seconds())
	}
	fmt.Fprintf(w, "  targets (DECISIONS #14): nothing new < 1 s on loopback, < 3 s at 40 ms RTT\n")
}
