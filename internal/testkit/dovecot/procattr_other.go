//go:build !linux

package dovecot

import "syscall"

// procAttr puts Dovecot in its own process group, so a Ctrl-C meant for the
// test binary or demo tool does not kill it before Stop runs.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
