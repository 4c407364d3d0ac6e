package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/secret"
)

// sourceKind is one protocol the source is read with, i.e. one migration
// path ("pop3→imap"). A kind knows mailferry's SOURCE URL for a user, which
// listener of the source server it reads, and its raw read ceilings. The
// IMAP source adds one more kind: an imaps:// URL on IMAPSAddr and a
// pipelined UID FETCH ceiling; everything else (workloads, write ceilings,
// latency proxy, table) is shared.
type sourceKind struct {
	name string
	// addr is the source's listener: implicit TLS when secure, else the
	// plain one.
	addr func(s *dovecot.Server, secure bool) string
	// url is mailferry's SOURCE URL; without TLS it carries ?tls=none.
	url      func(addr, user string, secure bool) string
	ceilings []readCeiling
	// destMailbox is where mailferry puts the messages on the destination:
	// the DEST URL's folder for POP3; for IMAP the source's INBOX maps to
	// the destination's INBOX.
	destMailbox string
}

// readCeiling is one way of reading every message of a source mailbox as
// fast as the server allows. Pipelined ones are also run through the delay
// proxy; the others would take one round trip per message there. A nil
// tlsCfg reads in plain text.
type readCeiling struct {
	name      string
	pipelined bool
	read      func(ctx context.Context, addr string, tlsCfg *tls.Config, user string, pw secret.Value) (transfer, error)
}

var sourceKinds = []sourceKind{{
	name: "pop3",
	addr: func(s *dovecot.Server, secure bool) string {
		if secure {
			return s.POP3SAddr()
		}
		return s.POP3Addr()
	},
	url: func(addr, user string, secure bool) string {
		if secure {
			return "pop3s://" + user + "@" + addr
		}
		return "pop3://" + user + "@" + addr + "?tls=none"
	},
	ceilings: []readCeiling{
		{name: "read POP3 RETR", read: readPOP3},
		{name: "read POP3 pipelined RETR", pipelined: true, read: readPOP3Pipelined},
	},
	destMailbox: destMailbox,
}, {
	name: "imap",
	addr: imapAddr,
	url: func(addr, user string, secure bool) string {
		if secure {
			return "imaps://" + user + "@" + addr + "/INBOX"
		}
		return "imap://" + user + "@" + addr + "/INBOX?tls=none"
	},
	ceilings: []readCeiling{
		{name: "read IMAP UID FETCH", read: readIMAP},
		{name: "read IMAP UID FETCH 1:*", pipelined: true, read: readIMAPBatched},
	},
	destMailbox: "INBOX",
}}

// imapAddr is s's IMAP listener: implicit TLS when secure, else the plain
// one.
func imapAddr(s *dovecot.Server, secure bool) string {
	if secure {
		return s.IMAPSAddr()
	}
	return s.IMAPAddr()
}

// destMailbox is where mailferry and the write ceiling store messages.
const destMailbox = "Bench"

// destUsers is the size of the destination's user pool: every measured run
// gets a fresh, empty account.
const destUsers = 250

// env is the running benchmark: servers, workloads, results.
type env struct {
	cfg    config
	log    *slog.Logger
	dir    string
	src    *dovecot.Server
	dst    *dovecot.Server
	tlsCfg *tls.Config
	srcPW  string
	dstPW  string
	bin    string

	cpu *cpuMeter
	// secure is the transport being measured (config.tls): implicit TLS
	// on both sides, or plain text.
	secure bool
	// peers are the other tools measured side by side; missingPeers
	// those -peers auto did not find installed.
	peers        []*peer
	missingPeers []string

	// fleetMixedMsgs is how many messages the fleet workload's mixed
	// batch holds.
	fleetMixedMsgs int
	// fleetBytes is the size of the fleet's batch (all its accounts) and
	// of its single account, for the peers' rows (mailferry reports its
	// own).
	fleetBytes struct{ batch, single int64 }
	// profBin is mailferry built with its profiling hook (-profile on
	// the fleet workload), once; fleetProfile, while set, names the
	// profiles runFleet's runs write (profileFleet).
	profBin      string
	fleetProfile string

	nextDst   int
	runs      int
	rows      []row
	summaries []summary
}

