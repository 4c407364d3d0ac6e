// Package imapconn opens mailferry's go-imap sessions: the IMAP source
// (imapsrc), the destination's control connection (imapdst) and verify's
// read-only session all connect, secure, greet and log in here, the same
// way. It dials with a context, wraps the connection in an idle timeout
// that extends with progress (internal/idleconn), speaks implicit TLS
// (RFC 8314), STARTTLS (RFC 3501 §6.2.1, RFC 2595) or, only when allowed,
// no TLS, and logs in with LOGIN (RFC 3501 §6.2.3), AUTHENTICATE PLAIN
// (RFC 4616) or an OAuth2 bearer token (XOAUTH2, OAUTHBEARER: RFC 7628).
// It also bounds the literals go-imap holds in memory, and remembers the
// server's BYE, which go-imap drops, so that errors say why the server
// hung up (Explain).
//
// The rules of a login (which mechanism, what credentials IMAP can carry)
// and its errors are shared with imapdst's appender, which speaks the
// protocol itself on its own connection.
package imapconn

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/bearer"
	"github.com/mailferry/mailferry/internal/dialer"
	"github.com/mailferry/mailferry/internal/idleconn"
	"github.com/mailferry/mailferry/internal/imapbye"
	"github.com/mailferry/mailferry/internal/tlsmode"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// DefaultMaxLiteral is the largest literal go-imap may hold in memory when
// Options.MaxLiteral is 0. Such literals carry mailbox names (LIST, STATUS),
// namespace prefixes and the like, which servers keep far below this;
// message bodies are streamed and not limited by it.
const DefaultMaxLiteral = 1 << 20

// logoutTimeout bounds LOGOUT in Logout, which has no context.
const logoutTimeout = 5 * time.Second

// Options configures Dial.
type Options struct {
	Addr      string // host:port
	TLS       tlsmode.Mode
	TLSConfig *tls.Config // cloned; nil: system roots; ServerName defaults to Addr's host
	Credentials
	// PasswordFunc, when set, is called before anything is sent and its
	// value replaces Password (OAuth2 tokens expire during long runs). Its
	// error fails Dial as is: it should say what it ran, never a secret.
	PasswordFunc func(ctx context.Context) (secret.Value, error)
	// TokenRejected, when set with PasswordFunc, is called with the token
	// when the server rejects it (a *bearer.RejectedError): a token cache
	// drops it, and Dial logs in once more, on a new connection, with
	// PasswordFunc's next value (bearer.WithFreshToken).
	TokenRejected func(rejected secret.Value)
	// AllowPlaintext permits TLS mode None, and so credentials in clear
	// text; without it Dial refuses before connecting (tlsmode.ErrPlaintext).
	AllowPlaintext bool
	// IdleTimeout: a read or write that makes no progress for this long
	// fails the connection. <= 0: none.
	IdleTimeout time.Duration
	// Timeouts bound the TCP connect, the TLS handshake and the greeting,
	// each on its own (internal/dialer); the zero value: 30 s each.
	Timeouts dialer.Timeouts
	// MaxLiteral bounds each literal go-imap holds in memory; a larger one
	// fails the command with ErrLiteralTooLarge and closes the connection.
	// 0: DefaultMaxLiteral.
	MaxLiteral int64
	// DebugWriter and UnilateralDataHandler are given to go-imap
	// (imapclient.Options). The DebugWriter sees the login: it must not
	// forward what it sees until the caller has logged in.
	DebugWriter           io.Writer
	UnilateralDataHandler *imapclient.UnilateralDataHandler
	// Note, when set, receives the login as a redacted trace line
	// (`C: LOGIN "alice" ***`), for a caller whose trace is off during it.
	Note func(line string)
}

// Conn is an authenticated go-imap session on a connection Dial made. Its
// Client is go-imap's; the methods here tie the connection to a context
// and end it.
type Conn struct {
	c       *imapclient.Client
	ic      *idleconn.Conn
	bye     *imapbye.Conn // what go-imap reads, watched for the server's BYE
	extra   *extraConn    // FetchExtra's; under bye
	addr    string
	limit   int64
	refused atomic.Int64 // size of a literal refused by checkLiteral, 0 when none
	// greeting is the greeting's text (Greeting).
	greeting string
	// release is what Bind returns, made once: the sources bind around
	// every message's fetch.
	release func()
}

