package pop3src

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/mailferry/mailferry/internal/dialer"
	"github.com/mailferry/mailferry/internal/idleconn"
	"github.com/mailferry/mailferry/internal/tlsmode"
)

// TLSMode says how a connection is encrypted (see tlsmode.Mode). The zero
// value is TLSImplicit, the safest.
type TLSMode = tlsmode.Mode

const (
	TLSImplicit = tlsmode.Implicit // TLS from the first byte
	TLSStartTLS = tlsmode.StartTLS // STLS before anything else
	TLSNone     = tlsmode.None     // never; needs AllowPlaintext
)

// DefaultIdleTimeout is how long a session may make no progress before its
// reads and writes fail, when DialOptions.IdleTimeout is 0.
const DefaultIdleTimeout = 2 * time.Minute

// DialOptions configures Dial.
type DialOptions struct {
	// Addr is "host:port"; without a port, 995 (TLSImplicit) or 110 is used.
	Addr string
	TLS  TLSMode
	// TLSConfig is cloned; its ServerName defaults to Addr's host. nil means
	// the system roots.
	TLSConfig *tls.Config
	// AllowPlaintext permits TLSNone and sending credentials without TLS.
	AllowPlaintext bool
	// IdleTimeout bounds how long a read or write may make no progress
	// (idleconn): 0 means DefaultIdleTimeout, negative means none.
	IdleTimeout time.Duration
	// Timeouts bound the TCP connect, the TLS handshake (implicit TLS and
	// STLS) and the greeting, each on its own (internal/dialer): a server
	// that accepts and never answers fails in seconds, not after the idle
	// timeout. The zero value: 30 s each.
	Timeouts dialer.Timeouts
	// Logger receives debug events; nil discards them.
	Logger *slog.Logger
	// Trace receives the protocol trace; see ClientOptions.Trace.
	Trace io.Writer
}

// Dial connects to a POP3 server, secures the session as opts.TLS says and
// reads the greeting. The session is ready for authentication. ctx bounds
// the dial, the TLS handshake, the greeting and STLS; cancelling it later
// has no effect on the returned Client.
func Dial(ctx context.Context, opts DialOptions) (*Client, error) {
	if opts.TLS == TLSNone && !opts.AllowPlaintext {
		return nil, fmt.Errorf("dialing %s: %w", opts.Addr, ErrPlaintext)
	}
	if opts.TLS < TLSImplicit || opts.TLS > TLSNone {
		return nil, fmt.Errorf("pop3src: dialing %s: unknown TLS mode %v", opts.Addr, opts.TLS)
	}
	addr, _ := withDefaultPort(opts.Addr, opts.TLS)
	var tlsCfg *tls.Config
	if opts.TLS != TLSNone {
		tlsCfg = tlsmode.ClientConfig(opts.TLSConfig, addr)
	}
	idle := opts.IdleTimeout
	if idle == 0 {
		idle = DefaultIdleTimeout
	}

	raw, err := dialer.Dial(ctx, addr, opts.Timeouts)
	if err != nil {
		return nil, fmt.Errorf("pop3src: %w", err)
	}
	ic := idleconn.New(raw, idle)
	stop := context.AfterFunc(ctx, func() { _ = ic.Close() })
	c, err := connect(ctx, ic, addr, tlsCfg, opts)
	interrupted := !stop()
	if err == nil && interrupted {
		err = fmt.Errorf("pop3src: connecting to %s: %w", addr, context.Cause(ctx))
	}
	if err != nil {
		_ = ic.Close()
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
			// The conn was closed under a blocked read: say why.
			err = fmt.Errorf("pop3src: connecting to %s: %w (%v)", addr, cause, err)
		}
		return nil, err
	}
	return c, nil
}

func connect(ctx context.Context, ic *idleconn.Conn, addr string, tlsCfg *tls.Config, opts DialOptions) (*Client, error) {
	copts := &ClientOptions{AllowPlaintext: opts.AllowPlaintext, Logger: opts.Logger, Trace: opts.Trace, TLSTimeout: opts.Timeouts.TLS}
	var conn net.Conn = ic
	if opts.TLS == TLSImplicit {
		var tc *tls.Conn
		err := dialer.Run(ctx, ic, dialer.StepTLS, addr, opts.Timeouts.TLS, true, func(ctx context.Context) (err error) {
			tc, err = tlsmode.Handshake(ctx, ic, tlsCfg)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("pop3src: TLS handshake with %s: %w", addr, dialer.TLSError(addr, dialer.POP3, err))
		}
		conn = tc
	}
	var c *Client
	err := dialer.Run(ctx, ic, dialer.StepGreeting, addr, opts.Timeouts.Greeting, opts.TLS == TLSImplicit, func(context.Context) (err error) {
		c, err = newClient(conn, ic, copts)
		return err
	})
	var pe *ProtocolError
	if errors.As(err, &pe) && pe.Command == "" {
		if perr := dialer.Unexpected(addr, dialer.POP3, pe.Line); perr != nil {
			err = perr // IMAP at a POP3 URL's port, say
		}
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	if opts.TLS == TLSStartTLS {
		if err := c.STLS(ctx, tlsCfg); err != nil {
			return nil, fmt.Errorf("securing the session with %s: %w", addr, err)
		}
	}
	return c, nil
}

// withDefaultPort returns addr with the mode's default port when it has
// none, and its host.
func withDefaultPort(addr string, mode TLSMode) (string, string) {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return addr, host
	}
	port := "110"
	if mode == TLSImplicit {
		port = "995"
	}
	host := addr
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return net.JoinHostPort(host, port), host
}
