package main

import (
	"io"
	"math"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	mfconfig "github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// TestFleetJobLoads writes the fleet workload's config and accounts file
// and loads them with mailferry's own loader: the keys and columns it
// writes are ones `mailferry run` accepts, and say what the bench means.
func TestFleetJobLoads(t *testing.T) {
	for _, tc := range []struct {
		name       string
		job        fleetJob
		wantFolder string
	}{{
		name: "pop3 over TLS, into INBOX",
		job: fleetJob{workers: 8, srcURL: fleetURL("pop3", "127.0.0.1:1995", true), dstURL: fleetURL("imap", "127.0.0.1:1993", true),
			caFile: "/tmp/ca.pem", destFolder: "INBOX", users: [][2]string{{"fleet000", "fdst000"}, {"fleet001", "fdst001"}, {"fleet002", "fdst002"}}},
		wantFolder: "INBOX",
	}, {
		name: "imap in plain text, folders by name",
		job: fleetJob{workers: 1, srcURL: fleetURL("imap", "127.0.0.1:1143", false), dstURL: fleetURL("imap", "127.0.0.1:2143", false),
			plain: true, caFile: "/tmp/ca.pem", users: [][2]string{{fleetSingleUser, fleetSingleDest}}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tc.job.dir = filepath.Join(t.TempDir(), "job")
			path, err := tc.job.write()
			if err != nil {
				t.Fatal(err)
			}
			cfg, _, err := mfconfig.Load(path)
			if err != nil {
				t.Fatalf("loading the fleet config: %v\n%s", err, tc.job.config())
			}
			if cfg.Workers != tc.job.workers || cfg.State != filepath.Join(tc.job.dir, "state.db") {
				t.Errorf("workers %d, state %q; want %d, %q", cfg.Workers, cfg.State, tc.job.workers, filepath.Join(tc.job.dir, "state.db"))
			}
			if cfg.Source.URL != tc.job.srcURL || cfg.Destination.URL != tc.job.dstURL {
				t.Errorf("URLs %q, %q; want %q, %q", cfg.Source.URL, cfg.Destination.URL, tc.job.srcURL, tc.job.dstURL)
			}
			if cfg.Source.AllowPlaintext != tc.job.plain || cfg.Destination.AllowPlaintext != tc.job.plain {
				t.Errorf("allow_plaintext %v, %v; want %v", cfg.Source.AllowPlaintext, cfg.Destination.AllowPlaintext, tc.job.plain)
			}
			if cfg.Source.TLSCA != tc.job.caFile || cfg.Destination.TLSCA != tc.job.caFile {
				t.Errorf("tls_ca %q, %q; want %q", cfg.Source.TLSCA, cfg.Destination.TLSCA, tc.job.caFile)
			}
			if cfg.Destination.Folder != tc.wantFolder {
				t.Errorf("destination folder %q, want %q", cfg.Destination.Folder, tc.wantFolder)
			}
			if len(cfg.Accounts) != len(tc.job.users) {
				t.Fatalf("%d accounts, want %d", len(cfg.Accounts), len(tc.job.users))
			}
			for i, a := range cfg.Accounts {
				if a.SourceUser != tc.job.users[i][0] || a.DestUser != tc.job.users[i][1] ||
					a.SourcePassword.Env != fleetSrcPWEnv || a.DestPassword.Env != fleetDstPWEnv {
					t.Errorf("account %d: %s → %s, passwords from $%s and $%s", i, a.SourceUser, a.DestUser, a.SourcePassword.Env, a.DestPassword.Env)
				}
			}
		})
	}
}

// fleetRun is a mailferry run of n messages in wall seconds, with the
// given CPU seconds of mailferry, the source and the destination, and
// other work keeping half a core of the machine busy.
func fleetRun(n int, wall, mf, src, dst float64, rssMB int64) mailferryRun {
	return mailferryRun{copied: n, wall: time.Duration(wall * float64(time.Second)), peakRSSKB: rssMB << 10,
		cpu: cpuUse{Wall: wall, Client: mf, Source: src, Dest: dst, Machine: mf + src + dst + wall/2}}
}

func TestSummarizeFleet(t *testing.T) {
	for _, tc := range []struct {
		name       string
		trials     []fleetTrial
		wantBatch  float64 // msgs/s
		wantSingle float64
		wantRatio  float64
		wantRerun  float64
		wantRSS    float64
		wantCPU    partyCPU // of the batch
		// a worker's seconds per account: wall × 8 workers ÷ 200 accounts
		wantAccount float64
	}{{
		name: "one trial, batch slower",
		trials: []fleetTrial{{
			batch:  fleetRun(40000, 40, 12, 8, 16, 120),
			single: fleetRun(40000, 20, 8, 4, 8, 40),
			rerun:  mailferryRun{wall: 2 * time.Second},
		}},
		wantBatch: 1000, wantSingle: 2000, wantRatio: 0.5, wantRerun: 2, wantRSS: 120,
		wantCPU:     partyCPU{mailferry: 0.3, source: 0.2, dest: 0.4, busy: 0.9, machine: 1.4},
		wantAccount: 1.6,
	}, {
		name: "three trials: medians of rates and of the trials' ratios",
		trials: []fleetTrial{
			{batch: fleetRun(1000, 1, 1, 1, 1, 100), single: fleetRun(1000, 2, 1, 1, 1, 30), rerun: mailferryRun{wall: time.Second}},
			{batch: fleetRun(1000, 2, 1, 1, 1, 110), single: fleetRun(1000, 1, 1, 1, 1, 30), rerun: mailferryRun{wall: 3 * time.Second}},
			{batch: fleetRun(1000, 1, 2, 1, 1, 90), single: fleetRun(1000, 1, 1, 1, 1, 30), rerun: mailferryRun{wall: 2 * time.Second}},
		},
		// rates 1000, 500, 1000 and 500, 1000, 1000; ratios 2, 0.5, 1.
		wantBatch: 1000, wantSingle: 1000, wantRatio: 1, wantRerun: 2, wantRSS: 100,
		wantCPU:     partyCPU{mailferry: 1, source: 1, dest: 1, busy: 3, machine: 3.5},
		wantAccount: 0.04, // walls 1, 2, 1
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := summarizeFleet("pop3→imap", 200, 8, tc.trials)
			near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
			if !near(s.batchRate, tc.wantBatch) || !near(s.singleRate, tc.wantSingle) || !near(s.ratio, tc.wantRatio) {
				t.Errorf("batch %.1f, single %.1f msgs/s, ratio %.2f; want %.1f, %.1f, %.2f", s.batchRate, s.singleRate, s.ratio,
					tc.wantBatch, tc.wantSingle, tc.wantRatio)
			}
			if !near(s.rerunSeconds, tc.wantRerun) || !near(s.batchRSSMB, tc.wantRSS) || !near(s.accountSeconds, tc.wantAccount) {
				t.Errorf("rerun %.2f s, RSS %.1f MB, %.3f s per account; want %.2f, %.1f, %.3f", s.rerunSeconds, s.batchRSSMB, s.accountSeconds,
					tc.wantRerun, tc.wantRSS, tc.wantAccount)
			}
			c := s.batchCPU
			if !near(c.mailferry, tc.wantCPU.mailferry) || !near(c.source, tc.wantCPU.source) || !near(c.dest, tc.wantCPU.dest) ||
				!near(c.busy, tc.wantCPU.busy) || !near(c.machine, tc.wantCPU.machine) {
				t.Errorf("batch CPU %+v, want %+v", c, tc.wantCPU)
			}
			if s.trials != len(tc.trials) || len(s.ratios) != len(tc.trials) {
				t.Errorf("%d trials, %d ratios; want %d", s.trials, len(s.ratios), len(tc.trials))
			}
		})
	}
}

