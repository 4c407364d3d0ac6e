package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mailferry/mailferry/account"
	mfconfig "github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// TestProfileCopiesAsCopyDoes: the profile's in-process copy is the
// `mailferry copy` the timed runs start, as that command configures it:
// the flags' defaults (account.CopyDefaults, which cmd/mailferry's
// TestCopyDefaultsAreTheFlags holds to the flags), the ledger's key, and
// for an IMAP source the folder keys (KeyFolder: the sweep and the folder
// records), the folder map and flag sync. Before, the profile wired its
// own options: no KeyFolder, 8 MiB and 16 MiB where copy has 8 MB and 16 MB.
func TestProfileCopiesAsCopyDoes(t *testing.T) {
	e := &env{cfg: config{}, src: &dovecot.Server{}, srcPW: "s", dstPW: "d", dir: t.TempDir()} // no server: nothing dials
	def := account.CopyDefaults()
	for _, kind := range sourceKinds {
		for _, secure := range []bool{true, false} {
			e.secure = secure
			c := e.copyCommand("mailferry", kind, "127.0.0.1:1143", "127.0.0.1:2143", "small", "bench1")
			if secure {
				c.caFile = writeCA(t)
			}
			acc, err := profileAccount(c)
			if err != nil {
				t.Fatalf("%s (TLS %v): %v", kind.name, secure, err)
			}
			o := acc.Options
			name := kind.name
			src, _ := mfconfig.ParseURL(c.sourceURL)
			dst, _ := mfconfig.ParseURL(c.destURL)
			if o.Name != account.Key(src, dst) {
				t.Errorf("%s: ledger key %q, want copy's %q", name, o.Name, account.Key(src, dst))
			}
			if o.DatePolicy != def.Options.DatePolicy || o.FlagPolicy != def.Options.FlagPolicy ||
				o.Spool.MemoryBytes != def.Options.Spool.MemoryBytes || o.Spool.Buffers == nil ||
				o.BatchMessages != def.Options.BatchMessages || o.BatchBytes != def.Options.BatchBytes ||
				o.DestSessions != def.Options.DestSessions || o.MaxMessageBytes != def.Options.MaxMessageBytes {
				t.Errorf("%s: policies %v %v, spool %+v, batches %d / %d B, %d sessions, max %d; want copy's defaults %+v",
					name, o.DatePolicy, o.FlagPolicy, o.Spool, o.BatchMessages, o.BatchBytes, o.DestSessions, o.MaxMessageBytes, def.Options)
			}
			imap := kind.name == "imap"
			if got := o.KeyFolder != nil && o.FolderKeys != nil && o.MapFolders != nil && o.SyncFlags; got != imap {
				t.Errorf("%s: folder keys, folder map and flag sync set: %v, want %v (as copy sets them for an IMAP source)", name, got, imap)
			}
			if !reflect.DeepEqual(acc.Folders, def.Folders) {
				t.Errorf("%s: folder settings %+v, want copy's defaults %+v", name, acc.Folders, def.Folders)
			}
			if !imap && o.Mailbox != destMailbox {
				t.Errorf("%s: destination mailbox %q, want %q", name, o.Mailbox, destMailbox)
			}
		}
	}
}

// writeCA writes a CA certificate for profileAccount to read.
func writeCA(t *testing.T) string {
	t.Helper()
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestProfileTraceApart: -profile writes the CPU and allocation profiles
// of a copy run without the execution tracer (it added about a quarter to
// the CPU profile); -trace adds a trace from a copy of its own.
func TestProfileTraceApart(t *testing.T) {
	dovecot.Require(t)
	for _, c := range []struct {
		name  string
		trace bool
	}{{"profile", false}, {"profile and trace", true}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"-workloads", "small", "-small-count", "12", "-latency-count", "0", "-paths", "imap", "-tls", "off",
				"-peers", "none", "-trials", "1", "-write-batches", "1", "-write-conns", "1", "-profile", dir}
			if c.trace {
				args = append(args, "-trace")
			}
			res, _ := runJSON(t, args...)
			for _, f := range []string{"cpu-imap-small-notls.pprof", "allocs-imap-small-notls-before.pprof", "allocs-imap-small-notls-after.pprof"} {
				if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
					t.Errorf("%s: %v", f, err)
				}
			}
			_, err := os.Stat(filepath.Join(dir, "trace-imap-small-notls.out"))
			if (err == nil) != c.trace {
				t.Errorf("trace written: %v, want %v", err == nil, c.trace)
			}
			profiles := 0
			for _, r := range res.Rows {
				if r.Kind == "profile" {
					profiles++
					if r.Messages != 12 {
						t.Errorf("profile row: %d messages, want 12", r.Messages)
					}
				}
			}
			if profiles != 1 {
				t.Errorf("%d profile rows, want 1 (the traced copy is not one)", profiles)
			}
		})
	}
}

// TestProfileFleet: -profile on the fleet workload writes the CPU and
// allocation profiles of a batch's `mailferry run` and of its re-run,
// written by a mailferry built with its profiling hook; the timed runs'
// binary has no hook.
func TestProfileFleet(t *testing.T) {
	dovecot.Require(t)
	dir := t.TempDir()
	runJSON(t, "-workloads", "fleet", "-fleet", "3x4", "-fleet-single", "12", "-fleet-mixed", "0", "-fleet-workers", "2",
		"-paths", "imap", "-tls", "off", "-peers", "none", "-trials", "1", "-profile", dir)
	for _, f := range []string{"cpu-fleet-imap-notls-copy.pprof", "allocs-fleet-imap-notls-copy.pprof",
		"cpu-fleet-imap-notls-rerun.pprof", "allocs-fleet-imap-notls-rerun.pprof"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestProfileFlags: -profile copies with `mailferry copy`'s defaults, so
// it is refused beside -mailferry-flags rather than profile another copy
// than the one timed.
func TestProfileFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{name: "profile", args: []string{"-profile", "/tmp/prof"}, ok: true},
		{name: "mailferry flags", args: []string{"-mailferry-flags", "--batch-messages 100"}, ok: true},
		{name: "empty mailferry flags", args: []string{"-profile", "/tmp/prof", "-mailferry-flags", " "}, ok: true},
		{name: "both", args: []string{"-profile", "/tmp/prof", "-mailferry-flags", "--batch-messages 100"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args, io.Discard)
			if (err == nil) != tc.ok {
				t.Errorf("parseFlags(%q) = %v, want ok %v", tc.args, err, tc.ok)
			}
		})
	}
}
