package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The fleet workload (issue 18, item 4): many accounts at once. A batch of
// -fleet accounts (200 of 200 small messages by default) is copied by one
// `mailferry run` with `workers = -fleet-workers` (8), and in the same
// trials, taking turns at going first, one account holding the same
// messages (40,000; -fleet-single: the first N of them) by the same
// command: the batch's aggregate rate is compared with that single-account
// rate. The batch is then run again with nothing new.
//
// With -fleet-delay (20 ms one way by default) the same runs go, in the
// same trials, through a delay proxy in front of each server as well: on
// loopback one account keeps the cores busy and workers cannot add to it;
// across a network one account waits on round trips and leaves the cores
// idle, which is where workers pay, and each account's own round trips
// (logins, listing, logouts) are what the batch pays there.
//
// A second batch of -fleet-mixed accounts (16), each with two messages of
// 10–30 MB among smaller ones, gives the peak RSS with that many workers
// on large messages, against the 60 MB + 25 MB per worker (on
// loopback). The messages are the flat workload's (2–4 KB, made from their
// number), written straight into Maildir.

// fleetUser is the source user of batch account a; fleetDest its
// destination user.
func fleetUser(a int) string { return fmt.Sprintf("fleet%03d", a) }
func fleetDest(a int) string { return fmt.Sprintf("fdst%03d", a) }

// fleetMixedUser is the source user of mixed batch account a;
// fleetMixedDest its destination user.
func fleetMixedUser(a int) string { return fmt.Sprintf("fmix%02d", a) }
func fleetMixedDest(a int) string { return fmt.Sprintf("fmixdst%02d", a) }

// The single account that holds every message of the batch, and its
// destination user.
const (
	fleetSingleUser = "fleetone"
	fleetSingleDest = "fdstone"
)

// fleetUsers adds the fleet workload's users to the source's and the
// destination's user maps.
func fleetUsers(cfg config, srcPW, dstPW string, src, dst map[string]string) {
	for a := range cfg.fleet.accounts {
		src[fleetUser(a)], dst[fleetDest(a)] = srcPW, dstPW
	}
	for a := range cfg.fleetMixed {
		src[fleetMixedUser(a)], dst[fleetMixedDest(a)] = srcPW, dstPW
	}
	src[fleetSingleUser], dst[fleetSingleDest] = srcPW, dstPW
}

// fleetMessage is message i of batch account a: message a×messages+i of the
// single account, so that both hold the same bytes (the single account
// the first -fleet-single of them).
func (e *env) fleetMessage(a, i int) []byte {
	return flatMessage(e.cfg.seed, a*e.cfg.fleet.messages+i)
}

// fleetMixedWorkload is mixed batch account a: 12 messages of about 48 MB,
// two of them 10–30 MB (40 MB together), the rest 2 KB to 4 MB.
func fleetMixedWorkload(seed uint64, a int) *workload {
	large := 10 + 5*(a%5)
	return mixedWorkload(fleetMixedUser(a), seed+uint64(a)+1, mixedSpec{Count: 12, TotalBytes: 48 << 20,
		LargeBytes: []int{large << 20, (40 - large) << 20}})
}