// TestVersusBaseline pairs ./cmd/mailferry's trials with a baseline
// binary's by trial: ratios of the rates and of the re-runs' seconds, a
// trial the baseline has no figure for left out.
func TestVersusBaseline(t *testing.T) {
	ours := []fleetTrial{
		{batch: fleetRun(1000, 1, 1, 1, 1, 100), single: fleetRun(1000, 2, 1, 1, 1, 30), rerun: mailferryRun{wall: time.Second}},
		{batch: fleetRun(1000, 2, 1, 1, 1, 100), single: fleetRun(1000, 1, 1, 1, 1, 30), rerun: mailferryRun{wall: 3 * time.Second}},
		{batch: fleetRun(1000, 1, 1, 1, 1, 100), single: fleetRun(1000, 1, 1, 1, 1, 30), rerun: mailferryRun{wall: time.Second}},
	}
	base := []fleetTrial{
		{batch: fleetRun(1000, 2, 1, 1, 1, 100), single: fleetRun(1000, 2, 1, 1, 1, 30), rerun: mailferryRun{wall: 2 * time.Second}},
		{batch: fleetRun(1000, 2, 1, 1, 1, 100), single: fleetRun(1000, 4, 1, 1, 1, 30), rerun: mailferryRun{wall: 2 * time.Second}},
		{}, // no figures: not compared
	}
	v := versusBaseline("mf-before", ours, base)
	want := fleetVersus{name: "mf-before", batch: []float64{2, 1}, single: []float64{1, 4}, rerun: []float64{0.5, 1.5}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("versusBaseline = %+v, want %+v", v, want)
	}
}

