package postgres

import (
	"os"
	"testing"
)

// Require skips the test when PostgreSQL is not installed, except under
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
		t.Fatalf("CI=true and PostgreSQL is unavailable: %v", err)
	default:
		t.Skipf("skipping: PostgreSQL is unavailable: %v", err)
	}
}

// Start calls Require, then starts an instance in a new directory under
// os.TempDir (t.TempDir's 0700 parents would lock the unprivileged server
// out). At cleanup it logs the server's log tail if the test failed, stops
// it and removes the directory.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	Require(t)
	dir, err := os.MkdirTemp("", "mfpg-")
	if err != nil {
		t.Fatalf("creating a directory for PostgreSQL: %v", err)
	}
	s, err := StartInstance(t.Context(), dir, opts)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("starting PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("PostgreSQL log tail:\n%s", s.LogTail(30))
		}
		if err := s.Stop(); err != nil {
			t.Errorf("stopping PostgreSQL: %v", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing the PostgreSQL directory: %v", err)
		}
	})
	return s
}

// Database makes an empty database on s for t and returns its URL
// (without password: s.Password()).
func Database(t testing.TB, s *Server) string {
	t.Helper()
	_, u, err := s.CreateDatabase(t.Context())
	if err != nil {
		t.Fatalf("creating a database: %v", err)
	}
	return u
}

// CutProxy starts a Proxy to s for t, closed at cleanup.
func CutProxy(t testing.TB, s *Server) *Proxy {
	t.Helper()
	p, err := StartProxy(s.Addr())
	if err != nil {
		t.Fatalf("starting a proxy to PostgreSQL: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}
