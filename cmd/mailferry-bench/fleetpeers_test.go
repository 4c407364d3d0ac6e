package main

import (
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPeerTally: a peer's batch is the sum of its processes' CPU and the
// largest of their peak RSS, not the sum.
func TestPeerTally(t *testing.T) {
	for _, tc := range []struct {
		name    string
		runs    []peerRun
		wantCPU float64
		wantRSS int64
	}{
		{name: "none"},
		{name: "one", runs: []peerRun{{cpuSeconds: 0.5, peakRSSKB: 7000}}, wantCPU: 0.5, wantRSS: 7000},
		{name: "three, the largest in the middle", runs: []peerRun{{cpuSeconds: 0.25, peakRSSKB: 4000}, {cpuSeconds: 1, peakRSSKB: 9000},
			{cpuSeconds: 0.5, peakRSSKB: 5000}}, wantCPU: 1.75, wantRSS: 9000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tally peerTally
			for _, r := range tc.runs {
				tally.add(r)
			}
			if math.Abs(tally.cpuSeconds-tc.wantCPU) > 1e-9 || tally.peakRSSKB != tc.wantRSS || tally.processes != len(tc.runs) {
				t.Errorf("tally %+v, want %.2f CPU-s, %d KB, %d processes", tally, tc.wantCPU, tc.wantRSS, len(tc.runs))
			}
		})
	}
}

// TestFleetPeers: the fleet runs the peers -peers names, none with auto
// (with a note naming them), each only on the paths and transports it
// reads, and through the delay proxies only where it does not wait a
// round trip per message.
func TestFleetPeers(t *testing.T) {
	loop, far := fleetLink{}, fleetLink{rtt: 40 * time.Millisecond}
	for _, tc := range []struct {
		name     string
		args     []string
		kind     string
		secure   bool
		link     fleetLink
		want     []string
		wantNote string // of fleetPeers
		autoNote bool   // fleetPeersNote says how to run them
	}{
		{name: "auto runs none on the fleet", args: []string{"-peers", "auto"}, kind: "imap", link: loop, autoNote: true},
		{name: "none", args: []string{"-peers", "none"}, kind: "imap", link: loop},
		{name: "named, imap", args: []string{"-peers", "doveadm,mbsync"}, kind: "imap", link: loop, want: []string{"doveadm", "mbsync"}},
		{name: "named, imap at a delay", args: []string{"-peers", "mbsync,doveadm"}, kind: "imap", link: far, want: []string{"mbsync", "doveadm"}},
		{name: "named, pop3: mbsync reads no POP3", args: []string{"-peers", "doveadm,mbsync"}, kind: "pop3", link: loop, want: []string{"doveadm"}},
		{name: "pop3 over TLS: doveadm's pop3c stalls", args: []string{"-peers", "doveadm,mbsync"}, kind: "pop3", secure: true, link: loop},
		{name: "pop3 at a delay: a round trip per message", args: []string{"-peers", "doveadm"}, kind: "pop3", link: far,
			wantNote: "doveadm not run at 40ms RTT: it reads pop3 a message per round trip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseFlags(tc.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			// As choosePeers finds them installed.
			var chosen []*peer
			for _, name := range cfg.peers {
				chosen = append(chosen, findPeer(name))
			}
			if cfg.peersAuto {
				chosen = peers
			}
			ps, notes := fleetPeers(cfg, chosen, tc.kind, tc.secure, tc.link)
			var got []string
			for _, p := range ps {
				got = append(got, p.name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("peers %v, want %v", got, tc.want)
			}
			if strings.Join(notes, "; ") != tc.wantNote {
				t.Errorf("notes %q, want %q", notes, tc.wantNote)
			}
			note := fleetPeersNote(cfg, chosen)
			if tc.autoNote != (note != "") || (tc.autoNote && !strings.Contains(note, "-peers mbsync,doveadm runs them")) {
				t.Errorf("note %q, want one: %v", note, tc.autoNote)
			}
		})
	}
}

