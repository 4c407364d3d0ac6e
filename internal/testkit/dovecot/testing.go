package dovecot

import (
	"os"
	"testing"
)

// Require skips the test when Dovecot is not installed, except under
// CI=true, where a missing server fails the test: CI must install it.
func Require(t testing.TB) {
	t.Helper()
	require(t, Available())
}

func require(t testing.TB, err error) {
	t.Helper()
	switch {
	case err == nil:
	case os.Getenv("CI") == "true":
		t.Fatalf("CI=true and Dovecot is unavailable: %v", err)
	default:
		t.Skipf("skipping: Dovecot is unavailable: %v", err)
	}
}

// Start calls Require, then starts an instance in a new directory under
// os.TempDir (t.TempDir's 0700 parents would lock Dovecot's unprivileged
// processes out, and its long paths can exceed the unix socket path limit).
// At cleanup it logs the Dovecot log tail if the test failed, stops the
// instance and removes the directory.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	Require(t)
	dir, err := os.MkdirTemp("", "mfdc-")
	if err != nil {
		t.Fatalf("creating a directory for Dovecot: %v", err)
	}
	s, err := StartInstance(t.Context(), dir, opts)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("starting Dovecot: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Dovecot instance %s:\n%s", s.Name(), s.LogTail(30))
		}
		if err := s.Stop(); err != nil {
			t.Errorf("stopping Dovecot: %v", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing Dovecot instance directory: %v", err)
		}
	})
	return s
}
