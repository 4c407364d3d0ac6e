package main

import (
	"reflect"
	"testing"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/account"
	"github.com/mailferry/mailferry/config"
)

// TestCopyDefaultsAreTheFlags: account.CopyDefaults, which the bench's
// profile copies with, are what `mailferry copy` runs with when no flag
// changes them: the same flags, parsed as runCopy parses them.
func TestCopyDefaultsAreTheFlags(t *testing.T) {
	var p policyFlags
	var folders config.Folders
	fs := pflag.NewFlagSet("copy", pflag.ContinueOnError)
	p.register(fs)
	registerFolderFlags(fs, &folders)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	opts, err := p.pipelineOptions()
	if err != nil {
		t.Fatal(err)
	}
	want := account.CopyDefaults()
	if opts.Spool.Buffers == nil || want.Options.Spool.Buffers == nil {
		t.Error("no spool buffers: every copy's spool pools its buffers")
	}
	opts.Spool.Buffers, want.Options.Spool.Buffers = nil, nil
	if !reflect.DeepEqual(opts, want.Options) {
		t.Errorf("copy's pipeline options by default:\n%+v\naccount.CopyDefaults:\n%+v", opts, want.Options)
	}
	if !reflect.DeepEqual(folders, want.Folders) {
		t.Errorf("copy's folder flags by default: %+v, account.CopyDefaults: %+v", folders, want.Folders)
	}
	if p.idleTimeout != want.IdleTimeout || p.timeouts != want.Timeouts || p.xUIDL != want.XUIDL {
		t.Errorf("copy's idle timeout, dial timeouts, x-uidl: %v, %+v, %v; account.CopyDefaults: %v, %+v, %v",
			p.idleTimeout, p.timeouts, p.xUIDL, want.IdleTimeout, want.Timeouts, want.XUIDL)
	}
}

// TestCopyDefaultsAreTheConfigFile: `mailferry copy` with no flags and
// `mailferry run` on a config file that leaves the keys out batch and
// spool alike (the flags once said 16 MB and 8 MB, 16,000,000 and
// 8,000,000 bytes, where the file's defaults were 16 MiB and 8 MiB).
func TestCopyDefaultsAreTheConfigFile(t *testing.T) {
	want := account.CopyDefaults().Options
	cfg := config.Default()
	if want.BatchMessages != cfg.Destination.BatchMessages || want.BatchBytes != cfg.Destination.BatchBytes {
		t.Errorf("copy batches %d messages, %d bytes by default; the config file %d, %d", want.BatchMessages, want.BatchBytes,
			cfg.Destination.BatchMessages, cfg.Destination.BatchBytes)
	}
	if want.Spool.MemoryBytes != cfg.Policy.SpoolMemoryBytes {
		t.Errorf("copy keeps messages up to %d bytes in memory by default; the config file %d", want.Spool.MemoryBytes, cfg.Policy.SpoolMemoryBytes)
	}
}