// TestSummarizeFleetPeer: a peer's trials come to its own aggregate ÷
// single, and mailferry's rates over the peer's trial by trial, with no
// re-run (the peers have none).
func TestSummarizeFleetPeer(t *testing.T) {
	mf := []fleetTrial{
		{batch: fleetRun(40000, 5, 2, 1, 2, 50), single: fleetRun(40000, 4, 1, 0.5, 0.5, 40), rerun: mailferryRun{wall: 2 * time.Second}},
		{batch: fleetRun(40000, 4, 2, 1, 2, 50), single: fleetRun(40000, 5, 1, 0.5, 0.5, 40), rerun: mailferryRun{wall: 2 * time.Second}},
		{batch: fleetRun(40000, 8, 2, 1, 2, 50), single: fleetRun(40000, 4, 1, 0.5, 0.5, 40), rerun: mailferryRun{wall: 2 * time.Second}},
	}
	for _, tc := range []struct {
		name       string
		trials     []fleetTrial
		wantRatio  float64 // the peer's aggregate ÷ single
		wantBatch  []float64
		wantSingle []float64
		wantCPU    partyCPU // of the peer's batch
	}{{
		name: "half mailferry's batch rate, its single account's",
		trials: []fleetTrial{
			{batch: fleetRun(40000, 10, 4, 2, 0, 8), single: fleetRun(40000, 4, 1, 1, 0, 7)},
			{batch: fleetRun(40000, 8, 4, 2, 0, 8), single: fleetRun(40000, 5, 1, 1, 0, 7)},
			{batch: fleetRun(40000, 16, 4, 2, 0, 8), single: fleetRun(40000, 4, 1, 1, 0, 7)},
		},
		// ratios 0.4, 0.625, 0.25.
		wantRatio: 0.4, wantBatch: []float64{2, 2, 2}, wantSingle: []float64{1, 1, 1},
		wantCPU: partyCPU{mailferry: 0.1, source: 0.05, dest: 0, busy: 0.6, machine: 1.1},
	}, {
		name: "faster in the batch than its single account",
		trials: []fleetTrial{
			{batch: fleetRun(40000, 2.5, 1, 1, 1, 4), single: fleetRun(40000, 4, 1, 1, 1, 4)},
			{batch: fleetRun(40000, 2, 1, 1, 1, 4), single: fleetRun(40000, 10, 1, 1, 1, 4)},
			{batch: fleetRun(40000, 4, 1, 1, 1, 4), single: fleetRun(40000, 4, 1, 1, 1, 4)},
		},
		// ratios 1.6, 5, 1; mailferry ÷ peer: batch 0.5, 0.5, 0.5; single 1, 2, 1.
		wantRatio: 1.6, wantBatch: []float64{0.5, 0.5, 0.5}, wantSingle: []float64{1, 2, 1},
		wantCPU: partyCPU{mailferry: 0.025, source: 0.025, dest: 0.025, busy: 1.2, machine: 1.7},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := findPeer("doveadm")
			s := summarizeFleetPeer(p, "pop3→imap, TLS off", 200, 8, mf, tc.trials)
			if s.name != "doveadm" || s.note != p.note || s.summary.path != "pop3→imap, TLS off, doveadm" {
				t.Errorf("named %q (%q), path %q", s.name, s.note, s.summary.path)
			}
			near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
			if !near(s.summary.ratio, tc.wantRatio) || s.summary.trials != len(tc.trials) {
				t.Errorf("aggregate ÷ single %.2f of %d trials, want %.2f of %d", s.summary.ratio, s.summary.trials, tc.wantRatio, len(tc.trials))
			}
			want := fleetVersus{name: "doveadm", batch: tc.wantBatch, single: tc.wantSingle}
			if !reflect.DeepEqual(s.versus, want) {
				t.Errorf("mailferry ÷ doveadm %+v, want %+v", s.versus, want)
			}
			c := s.summary.batchCPU
			if !near(c.mailferry, tc.wantCPU.mailferry) || !near(c.source, tc.wantCPU.source) || !near(c.dest, tc.wantCPU.dest) ||
				!near(c.busy, tc.wantCPU.busy) || !near(c.machine, tc.wantCPU.machine) {
				t.Errorf("the peer's batch CPU %+v, want %+v", c, tc.wantCPU)
			}
		})
	}
}