// seedFleet writes the batch's accounts, the single account and the mixed
// batch's accounts.
func (e *env) seedFleet() error {
	start := time.Now()
	f := e.cfg.fleet
	for a := range f.accounts {
		if err := e.src.SeedMaildirBulk(fleetUser(a), "INBOX", f.messages, func(i int) []byte {
			m := e.fleetMessage(a, i)
			e.fleetBytes.batch += int64(len(m))
			return m
		}); err != nil {
			return err
		}
	}
	single := e.cfg.fleetSingle
	if err := e.src.SeedMaildirBulk(fleetSingleUser, "INBOX", single, func(i int) []byte {
		m := flatMessage(e.cfg.seed, i)
		e.fleetBytes.single += int64(len(m))
		return m
	}); err != nil {
		return err
	}
	for _, u := range []string{fleetUser(0), fleetUser(f.accounts - 1)} {
		if n, err := e.src.MailboxCount(u, "INBOX"); err != nil || n != f.messages {
			return fmt.Errorf("seeding %s: %d messages, %v", u, n, err)
		}
	}
	if n, err := e.src.MailboxCount(fleetSingleUser, "INBOX"); err != nil || n != single {
		return fmt.Errorf("seeding %s: %d messages, %v", fleetSingleUser, n, err)
	}
	for a := range e.cfg.fleetMixed {
		w := fleetMixedWorkload(e.cfg.seed, a)
		if err := e.seed(fleetMixedUser(a), w); err != nil {
			return err
		}
		e.fleetMixedMsgs += len(w.msgs)
	}
	e.log.Info("seeded the fleet", "accounts", f.accounts, "each", f.messages, "single", single, "mixed_accounts", e.cfg.fleetMixed,
		"took", time.Since(start).Round(time.Second))
	return nil
}

// fleetJob is one `mailferry run` over a batch: its config file, accounts
// file and state, written by write.
type fleetJob struct {
	dir     string // private to this run: the config, the accounts file, the state
	workers int
	// srcURL and dstURL are the servers without users; plain: without TLS
	// (?tls=none in the URLs, allow_plaintext).
	srcURL, dstURL string
	plain          bool
	caFile         string
	// destFolder is where POP3 mail goes; "" for an IMAP source, whose
	// folders map by name.
	destFolder string
	users      [][2]string // source user, destination user
}

// The environment variables the accounts file names for the passwords.
const (
	fleetSrcPWEnv = "BENCH_SOURCE_PASSWORD"
	fleetDstPWEnv = "BENCH_DEST_PASSWORD"
)

