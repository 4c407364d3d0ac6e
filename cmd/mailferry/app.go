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

	"github.com/spf13/pflag"

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
	// testHooks, set only by the tests, adjusts each account's pipeline
	// options (a crash at a pipeline step, a moved clock) from test-only
	// environment variables. main leaves it nil: the release binary has no
	// code that reads those variables, so they cannot delete mail early.
	testHooks func(getenv func(string) string, o *pipeline.Options) error
}

// applyTestHooks lets the tests' hooks, if any, adjust o.
func (e *env) applyTestHooks(o *pipeline.Options) error {
	if e.testHooks == nil {
		return nil
	}
	return e.testHooks(e.getenv, o)
}

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
	ctx, stop := notifyContext(ctx, e)
	defer stop()
	if len(args) == 0 {
		fmt.Fprint(e.stderr, mainHelp)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
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
	case "report":
		code, err = runReport(ctx, rest, e)
	case "verify":
		code, err = runVerify(ctx, rest, e)
	case "plan":
		code, err = runPlan(ctx, rest, e)
	case "login":
		code, err = runLogin(ctx, rest, e)
	case "version", "--version":
		code, err = runVersion(rest, e)
	case "completion":
		code, err = runCompletion(ctx, rest, e)
	case "help", "-h", "--help":
		code, err = runHelpCmd(ctx, rest, e)
	default:
		err = usagef("unknown command %q (commands: copy, run, plan, verify, status, report, login, config check, version, completion, help)", cmd)
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

// notifyContext cancels ctx on the first SIGINT or SIGTERM, so runs stop
// starting new messages, commit and print their summary; a second signal
// exits at once with status 130 (the ledger stays consistent: every step
// is committed before it is acted on).
func notifyContext(parent context.Context, e *env) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	done := make(chan struct{})
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		var sig os.Signal
		select {
		case sig = <-ch:
		case <-done:
			return
		}
		fmt.Fprintf(e.stderr, "mailferry: %v received; finishing the current batch and stopping (send it again to stop at once)\n", sig)
		cancel()
		select {
		case <-ch:
			fmt.Fprintln(e.stderr, "mailferry: stopped")
			os.Exit(exitInterrupted)
		case <-done:
		}
	}()
	return ctx, func() { signal.Stop(ch); close(done); cancel() }
}