// TestPrintFleetPeers prints mailferry's summary with a peer beside it:
// the peer's aggregate ÷ single, its CPU per message by party under its
// own name, its peak RSS of one process, mailferry's rates over its in
// the same trials without a re-run clause, and the peers left out.
// mailferry's own lines are as without peers.
func TestPrintFleetPeers(t *testing.T) {
	mf := []fleetTrial{
		{batch: fleetRun(40000, 5, 2, 1, 2, 50), single: fleetRun(40000, 4, 1, 0.5, 0.5, 40), rerun: mailferryRun{wall: 2 * time.Second}},
		{batch: fleetRun(40000, 2.5, 2, 1, 2, 50), single: fleetRun(40000, 5, 1, 0.5, 0.5, 40), rerun: mailferryRun{wall: 2 * time.Second}},
	}
	mb := []fleetTrial{
		{batch: fleetRun(40000, 10, 1, 2, 4, 4), single: fleetRun(40000, 8, 0.5, 1, 2, 4)},
		{batch: fleetRun(40000, 5, 1, 2, 4, 5), single: fleetRun(40000, 10, 0.5, 1, 2, 4)},
	}
	without := summarizeFleet("imap→imap, TLS off", 200, 8, mf)
	with := without
	with.peers = []fleetPeerSummary{summarizeFleetPeer(findPeer("mbsync"), "imap→imap, TLS off", 200, 8, mf, mb)}
	with.peerNotes = []string{"doveadm not run at 40ms RTT: it reads pop3 a message per round trip"}
	var a, b strings.Builder
	printFleet(&a, []fleetSummary{without})
	printFleet(&b, []fleetSummary{with})
	out := b.String()
	if !strings.HasPrefix(out, a.String()) {
		t.Errorf("mailferry's lines change beside a peer:\n%s\nwant them as:\n%s", out, a.String())
	}
	for _, want := range []string{
		// batch 4,000 and 8,000 msgs/s, single 5,000 and 4,000: ratios 0.8 and 2;
		// CPU per message 0.175 ms in the batch, 0.0875 single.
		"  imap→imap, TLS off, mbsync, median of 2 trial(s): 200 accounts, 40000 messages, 8 processes at once (one per account): 6000 msgs/s aggregate; " +
			"one account of 40000 of those messages, one process: 4500 msgs/s; aggregate ÷ single 1.40 (trials 0.80 2.00), CPU bound batch ÷ single 0.50; " +
			"peak RSS of one process 4.5 MB (single 4.0 MB)\n",
		// mailferry: 0.05 + 0.025 + 0.05 ms per message in the batch, 0.025 + 0.0125 + 0.0125 single.
		"    mailferry's CPU bound, batch ÷ single: 0.40 (as the other tools' below)\n",
		"    mbsync: isync's mbsync, IMAP to IMAP through both servers\n",
		"    CPU ms per message, batch: mbsync 0.025, source Dovecot 0.050, destination Dovecot 0.100 (sum 0.175); busy 1.05 cores (the machine 1.55)",
		"    per account of the batch: 0.300 s of a process slot (wall × processes at once ÷ accounts)\n",
		// mailferry's batch 8,000 and 16,000 msgs/s, single 10,000 and 8,000.
		"    mailferry ÷ mbsync, same trials: batch rate 2.00 (trials 2.00 2.00), single account's rate 2.00 (trials 2.00 2.00)\n",
		"    doveadm not run at 40ms RTT: it reads pop3 a message per round trip\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("printFleet has no %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "re-run with nothing new") != 0 || strings.Count(out, "MISSED")+strings.Count(out, " met") != 1 {
		t.Errorf("a peer's lines give a re-run or a verdict on the target (mailferry's):\n%s", out)
	}
}

// TestRunPeerFleetCounts: a peer's batch counts only when every
// destination holds its share: a tool that exits 0 having copied nothing,
// or one that fails, is an error, never a figure; mbsync copying every
// account, 2 processes at a time, is measured as one run.
func TestRunPeerFleetCounts(t *testing.T) {
	requirePeers(t)
	cfg, err := parseFlags([]string{"-workloads", "fleet", "-fleet", "3x4", "-fleet-mixed", "0", "-fleet-workers", "2", "-tls", "off",
		"-peers", "none"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// As benchmark makes it: Dovecot's unprivileged processes traverse it.
	dir, err := os.MkdirTemp("", "fleetpeers-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e := &env{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)), dir: dir}
	if err := e.start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.src.Stop(); e.dst.Stop() })
	if err := e.seedFleet(); err != nil {
		t.Fatal(err)
	}
	imap := sourceKinds[1]
	if imap.name != "imap" {
		t.Fatalf("sourceKinds[1] is %s", imap.name)
	}
	link := fleetLink{src: e.srcAddr(imap), dst: e.dstAddr()}
	var users [][2]string
	for a := range 3 {
		users = append(users, [2]string{fleetUser(a), fleetDest(a)})
	}
	fake := func(name string) *peer {
		return &peer{name: name, kinds: []string{"imap"}, command: func(peerJob) (*exec.Cmd, error) { return exec.Command(name), nil }}
	}
	for _, tc := range []struct {
		name    string
		p       *peer
		wantErr string
	}{
		{name: "copies nothing", p: fake("true"), wantErr: "destination fdst000 holds 0 messages, want 4"},
		{name: "fails", p: fake("false"), wantErr: "false for fleet00"},
		{name: "mbsync copies all", p: findPeer("mbsync")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := e.runPeerFleet(t.Context(), tc.p, imap, link, users, 12, 2)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.copied != 12 || r.wall <= 0 || r.cpuSeconds <= 0 || r.peakRSSKB <= 0 || r.cpu.Wall <= 0 {
				t.Errorf("run %+v: want 12 copied, and its time, CPU and peak RSS", r)
			}
			// The destinations are emptied for the next run.
			for _, u := range users {
				if _, err := os.Stat(e.dst.Dir() + "/mail/" + u[1]); !os.IsNotExist(err) {
					t.Errorf("%s's mail is still there: %v", u[1], err)
				}
			}
		})
	}
}