// config is the job's migrate.toml.
func (j fleetJob) config() string {
	var b strings.Builder
	fmt.Fprintf(&b, "state = %q\nworkers = %d\naccounts_file = %q\n\n", filepath.Join(j.dir, "state.db"), j.workers,
		filepath.Join(j.dir, "accounts.csv"))
	for _, sec := range []struct{ name, url string }{{"source", j.srcURL}, {"destination", j.dstURL}} {
		fmt.Fprintf(&b, "[%s]\nurl = %q\ntls_ca = %q\n", sec.name, sec.url, j.caFile)
		if j.plain {
			b.WriteString("allow_plaintext = true\n")
		}
		if sec.name == "destination" && j.destFolder != "" {
			fmt.Fprintf(&b, "folder = %q\n", j.destFolder)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// accounts is the job's accounts file: one row per account, the passwords
// from the environment.
func (j fleetJob) accounts() string {
	var b strings.Builder
	b.WriteString("source_user,source_password_env,dest_user,dest_password_env\n")
	for _, u := range j.users {
		fmt.Fprintf(&b, "%s,%s,%s,%s\n", u[0], fleetSrcPWEnv, u[1], fleetDstPWEnv)
	}
	return b.String()
}

// write writes the config and the accounts file into j.dir and returns the
// config's path.
func (j fleetJob) write() (string, error) {
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		return "", err
	}
	if err := writePrivate(filepath.Join(j.dir, "accounts.csv"), j.accounts()); err != nil {
		return "", err
	}
	path := filepath.Join(j.dir, "migrate.toml")
	return path, writePrivate(path, j.config())
}

// fleetURL is a server's URL for a batch's config: no user, and
// ?tls=none without TLS.
func fleetURL(proto, addr string, secure bool) string {
	if secure {
		return proto + "s://" + addr
	}
	return proto + "://" + addr + "?tls=none"
}

// fleetLink is how a fleet run reaches the servers: on loopback, or
// through delay proxies in front of both (rtt: twice the one-way delay).
type fleetLink struct {
	rtt      time.Duration // 0 on loopback
	src, dst string        // the source's listener of the path measured, the destination's
}

// label is what the link adds to a path's name: "" on loopback, else
// " (40ms RTT)", as the latency scenario writes it.
func (l fleetLink) label() string {
	if l.rtt == 0 {
		return ""
	}
	return fmt.Sprintf(" (%v RTT)", l.rtt)
}

// fleetLinks are the links to the servers at src and dst that a path is
// measured on: loopback, and with a delay (-fleet-delay, one way) through
// a delay proxy in front of each server, as the latency scenario has them.
// stop stops the proxies.
func fleetLinks(src, dst string, delay time.Duration) (links []fleetLink, stop func(), err error) {
	loop := fleetLink{src: src, dst: dst}
	if delay == 0 {
		return []fleetLink{loop}, func() {}, nil
	}
	srcProxy, err := newDelayProxy(src, delay)
	if err != nil {
		return nil, nil, err
	}
	dstProxy, err := newDelayProxy(dst, delay)
	if err != nil {
		srcProxy.Close()
		return nil, nil, err
	}
	far := fleetLink{rtt: 2 * delay, src: srcProxy.Addr(), dst: dstProxy.Addr()}
	return []fleetLink{loop, far}, func() { srcProxy.Close(); dstProxy.Close() }, nil
}

// runFleet runs bin's `mailferry run` over users (source, destination) on
// kind's path through link with workers, checks that it copied want
// messages, and, when again, runs it a second time, which must find every
// one done. The destination users' mail is removed afterwards.
func (e *env) runFleet(ctx context.Context, bin string, kind sourceKind, link fleetLink, users [][2]string, want int, again bool) (first, second mailferryRun, err error) {
	defer func() {
		for _, u := range users {
			e.dropDest(u[1])
		}
	}()
	e.runs++
	job := fleetJob{
		dir: filepath.Join(e.dir, fmt.Sprintf("fleet-%d", e.runs)), workers: e.cfg.fleetWorkers,
		srcURL: fleetURL(kind.name, link.src, e.secure), dstURL: fleetURL("imap", link.dst, e.secure),
		plain: !e.secure, caFile: e.src.CAFile(), users: users,
	}
	if kind.name == "pop3" {
		job.destFolder = "INBOX"
	}
	path, err := job.write()
	if err != nil {
		return first, second, err
	}
	args := []string{"run", "-c", path, "--json", "--progress", "none"}
	env := []string{fleetSrcPWEnv + "=" + e.srcPW, fleetDstPWEnv + "=" + e.dstPW}
	what := fmt.Sprintf("mailferry run over %d accounts (%s, %s%s%s)", len(users), users[0][0], e.pathName(kind), link.label(), baselineLabel(bin, e.bin))
	e.log.Info("running mailferry", "bin", bin, "accounts", len(users), "workers", e.cfg.fleetWorkers, "path", e.pathName(kind)+link.label(), "config", path)
	measure := func(step string) (mailferryRun, error) {
		env := env
		if e.fleetProfile != "" {
			env = append(slices.Clip(env), profileDirEnv+"="+e.cfg.profileDir, profileNameEnv+"="+e.fleetProfile+"-"+step)
		}
		before := e.cpu.snapshot()
		r, err := runMailferry(ctx, bin, args, env, what)
		r.cpu = e.cpu.since(before, r.cpuSeconds)
		return r, err
	}
	if first, err = measure("copy"); err != nil {
		return first, second, err
	}
	if first.copied != want || first.accounts != len(users) {
		return first, second, fmt.Errorf("%s: copied %d messages of %d accounts, want %d of %d", what, first.copied, first.accounts, want, len(users))
	}
	// The first and the last account's destinations hold their share.
	for _, u := range []string{users[0][1], users[len(users)-1][1]} {
		n, err := e.dst.MailboxCount(u, "INBOX")
		if err != nil {
			return first, second, err
		}
		if n != want/len(users) {
			return first, second, fmt.Errorf("%s: destination %s holds %d messages, want %d", what, u, n, want/len(users))
		}
	}
	if !again {
		return first, second, nil
	}
	if second, err = measure("rerun"); err != nil {
		return first, second, err
	}
	if second.copied != 0 || second.done != want {
		return first, second, fmt.Errorf("%s again: copied %d and found %d done, want 0 and %d", what, second.copied, second.done, want)
	}
	return first, second, nil
}

// fleetTrial is one trial of the batch beside the single account.
type fleetTrial struct {
	batch, single, rerun mailferryRun
}

// fleet runs the fleet workload on every path and transport and prints
// its summary.
func (e *env) fleet(ctx context.Context, out io.Writer) error {
	var sums []fleetSummary
	for _, secure := range e.cfg.tls {
		e.secure = secure
		for _, kind := range sourceKinds {
			if !slices.Contains(e.cfg.paths, kind.name) {
				continue
			}
			s, err := e.fleetPath(ctx, kind)
			if err != nil {
				return err
			}
			sums = append(sums, s...)
		}
	}
	printFleet(out, sums)
	if note := fleetPeersNote(e.cfg, e.peers); note != "" {
		fmt.Fprintln(out, note)
	}
	return nil
}

// fleetPath runs the fleet workload's trials on kind's path on every link
// (loopback, and at -fleet-delay) and returns a summary per link, then
// the mixed batch on loopback.
func (e *env) fleetPath(ctx context.Context, kind sourceKind) ([]fleetSummary, error) {
	f := e.cfg.fleet
	var batch, mixed [][2]string
	for a := range f.accounts {
		batch = append(batch, [2]string{fleetUser(a), fleetDest(a)})
	}
	for a := range e.cfg.fleetMixed {
		mixed = append(mixed, [2]string{fleetMixedUser(a), fleetMixedDest(a)})
	}
	single := [][2]string{{fleetSingleUser, fleetSingleDest}}
	total := f.accounts * f.messages
	links, closeLinks, err := fleetLinks(e.srcAddr(kind), e.dstAddr(), e.cfg.fleetDelay)
	if err != nil {
		return nil, err
	}
	defer closeLinks()
	path := e.pathName(kind)
	name := fmt.Sprintf("fleet %dx%d", f.accounts, f.messages)
	// With -baseline-bin, every binary runs the batch and the single
	// account on every link in every trial, and so does every peer the
	// fleet runs that reads the path, all taking turns at going first.
	// trials[link][binary], peerTrials[link][peer].
	bins := append([]string{e.bin}, e.cfg.baselines...)
	trials := make([][][]fleetTrial, len(links))
	peerTrials := make([][][]fleetTrial, len(links))
	// fps[link] are the peers run there.
	fps, peerNotes := make([][]*peer, len(links)), make([][]string, len(links))
	for l, link := range links {
		fps[l], peerNotes[l] = fleetPeers(e.cfg, e.peers, kind.name, e.secure, link)
		trials[l] = make([][]fleetTrial, len(bins))
		peerTrials[l] = make([][]fleetTrial, len(fps[l]))
	}
	for n := 1; n <= e.cfg.trials; n++ {
		for l, link := range links {
			contenders := len(bins) + len(fps[l])
			for k := range contenders {
				c := (k + n - 1) % contenders
				if c >= len(bins) {
					p := c - len(bins)
					t, err := e.fleetPeerTrial(ctx, fps[l][p], kind, link, batch, single, total, n, name)
					if err != nil {
						return nil, err
					}
					peerTrials[l][p] = append(peerTrials[l][p], t)
					continue
				}
				b := c
				bin := bins[b]
				var t fleetTrial
				// The batch and the single account take turns at going first.
				steps := []func() error{
					func() (err error) {
						t.batch, t.rerun, err = e.runFleet(ctx, bin, kind, link, batch, total, true)
						return err
					},
					func() (err error) {
						t.single, _, err = e.runFleet(ctx, bin, kind, link, single, e.cfg.fleetSingle, false)
						return err
					},
				}
				if n%2 == 0 {
					slices.Reverse(steps)
				}
				for _, step := range steps {
					if err := step(); err != nil {
						return nil, err
					}
				}
				label := func(r row) row {
					r.Trial = n
					if bin != e.bin {
						r.Binary = bin
					}
					return r
				}
				p := path + link.label() + baselineLabel(bin, e.bin)
				e.add(label(t.batch.row(name, fmt.Sprintf("%s, %d accounts, workers %d", p, f.accounts, e.cfg.fleetWorkers), "mailferry fleet")))
				e.add(label(t.rerun.row(name, fmt.Sprintf("%s, %d accounts again, nothing new", p, f.accounts), "mailferry rerun")))
				e.add(label(t.single.row(name, p+", one account of "+fmt.Sprint(e.cfg.fleetSingle), "mailferry")))
				trials[l][b] = append(trials[l][b], t)
			}
		}
	}
	var sums []fleetSummary
	for l, link := range links {
		s := summarizeFleet(path+link.label(), f.accounts, e.cfg.fleetWorkers, trials[l][0])
		s.rtt = link.rtt
		for b, bin := range e.cfg.baselines {
			base := summarizeFleet(path+link.label()+baselineLabel(bin, e.bin), f.accounts, e.cfg.fleetWorkers, trials[l][b+1])
			base.rtt = link.rtt
			s.versus = append(s.versus, versusBaseline("baseline "+filepath.Base(bin), trials[l][0], trials[l][b+1]))
			s.baselines = append(s.baselines, base)
		}
		s.peerNotes = peerNotes[l]
		for i, p := range fps[l] {
			ps := summarizeFleetPeer(p, path+link.label(), f.accounts, e.cfg.fleetWorkers, trials[l][0], peerTrials[l][i])
			ps.summary.rtt = link.rtt
			s.peers = append(s.peers, ps)
		}
		if link.rtt > 0 {
			// The same binary's runs at the delay over those on loopback,
			// trial by trial.
			v := versusBaseline("loopback", trials[l][0], trials[0][0])
			s.versusLoopback = &v
		}
		sums = append(sums, s)
	}
	if e.cfg.profileDir != "" {
		if err := e.profileFleet(ctx, kind, links[0], batch, total); err != nil {
			return nil, err
		}
	}
	if len(mixed) > 0 {
		r, _, err := e.runFleet(ctx, e.bin, kind, links[0], mixed, e.fleetMixedMsgs, false)
		if err != nil {
			return nil, err
		}
		e.add(r.row(fmt.Sprintf("fleet mixed %d", len(mixed)), fmt.Sprintf("%s, %d accounts, workers %d", path, len(mixed), e.cfg.fleetWorkers), "mailferry fleet"))
		sums[0].mixedAccounts, sums[0].mixed = len(mixed), &r
	}
	return sums, nil
}

// fleetSummary is what the trials of one path come to.
type fleetSummary struct {
	path              string
	accounts, workers int
	trials            int
	// The messages of the batch (all its accounts') and of the single
	// account.
	batchMessages, singleMessages int
	// rtt is the round trip added by the delay proxies (0 on loopback);
	// versusLoopback, with one, is this binary's runs at the delay over
	// its runs on loopback in the same trials.
	rtt            time.Duration
	versusLoopback *fleetVersus
	// accountSeconds is the median of the batch's wall seconds × workers
	// ÷ accounts: a worker's time per account (at most: the last accounts
	// leave workers idle). At a delay, over the round trip, it says how
	// many round trips an account waits for, while the cores are not the
	// bound.
	accountSeconds float64
	// Medians of the trials: messages per second of the batch (aggregate)
	// and of the single account, the batch's over the single account's
	// (ratios per trial), the batch's run with nothing new, peak RSS.
	batchRate, singleRate float64
	ratio                 float64
	ratios                []float64
	rerunSeconds          float64
	batchRSSMB            float64
	singleRSSMB           float64
	// CPU milliseconds per message of each party, batch and single.
	batchCPU, singleCPU partyCPU
	// The mixed batch (nil when not run).
	mixedAccounts int
	mixed         *mailferryRun
	// With -baseline-bin: each baseline binary's own summary, and how
	// this binary compares with it in the same trials.
	baselines []fleetSummary
	versus    []fleetVersus
	// With peers on the fleet (-peers naming them): each peer's figures
	// in the same trials.
	peers []fleetPeerSummary
	// peerNotes say which peers were left out on this link, and why.
	peerNotes []string
}

// fleetVersus compares runs with others trial by trial (./cmd/mailferry
// with a baseline binary, or runs at a delay with those on loopback): the
// batch's rate, the single account's rate and the re-run's seconds, the
// former's over the latter's.
type fleetVersus struct {
	name                 string
	batch, single, rerun []float64
}

// versusBaseline is fleetVersus of the trials ours and the trials base,
// named name ("baseline mf-before", "loopback"), paired by trial.
func versusBaseline(name string, ours, base []fleetTrial) fleetVersus {
	v := fleetVersus{name: name}
	for i := range min(len(ours), len(base)) {
		o, b := ours[i], base[i]
		if b.batch.rate() > 0 {
			v.batch = append(v.batch, o.batch.rate()/b.batch.rate())
		}
		if b.single.rate() > 0 {
			v.single = append(v.single, o.single.rate()/b.single.rate())
		}
		if b.rerun.wall > 0 {
			v.rerun = append(v.rerun, o.rerun.wall.Seconds()/b.rerun.wall.Seconds())
		}
	}
	return v
}

// partyCPU is the CPU milliseconds per message of mailferry and the two
// servers, the cores they kept busy, and the cores busy on the machine
// (theirs, the bench's own with its delay proxies, other users').
type partyCPU struct {
	mailferry, source, dest float64
	busy, machine           float64
}

// sum is the three parties' CPU per message.
func (p partyCPU) sum() float64 { return p.mailferry + p.source + p.dest }

// cpuOf is the median CPU per message of runs.
func cpuOf(runs []mailferryRun) partyCPU {
	var mf, src, dst, busy, machine []float64
	for _, r := range runs {
		if r.copied == 0 || r.cpu.Wall <= 0 {
			continue
		}
		n := float64(r.copied)
		mf, src, dst = append(mf, 1000*r.cpu.Client/n), append(src, 1000*r.cpu.Source/n), append(dst, 1000*r.cpu.Dest/n)
		busy, machine = append(busy, r.cpu.ours()/r.cpu.Wall), append(machine, r.cpu.Machine/r.cpu.Wall)
	}
	return partyCPU{mailferry: median(mf), source: median(src), dest: median(dst), busy: median(busy), machine: median(machine)}
}

// rate is a run's messages per second, by the wall clock around the
// process.
func (m mailferryRun) rate() float64 {
	if m.wall <= 0 {
		return 0
	}
	return float64(m.copied) / m.wall.Seconds()
}

// summarizeFleet reduces the trials of one path to medians.
func summarizeFleet(path string, accounts, workers int, trials []fleetTrial) fleetSummary {
	s := fleetSummary{path: path, accounts: accounts, workers: workers, trials: len(trials)}
	var br, sr, rerun, brss, srss, acct []float64
	var bRuns, sRuns []mailferryRun
	for _, t := range trials {
		br, sr = append(br, t.batch.rate()), append(sr, t.single.rate())
		if t.single.rate() > 0 {
			s.ratios = append(s.ratios, t.batch.rate()/t.single.rate())
		}
		rerun = append(rerun, t.rerun.wall.Seconds())
		acct = append(acct, t.batch.wall.Seconds()*float64(workers)/float64(accounts))
		brss, srss = append(brss, float64(t.batch.peakRSSKB)/1024), append(srss, float64(t.single.peakRSSKB)/1024)
		bRuns, sRuns = append(bRuns, t.batch), append(sRuns, t.single)
		s.batchMessages, s.singleMessages = t.batch.copied, t.single.copied
	}
	s.batchRate, s.singleRate, s.ratio = median(br), median(sr), median(s.ratios)
	s.rerunSeconds, s.batchRSSMB, s.singleRSSMB = median(rerun), median(brss), median(srss)
	s.accountSeconds = median(acct)
	s.batchCPU, s.singleCPU = cpuOf(bRuns), cpuOf(sRuns)
	return s
}

// rssBudgetMB is issue 18's memory target for a batch: 60 MB plus 25 MB
// per worker.
func rssBudgetMB(workers int) float64 { return 60 + 25*float64(workers) }

func printFleet(w io.Writer, sums []fleetSummary) {
	fmt.Fprintln(w, "\nFLEET (issue 18, item 4)")
	fmt.Fprintln(w, "  msgs/s: the messages a `mailferry run` copied ÷ its process's wall seconds, for the batch and the single account alike")
	for _, s := range sums {
		printFleetSummary(w, s)
		for _, b := range s.baselines {
			printFleetSummary(w, b)
		}
		for _, v := range s.versus {
			printFleetVersus(w, "./cmd/mailferry", v)
		}
		if len(s.peers) > 0 {
			fmt.Fprintf(w, "    mailferry's CPU bound, batch ÷ single: %.2f (as the other tools' below)\n", boundRatio(s))
		}
		for _, p := range s.peers {
			printFleetPeer(w, p)
		}
		for _, n := range s.peerNotes {
			fmt.Fprintf(w, "    %s\n", n)
		}
		if s.versusLoopback != nil {
			printFleetVersus(w, fmt.Sprintf("at %v RTT", s.rtt), *s.versusLoopback)
		}
	}
}

// printFleetVersus prints what runs named what came to over v's.
func printFleetVersus(w io.Writer, what string, v fleetVersus) {
	fmt.Fprintf(w, "    %s ÷ %s, same trials: batch rate %.2f (trials %s), single account's rate %.2f (trials %s)", what, v.name,
		median(v.batch), list(v.batch), median(v.single), list(v.single))
	if len(v.rerun) > 0 { // the peers have no re-run
		fmt.Fprintf(w, ", re-run with nothing new: seconds %.2f (trials %s)", median(v.rerun), list(v.rerun))
	}
	fmt.Fprintln(w)
}

// printFleetSummary prints one binary's figures of one path.
func printFleetSummary(w io.Writer, s fleetSummary) {
	fmt.Fprintf(w, "  %s, median of %d trial(s): %d accounts, %d messages, with workers = %d: %.0f msgs/s aggregate; one account of %d of those messages: "+
		"%.0f msgs/s; aggregate ÷ single %.2f (trials %s) %s; again with nothing new %.2f s; peak RSS %.1f MB (single %.1f MB)\n",
		s.path, s.trials, s.accounts, s.batchMessages, s.workers, s.batchRate, s.singleMessages, s.singleRate, s.ratio, list(s.ratios),
		verdict(s.ratio >= 1), s.rerunSeconds, s.batchRSSMB, s.singleRSSMB)
	printFleetCPU(w, "mailferry", s)
	fmt.Fprintf(w, "    per account of the batch: %.3f s of a worker (wall × workers ÷ accounts)", s.accountSeconds)
	if s.rtt > 0 {
		// Round trips only while the cores are not the bound: a starved
		// run's accounts take longer for want of CPU.
		fmt.Fprintf(w, " = %.1f × the %v round trip", s.accountSeconds/s.rtt.Seconds(), s.rtt)
	}
	fmt.Fprintln(w)
	if s.mixed != nil {
		m := s.mixed
		rss, budget := float64(m.peakRSSKB)/1024, rssBudgetMB(s.workers)
		fmt.Fprintf(w, "    mixed batch: %d accounts, %d messages, %.0f MB with workers = %d in %.1f s (%.1f MB/s): peak RSS %.1f MB, "+
			"target ≤ 60 + 25 × %d = %.0f MB %s\n", s.mixedAccounts, m.copied, mb(m.bytes), s.workers, m.wall.Seconds(),
			mb(m.bytes)/m.wall.Seconds(), rss, s.workers, budget, verdict(rss <= budget))
	}
}

// cpuBound is the messages per second cores allow at p's CPU per message.
func cpuBound(p partyCPU, cores int) float64 {
	if p.sum() <= 0 {
		return 0
	}
	return float64(cores) * 1000 / p.sum()
}