func benchmark(ctx context.Context, cfg config, stdout, stderr io.Writer) (err error) {
	e := &env{cfg: cfg, log: slog.New(slog.NewTextHandler(stderr, nil))}
	began := time.Now()
	if e.dir, err = os.MkdirTemp("", "mailferry-bench-"); err != nil {
		return fmt.Errorf("creating the temp directory: %w", err)
	}
	defer func() {
		if cfg.keep {
			e.log.Info("kept the temp directory", "dir", e.dir)
			return
		}
		os.RemoveAll(e.dir)
	}()
	// Dovecot's unprivileged processes must traverse it (MkdirTemp: 0700).
	if err := os.Chmod(e.dir, 0o755); err != nil {
		return fmt.Errorf("making %s traversable: %w", e.dir, err)
	}
	if err := e.start(ctx); err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, e.src.Stop(), e.dst.Stop())
	}()
	e.log.Info("building mailferry")
	if e.bin, err = buildMailferry(ctx, e.dir); err != nil {
		return err
	}
	if e.peers, e.missingPeers, err = choosePeers(cfg); err != nil {
		return err
	}

	loads := map[string]*workload{}
	for _, name := range cfg.workloads {
		if name == "flat" {
			if err := e.seedFlat(); err != nil {
				return err
			}
			continue
		}
		if name == "incr" {
			if err := e.seedIncr(); err != nil {
				return err
			}
			continue
		}
		if name == "fleet" {
			if err := e.seedFleet(); err != nil {
				return err
			}
			continue
		}
		start := time.Now()
		var w *workload
		switch name {
		case "small":
			w = smallWorkload("small", cfg.seed, cfg.small)
		case "mixed":
			w = mixedWorkload("mixed", cfg.seed, cfg.mixed)
		case "huge":
			w = hugeWorkload("huge", cfg.seed, cfg.hugeBytes)
		case "rerun10k":
			w = smallWorkload("rerun10k", cfg.seed, smallSpec{Count: cfg.rerunCount, MinBytes: 2 << 10, MaxBytes: 4 << 10})
		}
		if err := e.seed(name, w); err != nil {
			return err
		}
		loads[name] = w
		e.log.Info("seeded workload", "workload", name, "messages", len(w.msgs), "MB", fmt.Sprintf("%.1f", mb(w.bytes)),
			"largest_MB", fmt.Sprintf("%.1f", mb(int64(w.largest()))), "took", time.Since(start).Round(time.Millisecond))
	}
	var latencyLoad *workload
	if cfg.latency {
		base := loads["small"]
		if base == nil {
			base = smallWorkload("small", cfg.seed, cfg.small)
		}
		latencyLoad = base.prefix("latency", cfg.latencyN)
		if err := e.seed("latency", latencyLoad); err != nil {
			return err
		}
	}

	loadBefore := loadAverage()
	for _, secure := range cfg.tls {
		e.secure = secure
		for _, kind := range sourceKinds {
			if !slices.Contains(cfg.paths, kind.name) {
				continue
			}
			for _, name := range cfg.workloads {
				var err error
				switch name {
				case "flat", "incr", "fleet": // below
				case "huge":
					err = e.huge(ctx, kind, loads[name])
				case "rerun10k":
					if kind.name == "pop3" { // the target is a POP3 mailbox
						err = e.rerun(ctx, kind, loads[name])
					}
				default:
					err = e.loopback(ctx, kind, loads[name])
				}
				if err != nil {
					return err
				}
			}
			if latencyLoad != nil {
				if err := e.latency(ctx, kind, latencyLoad); err != nil {
					return err
				}
			}
		}
		if cfg.profileDir != "" {
			if latencyLoad != nil {
				loads["latency"] = latencyLoad
			}
			if err := e.profile(ctx, loads); err != nil {
				return err
			}
		}
	}
	if slices.Contains(cfg.workloads, "flat") {
		e.secure = true // the flat workload's figures are over TLS, as the issue's
		if err := e.flat(ctx, stdout); err != nil {
			return err
		}
	}
	if slices.Contains(cfg.workloads, "incr") {
		e.secure = true
		if err := e.incr(ctx, stdout); err != nil {
			return err
		}
	}
	if slices.Contains(cfg.workloads, "fleet") {
		if err := e.fleet(ctx, stdout); err != nil {
			return err
		}
	}
	printTable(stdout, e.rows)
	fmt.Fprintln(stdout)
	printCPUTable(stdout, e.rows, runtime.NumCPU())
	fmt.Fprintln(stdout)
	printSummaries(stdout, e.summaries)
	if len(e.peers) > 0 {
		fmt.Fprintln(stdout)
		printPeerTable(stdout, e.summaries)
	}
	for _, p := range e.missingPeers {
		fmt.Fprintf(stdout, "\n%s", p)
	}
	fmt.Fprintf(stdout, "\n%d CPUs, %s, seed %d, %s in all, servers' processes: %s; load average %s before the runs, %s after. Ratios compare figures of this run; "+
		"ceilings exclude connecting and logging in, mailferry's and the other tools' figures are the whole process.\n",
		runtime.NumCPU(), runtime.Version(), cfg.seed, time.Since(began).Round(time.Second), cfg.serverProcesses, loadBefore, loadAverage())
	if cfg.jsonPath != "" {
		if err := writeJSON(cfg.jsonPath, cfg, e.rows, e.summaries, time.Since(began)); err != nil {
			return err
		}
	}
	return nil
}