// Dial connects to opts.Addr, secures the connection as opts.TLS says,
// reads the greeting and logs in (a PREAUTH greeting needs no login).
// ctx bounds all of it; cancelling it later has no effect on the Conn.
//
// Refusals that only configuration can change are fatal for the engine:
// plaintext not allowed (tlsmode.ErrPlaintext), a certificate that fails
// verification, STARTTLS not offered (ErrNoStartTLS), credentials IMAP
// cannot carry (ErrInvalidArgument), a mechanism the server does not offer
// (ErrLoginDisabled and others). A refused login is a *LoginError, a
// rejected OAuth2 token a *bearer.RejectedError (after the one retry
// TokenRejected asks for). Network failures are transient. The password or
// token appears in no error.
func Dial(ctx context.Context, opts Options) (*Conn, error) {
	if opts.PasswordFunc == nil {
		return dial(ctx, opts)
	}
	return bearer.WithFreshToken(ctx, opts.User+" for "+opts.Addr, opts.PasswordFunc, opts.TokenRejected, func(pw secret.Value) (*Conn, error) {
		once := opts
		once.Password, once.PasswordFunc = pw, nil
		return dial(ctx, once)
	})
}

// dial is Dial with the password in opts.
func dial(ctx context.Context, opts Options) (*Conn, error) {
	if opts.TLS < tlsmode.Implicit || opts.TLS > tlsmode.None {
		return nil, pipeline.Fatal(fmt.Errorf("imapconn: connecting to %s: unknown TLS mode %v", opts.Addr, opts.TLS))
	}
	if opts.TLS == tlsmode.None && !opts.AllowPlaintext {
		return nil, fmt.Errorf("imapconn: connecting to %s as %s: %w", opts.Addr, opts.User, tlsmode.ErrPlaintext)
	}
	if err := opts.Credentials.Check(); err != nil {
		return nil, fmt.Errorf("imapconn: logging in to %s as %s: %w", opts.Addr, opts.User, err)
	}
	raw, err := dialer.Dial(ctx, opts.Addr, opts.Timeouts)
	if err != nil {
		return nil, fmt.Errorf("imapconn: %w", err)
	}
	ic := idleconn.New(raw, max(opts.IdleTimeout, 0))
	ic.CloseOnDone(ctx)
	c, err := connect(ctx, ic, opts)
	if err != nil {
		_ = ic.Close()
		return nil, idleconn.WithContextErr(ctx, err)
	}
	ic.CloseOnDone(context.Background())
	return c, nil
}

