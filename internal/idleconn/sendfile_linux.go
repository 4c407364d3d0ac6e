package idleconn

import (
	"errors"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// sendFile writes n bytes of f from offset off to tc with sendfile(2):
// the kernel moves the file's pages to the socket, so the bytes are
// neither read into this process nor copied out of it again. The offset
// is passed to the system call, so f's own position is neither used nor
// moved (two sends of one file may run at once). A wait for room in the
// socket's buffer goes through the runtime's poller, so tc's write
// deadline applies. handled is false, with nothing written, when f or tc
// cannot be sent from or to this way (EINVAL, ENOSYS: the caller copies
// the bytes itself).
func sendFile(tc *net.TCPConn, f *os.File, off, n int64) (written int64, handled bool, err error) {
	dst, err := tc.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	src, err := f.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	handled = true
	var serr error
	cerr := src.Control(func(in uintptr) {
		werr := dst.Write(func(out uintptr) bool {
			for written < n {
				o := off + written
				k, e := unix.Sendfile(int(out), int(in), &o, int(min(n-written, 1<<30)))
				if k > 0 {
					written += int64(k)
				}
				switch {
				case e == unix.EAGAIN:
					return false // wait until the socket takes more
				case e == unix.EINTR:
				case (e == unix.EINVAL || e == unix.ENOSYS) && written == 0:
					handled = false
					return true
				case e != nil:
					serr = os.NewSyscallError("sendfile", e)
					return true
				case k == 0:
					serr = io.ErrUnexpectedEOF // the file ended before off+n
					return true
				}
			}
			return true
		})
		serr = errors.Join(serr, werr)
	})
	if cerr != nil && serr == nil {
		serr = cerr
	}
	return written, handled, serr
}
