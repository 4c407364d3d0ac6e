package mailserver

import (
	"fmt"
	"os"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/instance"
)

// Require skips the test when err (from a kit's Available) says the server
// is missing, naming the install script, except under CI=true, where a
// server that is not there fails the test: CI must install it.
func Require(t testing.TB, name string, err error) {
	t.Helper()
	if err != nil {
		err = fmt.Errorf("%w (%s installs it)", err, InstallScript)
	}
	instance.Require(t, name, err)
}

// TempDir creates a directory for one instance under os.TempDir, mode 0755
// so that the servers' unprivileged processes can reach it (t.TempDir's
// 0700 parents would lock them out, and its long paths can exceed the unix
// socket path limit), and removes it at cleanup.
func TempDir(t testing.TB, pattern string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatalf("creating a server directory: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("making %s traversable: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing server directory: %v", err)
		}
	})
	return dir
}
