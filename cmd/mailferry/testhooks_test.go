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
	o.Now, err = testNowFromEnv(getenv)
	return err
}

// crashpointFromEnv reads MAILFERRY_TEST_CRASHPOINT=POINT:N, used only by
// the crash tests: at the N-th time the pipeline reaches POINT ("pending",
// "appended", "committed", "deleted") the process kills itself with
// SIGKILL, exactly as `kill -9` at that moment would. Unset: nil.
func crashpointFromEnv(getenv func(string) string) (func(string), error) {
	v := getenv("MAILFERRY_TEST_CRASHPOINT")
	if v == "" {
		return nil, nil
	}
	point, nStr, ok := strings.Cut(v, ":")
	n, err := strconv.Atoi(nStr)
	if !ok || err != nil || n < 1 {
		return nil, usagef("MAILFERRY_TEST_CRASHPOINT=%q: want POINT:N", v)
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
			fmt.Fprintf(os.Stderr, "mailferry: crashpoint %s:%d reached, killing myself\n", point, n)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
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
