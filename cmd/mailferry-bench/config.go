package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is the benchmark's settings, from the flags.
type config struct {
	seed       uint64
	small      smallSpec
	mixed      mixedSpec
	workloads  []string // "small", "mixed", "huge", "rerun10k", "flat"
	hugeBytes  int      // size of the huge workload's one message
	rerunCount int      // messages of the rerun10k workload
	// flat workload (issue 20): mailbox sizes, the many-folders account
	// (count folders of each messages) and the ledger measured for size.
	flatSizes   []int
	flatFolders struct{ count, each int }
	flatLedger  int
	// incr workload (issue 18): the account, the flag changes and how
	// many folders they touch
	incrFolders            struct{ count, each int }
	incrFlags, incrChanged int
	latency                bool
	latencyN               int           // messages of the small workload for the latency run
	delay                  time.Duration // one way
	batches                []int         // write-ceiling batch sizes
	conns                  []int         // write-ceiling connection counts
	extra                  []string      // more mailferry flags
	trials                 int           // repetitions of each loopback and latency measurement
	baselines              []string      // other mailferry binaries measured alongside, for before/after
	jsonPath               string
	profileDir             string
	trace                  bool // with profileDir: an execution trace too, from a copy of its own
	keep                   bool
	timeout                time.Duration
	// tls lists the transports to measure, in order: true is implicit TLS
	// (pop3s, imaps), false plain text on both sides (TLS off everywhere,
	// as in issue 18's side-by-side figures).
	tls []bool
	// peers are the other tools measured side by side (peer names);
	// peersAuto: every one that is installed, the others named in a note.
	peers     []string
	peersAuto bool
	// paths are the source protocols measured ("pop3", "imap").
	paths []string
	// destFormat is the destination's mailbox format (-dest-format).
	destFormat string
	// serverProcesses is how both Dovecots run their mail and login
	// processes (-server-processes): "fork" or "reuse".
	serverProcesses string

	// fleet workload (issue 18): a batch of accounts of messages each,
	// copied with fleetWorkers at once, and a mixed batch of fleetMixed
	// accounts for peak RSS.
	fleet        struct{ accounts, messages int }
	fleetWorkers int
	fleetMixed   int
	fleetSingle  int // messages of the single account compared with
	// fleetDelay is the one-way delay of the fleet's runs through delay
	// proxies, beside those on loopback; 0: loopback only.
	fleetDelay time.Duration
}