func randomPassword() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// processConfig is the dovecot.conf lines of -server-processes mode. The
// test kit runs imap-login in Dovecot's high-performance mode already
// (service_count = 0) and everything else as Dovecot does by default: a
// pop3-login process per POP3 connection and a new imap or pop3 process
// per login, about 4 ms of server CPU each on the 2-core machine. "reuse"
// keeps those processes for the next login instead (service_count = 0:
// no limit on the connections a process serves, one at a time), about
// 0.7 ms per login, as Dovecot's performance tuning advises for a server
// that takes many logins; every test user has the same system user, so a
// process serving several of them in turn changes nothing else.
func processConfig(mode string) string {
	if mode != "reuse" {
		return ""
	}
	var b strings.Builder
	for _, svc := range []string{"imap", "pop3", "pop3-login"} {
		fmt.Fprintf(&b, "service %s {\n  service_count = 0\n}\n", svc)
	}
	return b.String()
}

// start launches the source (users small, mixed, latency) and the
// destination (a pool of empty users) with certificates from one CA.
func (e *env) start(ctx context.Context) error {
	ca, err := dovecot.NewCA()
	if err != nil {
		return err
	}
	if e.srcPW, err = randomPassword(); err != nil {
		return err
	}
	if e.dstPW, err = randomPassword(); err != nil {
		return err
	}
	srcUsers := map[string]string{"small": e.srcPW, "mixed": e.srcPW, "latency": e.srcPW, "huge": e.srcPW, "rerun10k": e.srcPW,
		foldersUser: e.srcPW, incrUser: e.srcPW}
	for _, n := range e.cfg.flatSizes {
		srcUsers[flatUser(n)] = e.srcPW
	}
	dstUsers := map[string]string{}
	for i := range destUsers {
		dstUsers[fmt.Sprintf("d%03d", i)] = e.dstPW
	}
	if slices.Contains(e.cfg.workloads, "fleet") {
		fleetUsers(e.cfg, e.srcPW, e.dstPW, srcUsers, dstUsers)
	}
	var wg sync.WaitGroup
	var srcErr, dstErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		e.src, srcErr = dovecot.StartInstance(ctx, filepath.Join(e.dir, "src"),
			dovecot.Options{Name: "bench-src", Users: srcUsers, CA: ca, ExtraConfig: processConfig(e.cfg.serverProcesses)})
	}()
	go func() {
		defer wg.Done()
		opts := dovecot.Options{Name: "bench-dst", Users: dstUsers, CA: ca, ExtraConfig: processConfig(e.cfg.serverProcesses)}
		if e.cfg.destFormat != "maildir" {
			// Later in dovecot.conf than the test kit's maildir: it wins.
			opts.ExtraConfig += fmt.Sprintf("mail_location = %s:~/%s\n", e.cfg.destFormat, e.cfg.destFormat)
		}
		e.dst, dstErr = dovecot.StartInstance(ctx, filepath.Join(e.dir, "dst"), opts)
	}()
	wg.Wait()
	if srcErr != nil || dstErr != nil {
		for _, s := range []*dovecot.Server{e.src, e.dst} {
			if s != nil {
				s.Stop()
			}
		}
		return fmt.Errorf("starting Dovecot: %w", errors.Join(srcErr, dstErr))
	}
	e.tlsCfg = e.src.TLSConfig()
	e.cpu = newCPUMeter(e.src.Dir(), e.dst.Dir())
	e.log.Info("servers ready", "source_pop3s", e.src.POP3SAddr(), "source_imaps", e.src.IMAPSAddr(),
		"dest_imaps", e.dst.IMAPSAddr(), "dir", e.dir)
	return nil
}

