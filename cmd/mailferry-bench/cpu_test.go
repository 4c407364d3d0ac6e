package main

import (
	"math"
	"os"
	"strconv"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		stat    string
		want    procStat
		wantErr bool
	}{
		{
			name: "dovecot child",
			stat: "4242 (imap) S 4200 4200 4200 0 -1 4194560 812 0 0 0 37 12 5 3 20 0 1 0 123 10000 300 18446744073709551615",
			want: procStat{pid: 4242, ppid: 4200, ticks: 37 + 12 + 5 + 3},
		},
		{
			name: "comm with spaces and parentheses",
			stat: "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 100 200 0 0 20 0 1 0 1 1 1 1",
			want: procStat{pid: 7, ppid: 1, ticks: 300},
		},
		{name: "truncated", stat: "7 (x) R 1 7", wantErr: true},
		{name: "no comm", stat: "7 x R 1", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseProcStat([]byte(tc.stat))
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseProcStat(%q) error = %v, want error %v", tc.stat, err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("parseProcStat(%q) = %+v, want %+v", tc.stat, got, tc.want)
			}
		})
	}
}

func TestParseCPULine(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		line    string
		want    float64
		wantErr bool
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{name: "busy fields only", line: "cpu  100 5 50 9000 40 1 2 3 0 0", want: 1.61},
		{name: "not the total line", line: "cpu0 1 2 3 4 5 6 7 8", wantErr: true},
		{name: "short", line: "cpu 1 2 3", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseCPULine(tc.line)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseCPULine(%q) error = %v, want error %v", tc.line, err, tc.wantErr)
			}
			if math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("parseCPULine(%q) = %v, want %v", tc.line, got, tc.want)
			}
		})
	}
}

func TestTreeCPU(t *testing.T) {
	t.Parallel()
	procs := []procStat{
		{pid: 1, ppid: 0, ticks: 1000},
		{pid: 10, ppid: 1, ticks: 50},  // the master: its reaped children are in here
		{pid: 11, ppid: 10, ticks: 20}, // a login process
		{pid: 12, ppid: 10, ticks: 30},
		{pid: 13, ppid: 12, ticks: 7},  // a grandchild
		{pid: 20, ppid: 1, ticks: 400}, // another tree
	}
	cases := []struct {
		name string
		root int
		want float64
	}{
		{name: "master and every descendant", root: 10, want: 1.07},
		{name: "a subtree", root: 12, want: 0.37},
		{name: "unknown root", root: 99, want: 0},
		{name: "no pid file", root: 0, want: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := treeCPU(procs, tc.root); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("treeCPU(root %d) = %v, want %v", tc.root, got, tc.want)
			}
		})
	}
}

// TestCPUMeterSeesChildren checks on the real /proc that a process tree's
// CPU time is found through a pid file, including a child that exited and
// was waited for during the pass.
func TestCPUMeterSeesChildren(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(dir+"/run", 0o755); err != nil {
		t.Fatal(err)
	}
	// This test process plays the master: a busy loop of its own makes
	// the CPU time to find.
	if err := os.WriteFile(dir+"/run/master.pid", []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := newCPUMeter(dir, t.TempDir())
	before := m.snapshot()
	// Spin until this process has used 0.3 s of CPU, however loaded the
	// machine is (wall time would not do on a busy machine).
	if !spinCPU(0.3, 30*time.Second) {
		t.Skip("could not get 0.3 s of CPU within 30 s")
	}
	u := m.since(before, -1)
	// /proc counts in 10 ms ticks, read at slightly different moments.
	if u.Source < 0.25 {
		t.Errorf("source tree CPU = %.2f s after spinning 0.3 s of CPU, want ≥ 0.25", u.Source)
	}
	if u.Dest != 0 {
		t.Errorf("dest CPU without a pid file = %.2f, want 0", u.Dest)
	}
	if u.Client < 0.25 || u.Machine < 0.25 {
		t.Errorf("client CPU %.2f, machine %.2f after spinning 0.3 s of CPU, want ≥ 0.25 each", u.Client, u.Machine)
	}
}

// spinCPU burns CPU until this process has used sec seconds more, or
// gives up (false) after limit.
func spinCPU(sec float64, limit time.Duration) bool {
	start, end := selfCPU(), time.Now().Add(limit)
	x := 0
	for selfCPU()-start < sec {
		for range 100_000 {
			x++
		}
		if time.Now().After(end) {
			return false
		}
	}
	return x > 0
}

func TestMedianAndSerialCeiling(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		got  float64
		want float64
	}{
		{name: "median odd", got: median([]float64{3, 1, 2}), want: 2},
		{name: "median even", got: median([]float64{4, 1, 3, 2}), want: 2.5},
		{name: "median none", got: median(nil), want: 0},
		{name: "serial of equal ceilings", got: serialCeiling(100, 100), want: 50},
		{name: "serial of 60 and 30", got: serialCeiling(60, 30), want: 20},
		{name: "serial without a ceiling", got: serialCeiling(0, 30), want: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if math.Abs(tc.got-tc.want) > 1e-9 {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}