var errHelp = errors.New("help requested")

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "one tenth of every size and count (a run of a minute or two)")
	seed := fs.Uint64("seed", 1, "seed of the generated workloads")
	smallCount := fs.Int("small-count", 5000, "messages in the small workload")
	smallMin := fs.Int("small-min-kb", 2, "smallest message of the small workload, KB")
	smallMax := fs.Int("small-max-kb", 20, "largest message of the small workload, KB")
	mixedCount := fs.Int("mixed-count", 1000, "messages in the mixed workload, large ones included")
	mixedMB := fs.Int("mixed-mb", 300, "approximate size of the mixed workload, MB")
	largeMB := fs.String("large-mb", "10,14,22,30", "sizes of the large messages of the mixed workload, MB (comma-separated)")
	workloads := fs.String("workloads", "small,mixed", "workloads to run (comma-separated: small, mixed; not by default: huge = one -huge-mb message on both paths, peak RSS; rerun10k = -rerun-count messages over POP3, then a second run with nothing new; flat = memory flat in the mailbox size, -flat-sizes, -flat-folders, -flat-ledger; fleet = many accounts at once, -fleet, -fleet-workers, -fleet-mixed; incr = re-runs of an IMAP account with CONDSTORE, -incr-folders, -incr-flags, -incr-changed)")
	hugeMB := fs.Int("huge-mb", 200, "size of the huge workload's one message, MB")
	rerunCount := fs.Int("rerun-count", 10000, "messages of the rerun10k workload")
	flatSizes := fs.String("flat-sizes", "5000,500000", "flat workload: mailbox sizes, each copied over POP3 and IMAP (the first and last are compared)")
	flatFolders := fs.String("flat-folders", "50x10000", "flat workload: an IMAP account of FOLDERSxMESSAGES (0 skips it)")
	flatLedger := fs.Int("flat-ledger", 1000000, "flat workload: entries of the ledger measured for its size per entry; the largest flat mailbox's ledger is also topped up to this many entries over 10,000 accounts, that mailbox copied again in it with nothing new and `mailferry status` timed (0 skips both)")
	incrFolders := fs.String("incr-folders", "50x2000", "incr workload: an IMAP account of FOLDERSxMESSAGES re-run with CONDSTORE")
	incrFlags := fs.Int("incr-flags", 100, "incr workload: flag changes before the re-runs after flag changes")
	incrChanged := fs.Int("incr-changed", 5, "incr workload: folders the flag changes are spread over")
	fleet := fs.String("fleet", "200x200", "fleet workload: a batch of ACCOUNTSxMESSAGES (2–4 KB each) copied by one `mailferry run`, beside one account of all those messages")
	fleetWorkers := fs.Int("fleet-workers", 8, "fleet workload: the batch's workers (accounts at once)")
	fleetSingle := fs.Int("fleet-single", 0, "fleet workload: messages of the single account the batch is compared with (the first of the batch's; 0: all of them)")
	fleetMixed := fs.Int("fleet-mixed", 16, "fleet workload: accounts of the mixed batch (12 messages, two of 10–30 MB, about 48 MB each) copied with -fleet-workers for peak RSS; 0 skips it")
	fleetDelay := fs.Duration("fleet-delay", 20*time.Millisecond, "fleet workload: also run the batch, its re-run and the single account, in the same trials, through delay proxies in front of both servers adding this one-way delay (the round trip is twice this), where one account waits on round trips and workers pay; 0: loopback only")
	latencyCount := fs.Int("latency-count", 1000, "messages of the small workload copied through the delay proxy; 0 skips the latency scenario")
	delay := fs.Duration("delay", 20*time.Millisecond, "one-way delay of the latency scenario (the round trip is twice this)")
	batches := fs.String("write-batches", "1,50,200", "write ceiling: messages per APPEND batch (1 = single APPENDs, more = MULTIAPPEND)")
	conns := fs.String("write-conns", "1,2,4", "write ceiling: parallel appender connections")
	trials := fs.Int("trials", 1, "repeat each loopback and latency measurement (ceilings and mailferry) this many times and print the medians")
	baselines := fs.String("baseline-bin", "", "also run these mailferry binaries (comma-separated; e.g. one built from the code before a change) in every loopback, latency and fleet trial, taking turns with ./cmd/mailferry at going first, for a before/after comparison on a noisy machine")
	extra := fs.String("mailferry-flags", "", "extra flags for every mailferry copy, space-separated (e.g. \"--batch-messages 200\")")
	fs.StringVar(&c.jsonPath, "json", "", "also write the results to this JSON file")
	fs.StringVar(&c.profileDir, "profile", "", "after the runs, copy each workload in-process under pprof and write CPU and allocation profiles to this directory (with `mailferry copy`'s defaults: not with -mailferry-flags; the fleet workload: its batch and its re-run by a mailferry built with -tags mailferry_profile)")
	fs.BoolVar(&c.trace, "trace", false, "with -profile: copy each workload once more in-process under the execution tracer (trace-NAME.out), apart from the CPU profile")
	tlsModes := fs.String("tls", "on", "transports to measure (comma-separated: on = implicit TLS, pop3s and imaps; off = plain text on both sides, as in issue 18's side-by-side figures; \"off,on\" measures both in one run)")
	paths := fs.String("paths", "pop3,imap", "source protocols to measure, each into IMAP (comma-separated: pop3, imap)")
	peers := fs.String("peers", "auto", "other tools measured side by side in every loopback trial (comma-separated: mbsync, doveadm; auto = those installed; none); "+
		"on the fleet workload only when named (not with auto): each copies the batch one process per account, -fleet-workers at once, and the single account, in the same trials as mailferry, "+
		"on loopback and through -fleet-delay's proxies (doveadm's pop3c, a round trip per message, on loopback only)")
	fs.StringVar(&c.serverProcesses, "server-processes", "fork", "how both Dovecots serve logins: fork = a new imap or pop3 process per login, Dovecot's default (about 4 ms of server CPU per login here); "+
		"reuse = processes kept and reused for the next login (service_count = 0 for imap, pop3 and pop3-login: about 0.7 ms), as a server taking thousands of migrated accounts is tuned; the fleet workload's per-account cost is mostly the servers' logins")
	fs.StringVar(&c.destFormat, "dest-format", "maildir", "the destination Dovecot's mailbox format: maildir, or sdbox or mdbox (Dovecot's own: appending to one maildir of hundreds of thousands of messages on several connections slows down as it grows, to about 55 messages/s at 400,000 on the 2-core machine)")
	fs.BoolVar(&c.keep, "keep", false, "keep the temp directory (servers' logs and mail) instead of removing it")
	fs.DurationVar(&c.timeout, "timeout", 90*time.Minute, "stop everything after this long")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./cmd/mailferry-bench [flags]\n\nMeasures mailferry against private Dovecot servers on 127.0.0.1 (issue 6).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, errHelp
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var large []float64
	for _, f := range strings.Split(*largeMB, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		mb, err := strconv.ParseFloat(f, 64)
		if err != nil || mb <= 0 {
			return c, fmt.Errorf("-large-mb: %q is not a positive number", f)
		}
		large = append(large, mb)
	}
	if *quick {
		// One tenth of every size and count the user did not set.
		scale := func(name string, v *int) {
			if !set[name] {
				*v = max(1, *v/10)
			}
		}
		scale("small-count", smallCount)
		scale("mixed-count", mixedCount)
		scale("mixed-mb", mixedMB)
		scale("latency-count", latencyCount)
		scale("huge-mb", hugeMB)
		scale("rerun-count", rerunCount)
		if !set["large-mb"] {
			for i := range large {
				large[i] /= 10
			}
		}
	}
	c.seed = *seed
	c.small = smallSpec{Count: *smallCount, MinBytes: *smallMin << 10, MaxBytes: *smallMax << 10}
	c.mixed = mixedSpec{Count: *mixedCount, TotalBytes: int64(*mixedMB) << 20}
	for _, l := range large {
		c.mixed.LargeBytes = append(c.mixed.LargeBytes, int(l*(1<<20)))
	}
	var err error
	c.workloads = strings.Split(*workloads, ",")
	for _, w := range c.workloads {
		if w != "small" && w != "mixed" && w != "huge" && w != "rerun10k" && w != "flat" && w != "incr" && w != "fleet" {
			return c, fmt.Errorf("-workloads: unknown workload %q (want small, mixed, huge, rerun10k, flat, incr, fleet)", w)
		}
	}
	if c.flatSizes, err = intList(*flatSizes); err != nil {
		return c, fmt.Errorf("-flat-sizes: %w", err)
	}
	if *flatFolders != "0" {
		a, b, ok := strings.Cut(*flatFolders, "x")
		n, err1 := strconv.Atoi(a)
		m, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || n < 1 || n > 100 || m < 1 {
			return c, fmt.Errorf("-flat-folders: %q is not FOLDERSxMESSAGES (1 to 100 folders) or 0", *flatFolders)
		}
		c.flatFolders.count, c.flatFolders.each = n, m
	}
	{
		a, b, ok := strings.Cut(*fleet, "x")
		n, err1 := strconv.Atoi(a)
		m, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || n < 1 || n > 999 || m < 1 {
			return c, fmt.Errorf("-fleet: %q is not ACCOUNTSxMESSAGES (1 to 999 accounts)", *fleet)
		}
		c.fleet.accounts, c.fleet.messages = n, m
		if c.fleetSingle = *fleetSingle; c.fleetSingle <= 0 || c.fleetSingle > n*m {
			c.fleetSingle = n * m
		}
	}
	if c.fleetWorkers, c.fleetMixed = *fleetWorkers, *fleetMixed; c.fleetWorkers < 1 || c.fleetMixed < 0 || c.fleetMixed > 99 {
		return c, errors.New("-fleet-workers must be at least 1 and -fleet-mixed 0 to 99")
	}
	if c.fleetDelay = *fleetDelay; c.fleetDelay < 0 {
		return c, errors.New("-fleet-delay must not be negative")
	}
	{
		a, b, ok := strings.Cut(*incrFolders, "x")
		n, err1 := strconv.Atoi(a)
		m, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || n < 1 || n > 100 || m < 1 {
			return c, fmt.Errorf("-incr-folders: %q is not FOLDERSxMESSAGES (1 to 100 folders)", *incrFolders)
		}
		c.incrFolders.count, c.incrFolders.each = n, m
	}
	if c.incrFlags, c.incrChanged = *incrFlags, *incrChanged; c.incrFlags < 1 || c.incrChanged < 1 || c.incrChanged > c.incrFolders.count ||
		c.incrFlags/c.incrChanged > c.incrFolders.each {
		return c, errors.New("-incr-flags and -incr-changed must be at least 1, -incr-changed at most the folders, and the changes per folder at most its messages")
	}
	if c.flatLedger = *flatLedger; c.flatLedger < 0 {
		return c, errors.New("-flat-ledger must not be negative")
	}
	if *hugeMB < 1 || *rerunCount < 1 {
		return c, errors.New("-huge-mb and -rerun-count must be at least 1")
	}
	c.hugeBytes, c.rerunCount = *hugeMB<<20, *rerunCount
	c.latencyN = *latencyCount
	if !set["latency-count"] && !slices.Contains(c.workloads, "small") && !slices.Contains(c.workloads, "mixed") {
		c.latencyN = 0 // huge, rerun10k and flat alone: no latency scenario unless asked for
	}
	c.latency = c.latencyN > 0
	c.delay = *delay
	if c.batches, err = intList(*batches); err != nil {
		return c, fmt.Errorf("-write-batches: %w", err)
	}
	if c.conns, err = intList(*conns); err != nil {
		return c, fmt.Errorf("-write-conns: %w", err)
	}
	for _, m := range strings.Split(*tlsModes, ",") {
		switch strings.TrimSpace(m) {
		case "on":
			c.tls = append(c.tls, true)
		case "off":
			c.tls = append(c.tls, false)
		default:
			return c, fmt.Errorf("-tls: unknown transport %q (want on, off)", m)
		}
	}
	if c.serverProcesses != "fork" && c.serverProcesses != "reuse" {
		return c, fmt.Errorf("-server-processes: unknown mode %q (want fork, reuse)", c.serverProcesses)
	}
	if c.destFormat != "maildir" && c.destFormat != "sdbox" && c.destFormat != "mdbox" {
		return c, fmt.Errorf("-dest-format: unknown format %q (want maildir, sdbox, mdbox)", c.destFormat)
	}
	for _, p := range strings.Split(*paths, ",") {
		p = strings.TrimSpace(p)
		if p != "pop3" && p != "imap" {
			return c, fmt.Errorf("-paths: unknown source protocol %q (want pop3, imap)", p)
		}
		c.paths = append(c.paths, p)
	}
	switch *peers {
	case "auto":
		c.peersAuto = true
	case "none", "":
	default:
		for _, p := range strings.Split(*peers, ",") {
			p = strings.TrimSpace(p)
			if findPeer(p) == nil {
				return c, fmt.Errorf("-peers: unknown tool %q (want %s, auto or none)", p, strings.Join(peerNames(), ", "))
			}
			c.peers = append(c.peers, p)
		}
	}
	for _, b := range strings.Split(*baselines, ",") {
		if b = strings.TrimSpace(b); b != "" {
			c.baselines = append(c.baselines, b)
		}
	}
	c.extra = strings.Fields(*extra)
	c.trials = *trials
	switch {
	case c.trials < 1:
		return c, errors.New("-trials must be at least 1")
	case c.small.Count < 1 || c.mixed.Count < 1:
		return c, errors.New("workload counts must be at least 1")
	case c.small.MinBytes < 512 || c.small.MaxBytes < c.small.MinBytes:
		return c, errors.New("-small-min-kb must be at least 1 and at most -small-max-kb")
	case len(c.mixed.LargeBytes) >= c.mixed.Count:
		return c, errors.New("-mixed-count must exceed the number of large messages")
	case c.delay < 0:
		return c, errors.New("-delay must not be negative")
	case c.profileDir != "" && len(c.extra) > 0:
		// The in-process copy is assembled as `mailferry copy` assembles
		// it with no flag given (account.CopyDefaults); mailferry's flags
		// are parsed by cmd/mailferry alone, so a profile with them would
		// be of another copy than the one timed.
		return c, errors.New("-profile copies in-process with `mailferry copy`'s defaults and cannot apply -mailferry-flags: " +
			"profile without them, or run mailferry with them under perf through -baseline-bin (docs/performance.md)")
	}
	return c, nil
}

// intList parses "1,50,200"; every number must be positive.
func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty list %q", s)
	}
	return out, nil
}
