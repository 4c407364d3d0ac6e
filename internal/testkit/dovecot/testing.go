package dovecot

import (
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/instance"
)

// Require skips the test when Dovecot is not installed, except under
// CI=true, where a missing server fails the test: CI must install it.
func Require(t testing.TB) {
	t.Helper()
	instance.Require(t, "Dovecot", Available())
}

// Start calls Require, then starts an instance in a new directory under
// os.TempDir (t.TempDir's 0700 parents would lock Dovecot's unprivileged
// processes out, and its long paths can exceed the unix socket path limit).
// At cleanup it logs the Dovecot log tail if the test failed, stops the
// instance and removes the directory.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	Require(t)
	return instance.Start(t, "Dovecot", "mfdc-",
		func(dir string) (*Server, error) { return StartInstance(t.Context(), dir, opts) },
		func(s *Server) string { return "Dovecot instance " + s.Name() })
}
