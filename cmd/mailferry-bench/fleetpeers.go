package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// The other tools on the fleet workload (issue 18, item 4): whether a
// batch of accounts can go faster than one account holding the same
// messages depends on this machine's cores and on what the servers spend
// per login; the same batch copied by doveadm and mbsync, in the same
// trials, says what other tools get out of the same machine. Neither has
// a batch mode: an admin runs one process per account, a few at a time,
// and so does the bench (-fleet-workers processes at once, each account's
// as soon as one ends). The single account is one process.
//
// With -peers auto, the default, the fleet runs mailferry alone (the
// peers would double its minutes); naming them (-peers doveadm,mbsync)
// runs them on the fleet as well.

// fleetPeers are the peers the fleet runs on kind's path through link:
// those named with -peers (none with -peers auto) that read kind over the
// transport, and through delay proxies only those that do not wait a
// round trip per message there; notes say which were left out for that.
func fleetPeers(cfg config, chosen []*peer, kind string, secure bool, link fleetLink) (ps []*peer, notes []string) {
	if cfg.peersAuto {
		return nil, nil
	}
	for _, p := range chosen {
		if !p.reads(kind, secure) {
			continue
		}
		if link.rtt > 0 && slices.Contains(p.perMessageRoundTrip, kind) {
			notes = append(notes, fmt.Sprintf("%s not run at %v RTT: it reads %s a message per round trip", p.name, link.rtt, kind))
			continue
		}
		ps = append(ps, p)
	}
	return ps, notes
}

// fleetPeersNote is what the fleet says of the peers with -peers auto:
// those installed are not run on it unless named.
func fleetPeersNote(cfg config, chosen []*peer) string {
	if !cfg.peersAuto || len(chosen) == 0 {
		return ""
	}
	var names []string
	for _, p := range chosen {
		names = append(names, p.name)
	}
	return fmt.Sprintf("  other tools: not run on the fleet with -peers auto (it would take twice the minutes); -peers %s runs them beside mailferry", strings.Join(names, ","))
}

// peerTally adds up the processes of a peer's batch: their CPU time, and
// the largest peak RSS among them (each process's own: what one account
// costs the machine's memory, as mailferry's peak RSS is its process's).
type peerTally struct {
	cpuSeconds float64
	peakRSSKB  int64
	processes  int
}

func (t *peerTally) add(r peerRun) {
	t.cpuSeconds += r.cpuSeconds
	t.peakRSSKB = max(t.peakRSSKB, r.peakRSSKB)
	t.processes++
}

// runPeerFleet runs p once per account of users (source, destination),
// workers processes at a time, on kind's path through link, and measures
// the whole batch as one run: its wall time, the processes' CPU summed and
// the servers' around them, the largest peak RSS of one process. Each
// destination user has no mail storage yet (runFleet removes it after each
// run, as runPeer needs: doveadm's backup -R refuses an INBOX made
// before); every one must then hold want ÷ len(users) messages. The
// destination users' mail is removed afterwards.
func (e *env) runPeerFleet(ctx context.Context, p *peer, kind sourceKind, link fleetLink, users [][2]string, want, workers int) (mailferryRun, error) {
	var r mailferryRun
	defer func() {
		for _, u := range users {
			e.dropDest(u[1])
		}
	}()
	e.runs++
	dir := filepath.Join(e.dir, fmt.Sprintf("fleet-%s-%d", p.name, e.runs))
	defer os.RemoveAll(dir)
	what := fmt.Sprintf("%s over %d accounts (%s, %s%s)", p.name, len(users), users[0][0], e.pathName(kind), link.label())
	// Every process's files are written before the clock starts, as
	// mailferry's config and accounts file are.
	type job struct {
		user string
		run  func(context.Context) (peerRun, error)
	}
	jobs := make([]job, len(users))
	for i, u := range users {
		jd := filepath.Join(dir, fmt.Sprint(i))
		if err := os.MkdirAll(jd, 0o700); err != nil {
			return r, err
		}
		cmd, err := p.command(peerJob{
			dir: jd, kind: kind.name, secure: e.secure, srcAddr: link.src, dstAddr: link.dst,
			srcUser: u[0], dstUser: u[1], srcPW: e.srcPW, dstPW: e.dstPW,
			caFile: e.src.CAFile(), dstConf: e.dst.ConfigPath(),
		})
		if err != nil {
			return r, fmt.Errorf("%s: %w", what, err)
		}
		jobs[i] = job{user: u[0], run: func(ctx context.Context) (peerRun, error) { return runChild(ctx, cmd) }}
	}
	e.log.Info("running "+p.name+" on the fleet", "accounts", len(users), "at_once", workers, "path", e.pathName(kind)+link.label())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		tally peerTally
		errs  []error
		wg    sync.WaitGroup
	)
	next := make(chan job)
	before := e.cpu.snapshot()
	start := time.Now()
	for range min(workers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				pr, err := j.run(ctx)
				mu.Lock()
				tally.add(pr)
				if err != nil && ctx.Err() == nil {
					errs = append(errs, fmt.Errorf("%s for %s: %w", p.name, j.user, err))
					cancel() // one failure fails the batch: stop the others
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case next <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	r.wall = time.Since(start)
	r.cpuSeconds, r.peakRSSKB = tally.cpuSeconds, tally.peakRSSKB
	r.cpu = e.cpu.since(before, r.cpuSeconds)
	if len(errs) > 0 {
		return r, fmt.Errorf("%s: %w", what, errors.Join(errs...))
	}
	if err := ctx.Err(); err != nil {
		return r, fmt.Errorf("%s: %w", what, err)
	}
	// The peers report nothing the bench reads: the destinations say what
	// they copied, every account its share.
	for _, u := range users {
		n, err := e.dst.MailboxCount(u[1], "INBOX")
		if err != nil {
			return r, fmt.Errorf("%s: counting %s's INBOX: %w", what, u[1], err)
		}
		if n != want/len(users) {
			return r, fmt.Errorf("%s: destination %s holds %d messages, want %d", what, u[1], n, want/len(users))
		}
		r.copied += n
	}
	return r, nil
}

// fleetPeerSummary is one peer's figures on one path and link, and
// mailferry's runs over the peer's in the same trials.
type fleetPeerSummary struct {
	name, note string
	summary    fleetSummary
	versus     fleetVersus
}

// summarizeFleetPeer reduces p's trials on path (batch and single, no
// re-run) to medians, and sets mailferry's trials beside them.
func summarizeFleetPeer(p *peer, path string, accounts, workers int, mailferry, trials []fleetTrial) fleetPeerSummary {
	return fleetPeerSummary{
		name: p.name, note: p.note,
		summary: summarizeFleet(path+", "+p.name, accounts, workers, trials),
		versus:  versusBaseline(p.name, mailferry, trials),
	}
}

// fleetPeerTrial is trial n of p on the fleet: the batch and the single
// account (taking turns at going first, as mailferry's do), each a row
// of the workload name.
func (e *env) fleetPeerTrial(ctx context.Context, p *peer, kind sourceKind, link fleetLink, batch, single [][2]string, total, n int, name string) (fleetTrial, error) {
	var t fleetTrial
	steps := []func() error{
		func() (err error) {
			t.batch, err = e.runPeerFleet(ctx, p, kind, link, batch, total, e.cfg.fleetWorkers)
			return err
		},
		func() (err error) {
			t.single, err = e.runPeerFleet(ctx, p, kind, link, single, e.cfg.fleetSingle, 1)
			return err
		},
	}
	if n%2 == 0 {
		slices.Reverse(steps)
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return t, err
		}
	}
	// The destinations hold every message (runPeerFleet counts them):
	// the bytes are the seeded ones.
	t.batch.bytes, t.single.bytes = e.fleetBytes.batch, e.fleetBytes.single
	path := e.pathName(kind) + link.label() + ", " + p.name
	for _, r := range []row{
		t.batch.row(name, fmt.Sprintf("%s, %d accounts, %d at once", path, len(batch), e.cfg.fleetWorkers), "peer fleet"),
		t.single.row(name, fmt.Sprintf("%s, one account of %d", path, e.cfg.fleetSingle), "peer"),
	} {
		r.Trial = n
		e.add(r)
	}
	return t, nil
}

