package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"time"

	"github.com/mailferry/mailferry/account"
	"github.com/mailferry/mailferry/checkpoint"
	mfconfig "github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// profileAccount assembles the account of c, a `mailferry copy` the timed
// runs start, as that command assembles it: the URLs parsed, the flags'
// defaults (account.CopyDefaults), --tls-ca and --allow-plaintext, through
// account.Set.FromURLs. So the in-process copy is configured as a real
// run: an IMAP source's keys name their folders (KeyFolder: the sweep,
// the folder records), its folders are mapped and their flags synced.
// Flags in c.extra cannot be applied here: parseFlags refuses
// -mailferry-flags with -profile.
func profileAccount(c copyCommand) (*account.Account, error) {
	u := account.CopyDefaults()
	var err error
	if u.Source, err = mfconfig.ParseURL(c.sourceURL); err != nil {
		return nil, fmt.Errorf("SOURCE %s: %w", c.sourceURL, err)
	}
	if u.Dest, err = mfconfig.ParseURL(c.destURL); err != nil {
		return nil, fmt.Errorf("DEST %s: %w", c.destURL, err)
	}
	u.SourceLogin = account.Login{Password: secret.New(c.srcPW), What: "source password"}
	u.DestLogin = account.Login{Password: secret.New(c.dstPW), What: "destination password"}
	set := account.NewSet(account.Options{TLSCA: c.caFile, AllowPlaintext: c.plain})
	return set.FromURLs(u)
}

// profileKind is what an in-process copy is recorded under.
type profileKind int

const (
	// profileCPU: the CPU profile (DIR/cpu-NAME.pprof) and the
	// allocations made during the copy (DIR/allocs-NAME-before.pprof
	// and -after.pprof; the allocs profile is cumulative: read it with
	// `go tool pprof -sample_index=alloc_space -base BEFORE AFTER`).
	profileCPU profileKind = iota
	// profileTrace: the execution trace alone (DIR/trace-NAME.out), where
	// the run waits rather than computes: `go tool trace
	// -pprof=net|sync|syscall trace-NAME.out`. Apart from the CPU
	// profile, which the tracer inflated by about a quarter.
	profileTrace
)

// profileCopy runs c's copy in this process (pipeline.Runner, one
// attempt) under kind's recorder, writing into dir under name.
func profileCopy(ctx context.Context, dir, name string, c copyCommand, kind profileKind) (transfer, error) {
	acc, err := profileAccount(c)
	if err != nil {
		return transfer{}, err
	}
	ledger, err := checkpoint.Open(ctx, c.state, nil)
	if err != nil {
		return transfer{}, fmt.Errorf("opening the checkpoint %s: %w", c.state, err)
	}
	defer ledger.Close()
	res, err := ledger.ResolveAccount(ctx, acc.LedgerSpec())
	if err != nil {
		return transfer{}, fmt.Errorf("naming the account in the checkpoint %s: %w", c.state, err)
	}
	acc.Options.Account = res.Account
	job := acc.Job()
	runner := &pipeline.Runner{Ledger: ledger, Logger: slog.New(slog.DiscardHandler), Attempts: 1}

	var stop func() error
	switch kind {
	case profileCPU:
		if err := writeAllocs(filepath.Join(dir, "allocs-"+name+"-before.pprof")); err != nil {
			return transfer{}, err
		}
		stop, err = startRecorder(filepath.Join(dir, "cpu-"+name+".pprof"), pprof.StartCPUProfile, pprof.StopCPUProfile)
	case profileTrace:
		stop, err = startRecorder(filepath.Join(dir, "trace-"+name+".out"), trace.Start, trace.Stop)
	}
	if err != nil {
		return transfer{}, err
	}
	start := time.Now()
	st, runErr := runner.RunAccount(ctx, job)
	elapsed := time.Since(start)
	if err := stop(); err != nil {
		return transfer{}, err
	}
	if runErr != nil {
		return transfer{}, fmt.Errorf("in-process copy of %s: %w", name, runErr)
	}
	if kind == profileCPU {
		if err := writeAllocs(filepath.Join(dir, "allocs-"+name+"-after.pprof")); err != nil {
			return transfer{}, err
		}
	}
	return transfer{messages: st.Copied, bytes: st.Bytes, elapsed: elapsed}, nil
}

// startRecorder creates path and starts a recorder writing into it; the
// function it returns stops the recorder and closes the file.
func startRecorder(path string, start func(io.Writer) error, stop func()) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("recording into %s: %w", path, err)
	}
	return func() error {
		stop()
		return f.Close()
	}, nil
}

// writeAllocs writes the allocs profile (after a GC) to path.
func writeAllocs(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing profile: %w", err)
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("writing profile %s: %w", path, err)
	}
	return f.Close()
}

// The environment of a mailferry built with -tags mailferry_profile
// (cmd/mailferry/profile_on.go): the directory its profiles go into and
// the name they take.
const (
	profileDirEnv  = "MAILFERRY_PROFILE_DIR"
	profileNameEnv = "MAILFERRY_PROFILE_NAME"
)

// profileFleet runs the batch of users (want messages) once more under
// pprof on kind's path over link (loopback), and again with nothing new: `mailferry run` is
// not in-process here, so a binary built with the mailferry_profile tag
// writes its own profiles, cpu-fleet-KIND[-notls]-copy.pprof and
// allocs-fleet-…-copy.pprof (every allocation of the run: read them with
// -sample_index=alloc_space), and the same ending in -rerun.
func (e *env) profileFleet(ctx context.Context, kind sourceKind, link fleetLink, users [][2]string, want int) error {
	if e.profBin == "" {
		e.log.Info("building mailferry with its profiling hook")
		bin, err := buildMailferryTagged(ctx, e.dir, "mailferry-profile", "mailferry_profile")
		if err != nil {
			return err
		}
		e.profBin = bin
	}
	e.fleetProfile = "fleet-" + kind.name
	if !e.secure {
		e.fleetProfile += "-notls"
	}
	defer func() { e.fleetProfile = "" }()
	copied, rerun, err := e.runFleet(ctx, e.profBin, kind, link, users, want, true)
	if err != nil {
		return err
	}
	e.log.Info("wrote fleet profiles", "path", kind.name, "dir", e.cfg.profileDir, "name", e.fleetProfile,
		"copy_s", copied.wall.Seconds(), "rerun_s", rerun.wall.Seconds())
	return nil
}
