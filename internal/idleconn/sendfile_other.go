//go:build !linux

package idleconn

import (
	"net"
	"os"
)

// sendFile reports not handled: only Linux's sendfile is used; the caller
// copies the bytes itself.
func sendFile(*net.TCPConn, *os.File, int64, int64) (int64, bool, error) {
	return 0, false, nil
}
