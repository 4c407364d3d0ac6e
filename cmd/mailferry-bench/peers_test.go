package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// requirePeers skips the test when a peer tool is missing, except under
// CI=true, where it fails: scripts/test.sh installs them.
func requirePeers(t *testing.T) {
	t.Helper()
	dovecot.Require(t)
	for _, p := range peers {
		if _, err := exec.LookPath(p.bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI=true and %s is not installed (Debian package %s)", p.bin, p.pkg)
			}
			t.Skipf("skipping: %s is not installed (Debian package %s)", p.bin, p.pkg)
		}
	}
}

// TestBenchPeersBothTransports runs the whole benchmark on a few messages
// with -tls off,on and every peer, as `go run ./cmd/mailferry-bench` does:
// mailferry and the peers copy every message on each path they can read,
// in plain text and over TLS, and the JSON and the table put them side by
// side with mailferry's rate over theirs and the CPU per MB of each party.
func TestBenchPeersBothTransports(t *testing.T) {
	requirePeers(t)
	res, stdout := runJSON(t, "-workloads", "small", "-small-count", "12", "-latency-count", "0",
		"-write-batches", "1", "-write-conns", "1", "-tls", "off,on", "-peers", "mbsync,doveadm")
	want := map[string][]string{
		"pop3→imap, TLS off": {"mailferry", "doveadm"},
		"imap→imap, TLS off": {"mailferry", "mbsync", "doveadm"},
		// doveadm's pop3c stalls over TLS (peers: plainOnly).
		"pop3→imap": {"mailferry"},
		"imap→imap": {"mailferry", "mbsync", "doveadm"},
	}
	seen := map[string]bool{}
	for _, s := range res.Summaries {
		tools, ok := want[s.Path]
		if !ok {
			t.Errorf("unexpected summary for %q", s.Path)
			continue
		}
		seen[s.Path] = true
		var got []string
		for _, tf := range s.Tools {
			got = append(got, tf.Tool)
			if tf.MBPerSec <= 0 || tf.ClientMSPerMB <= 0 || tf.PeakRSSMB <= 0 {
				t.Errorf("%s, %s: no speed, CPU or peak RSS: %+v", s.Path, tf.Tool, tf)
			}
			if tf.Tool != "mailferry" && (tf.MailferryRatio <= 0 || len(tf.Ratios) != 1) {
				t.Errorf("%s, %s: no mailferry ÷ tool ratio: %+v", s.Path, tf.Tool, tf)
			}
		}
		if !slices.Equal(got, tools) {
			t.Errorf("%s: tools %v, want %v", s.Path, got, tools)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("summaries for %v, want all of %v", seen, want)
	}
	// Each peer's copy is its own row, all its messages copied.
	peerRows := 0
	for _, r := range res.Rows {
		if r.Kind == "peer" {
			peerRows++
			if r.Messages != 12 {
				t.Errorf("%s: %d messages, want 12", r.Path, r.Messages)
			}
		}
	}
	if peerRows != 5 {
		t.Errorf("%d peer rows, want 5", peerRows)
	}
	for _, s := range []string{"AGAINST OTHER TOOLS", "MAILFERRY ÷ TOOL", "load average"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("the output has no %q:\n%s", s, stdout)
		}
	}
}

// runJSON runs the bench with args and -json, failing the test unless it
// exits 0, and returns its JSON results and what it printed.
func runJSON(t *testing.T, args ...string) (jsonResults, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), append(args, "-json", out), &stdout, &stderr); code != 0 {
		t.Fatalf("bench exited %d; stderr:\n%s", code, tail(stderr.String(), 30))
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res jsonResults
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	return res, stdout.String()
}
