// Command mailferry moves mail from POP3 and IMAP mailboxes into IMAP
// servers, byte for byte, resumably, without losing or duplicating a
// message. See `mailferry --help`.
package main

import (
	"context"
	"os"
)

func main() {
	stop := startProfile(os.Getenv)
	code := run(context.Background(), os.Args[1:], processEnv())
	stop()
	os.Exit(code)
}

// processEnv is the outside world of the process.
func processEnv() *env {
	return &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
}