func TestFleetBounds(t *testing.T) {
	for _, tc := range []struct {
		workers int
		budget  float64
		cpu     partyCPU
		cores   int
		bound   float64
	}{
		{workers: 8, budget: 260, cpu: partyCPU{mailferry: 0.2, source: 0.1, dest: 0.2}, cores: 2, bound: 4000},
		{workers: 1, budget: 85, cpu: partyCPU{mailferry: 1, source: 1, dest: 2}, cores: 4, bound: 1000},
		{workers: 4, budget: 160, cores: 2, bound: 0}, // no CPU figures: no bound
	} {
		if got := rssBudgetMB(tc.workers); got != tc.budget {
			t.Errorf("rssBudgetMB(%d) = %.0f, want %.0f", tc.workers, got, tc.budget)
		}
		if got := cpuBound(tc.cpu, tc.cores); math.Abs(got-tc.bound) > 1e-6 {
			t.Errorf("cpuBound(%+v, %d) = %.1f, want %.1f", tc.cpu, tc.cores, got, tc.bound)
		}
	}
}

func TestFleetFlags(t *testing.T) {
	for _, tc := range []struct {
		args                      []string
		ok                        bool
		accounts, messages, works int
		mixed, single             int
		delay                     time.Duration
	}{
		{args: []string{"-workloads", "fleet"}, ok: true, accounts: 200, messages: 200, works: 8, mixed: 16, single: 40000, delay: 20 * time.Millisecond},
		{args: []string{"-workloads", "fleet", "-fleet", "20x50", "-fleet-workers", "2", "-fleet-mixed", "0", "-fleet-single", "300"}, ok: true,
			accounts: 20, messages: 50, works: 2, mixed: 0, single: 300, delay: 20 * time.Millisecond},
		{args: []string{"-fleet", "20x50", "-fleet-single", "5000"}, ok: true, accounts: 20, messages: 50, works: 8, mixed: 16, single: 1000,
			delay: 20 * time.Millisecond},
		// -fleet-delay is the fleet's own: -delay is the latency scenario's.
		{args: []string{"-fleet-delay", "0"}, ok: true, accounts: 200, messages: 200, works: 8, mixed: 16, single: 40000},
		{args: []string{"-fleet-delay", "50ms", "-delay", "5ms"}, ok: true, accounts: 200, messages: 200, works: 8, mixed: 16, single: 40000,
			delay: 50 * time.Millisecond},
		{args: []string{"-fleet-delay", "-1ms"}},
		{args: []string{"-fleet-delay", "20"}}, // no unit
		{args: []string{"-fleet", "200"}},
		{args: []string{"-fleet", "0x10"}},
		{args: []string{"-fleet", "10x0"}},
		{args: []string{"-fleet-workers", "0"}},
		{args: []string{"-fleet-mixed", "-1"}},
	} {
		c, err := parseFlags(tc.args, io.Discard)
		if (err == nil) != tc.ok {
			t.Errorf("%q: error %v, want ok %v", tc.args, err, tc.ok)
			continue
		}
		if tc.ok && (c.fleet.accounts != tc.accounts || c.fleet.messages != tc.messages || c.fleetWorkers != tc.works || c.fleetMixed != tc.mixed ||
			c.fleetSingle != tc.single || c.fleetDelay != tc.delay) {
			t.Errorf("%q: fleet %+v, workers %d, mixed %d, single %d, delay %v", tc.args, c.fleet, c.fleetWorkers, c.fleetMixed, c.fleetSingle,
				c.fleetDelay)
		}
	}
}

