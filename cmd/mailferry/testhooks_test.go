package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// The hooks below exist only in the test binary: TestMain and runInProcess
// hand testHooks to the command through env. The release binary has no code
// that reads these variables (TestReleaseHasNoTestHooks), so a stray
// MAILFERRY_TEST_NOW cannot end a delete_after period early and delete mail
// at the source.

// testHooks sets the pipeline's crashpoint and clock from the test-only
// environment variables.
func testHooks(getenv func(string) string, o *pipeline.Options) error {
	var err error
	if o.Crashpoint, err = crashpointFromEnv(getenv); err != nil {
		return err
	}
	interrupt, err := pointFromEnv(getenv, "MAILFERRY_TEST_SIGNALPOINT", func(point string, n int) {
		// Ctrl-C while the step is in flight: the step waits until the
		// signal handler surely stopped the run (it takes microseconds;
		// the margin is for a loaded machine), then goes on, as a command
		// already sent to the server would.
		fmt.Fprintf(os.Stderr, "mailferry: signalpoint %s:%d reached, sending myself SIGINT\n", point, n)
		syscall.Kill(os.Getpid(), syscall.SIGINT)
		time.Sleep(2 * time.Second)
	})
	if err != nil {
		return err
	}
	if crash := o.Crashpoint; interrupt != nil && crash != nil {
		o.Crashpoint = func(p string) { interrupt(p); crash(p) }
	} else if interrupt != nil {
		o.Crashpoint = interrupt
	}
	o.Now, err = testNowFromEnv(getenv)
	return err
}

// crashpointFromEnv reads MAILFERRY_TEST_CRASHPOINT=POINT:N, used only by
// the crash tests: at the N-th time the pipeline reaches POINT ("pending",
// "appended", "committed", "deleted") the process kills itself with
// SIGKILL, exactly as `kill -9` at that moment would. Unset: nil.
func crashpointFromEnv(getenv func(string) string) (func(string), error) {
	return pointFromEnv(getenv, "MAILFERRY_TEST_CRASHPOINT", func(point string, n int) {
		fmt.Fprintf(os.Stderr, "mailferry: crashpoint %s:%d reached, killing myself\n", point, n)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	})
}

// pointFromEnv reads name=POINT:N and returns a Crashpoint that calls at
// the N-th time the pipeline reaches POINT. Unset: nil.
// MAILFERRY_TEST_SIGNALPOINT (the Ctrl-C tests) sends SIGINT there.
func pointFromEnv(getenv func(string) string, name string, at func(point string, n int)) (func(string), error) {
	v := getenv(name)
	if v == "" {
		return nil, nil
	}
	point, nStr, ok := strings.Cut(v, ":")
	n, err := strconv.Atoi(nStr)
	if !ok || err != nil || n < 1 {
		return nil, usagef("%s=%q: want POINT:N", name, v)
	}
	var mu sync.Mutex
	seen := 0
	return func(p string) {
		if p != point {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		seen++
		if seen == n {
			at(point, n)
		}
	}, nil
}

// testNowFromEnv reads MAILFERRY_TEST_NOW=RFC3339 time, used only by the
// delete_after tests: the pipeline's clock starts at that time and runs on
// from there, so a test can run "31 days later" without waiting. It decides
// the times the ledger records and when delete_after periods end. Unset: nil
// (the real clock).
func testNowFromEnv(getenv func(string) string) (func() time.Time, error) {
	v := getenv("MAILFERRY_TEST_NOW")
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, usagef("MAILFERRY_TEST_NOW=%q: want an RFC 3339 time such as 2026-07-01T12:00:00Z", v)
	}
	offset := time.Until(t)
	return func() time.Time { return time.Now().Add(offset) }, nil
}