// seed writes w into user's INBOX on the source and checks the count.
func (e *env) seed(user string, w *workload) error {
	for i, m := range w.msgs {
		if err := e.src.SeedMaildir(user, "INBOX", m.data, "", m.date); err != nil {
			return fmt.Errorf("seeding message %d of %s: %w", i, w.name, err)
		}
	}
	n, err := e.src.MailboxCount(user, "INBOX")
	if err != nil {
		return err
	}
	if n != len(w.msgs) {
		return fmt.Errorf("source INBOX of %s holds %d messages after seeding %d", user, n, len(w.msgs))
	}
	return nil
}

// freshDest returns an unused destination user with an empty destMailbox.
func (e *env) freshDest() (string, error) {
	u, err := e.unusedDest()
	if err != nil {
		return "", err
	}
	if err := e.dst.CreateMailbox(u, destMailbox); err != nil {
		return "", err
	}
	return u, nil
}

// unusedDest returns a destination user never used, with no mail storage
// yet.
func (e *env) unusedDest() (string, error) {
	if e.nextDst >= destUsers {
		return "", fmt.Errorf("all %d destination users used; raise destUsers", destUsers)
	}
	u := fmt.Sprintf("d%03d", e.nextDst)
	e.nextDst++
	return u, nil
}

// dropDest removes a destination user's mail, so disk use stays at one
// workload's size.
func (e *env) dropDest(user string) {
	if err := os.RemoveAll(filepath.Join(e.dst.Dir(), "mail", user)); err != nil {
		e.log.Warn("removing destination mail", "user", user, "error", err)
	}
}

// loopback measures one workload on one path, -trials times: read
// ceilings, write ceilings, mailferry, and mailferry again with nothing
// new; then a summary with the medians of the trials.
func (e *env) loopback(ctx context.Context, kind sourceKind, w *workload) error {
	path := e.pathName(kind)
	var trials []trial
	for n := 1; n <= e.cfg.trials; n++ {
		t, err := e.loopbackTrial(ctx, kind, w, n)
		if err != nil {
			return err
		}
		trials = append(trials, t)
	}
	e.summaries = append(e.summaries, summarize(w.name, path, trials))
	return nil
}

// trial is one measurement of the ceilings, of mailferry and of the other
// tools, side by side.
type trial struct {
	read, write row // the best of each kind of ceiling
	mailferry   row
	baselines   []row          // -baseline-bin, in its order
	peers       map[string]row // by peer name
}

