package cyrus

import (
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/mailserver"
)

// Require skips the test when Cyrus is not unpacked (naming the install
// script), except under CI=true, where it fails the test.
func Require(t testing.TB) {
	t.Helper()
	mailserver.Require(t, "Cyrus IMAP", Available())
}

// Start calls Require and starts an instance in a new directory under
// os.TempDir; at cleanup it logs the log tail if the test failed, stops
// the instance and removes the directory.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	Require(t)
	dir := mailserver.TempDir(t, "mfcyr-")
	s, err := StartInstance(t.Context(), dir, opts)
	if err != nil {
		t.Fatalf("starting Cyrus: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Cyrus instance %s:\n%s", s.Name(), s.LogTail(30))
		}
		if err := s.Stop(); err != nil {
			t.Errorf("stopping Cyrus: %v", err)
		}
	})
	return s
}
