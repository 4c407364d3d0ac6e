package postgres

import (
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/instance"
)

// Require skips the test when PostgreSQL is not installed, except under
// CI=true, where a missing server fails the test: CI must install it.
func Require(t testing.TB) {
	t.Helper()
	instance.Require(t, "PostgreSQL", Available())
}

// Start calls Require, then starts an instance in a new directory under
// os.TempDir (t.TempDir's 0700 parents would lock the unprivileged server
// out). At cleanup it logs the server's log tail if the test failed, stops
// it and removes the directory.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	Require(t)
	return instance.Start(t, "PostgreSQL", "mfpg-",
		func(dir string) (*Server, error) { return StartInstance(t.Context(), dir, opts) },
		func(*Server) string { return "PostgreSQL log tail" })
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