// loopbackTrial is trial number n of loopback.
func (e *env) loopbackTrial(ctx context.Context, kind sourceKind, w *workload, n int) (trial, error) {
	path := e.pathName(kind)
	var tr trial
	for _, rc := range kind.ceilings {
		before := e.cpu.snapshot()
		t, err := rc.read(ctx, e.srcAddr(kind), e.clientTLS(), w.name, secret.New(e.srcPW))
		if err != nil {
			return tr, fmt.Errorf("%s on %s: %w", rc.name, w.name, err)
		}
		t.cpu = e.cpu.since(before, -1)
		if t.messages != len(w.msgs) {
			return tr, fmt.Errorf("%s on %s: read %d messages, want %d", rc.name, w.name, t.messages, len(w.msgs))
		}
		r := row{Workload: w.name, Path: rc.name, Kind: "read ceiling", Trial: n}.with(t)
		if r.MBPerSec > tr.read.MBPerSec {
			tr.read = r
		}
		e.add(r)
	}
	for _, b := range e.cfg.batches {
		for _, c := range e.cfg.conns {
			wt := writeTrial{batch: b, conns: c}
			user, err := e.freshDest()
			if err != nil {
				return tr, err
			}
			before := e.cpu.snapshot()
			t, err := writeIMAP(ctx, e.dstAddr(), e.clientTLS(), user, secret.New(e.dstPW), destMailbox, w.msgs, wt)
			t.cpu = e.cpu.since(before, -1)
			e.dropDest(user)
			if err != nil {
				return tr, fmt.Errorf("write ceiling %v on %s: %w", wt, w.name, err)
			}
			r := row{Workload: w.name, Path: "write IMAP " + wt.String(), Kind: "write ceiling", Trial: n}.with(t)
			if r.MBPerSec > tr.write.MBPerSec {
				tr.write = r
			}
			e.add(r)
		}
	}
	ceiling := min(tr.read.MBPerSec, tr.write.MBPerSec)
	// mailferry, the baseline binaries and the other tools take turns at
	// going first, so that none always runs on a fresher machine.
	type contender struct {
		bin  string
		peer *peer
	}
	runs := []contender{{bin: e.bin}}
	for _, b := range e.cfg.baselines {
		runs = append(runs, contender{bin: b})
	}
	tr.baselines = make([]row, len(e.cfg.baselines))
	for _, p := range e.peers {
		if p.reads(kind.name, e.secure) {
			runs = append(runs, contender{peer: p})
		}
	}
	shift := (n - 1) % len(runs)
	runs = append(runs[shift:], runs[:shift]...)
	tr.peers = map[string]row{}
	for _, c := range runs {
		if c.peer != nil {
			pr, err := e.runPeer(ctx, c.peer, kind, w)
			if err != nil {
				return tr, err
			}
			r := pr.row(w, path+", "+c.peer.name)
			r.Trial = n
			r.Ratio, r.RatioTo = r.MBPerSec/ceiling, "min(read, write ceiling)"
			e.add(r)
			tr.peers[c.peer.name] = r
			continue
		}
		bin := c.bin
		first, second, err := e.copyWith(ctx, bin, kind, e.srcAddr(kind), e.dstAddr(), w)
		if err != nil {
			return tr, err
		}
		label := path + baselineLabel(bin, e.bin)
		r := first.row(w.name, label, "mailferry")
		r.Trial = n
		r.Ratio, r.RatioTo = r.MBPerSec/ceiling, "min(read, write ceiling)"
		r.CeilingMBPerSec = ceiling
		r.SerialCeilingMBPerSec = serialCeiling(tr.read.MBPerSec, tr.write.MBPerSec)
		if bin != e.bin {
			r.Binary = bin
		}
		e.add(r)
		again := second.row(w.name, label+" again, nothing new", "mailferry rerun")
		again.Trial = n
		e.add(again)
		if bin == e.bin {
			tr.mailferry = r
		} else {
			tr.baselines[slices.Index(e.cfg.baselines, bin)] = r
		}
	}
	return tr, nil
}

// copyTwice runs mailferry into a fresh destination user, then again with
// the same state, which must find nothing new.
func (e *env) copyTwice(ctx context.Context, kind sourceKind, srcAddr, dstAddr string, w *workload) (first, second mailferryRun, err error) {
	return e.copyWith(ctx, e.bin, kind, srcAddr, dstAddr, w)
}

// copyCommand is the `mailferry copy` (bin) of kind's path from srcUser
// at srcAddr to dstUser at dstAddr, with a checkpoint of its own: what the
// timed runs start, and what the profile copies in-process.
func (e *env) copyCommand(bin string, kind sourceKind, srcAddr, dstAddr, srcUser, dstUser string) copyCommand {
	e.runs++
	return copyCommand{
		bin:       bin,
		sourceURL: kind.url(srcAddr, srcUser, e.secure),
		destURL:   destURL(dstUser, dstAddr, kind, e.secure),
		caFile:    e.src.CAFile(),
		state:     filepath.Join(e.dir, fmt.Sprintf("state-%d.db", e.runs)),
		srcPW:     e.srcPW,
		dstPW:     e.dstPW,
		extra:     e.cfg.extra,
		plain:     !e.secure,
	}
}

