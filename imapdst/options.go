package imapdst

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/mailferry/mailferry/internal/dialer"
	"github.com/mailferry/mailferry/internal/idleconn"
	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/internal/tlsmode"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/provider"
	"github.com/mailferry/mailferry/secret"
)

// TLSMode says how a connection is encrypted (see tlsmode.Mode). The zero
// value is TLSImplicit, the safest.
type TLSMode = tlsmode.Mode

const (
	TLSImplicit = tlsmode.Implicit // TLS from the first byte
	TLSStartTLS = tlsmode.StartTLS // STARTTLS before anything else
	TLSNone     = tlsmode.None     // never; needs AllowPlaintext
)

// Defaults for zero Options fields.
const (
	DefaultMaxBatchMessages = pipeline.DefaultBatchMessages
	DefaultMaxBatchBytes    = pipeline.DefaultBatchBytes
	DefaultMaxInFlight      = 16
	DefaultIdleTimeout      = 2 * time.Minute
)

// Options configures a Destination or an Appender.
type Options struct {
	Addr      string // host:port
	TLS       TLSMode
	TLSConfig *tls.Config // nil: system roots; ServerName defaults to Addr's host
	User      string
	// AuthzID, when set, logs in with AUTHENTICATE PLAIN as User (a master
	// user) on behalf of AuthzID (RFC 4616 §2).
	AuthzID string
	// Password is the password, or the OAuth2 bearer token when Auth is
	// AuthXOAuth2 or AuthOAuthBearer.
	Password secret.Value
	// Auth selects the login mechanism of both connections; the zero value
	// is AuthDefault.
	Auth AuthMethod
	// PasswordFunc, when set, is called before every login (each new
	// connection, reconnections included) and its value replaces Password:
	// OAuth2 tokens expire during long runs and are read again. Its error
	// fails the login as is (it should say what it ran, never a secret).
	PasswordFunc func(ctx context.Context) (secret.Value, error)
	// TokenRejected, when set with PasswordFunc, is called with the token
	// when the server rejects it (a *TokenRejectedError): a token cache
	// drops it, and the login is tried once more on a new connection with
	// PasswordFunc's next value. A server that ends sessions when their
	// token expires, or a token revoked early, then costs one retry, not
	// the account.
	TokenRejected  func(rejected secret.Value)
	AllowPlaintext bool          // allow LOGIN/AUTHENTICATE without TLS
	IdleTimeout    time.Duration // no progress for this long fails the connection; 0: DefaultIdleTimeout, <0: none
	// Timeouts bound the TCP connect, the TLS handshake and the greeting
	// of both connections, each on its own (internal/dialer); the zero
	// value: 30 s each.
	Timeouts dialer.Timeouts
	// MaxBatchMessages and MaxBatchBytes bound one MULTIAPPEND; a message
	// larger than MaxBatchBytes goes alone. 0: the defaults.
	MaxBatchMessages int
	MaxBatchBytes    int64
	// MaxInFlight bounds the APPENDs sent before their replies arrive when
	// the server lacks MULTIAPPEND. 0: DefaultMaxInFlight; 1: no pipelining.
	MaxInFlight int
	Logger      *slog.Logger // nil: discard
	// Trace, when set, receives the protocol lines of both connections,
	// with credentials replaced by *** and message bodies by byte counts.
	Trace io.Writer
	// Shared, when set, is what the account's sessions learn about the
	// server and share (refused optional features, PERMANENTFLAGS): give
	// every Dial of one account the same. Nil: this Destination keeps its
	// own.
	Shared *Shared
	// Provider, when set, is the server's family (the provider key, or a
	// host of its), whose quirk profile the connections follow; nil: a
	// Destination tells it from what the server says on its first
	// connection (provider.Identify: capabilities, greeting), and an
	// appender it opens later follows that; an Appender dialled on its
	// own tells it itself.
	Provider *provider.Provider
	// OnClose, when set, is called exactly once, by the first
	// Destination.Close, after both connections are closed, whatever Close
	// returns. Dial never calls it: when Dial fails no connection is left
	// open. A caller that caps connections gives its slots back here. An
	// Appender dialled on its own ignores it.
	OnClose func()
	// AppendAtDial makes Dial open the appender connection too, beside
	// the control connection and at the same time: for a session that
	// appends at once (an extra session of a copy with batches queued).
	// Without it the appender connection opens at the first Append or
	// StartAppend, or in the background from PrepareAppend, so a session
	// with nothing to append never logs in a second time. A caller that
	// caps connections takes the appender's slot with the session's
	// either way: it must be free when the copy needs it.
	AppendAtDial bool
	// DialError, when set, makes the error of an appender connection
	// opened after Dial returned (at the first append) the one it
	// returns, as the caller treats Dial's errors (a server refusing one
	// more connection, a refused token). Nil: the error as it is.
	DialError func(err error) error
}

func (o Options) withDefaults() Options {
	if o.MaxBatchMessages <= 0 {
		o.MaxBatchMessages = DefaultMaxBatchMessages
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Shared == nil {
		o.Shared = NewShared(imapconn.NewQuirks(o.Logger, nil))
	}
	return o
}

// tlsConfig returns a copy of the caller's config with ServerName set.
func (o Options) tlsConfig() *tls.Config { return tlsmode.ClientConfig(o.TLSConfig, o.Addr) }

// checkPlaintext refuses TLSNone without AllowPlaintext (fatal: the
// sentinel classifies itself).
func (o Options) checkPlaintext() error {
	if o.TLS == TLSNone && !o.AllowPlaintext {
		return fmt.Errorf("imapdst: logging in to %s as %s: %w", o.Addr, o.User, ErrPlaintextRefused)
	}
	return nil
}

// credentials are who logs in, and how.
func (o Options) credentials() imapconn.Credentials {
	return imapconn.Credentials{User: o.User, AuthzID: o.AuthzID, Password: o.Password, Auth: o.Auth}
}

// wrap puts the idle timeout around raw and, for TLSImplicit, runs the TLS
// handshake and returns the TLS conn on top. On error raw is closed.
func (o Options) wrap(ctx context.Context, raw net.Conn) (*idleconn.Conn, net.Conn, error) {
	ic := idleconn.New(raw, max(o.IdleTimeout, 0))
	if o.TLS != TLSImplicit {
		return ic, ic, nil
	}
	cfg := o.tlsConfig()
	if cfg.NextProtos == nil {
		cfg.NextProtos = []string{"imap"}
	}
	var tc *tls.Conn
	err := dialer.Run(ctx, ic, dialer.StepTLS, o.Addr, o.Timeouts.TLS, true, func(ctx context.Context) (err error) {
		tc, err = tlsmode.Handshake(ctx, ic, cfg)
		return err
	})
	if err != nil {
		_ = ic.Close()
		return nil, nil, fmt.Errorf("imapdst: TLS handshake with %s: %w", o.Addr, dialer.TLSError(o.Addr, dialer.IMAP, err))
	}
	return ic, tc, nil
}
