package spool

import (
	"os"

	"golang.org/x/sys/unix"
)

// openUnnamed opens a 0600 file in dir that has no name at all
// (O_TMPFILE): a run killed at any moment leaves nothing in dir. It
// reports false where the file system cannot do that; the caller then
// falls back to a named file removed at once.
func openUnnamed(dir string) (*os.File, bool) {
	if dir == "" {
		dir = os.TempDir()
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, false
	}
	return os.NewFile(uintptr(fd), dir+"/(unnamed spool file)"), true
}
