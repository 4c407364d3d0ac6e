package main

import (
	"io"
	"math"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	mfconfig "github.com/mailferry/mailferry/config"
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
// given CPU seconds of mailferry, the source and the destination.
func fleetRun(n int, wall, mf, src, dst float64, rssMB int64) mailferryRun {
	return mailferryRun{copied: n, wall: time.Duration(wall * float64(time.Second)), peakRSSKB: rssMB << 10,
		cpu: cpuUse{Wall: wall, Client: mf, Source: src, Dest: dst}}
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
	}{{
		name: "one trial, batch slower",
		trials: []fleetTrial{{
			batch:  fleetRun(40000, 40, 12, 8, 16, 120),
			single: fleetRun(40000, 20, 8, 4, 8, 40),
			rerun:  mailferryRun{wall: 2 * time.Second},
		}},
		wantBatch: 1000, wantSingle: 2000, wantRatio: 0.5, wantRerun: 2, wantRSS: 120,
		wantCPU: partyCPU{mailferry: 0.3, source: 0.2, dest: 0.4, busy: 0.9},
	}, {
		name: "three trials: medians of rates and of the trials' ratios",
		trials: []fleetTrial{
			{batch: fleetRun(1000, 1, 1, 1, 1, 100), single: fleetRun(1000, 2, 1, 1, 1, 30), rerun: mailferryRun{wall: time.Second}},
			{batch: fleetRun(1000, 2, 1, 1, 1, 110), single: fleetRun(1000, 1, 1, 1, 1, 30), rerun: mailferryRun{wall: 3 * time.Second}},
			{batch: fleetRun(1000, 1, 2, 1, 1, 90), single: fleetRun(1000, 1, 1, 1, 1, 30), rerun: mailferryRun{wall: 2 * time.Second}},
		},
		// rates 1000, 500, 1000 and 500, 1000, 1000; ratios 2, 0.5, 1.
		wantBatch: 1000, wantSingle: 1000, wantRatio: 1, wantRerun: 2, wantRSS: 100,
		wantCPU: partyCPU{mailferry: 1, source: 1, dest: 1, busy: 3},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := summarizeFleet("pop3→imap", 200, 8, tc.trials)
			near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
			if !near(s.batchRate, tc.wantBatch) || !near(s.singleRate, tc.wantSingle) || !near(s.ratio, tc.wantRatio) {
				t.Errorf("batch %.1f, single %.1f msgs/s, ratio %.2f; want %.1f, %.1f, %.2f", s.batchRate, s.singleRate, s.ratio,
					tc.wantBatch, tc.wantSingle, tc.wantRatio)
			}
			if !near(s.rerunSeconds, tc.wantRerun) || !near(s.batchRSSMB, tc.wantRSS) {
				t.Errorf("rerun %.2f s, RSS %.1f MB; want %.2f, %.1f", s.rerunSeconds, s.batchRSSMB, tc.wantRerun, tc.wantRSS)
			}
			c := s.batchCPU
			if !near(c.mailferry, tc.wantCPU.mailferry) || !near(c.source, tc.wantCPU.source) || !near(c.dest, tc.wantCPU.dest) ||
				!near(c.busy, tc.wantCPU.busy) {
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
	}{
		{args: []string{"-workloads", "fleet"}, ok: true, accounts: 200, messages: 200, works: 8, mixed: 16, single: 40000},
		{args: []string{"-workloads", "fleet", "-fleet", "20x50", "-fleet-workers", "2", "-fleet-mixed", "0", "-fleet-single", "300"}, ok: true,
			accounts: 20, messages: 50, works: 2, mixed: 0, single: 300},
		{args: []string{"-fleet", "20x50", "-fleet-single", "5000"}, ok: true, accounts: 20, messages: 50, works: 8, mixed: 16, single: 1000},
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
			c.fleetSingle != tc.single) {
			t.Errorf("%q: fleet %+v, workers %d, mixed %d, single %d", tc.args, c.fleet, c.fleetWorkers, c.fleetMixed, c.fleetSingle)
		}
	}
}
