// Package dialer is how mailferry's POP3 and IMAP clients open a
// connection to a server they know nothing about yet: the TCP connect, the
// TLS handshake and the server's greeting each get a short timeout of
// their own (a server that accepts and never answers must not hold a run
// for the idle timeout, let alone its retries), and the failures that no
// retry can heal are told apart from those that can: nothing listening on
// the port (ECONNREFUSED), or a server that speaks another protocol (POP3
// at an IMAP port, plain text at a TLS port). The clients (pop3src,
// internal/imapconn, imapdst's appender) speak their own protocol; they
// call Dial, run each step under Step, and turn a greeting they do not
// understand into Unexpected.
package dialer

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// DefaultTimeout bounds each step of opening a connection when Timeouts
// leaves it 0: long enough for a slow server across the world, short
// beside the idle timeout of a transfer.
const DefaultTimeout = 30 * time.Second

// Timeouts bound the steps of opening a connection, each on its own (a
// connect that took 29 s leaves the handshake its full time). 0: the
// step's default (DefaultTimeout); negative: none.
type Timeouts struct {
	Connect  time.Duration // TCP connect, the DNS lookup included
	TLS      time.Duration // the TLS handshake (implicit TLS, STARTTLS, STLS)
	Greeting time.Duration // the server's first line
}

func orDefault(d time.Duration) time.Duration {
	if d == 0 {
		return DefaultTimeout
	}
	return max(d, 0)
}

// Step names a step of opening a connection.
type Step string

const (
	StepConnect  Step = "connect"
	StepTLS      Step = "TLS handshake"
	StepGreeting Step = "greeting"
)

// Protocol is what a client expects the server to speak.
type Protocol string

const (
	IMAP Protocol = "IMAP"
	POP3 Protocol = "POP3"
)

// TimeoutError is a step that did not complete in time: the server, or
// something on the way, accepted the connection (or did not) and then
// said nothing. It is transient for the engine: an overloaded server
// heals; the hint says what else to check.
type TimeoutError struct {
	Step  Step
	Addr  string
	After time.Duration
	TLS   bool // the connection was to speak TLS from the first byte
	Err   error
}