// connect runs TLS, the greeting, go-imap's client and the login on ic.
//
// The greeting is read here, not by go-imap, and handed on to it: STARTTLS
// needs it first, and go-imap v2.0.0-beta.8 reports a BYE greeting on a
// connection the server then closes either with the server's text or as
// "connection closed before greeting", whichever of two channels it looks
// at first.
func connect(ctx context.Context, ic *idleconn.Conn, opts Options) (*Conn, error) {
	var conn net.Conn = ic
	cfg := tlsmode.ClientConfig(opts.TLSConfig, opts.Addr)
	if opts.TLS == tlsmode.Implicit {
		if cfg.NextProtos == nil {
			cfg.NextProtos = []string{"imap"}
		}
		var tc *tls.Conn
		err := dialer.Run(ctx, ic, dialer.StepTLS, opts.Addr, opts.Timeouts.TLS, true, func(ctx context.Context) (err error) {
			tc, err = tlsmode.Handshake(ctx, ic, cfg)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("imapconn: TLS handshake with %s: %w", opts.Addr, dialer.TLSError(opts.Addr, dialer.IMAP, err))
		}
		conn = tc
	}
	br := bufio.NewReaderSize(conn, 4096)
	var g greeting
	err := dialer.Run(ctx, ic, dialer.StepGreeting, opts.Addr, opts.Timeouts.Greeting, opts.TLS == tlsmode.Implicit, func(context.Context) (err error) {
		g, err = readGreeting(br, opts.Addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	// What go-imap reads first: the greeting and whatever followed it.
	replay := []byte(g.line + "\r\n")
	if opts.TLS == tlsmode.StartTLS {
		if conn, replay, err = startTLS(ctx, ic, br, opts.Addr, cfg, g, opts.Timeouts.TLS); err != nil {
			return nil, err
		}
	} else {
		rest, _ := br.Peek(br.Buffered())
		replay = append(replay, rest...)
	}
	s := &Conn{ic: ic, addr: opts.Addr, limit: opts.MaxLiteral, greeting: greetingText(g)}
	s.release = func() { ic.CloseOnDone(context.Background()) }
	if s.limit <= 0 {
		s.limit = DefaultMaxLiteral
	}
	gc := newGatedConn(conn, replay)
	// The BYE watcher reads what go-imap reads, above TLS in every mode:
	// Dial does STARTTLS itself, so go-imap never swaps the conn under it.
	// It starts at the greeting (replayed), as its scanner needs. Below it,
	// FetchExtra's rewriting, idle unless asked, and below that the read
	// buffer (bufferedConn: go-imap's own is 4 KB).
	s.extra = newExtraConn(newBufferedConn(gc))
	s.bye = imapbye.New(s.extra)
	s.c = imapclient.New(s.bye, &imapclient.Options{DebugWriter: opts.DebugWriter, UnilateralDataHandler: opts.UnilateralDataHandler})
	// go-imap's reader waits at the gate until the hook is in place.
	err = setLiteralCheck(s.c, s.checkLiteral)
	gc.open()
	if err != nil {
		_ = s.c.Close()
		return nil, err
	}
	if err := s.c.WaitGreeting(); err != nil {
		_ = s.c.Close()
		return nil, pipeline.Transient(fmt.Errorf("imapconn: reading the greeting of %s: %w", opts.Addr, s.Explain(err)))
	}
	if g.status == "OK" { // else PREAUTH: no login
		if err := login(s.c, opts); err != nil {
			_ = s.c.Close()
			return nil, s.Explain(err)
		}
	}
	return s, nil
}

// Client returns the go-imap client. Its commands take no context: call
// Bind around them.
func (s *Conn) Client() *imapclient.Client { return s.c }

// Bind ties the connection to ctx until release is called: when ctx ends
// first, the connection is closed, which fails the command waiting on it.
// Only one context is bound at a time; a later Bind replaces it.
func (s *Conn) Bind(ctx context.Context) (release func()) {
	s.ic.CloseOnDone(ctx)
	return s.release
}

// Close closes the connection without LOGOUT.
func (s *Conn) Close() error { return s.c.Close() }

// Abort closes the TCP connection at once, under TLS and go-imap, so that a
// reader blocked on it fails fast (e.g. while go-imap waits for a body
// nobody will read).
func (s *Conn) Abort() error { return s.ic.Close() }

// Logout sends LOGOUT (RFC 3501 §6.1.3), waiting at most 5 s for the
// server, and closes the connection.
func (s *Conn) Logout() error {
	ctx, cancel := context.WithTimeout(context.Background(), logoutTimeout)
	defer cancel()
	s.ic.CloseOnDone(ctx)
	lerr := s.c.Logout().Wait()
	cerr := s.c.Close()
	if lerr != nil {
		return fmt.Errorf("imapconn: logging out of %s: %w", s.addr, lerr)
	}
	if cerr != nil && !errors.Is(cerr, net.ErrClosed) {
		return fmt.Errorf("imapconn: closing the connection to %s: %w", s.addr, cerr)
	}
	return nil
}

// Explain returns err with the reason go-imap does not give: when the
// connection failed because a literal was refused, ErrLiteralTooLarge
// (fatal); when the server had said BYE, a *ByeError with its code and
// text (transient); otherwise err as it is. Call it on the errors of
// go-imap commands; a reply of the server (*imap.Error) stays as it is.
func (s *Conn) Explain(err error) error {
	if err == nil {
		return nil
	}
	n := s.refused.Load()
	if n == 0 {
		return s.withBye(err)
	}
	if errors.Is(err, ErrLiteralTooLarge) {
		return err
	}
	return pipeline.Fatal(fmt.Errorf("%w: %d bytes announced by %s, at most %d accepted (%w)", ErrLiteralTooLarge, n, s.addr, s.limit, err))
}