// TestFleetLinks: without a delay the fleet runs on loopback alone; with
// one, also through a delay proxy in front of each server, which forwards
// to that server, and the link is named by its round trip.
func TestFleetLinks(t *testing.T) {
	for _, tc := range []struct {
		name      string
		delay     time.Duration
		wantRTT   []time.Duration
		wantLabel []string
	}{
		{name: "loopback only", wantRTT: []time.Duration{0}, wantLabel: []string{""}},
		{name: "and 2 ms each way", delay: 2 * time.Millisecond, wantRTT: []time.Duration{0, 4 * time.Millisecond},
			wantLabel: []string{"", " (4ms RTT)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := echoServer(t), echoServer(t)
			links, stop, err := fleetLinks(src, dst, tc.delay)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			if len(links) != len(tc.wantRTT) {
				t.Fatalf("%d links, want %d", len(links), len(tc.wantRTT))
			}
			if links[0].src != src || links[0].dst != dst {
				t.Errorf("loopback link to %s, %s; want %s, %s", links[0].src, links[0].dst, src, dst)
			}
			for i, l := range links {
				if l.rtt != tc.wantRTT[i] || l.label() != tc.wantLabel[i] {
					t.Errorf("link %d: rtt %v, label %q; want %v, %q", i, l.rtt, l.label(), tc.wantRTT[i], tc.wantLabel[i])
				}
				if i == 0 {
					continue
				}
				if l.src == src || l.dst == dst {
					t.Errorf("link %d goes to the servers directly (%s, %s), not through proxies", i, l.src, l.dst)
				}
				// Each proxy reaches its own server: bytes come back from it.
				for _, addr := range []string{l.src, l.dst} {
					echoThrough(t, addr, "a line for "+addr)
				}
			}
		})
	}
}

// echoThrough writes msg to the echo server at addr and reads it back.
func echoThrough(t *testing.T, addr, msg string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != msg {
		t.Errorf("through %s: read %q, %v; want %q", addr, got, err, msg)
	}
}

