package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/imapsrc"
	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/pop3src"
	"github.com/mailferry/mailferry/secret"
	"github.com/mailferry/mailferry/spool"
)

// The defaults of `mailferry copy` (cmd/mailferry/copy.go, policyFlags),
// which the in-process copy uses so that its profile is of what users run:
// --batch-messages, --batch-bytes, --spool-memory, --dest-sessions and
// --idle-timeout. TestProfileMatchesCLIDefaults checks them against the
// help text.
const (
	cliBatchMessages = 100
	cliBatchBytes    = 16 << 20
	cliSpoolMemory   = 8 << 20
	cliDestSessions  = 2
	cliIdleTimeout   = 2 * time.Minute
)

// profileTarget is one in-process copy to profile: the same parts and
// settings `mailferry copy` wires up with its default flags.
type profileTarget struct {
	name             string // "small", "mixed": part of the file names
	imap             bool   // read the source with imapsrc (INBOX), not pop3src
	srcAddr, dstAddr string
	tlsCfg           *tls.Config // nil: plain text on both sides
	srcUser, dstUser string
	srcPW, dstPW     secret.Value
	state            string
}

// profileCopy runs pipeline.Runner in this process for t under the CPU
// profiler and the execution tracer, writing DIR/cpu-NAME.pprof and
// DIR/trace-NAME.out, and writes the allocations made
// during the run as DIR/allocs-NAME-before.pprof and -after.pprof (the
// allocs profile is cumulative: read it with
// `go tool pprof -sample_index=alloc_space -base BEFORE AFTER`).
func profileCopy(ctx context.Context, dir string, t profileTarget) (transfer, error) {
	datePolicy, err := mapping.ParseDatePolicy("received")
	if err != nil {
		return transfer{}, err
	}
	flagPolicy, err := mapping.ParseFlagPolicy("none")
	if err != nil {
		return transfer{}, err
	}
	job := pipeline.Job{
		Options: pipeline.Options{
			Name:          "bench-profile " + t.name,
			Mailbox:       "Bench",
			DatePolicy:    datePolicy,
			FlagPolicy:    flagPolicy,
			Spool:         spool.Options{MemoryBytes: cliSpoolMemory, Buffers: &spool.Buffers{}},
			BatchMessages: cliBatchMessages,
			BatchBytes:    cliBatchBytes,
			DestSessions:  cliDestSessions,
		},
		OpenSource: func(ctx context.Context) (pipeline.Source, error) {
			if t.imap {
				// Every message goes to Mailbox: no folder mapping.
				mode := imapsrc.TLSImplicit
				if t.tlsCfg == nil {
					mode = imapsrc.TLSNone
				}
				return imapsrc.Open(ctx, imapsrc.Options{Addr: t.srcAddr, TLS: mode, AllowPlaintext: t.tlsCfg == nil,
					TLSConfig: t.tlsCfg, User: t.srcUser, Password: t.srcPW, Include: []string{"INBOX"},
					IdleTimeout: cliIdleTimeout})
			}
			mode := pop3src.TLSImplicit
			if t.tlsCfg == nil {
				mode = pop3src.TLSNone
			}
			return pop3src.Open(ctx, pop3src.Options{Addr: t.srcAddr, TLS: mode, AllowPlaintext: t.tlsCfg == nil,
				TLSConfig: t.tlsCfg, User: t.srcUser, Password: t.srcPW, IdleTimeout: cliIdleTimeout})
		},
		OpenDestination: func(ctx context.Context) (pipeline.Destination, error) {
			mode := imapdst.TLSImplicit
			if t.tlsCfg == nil {
				mode = imapdst.TLSNone
			}
			return imapdst.Dial(ctx, imapdst.Options{Addr: t.dstAddr, TLS: mode, AllowPlaintext: t.tlsCfg == nil,
				TLSConfig: t.tlsCfg, User: t.dstUser, Password: t.dstPW, IdleTimeout: cliIdleTimeout,
				MaxBatchMessages: cliBatchMessages, MaxBatchBytes: cliBatchBytes})
		},
	}
	ledger, err := checkpoint.Open(ctx, t.state, nil)
	if err != nil {
		return transfer{}, fmt.Errorf("opening the checkpoint %s: %w", t.state, err)
	}
	defer ledger.Close()
	res, err := ledger.ResolveAccount(ctx, checkpoint.AccountSpec{Endpoint: job.Options.Name, KeyScheme: "bench"})
	if err != nil {
		return transfer{}, fmt.Errorf("naming the account in the checkpoint %s: %w", t.state, err)
	}
	job.Options.Account = res.Account
	runner := &pipeline.Runner{Ledger: ledger, Logger: slog.New(slog.DiscardHandler), Attempts: 1}

	writeProfile := func(name string) error {
		runtime.GC()
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("writing profile: %w", err)
		}
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			f.Close()
			return fmt.Errorf("writing profile %s: %w", name, err)
		}
		return f.Close()
	}
	if err := writeProfile("allocs-" + t.name + "-before.pprof"); err != nil {
		return transfer{}, err
	}
	cpu, err := os.Create(filepath.Join(dir, "cpu-"+t.name+".pprof"))
	if err != nil {
		return transfer{}, fmt.Errorf("writing profile: %w", err)
	}
	defer cpu.Close()
	if err := pprof.StartCPUProfile(cpu); err != nil {
		return transfer{}, fmt.Errorf("starting the CPU profile: %w", err)
	}
	// The execution trace shows where the run waits rather than computes:
	// `go tool trace -pprof=net|sync|syscall trace-NAME.out`.
	tr, err := os.Create(filepath.Join(dir, "trace-"+t.name+".out"))
	if err != nil {
		pprof.StopCPUProfile()
		return transfer{}, fmt.Errorf("writing trace: %w", err)
	}
	defer tr.Close()
	if err := trace.Start(tr); err != nil {
		pprof.StopCPUProfile()
		return transfer{}, fmt.Errorf("starting the execution trace: %w", err)
	}
	start := time.Now()
	st, runErr := runner.RunAccount(ctx, job)
	elapsed := time.Since(start)
	trace.Stop()
	pprof.StopCPUProfile()
	if runErr != nil {
		return transfer{}, fmt.Errorf("in-process copy of %s: %w", t.name, runErr)
	}
	if err := writeProfile("allocs-" + t.name + "-after.pprof"); err != nil {
		return transfer{}, err
	}
	return transfer{messages: st.Copied, bytes: st.Bytes, elapsed: elapsed}, cpu.Close()
}