// TestFleetWithPeers runs the fleet workload on a few small accounts with
// doveadm and mbsync on both paths, on loopback and through delay
// proxies: every peer that reads a path copies the batch and the single
// account there, every message counted at the destination, and the
// summary sets mailferry's rates over each peer's; doveadm's pop3c is
// left out at the delay, and said to be.
func TestFleetWithPeers(t *testing.T) {
	requirePeers(t)
	res, stdout := runJSON(t, "-workloads", "fleet", "-fleet", "4x20", "-fleet-single", "80", "-fleet-mixed", "0", "-fleet-delay", "1ms",
		"-paths", "imap,pop3", "-tls", "off", "-peers", "doveadm,mbsync", "-trials", "1")
	got := map[string]int{}
	for _, r := range res.Rows {
		if strings.HasPrefix(r.Workload, "fleet") && strings.HasPrefix(r.Kind, "peer") {
			got[r.Path] = r.Messages
			if r.Seconds <= 0 || r.Bytes <= 0 || r.PeakRSSMB <= 0 || r.CPU == nil || r.CPU.Client <= 0 {
				t.Errorf("%s: no time, bytes, peak RSS or CPU: %+v", r.Path, r)
			}
		}
	}
	want := map[string]int{}
	for _, p := range []string{"imap→imap, TLS off, doveadm", "imap→imap, TLS off, mbsync", "imap→imap, TLS off (2ms RTT), doveadm",
		"imap→imap, TLS off (2ms RTT), mbsync", "pop3→imap, TLS off, doveadm"} {
		want[p+", 4 accounts, 8 at once"], want[p+", one account of 80"] = 80, 80
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("peer rows %v, want %v", got, want)
	}
	for _, s := range []string{
		"imap→imap, TLS off, doveadm, median of 1 trial(s): 4 accounts, 80 messages, 8 processes at once",
		"imap→imap, TLS off (2ms RTT), mbsync, median of 1 trial(s): 4 accounts, 80 messages, 8 processes at once",
		"pop3→imap, TLS off, doveadm, median of 1 trial(s)",
		"mailferry ÷ doveadm, same trials: batch rate",
		"mailferry ÷ mbsync, same trials: batch rate",
		"doveadm not run at 2ms RTT: it reads pop3 a message per round trip",
	} {
		if !strings.Contains(stdout, s) {
			t.Errorf("the output has no %q:\n%s", s, stdout)
		}
	}
}

// TestBoundRatio: the batch's CPU bound over the single account's is the
// single account's CPU per message over the batch's, all three parties;
// none without figures.
func TestBoundRatio(t *testing.T) {
	for _, tc := range []struct {
		batch, single partyCPU
		want          float64
	}{
		{batch: partyCPU{mailferry: 0.1, source: 0.1, dest: 0.2}, single: partyCPU{mailferry: 0.05, source: 0.05, dest: 0.1}, want: 0.5},
		{batch: partyCPU{mailferry: 0.05, source: 0.05, dest: 0.3}, single: partyCPU{mailferry: 0.05, source: 0.05, dest: 1.1}, want: 3},
		{single: partyCPU{mailferry: 0.05}, want: 0},
	} {
		if got := boundRatio(fleetSummary{batchCPU: tc.batch, singleCPU: tc.single}); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("boundRatio(batch %+v, single %+v) = %.3f, want %.3f", tc.batch, tc.single, got, tc.want)
		}
	}
}