// copyWith is copyTwice with the mailferry binary bin.
func (e *env) copyWith(ctx context.Context, bin string, kind sourceKind, srcAddr, dstAddr string, w *workload) (first, second mailferryRun, err error) {
	user, err := e.freshDest()
	if err != nil {
		return first, second, err
	}
	defer e.dropDest(user)
	cmd := e.copyCommand(bin, kind, srcAddr, dstAddr, w.name, user)
	e.log.Info("running mailferry", "workload", w.name, "source", cmd.sourceURL, "dest", cmd.destURL)
	if first, err = e.measure(ctx, cmd); err != nil {
		return first, second, err
	}
	if first.copied != len(w.msgs) {
		return first, second, fmt.Errorf("mailferry copied %d messages of %s, want %d", first.copied, w.name, len(w.msgs))
	}
	n, err := e.dst.MailboxCount(user, kind.destMailbox)
	if err != nil {
		return first, second, err
	}
	if n != len(w.msgs) {
		return first, second, fmt.Errorf("destination %s/%s holds %d messages after copying %d", user, kind.destMailbox, n, len(w.msgs))
	}
	if second, err = e.measure(ctx, cmd); err != nil {
		return first, second, err
	}
	if second.copied != 0 || second.done != len(w.msgs) {
		return first, second, fmt.Errorf("second mailferry run on %s copied %d and found %d done, want 0 and %d",
			w.name, second.copied, second.done, len(w.msgs))
	}
	return first, second, nil
}

// measure runs cmd and records the CPU time each party spent meanwhile.
func (e *env) measure(ctx context.Context, cmd copyCommand) (mailferryRun, error) {
	before := e.cpu.snapshot()
	r, err := cmd.run(ctx)
	r.cpu = e.cpu.since(before, r.cpuSeconds)
	return r, err
}

// destURL is mailferry's DEST for kind: with the bench folder for POP3
// (where POP3 mail goes), without one for IMAP (folders map by name);
// without TLS, imap://…?tls=none.
func destURL(user, addr string, kind sourceKind, secure bool) string {
	u := "imaps://" + user + "@" + addr
	if !secure {
		u = "imap://" + user + "@" + addr
	}
	if kind.destMailbox != "INBOX" {
		u += "/" + kind.destMailbox
	}
	if !secure {
		u += "?tls=none"
	}
	return u
}

// baselineLabel is what a row's path says of the binary that made it:
// nothing for ./cmd/mailferry, else " (baseline NAME)".
func baselineLabel(bin, current string) string {
	if bin == current {
		return ""
	}
	return " (baseline " + filepath.Base(bin) + ")"
}

// srcAddr is the source's listener for kind on the transport measured.
func (e *env) srcAddr(kind sourceKind) string { return kind.addr(e.src, e.secure) }

// dstAddr is the destination's IMAP listener on the transport measured.
func (e *env) dstAddr() string { return imapAddr(e.dst, e.secure) }

// clientTLS is the TLS configuration of the bench's own clients on the
// transport measured: nil in plain text.
func (e *env) clientTLS() *tls.Config {
	if e.secure {
		return e.tlsCfg
	}
	return nil
}

// pathName names kind's path on the transport measured: "imap→imap", or
// "imap→imap, TLS off".
func (e *env) pathName(kind sourceKind) string {
	if e.secure {
		return kind.name + "→imap"
	}
	return kind.name + "→imap, TLS off"
}

// huge moves the huge workload (one message of -huge-mb) on one path and
// records mailferry's peak RSS, which must stay near the spool's memory
// bound however big the message: the body goes to a temp file.
func (e *env) huge(ctx context.Context, kind sourceKind, w *workload) error {
	first, _, err := e.copyTwice(ctx, kind, e.srcAddr(kind), e.dstAddr(), w)
	if err != nil {
		return err
	}
	e.add(first.row(w.name, fmt.Sprintf("%s, one %.0f MB message", e.pathName(kind), mb(w.bytes)), "mailferry"))
	return nil
}

// rerun copies the rerun workload, then measures the second run, which
// finds nothing new: the ledger and listing path alone.
func (e *env) rerun(ctx context.Context, kind sourceKind, w *workload) error {
	first, second, err := e.copyTwice(ctx, kind, e.srcAddr(kind), e.dstAddr(), w)
	if err != nil {
		return err
	}
	e.add(first.row(w.name, e.pathName(kind), "mailferry"))
	e.add(second.row(w.name, e.pathName(kind)+" again, nothing new", "mailferry rerun"))
	return nil
}

