package imapconn

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"unsafe"

	"github.com/emersion/go-imap/v2/imapclient"
)

// ErrLiteralTooLarge: the server announced a literal larger than
// Options.MaxLiteral where go-imap would hold it in memory (a mailbox name
// in a LIST or STATUS reply, a namespace prefix, …). Nothing of it was
// read; the connection is closed. Fatal: the server would send it again.
var ErrLiteralTooLarge = errors.New("imapconn: server sent a literal too large to hold in memory")

// checkLiteral is go-imap's CheckBufferedLiteralFunc: it refuses a literal
// larger than the limit before a byte of it is read, and remembers it for
// Explain, since go-imap drops the hook's error and reports only that the
// reply could not be parsed. It also closes the connection: go-imap
// v2.0.0-beta.8 does not stop at the refusal but goes on parsing the
// literal's bytes as whatever else the grammar allows there (an atom,
// read without a limit too). Closed, the connection gives it at most what
// is buffered already. Called from go-imap's reader goroutine.
func (s *Conn) checkLiteral(size int64, _ bool) error {
	if size <= s.limit {
		return nil
	}
	s.refused.CompareAndSwap(0, size)
	_ = s.ic.Close()
	return fmt.Errorf("%w: %d bytes", ErrLiteralTooLarge, size)
}

// setLiteralCheck installs check as the CheckBufferedLiteralFunc of c's
// decoder. go-imap v2.0.0-beta.8 buffers every literal its parser reads as
// a string (mailbox names, flags' arguments, ENVELOPE fields) with no
// limit: a server announcing {4000000000} in a LIST reply makes it try to
// hold 4 GB. Its decoder (internal/imapwire) has the hook, its server sets
// it, its client has no option for it; so it is set here through
// reflection on the unexported field Client.dec. A go-imap upgrade that
// renames or retypes it makes this fail, and Dial with it: every test that
// dials then fails until this is adapted. Streamed literals (message
// bodies) do not pass through the hook.
//
// It must run before go-imap's reader goroutine can decode anything: Dial
// holds that goroutine at a gatedConn until then, which also orders this
// write before the reader's use of the field.
func setLiteralCheck(c *imapclient.Client, check func(size int64, nonSync bool) error) error {
	field := reflect.ValueOf(c).Elem().FieldByName("dec")
	if !field.IsValid() || field.Kind() != reflect.Pointer || field.IsNil() {
		return errors.New("imapconn: go-imap's client has no decoder field 'dec' (see setLiteralCheck)")
	}
	dec := reflect.NewAt(field.Type(), unsafe.Pointer(field.UnsafeAddr())).Elem().Elem()
	hook := dec.FieldByName("CheckBufferedLiteralFunc")
	if !hook.IsValid() || hook.Type() != reflect.TypeOf(check) || !hook.CanSet() {
		return errors.New("imapconn: go-imap's decoder has no CheckBufferedLiteralFunc (see setLiteralCheck)")
	}
	hook.Set(reflect.ValueOf(check))
	return nil
}

// gatedConn is the conn go-imap reads: its reads wait until open is
// called (see setLiteralCheck), and first return replay, the greeting
// Dial read itself before STARTTLS.
type gatedConn struct {
	net.Conn
	gate   chan struct{}
	replay []byte
}

func newGatedConn(c net.Conn, replay []byte) *gatedConn {
	return &gatedConn{Conn: c, gate: make(chan struct{}), replay: replay}
}

// open lets reads through.
func (g *gatedConn) open() { close(g.gate) }

func (g *gatedConn) Read(p []byte) (int, error) {
	<-g.gate
	if len(g.replay) > 0 {
		n := copy(p, g.replay)
		g.replay = g.replay[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}