func (e *TimeoutError) Error() string {
	switch e.Step {
	case StepConnect:
		return fmt.Sprintf("connecting to %s: no answer within %v", e.Addr, e.After)
	case StepTLS:
		return fmt.Sprintf("%s accepted the connection but did not complete the TLS handshake within %v", e.Addr, e.After)
	}
	return fmt.Sprintf("%s accepted the connection but sent no greeting within %v", e.Addr, e.After)
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// ErrorClass: a server that is slow to answer may answer next time.
func (e *TimeoutError) ErrorClass() pipeline.Class { return pipeline.ClassTransient }

// RefusedError: nothing listens at Addr (the connection was refused, or a
// firewall rejects it). Retrying cannot help; the URL's host or port, or
// the server, must change.
type RefusedError struct {
	Addr string
	Err  error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("connecting to %s: connection refused: nothing listens on that port", e.Addr)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// ErrorClass: fatal, the configuration must change.
func (e *RefusedError) ErrorClass() pipeline.Class { return pipeline.ClassFatal }

// ProtocolError: the server at Addr speaks another protocol than the URL
// says (a POP3 server at an IMAP URL's port, a plain-text port where the
// URL asks for implicit TLS). Got is what it seems to speak ("POP3",
// "IMAP", "SMTP", "plain text", "TLS", "something else"); Line is what it
// said, shortened. Retrying cannot help.
type ProtocolError struct {
	Addr      string
	Want, Got string
	Line      string
	Err       error
}

func (e *ProtocolError) Error() string {
	msg := fmt.Sprintf("%s does not speak %s: it answered like %s", e.Addr, e.Want, e.article())
	if e.Line != "" {
		msg += fmt.Sprintf(" (%q)", e.Line)
	}
	return msg
}

func (e *ProtocolError) article() string {
	switch e.Got {
	case "IMAP", "SMTP":
		return "an " + e.Got + " server"
	case "POP3":
		return "a POP3 server"
	case "plain text":
		return "a server that does not speak TLS on this port"
	case "TLS":
		return "a server that speaks TLS from the first byte"
	}
	return "something else"
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// ErrorClass: fatal, the URL must change.
func (e *ProtocolError) ErrorClass() pipeline.Class { return pipeline.ClassFatal }

// Dial connects to addr over TCP within t.Connect (and ctx). A refused
// connection is a *RefusedError, a connect that times out a
// *TimeoutError; other errors are returned wrapped, as they are.
func Dial(ctx context.Context, addr string, t Timeouts) (net.Conn, error) {
	d := net.Dialer{Timeout: orDefault(t.Connect)}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		return c, nil
	}
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil, &RefusedError{Addr: addr, Err: err}
	case ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout():
		return nil, &TimeoutError{Step: StepConnect, Addr: addr, After: d.Timeout, Err: err}
	}
	return nil, fmt.Errorf("connecting to %s: %w", addr, err)
}

// errStepTimeout ends a step's context when its own time is up.
var errStepTimeout = errors.New("step timed out")

// Run runs one step of opening a connection with its own time limit d
// (0: DefaultTimeout; negative: only ctx). When the time is up, conn is
// closed, which ends a read or write blocked in a library that takes no
// context, and the error is a *TimeoutError wrapping what the step
// returned. tlsFirst says the connection was to speak TLS from its first
// byte (for the hint of a greeting timeout).
func Run(ctx context.Context, conn io.Closer, step Step, addr string, d time.Duration, tlsFirst bool, fn func(ctx context.Context) error) error {
	d = orDefault(d)
	if d <= 0 {
		return fn(ctx)
	}
	sctx, cancel := context.WithTimeoutCause(ctx, d, errStepTimeout)
	defer cancel()
	stop := context.AfterFunc(sctx, func() {
		if errors.Is(context.Cause(sctx), errStepTimeout) {
			_ = conn.Close()
		}
	})
	err := fn(sctx)
	fired := !stop()
	if ctx.Err() == nil && errors.Is(context.Cause(sctx), errStepTimeout) && (err != nil || fired) {
		if err == nil {
			err = context.DeadlineExceeded
		}
		return &TimeoutError{Step: step, Addr: addr, After: d, TLS: tlsFirst, Err: err}
	}
	return err
}

// Unexpected is the error for a first line from the server at addr that
// is not the greeting of want: a *ProtocolError naming what it looks
// like when it looks like another protocol, else nil (the caller reports
// a malformed greeting of the right protocol its own way).
func Unexpected(addr string, want Protocol, line string) error {
	got := guess([]byte(line))
	if got == "" || got == string(want) {
		return nil
	}
	return &ProtocolError{Addr: addr, Want: string(want), Got: got, Line: shorten(line)}
}

// TLSError returns the error of a TLS handshake with addr that failed
// because the server does not speak TLS there (its first bytes are not a
// TLS record: a plain-text POP3 or IMAP greeting, say) as a
// *ProtocolError; other errors come back as they are.
func TLSError(addr string, want Protocol, err error) error {
	var rh tls.RecordHeaderError
	if !errors.As(err, &rh) {
		return err
	}
	// The five bytes read as a record header are the start of what the
	// server said in plain text ("* OK ", "+OK D").
	line := printable(string(bytes.TrimRight(rh.RecordHeader[:], "\x00"))) + "..."
	return &ProtocolError{Addr: addr, Want: string(want) + " over TLS", Got: "plain text", Line: line, Err: err}
}

// guess names the protocol a server's first bytes belong to: "IMAP"
// ("* OK", "* PREAUTH", "* BYE"), "POP3" ("+OK", "-ERR"), "SMTP" ("220"),
// "TLS" (a handshake or alert record), "something else"; "" for nothing.
func guess(b []byte) string {
	s := string(b)
	switch {
	case len(b) == 0:
		return ""
	case strings.HasPrefix(s, "* "):
		return "IMAP"
	case strings.HasPrefix(s, "+OK"), strings.HasPrefix(s, "-ERR"):
		return "POP3"
	case strings.HasPrefix(s, "220"):
		return "SMTP"
	case b[0] == 0x15 || b[0] == 0x16:
		// TLS alert or handshake record (RFC 8446 §5.1).
		return "TLS"
	}
	return "something else"
}

// shorten keeps a line quoted in an error short.
func shorten(s string) string {
	s = strings.TrimRight(s, "\r\n")
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// printable replaces the bytes of a TLS record header that are not text.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '.'
		}
		return r
	}, s)
}
