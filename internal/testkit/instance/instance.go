// Package instance runs a private server instance (Dovecot, PostgreSQL)
// for one test: it skips the test when the server is not installed, or
// fails it under CI=true; gives the instance a directory of its own; and
// cleans up after it. The server kits' Start functions are built on it.
package instance

import (
	"os"
	"testing"
)

// Require skips t when err (from a kit's Available) says the server
// called name is missing, except under CI=true, where a missing server
// fails t: CI must install it.
func Require(t testing.TB, name string, err error) {
	t.Helper()
	switch {
	case err == nil:
	case os.Getenv("CI") == "true":
		t.Fatalf("CI=true and %s is unavailable: %v", name, err)
	default:
		t.Skipf("skipping: %s is unavailable: %v", name, err)
	}
}

// Server is what Start needs of a started instance.
type Server interface {
	Stop() error
	LogTail(n int) string
}

// Start starts the server called name with start, in a new directory
// under os.TempDir made from pattern (t.TempDir's 0700 parents would lock
// the servers' unprivileged processes out, and its long paths can exceed
// the unix socket path limit). At cleanup it logs the last 30 lines of the
// server's log, headed by label(s), if t failed, stops the server and
// removes the directory. Call Require first.
func Start[S Server](t testing.TB, name, pattern string, start func(dir string) (S, error), label func(S) string) S {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatalf("creating a directory for %s: %v", name, err)
	}
	s, err := start(dir)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s:\n%s", label(s), s.LogTail(30))
		}
		if err := s.Stop(); err != nil {
			t.Errorf("stopping %s: %v", name, err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing the %s directory: %v", name, err)
		}
	})
	return s
}