// TestPrintFleet prints a path's summary on loopback and at a delay: the
// sizes compared, the per-party CPU and busy cores of each, and the runs
// at the delay over those on loopback, trial by trial.
func TestPrintFleet(t *testing.T) {
	loop := []fleetTrial{
		{batch: fleetRun(40000, 5, 2, 1, 2, 50), single: fleetRun(10000, 1, 1, 0.5, 0.5, 40), rerun: mailferryRun{wall: 2 * time.Second}},
		{batch: fleetRun(40000, 4, 2, 1, 2, 50), single: fleetRun(10000, 1, 1, 0.5, 0.5, 40), rerun: mailferryRun{wall: 2 * time.Second}},
	}
	far := []fleetTrial{
		{batch: fleetRun(40000, 20, 2, 1, 2, 50), single: fleetRun(10000, 2, 1, 0.5, 0.5, 40), rerun: mailferryRun{wall: 8 * time.Second}},
		{batch: fleetRun(40000, 16, 2, 1, 2, 50), single: fleetRun(10000, 4, 1, 0.5, 0.5, 40), rerun: mailferryRun{wall: 10 * time.Second}},
	}
	s := summarizeFleet("imap→imap", 200, 8, loop)
	d := summarizeFleet("imap→imap (40ms RTT)", 200, 8, far)
	v := versusBaseline("loopback", far, loop)
	d.rtt, d.versusLoopback = 40*time.Millisecond, &v
	var b strings.Builder
	printFleet(&b, []fleetSummary{s, d})
	out := b.String()
	for _, want := range []string{
		// loopback: 8,000 and 10,000 msgs/s, then 10,000 and 10,000.
		"imap→imap, median of 2 trial(s): 200 accounts, 40000 messages, with workers = 8: 9000 msgs/s aggregate; " +
			"one account of 10000 of those messages: 10000 msgs/s; aggregate ÷ single 0.90 (trials 0.80 1.00) MISSED",
		"CPU ms per message, batch: mailferry 0.050, source Dovecot 0.025, destination Dovecot 0.050 (sum 0.125); busy 1.12 cores (the machine 1.62)",
		"CPU ms per message, single: mailferry 0.100, source Dovecot 0.050, destination Dovecot 0.050 (sum 0.200); busy 2.00 cores",
		"per account of the batch: 0.180 s of a worker (wall × workers ÷ accounts)\n",
		// 40 ms: 2,000 and 2,500 msgs/s against 5,000 and 2,500.
		"imap→imap (40ms RTT), median of 2 trial(s): 200 accounts, 40000 messages, with workers = 8: 2250 msgs/s aggregate; " +
			"one account of 10000 of those messages: 3750 msgs/s; aggregate ÷ single 0.70 (trials 0.40 1.00) MISSED",
		"per account of the batch: 0.720 s of a worker (wall × workers ÷ accounts) = 18.0 × the 40ms round trip",
		"at 40ms RTT ÷ loopback, same trials: batch rate 0.25 (trials 0.25 0.25), single account's rate 0.38 (trials 0.50 0.25), " +
			"re-run with nothing new: seconds 4.50 (trials 4.00 5.00)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("printFleet has no %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "÷ loopback"); n != 1 {
		t.Errorf("%d lines against loopback, want 1 (the delayed path's):\n%s", n, out)
	}
}

// TestFleetDelayedBesideLoopback runs the fleet workload on a few small
// accounts against real Dovecot servers with -fleet-delay: in every trial
// the batch, its re-run and the single account run on loopback and
// through the delay proxies, each copying every message, and the summary
// sets the delayed runs beside those on loopback.
func TestFleetDelayedBesideLoopback(t *testing.T) {
	dovecot.Require(t)
	res, stdout := runJSON(t, "-workloads", "fleet", "-fleet", "3x4", "-fleet-single", "8", "-fleet-mixed", "0", "-fleet-delay", "1ms",
		"-paths", "imap", "-tls", "off", "-peers", "none", "-trials", "2")
	type key struct {
		path  string
		trial int
	}
	got := map[key]int{}
	for _, r := range res.Rows {
		if !strings.HasPrefix(r.Workload, "fleet") {
			continue
		}
		got[key{r.Path, r.Trial}] = r.Messages
	}
	for trial := 1; trial <= 2; trial++ {
		for _, link := range []string{"", " (2ms RTT)"} {
			p := "imap→imap, TLS off" + link
			for path, n := range map[string]int{
				p + ", 3 accounts, workers 8":         12,
				p + ", 3 accounts again, nothing new": 12,
				p + ", one account of 8":              8,
			} {
				if m, ok := got[key{path, trial}]; !ok || m != n {
					t.Errorf("trial %d, %q: %d messages (row %v), want %d", trial, path, m, ok, n)
				}
			}
		}
	}
	if len(got) != 12 {
		t.Errorf("%d fleet rows, want 12 (3 runs × 2 links × 2 trials): %v", len(got), got)
	}
	for _, want := range []string{
		"imap→imap, TLS off, median of 2 trial(s): 3 accounts, 12 messages, with workers = 8",
		"imap→imap, TLS off (2ms RTT), median of 2 trial(s): 3 accounts, 12 messages, with workers = 8",
		"one account of 8 of those messages",
		"× the 2ms round trip",
		"at 2ms RTT ÷ loopback, same trials: batch rate",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the output has no %q:\n%s", want, stdout)
		}
	}
}