// latency runs the latency scenario: mailferry and the pipelined ceilings
// through delay proxies in front of both servers, compared with the same
// messages on loopback (measured here too, so the ratio is of one run).
func (e *env) latency(ctx context.Context, kind sourceKind, w *workload) error {
	srcProxy, err := newDelayProxy(e.srcAddr(kind), e.cfg.delay)
	if err != nil {
		return err
	}
	defer srcProxy.Close()
	dstProxy, err := newDelayProxy(e.dstAddr(), e.cfg.delay)
	if err != nil {
		return err
	}
	defer dstProxy.Close()
	rtt := fmt.Sprintf(" (%v RTT)", 2*e.cfg.delay)
	path := e.pathName(kind)
	var ratios, speeds []float64
	bRatios, bSpeeds := map[string][]float64{}, map[string][]float64{}
	for n := 1; n <= e.cfg.trials; n++ {
		for _, rc := range kind.ceilings {
			if !rc.pipelined {
				continue
			}
			before := e.cpu.snapshot()
			t, err := rc.read(ctx, srcProxy.Addr(), e.clientTLS(), w.name, secret.New(e.srcPW))
			if err != nil {
				return fmt.Errorf("%s through the delay proxy: %w", rc.name, err)
			}
			t.cpu = e.cpu.since(before, -1)
			e.add(row{Workload: w.name, Path: rc.name + rtt, Kind: "read ceiling", Trial: n}.with(t))
		}
		wt := writeTrial{batch: 50, conns: 1}
		user, err := e.freshDest()
		if err != nil {
			return err
		}
		before := e.cpu.snapshot()
		t, err := writeIMAP(ctx, dstProxy.Addr(), e.clientTLS(), user, secret.New(e.dstPW), destMailbox, w.msgs, wt)
		t.cpu = e.cpu.since(before, -1)
		e.dropDest(user)
		if err != nil {
			return fmt.Errorf("write ceiling %v through the delay proxy: %w", wt, err)
		}
		e.add(row{Workload: w.name, Path: "write IMAP " + wt.String() + rtt, Kind: "write ceiling", Trial: n}.with(t))

		// Each binary: loopback, then through the proxies; with baseline
		// binaries they take turns at going first.
		bins := append([]string{e.bin}, e.cfg.baselines...)
		shift := (n - 1) % len(bins)
		bins = append(bins[shift:], bins[:shift]...)
		for _, bin := range bins {
			label := path + baselineLabel(bin, e.bin)
			loop, _, err := e.copyWith(ctx, bin, kind, e.srcAddr(kind), e.dstAddr(), w)
			if err != nil {
				return err
			}
			base := loop.row(w.name, label+" loopback", "mailferry")
			base.Trial = n
			e.add(base)
			first, second, err := e.copyWith(ctx, bin, kind, srcProxy.Addr(), dstProxy.Addr(), w)
			if err != nil {
				return err
			}
			r := first.row(w.name, label+rtt, "mailferry latency")
			r.Trial = n
			r.Ratio, r.RatioTo = r.MsgsPerSec/base.MsgsPerSec, "loopback"
			e.add(r)
			again := second.row(w.name, label+rtt+" again, nothing new", "mailferry rerun")
			again.Trial = n
			e.add(again)
			if bin == e.bin {
				ratios, speeds = append(ratios, r.Ratio), append(speeds, r.MsgsPerSec)
			} else {
				bRatios[bin], bSpeeds[bin] = append(bRatios[bin], r.Ratio), append(bSpeeds[bin], r.MsgsPerSec)
			}
		}
	}
	sum := summary{
		Workload: w.name, Path: path + rtt, Trials: len(ratios),
		Text: fmt.Sprintf("mailferry %.0f msgs/s = %.2f × loopback (trials %s)",
			median(speeds), median(ratios), list(ratios)),
	}
	for _, bin := range e.cfg.baselines {
		sum.Notes = append(sum.Notes, fmt.Sprintf("baseline %s, same trials: %.0f msgs/s = %.2f × loopback (trials %s)",
			bin, median(bSpeeds[bin]), median(bRatios[bin]), list(bRatios[bin])))
	}
	e.summaries = append(e.summaries, sum)
	return nil
}