// printFleetPeer prints a peer's figures beside mailferry's: its
// aggregate over its single account, each party's CPU, and mailferry's
// rates over its.
func printFleetPeer(w io.Writer, p fleetPeerSummary) {
	s := p.summary
	fmt.Fprintf(w, "  %s, median of %d trial(s): %d accounts, %d messages, %d processes at once (one per account): %.0f msgs/s aggregate; "+
		"one account of %d of those messages, one process: %.0f msgs/s; aggregate ÷ single %.2f (trials %s), CPU bound batch ÷ single %.2f; "+
		"peak RSS of one process %.1f MB (single %.1f MB)\n",
		s.path, s.trials, s.accounts, s.batchMessages, s.workers, s.batchRate, s.singleMessages, s.singleRate, s.ratio, list(s.ratios),
		boundRatio(s), s.batchRSSMB, s.singleRSSMB)
	fmt.Fprintf(w, "    %s: %s\n", p.name, p.note)
	printFleetCPU(w, p.name, s)
	fmt.Fprintf(w, "    per account of the batch: %.3f s of a process slot (wall × processes at once ÷ accounts)", s.accountSeconds)
	if s.rtt > 0 {
		fmt.Fprintf(w, " = %.1f × the %v round trip", s.accountSeconds/s.rtt.Seconds(), s.rtt)
	}
	fmt.Fprintln(w)
	printFleetVersus(w, "mailferry", p.versus)
}

// boundRatio is the batch's CPU bound over the single account's: the
// single account's CPU per message (all three parties) over the batch's.
// Unlike the rates' ratio it does not lean to the batch on a crowded
// machine, where 8 processes get more of the cores than one. 0 without
// figures.
func boundRatio(s fleetSummary) float64 {
	if s.batchCPU.sum() <= 0 {
		return 0
	}
	return s.singleCPU.sum() / s.batchCPU.sum()
}

// printFleetCPU prints the CPU lines of s, the client named tool.
func printFleetCPU(w io.Writer, tool string, s fleetSummary) {
	for _, c := range []struct {
		name string
		p    partyCPU
	}{{"batch", s.batchCPU}, {"single", s.singleCPU}} {
		fmt.Fprintf(w, "    CPU ms per message, %s: %s %.3f, source Dovecot %.3f, destination Dovecot %.3f (sum %.3f); busy %.2f cores "+
			"(the machine %.2f); CPU bound %.0f msgs/s on %d cores\n", c.name, tool, c.p.mailferry, c.p.source, c.p.dest, c.p.sum(), c.p.busy,
			c.p.machine, cpuBound(c.p, runtime.NumCPU()), runtime.NumCPU())
	}
}
