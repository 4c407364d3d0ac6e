package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/internal/suggest"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/traffic"
)

// env is what a command may touch of the outside world, so tests can run
// commands in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// describeFlags, when set, receives each command's flag set once it is
	// built, and the command stops there as if --help had been given: the
	// completion scripts and the man page are made from the commands' own
	// flags, not from a copy of them.
	describeFlags func(*pflag.FlagSet)
	// clock, set only by tests, is the clock of the traffic limits,
	// timetables and daily quotas; nil: the wall clock. No environment
	// variable sets it: the program users run always keeps real time.
	clock traffic.Clock
	// leaseTTL, set only by tests, shortens a PostgreSQL checkpoint's
	// lease (and its reply timeout); 0: the default, 30 s.
	leaseTTL time.Duration
	// crawl, set only by tests, shortens when a destination that slows
	// to a crawl at its daily limit (Gmail) is taken to crawl; zero: the
	// defaults (pipeline.CrawlRule).
	crawl pipeline.CrawlRule
	// testHooks, set only by the tests, adjusts each account's pipeline
	// options (a crash at a pipeline step, a moved clock) from test-only
	// environment variables. main leaves it nil: the release binary has no
	// code that reads those variables, so they cannot delete mail early.
	testHooks func(getenv func(string) string, o *pipeline.Options) error
	// interrupted is closed by the first SIGINT or SIGTERM of a command
	// that stops gently (copy, run): it finishes and commits the batches
	// in flight, starts nothing new and prints its summary. Nil: never.
	interrupted <-chan struct{}
}

// applyTestHooks lets the tests' hooks, if any, adjust o.
func (e *env) applyTestHooks(o *pipeline.Options) error {
	if e.testHooks == nil {
		return nil
	}
	return e.testHooks(e.getenv, o)
}

// commandNames are the commands, for "did you mean".
var commandNames = []string{"copy", "run", "config", "status", "queue", "verify", "plan", "report", "login", "ledger", "version", "completion", "help"}

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// syncWriter serializes writes to stderr, which logs, progress and each
// account's protocol trace reach from their own goroutines. os.Stderr
// copes with that; a test's buffer does not (go test -race caught it with
// --trace and two accounts).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, e *env) int {
	if _, ok := e.stderr.(*syncWriter); !ok {
		se := *e
		se.stderr = &syncWriter{w: e.stderr}
		e = &se
	}
	if len(args) == 0 {
		fmt.Fprint(e.stderr, mainHelp)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	// copy and run stop gently on the first signal; the other commands
	// write nothing and stop at once.
	gentle := cmd == "copy" || cmd == "run"
	ctx, interrupted, stop := notifyContext(ctx, e, gentle)
	defer stop()
	if gentle {
		ge := *e
		ge.interrupted = interrupted
		e = &ge
	}
	var err error
	var code int
	switch cmd {
	case "copy":
		code, err = runCopy(ctx, rest, e)
	case "run":
		code, err = runConfig(ctx, rest, e)
	case "config":
		code, err = runConfigCmd(ctx, rest, e)
	case "status":
		code, err = runStatus(ctx, rest, e)
	case "queue":
		code, err = runQueue(ctx, rest, e)
	case "report":
		code, err = runReport(ctx, rest, e)
	case "verify":
		code, err = runVerify(ctx, rest, e)
	case "plan":
		code, err = runPlan(ctx, rest, e)
	case "login":
		code, err = runLogin(ctx, rest, e)
	case "ledger":
		code, err = runLedger(ctx, rest, e)
	case "version", "--version":
		code, err = runVersion(rest, e)
	case "completion":
		code, err = runCompletion(ctx, rest, e)
	case "help", "-h", "--help":
		code, err = runHelpCmd(ctx, rest, e)
	default:
		hint := ""
		if near := suggest.Closest(cmd, commandNames, 1); len(near) > 0 {
			hint = fmt.Sprintf("; did you mean %q?", near[0])
		}
		err = usagef("unknown command %q%s (commands: copy, run, plan, verify, status, queue, report, login, config check, ledger migrate, version, completion, help)", cmd, hint)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "mailferry %s: %v\n", cmd, err)
		var ue *usageError
		if errors.As(err, &ue) || isConfigError(err) {
			if errors.As(err, &ue) {
				fmt.Fprintf(e.stderr, "Run 'mailferry %s --help' for usage.\n", cmd)
			}
			return exitUsage
		}
		if code == exitOK {
			code = exitFatal
		}
	}
	return code
}

// notifyContext watches SIGINT and SIGTERM. With gentle (copy, run) the
// first signal closes the returned channel and leaves ctx alone: the runs
// stop starting messages, finish and commit the batches in flight and
// print their summary (they say so themselves, through their log, so that
// a progress bar is not torn). Otherwise the first signal cancels ctx. A
// second signal exits at once with status 130: the ledger stays
// consistent, as every step is recorded before it is acted on, and the
// next run reconciles what was in flight.
func notifyContext(parent context.Context, e *env, gentle bool) (context.Context, <-chan struct{}, func()) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	first := make(chan struct{})
	done := make(chan struct{})
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		var sig os.Signal
		select {
		case sig = <-ch:
		case <-done:
			return
		}
		close(first)
		if !gentle {
			fmt.Fprintf(e.stderr, "mailferry: %v received; stopping (send it again to stop at once)\n", sig)
			cancel()
		}
		select {
		case <-ch:
			if isTerminal(e.rawStderr()) {
				// Clear what a progress bar left on the screen.
				fmt.Fprint(e.stderr, "\r\x1b[J")
			}
			fmt.Fprintln(e.stderr, "mailferry: stopped at once; run the same command again to resume (it finds the batches that were in flight)")
			os.Exit(exitInterrupted)
		case <-done:
		}
	}()
	return ctx, first, func() { signal.Stop(ch); close(done); cancel() }
}

// rawStderr is stderr without the syncWriter run puts around it.
func (e *env) rawStderr() io.Writer {
	if sw, ok := e.stderr.(*syncWriter); ok {
		return sw.w
	}
	return e.stderr
}
