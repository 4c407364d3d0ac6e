package dovecot

import "syscall"

// procAttr puts Dovecot in its own process group, so a Ctrl-C meant for the
// test binary or demo tool does not kill it before Stop runs, and asks Linux
// to send it SIGTERM if our process dies without calling Stop (a test
// timeout, SIGKILL), so no instance outlives the program that started it.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