// profile copies each workload in-process under pprof into fresh users
// (with -trace, a second time under the execution tracer); the latency
// workload goes through delay proxies, so that its trace shows where the
// round trips are waited for.
func (e *env) profile(ctx context.Context, loads map[string]*workload) error {
	if err := os.MkdirAll(e.cfg.profileDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", e.cfg.profileDir, err)
	}
	names := append([]string(nil), e.cfg.workloads...)
	if loads["latency"] != nil {
		names = append(names, "latency")
	}
	for _, kind := range sourceKinds {
		if !slices.Contains(e.cfg.paths, kind.name) {
			continue
		}
		for _, name := range names {
			if loads[name] == nil {
				continue // flat: measured by its own runs
			}
			if err := e.profileOne(ctx, kind, name, loads[name]); err != nil {
				return err
			}
		}
	}
	return nil
}

// profileOne copies workload w in-process under pprof on kind's path, and
// with -trace once more under the execution tracer alone; the profiles of
// the IMAP path are named "imap-NAME", those without TLS end in "-notls".
func (e *env) profileOne(ctx context.Context, kind sourceKind, name string, w *workload) error {
	srcAddr, dstAddr := e.srcAddr(kind), e.dstAddr()
	path := e.pathName(kind) + " in-process (profiled)"
	if name == "latency" {
		srcProxy, err := newDelayProxy(srcAddr, e.cfg.delay)
		if err != nil {
			return err
		}
		defer srcProxy.Close()
		dstProxy, err := newDelayProxy(dstAddr, e.cfg.delay)
		if err != nil {
			return err
		}
		defer dstProxy.Close()
		srcAddr, dstAddr = srcProxy.Addr(), dstProxy.Addr()
		path = fmt.Sprintf("%s (%v RTT) in-process (profiled)", e.pathName(kind), 2*e.cfg.delay)
	}
	file := name
	if kind.name != "pop3" {
		file = kind.name + "-" + name
	}
	if !e.secure {
		file += "-notls"
	}
	kinds := []profileKind{profileCPU}
	if e.cfg.trace {
		kinds = append(kinds, profileTrace)
	}
	for _, pk := range kinds {
		user, err := e.freshDest()
		if err != nil {
			return err
		}
		before := e.cpu.snapshot()
		t, err := profileCopy(ctx, e.cfg.profileDir, file, e.copyCommand(e.bin, kind, srcAddr, dstAddr, name, user), pk)
		t.cpu = e.cpu.since(before, -1)
		e.dropDest(user)
		if err != nil {
			return err
		}
		if t.messages != len(w.msgs) {
			return fmt.Errorf("in-process copy of %s moved %d messages, want %d", name, t.messages, len(w.msgs))
		}
		if pk == profileCPU {
			// The traced copy's figures are the tracer's: not a row.
			e.add(row{Workload: name, Path: path, Kind: "profile"}.with(t))
		}
	}
	e.log.Info("wrote profiles", "workload", name, "path", kind.name, "dir", e.cfg.profileDir, "trace", e.cfg.trace)
	return nil
}

func (e *env) add(r row) {
	e.rows = append(e.rows, r)
	attrs := []any{"workload", r.Workload, "path", r.Path, "msgs/s", fmt.Sprintf("%.0f", r.MsgsPerSec),
		"MB/s", fmt.Sprintf("%.1f", r.MBPerSec), "seconds", fmt.Sprintf("%.2f", r.Seconds)}
	// A long run (the flat workload's 500,000 messages) is read off its
	// log while it goes: mailferry's peak RSS and own time are there too.
	if r.PeakRSSMB > 0 {
		attrs = append(attrs, "peak_rss_mb", fmt.Sprintf("%.1f", r.PeakRSSMB), "report_seconds", fmt.Sprintf("%.2f", r.ReportSeconds))
	}
	if r.Ratio > 0 {
		attrs = append(attrs, "ratio", fmt.Sprintf("%.2f", r.Ratio), "ratio_to", r.RatioTo)
	}
	e.log.Info("measured", attrs...)
}
