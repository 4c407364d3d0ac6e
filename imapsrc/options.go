package imapsrc

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/dialer"
	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/internal/tlsmode"
	"github.com/mailferry/mailferry/mapping"
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
	DefaultIdleTimeout = 2 * time.Minute
	DefaultFetchBatch  = 512 // pipeline.ListPage: fewer pages, each a round trip for its bodies
)

// Options configures Open.
type Options struct {
	// Addr is "host:port"; without a port, 993 (TLSImplicit) or 143.
	Addr      string
	TLS       TLSMode
	TLSConfig *tls.Config // cloned; nil: system roots; ServerName defaults to Addr's host
	// User is the mailbox owner. With AuthzID set, User is the
	// authentication identity (a master user) and AuthzID the mailbox to
	// read: SASL PLAIN with an authorization identity (RFC 4616 §2).
	User    string
	AuthzID string
	// Password is the password, or the OAuth2 bearer token when Auth is
	// AuthXOAuth2 or AuthOAuthBearer.
	Password secret.Value
	// Auth selects the login mechanism; the zero value is AuthDefault.
	Auth AuthMethod
	// PasswordFunc, when set, is called by Open and its value replaces
	// Password: a token source read again for every session, since OAuth2
	// tokens expire during long runs. Its error fails Open as is (it should
	// say what it ran, never a secret).
	PasswordFunc func(ctx context.Context) (secret.Value, error)
	// TokenRejected, when set with PasswordFunc, is called with the token
	// when the server rejects it (a *TokenRejectedError): a token cache
	// drops it, and the login is tried once more on a new connection with
	// PasswordFunc's next value. A server that ends sessions when their
	// token expires, or a token revoked early, then costs one retry, not
	// the account.
	TokenRejected func(rejected secret.Value)
	// AllowPlaintext permits authenticating without TLS.
	AllowPlaintext bool
	// IdleTimeout: a read or write that makes no progress for this long
	// fails the connection. 0: DefaultIdleTimeout; negative: none.
	IdleTimeout time.Duration
	// Timeouts bound the TCP connect, the TLS handshake and the greeting,
	// each on its own (internal/dialer); the zero value: 30 s each.
	Timeouts dialer.Timeouts
	// Logger receives warnings and debug events; nil discards them.
	Logger *slog.Logger
	// Trace receives the protocol conversation after authentication
	// (credentials are never written; the login is shown as one redacted
	// line) with message bodies left out.
	Trace io.Writer
	// Include and Exclude select folders by pattern (mapping.FolderFilter):
	// "*" matches any run of characters, "/" included, "%" any run within
	// one level, "?" one character; INBOX matches in any case, every other
	// character only itself. A pattern may be written with "/" or the
	// server's separator between levels, with or without the personal
	// namespace prefix ("INBOX." on Courier and Cyrus). Empty Include means
	// every folder; Exclude wins over Include. Open refuses a malformed
	// pattern (mapping.CheckFolderPattern).
	Include, Exclude []string
	// MaxAge and MinAge, when positive, leave out of List the messages
	// whose internal date is more than MaxAge or less than MinAge before
	// the time of listing (--max-age, --min-age). A message without an
	// internal date, or dated in the future (a skewed clock), counts as
	// new. 0: no limit.
	MaxAge, MinAge time.Duration
	// FetchBatch is how many UIDs one UID FETCH of List asks for.
	// 0: DefaultFetchBatch.
	FetchBatch int
	// PrefetchMessages bounds how many bodies one batched UID FETCH asks
	// for after Prefetch: 0 means DefaultPrefetchMessages, negative turns
	// prefetching off (one UID FETCH per message).
	PrefetchMessages int
	// PrefetchBytes bounds the announced size of one batch (a message
	// larger than this goes alone): 0 means DefaultPrefetchBytes.
	PrefetchBytes int64
	// OnClose, when set, is called exactly once, when the session's
	// connection has been closed: by the first Close (Watcher.Close, or a
	// Watch that fails after its login), whatever Close returns. Open
	// never calls it: when Open fails there is no session. A caller that
	// caps connections gives its slot back here.
	OnClose func()
	// Quirks, when set, remembers the optional features the server refused
	// (NAMESPACE, LIST RETURN, ESEARCH, UID EXPUNGE) for every session of
	// the account; nil: each session finds out for itself.
	Quirks *imapconn.Quirks
	// Provider, when set, is the server's family (the provider key, or a
	// host of its), whose quirk profile the session follows; nil: the
	// session tells it from what the server says (provider.Identify:
	// capabilities, greeting). Source.Provider says which it is.
	Provider *provider.Provider
	// Labels is how a server with labels (Gmail) is copied: one copy per
	// message (the default) or one per label folder.
	Labels LabelMode

	// unilateral receives the server's unsolicited responses (Watch's
	// EXISTS during IDLE); nil for sources.
	unilateral *imapclient.UnilateralDataHandler
	// filter is Include and Exclude, checked and compiled by validate.
	filter *mapping.FolderFilter
}

func (o Options) withDefaults() Options {
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.IdleTimeout < 0 {
		o.IdleTimeout = 0
	}
	if o.FetchBatch <= 0 {
		o.FetchBatch = DefaultFetchBatch
	}
	if o.PrefetchMessages == 0 {
		o.PrefetchMessages = DefaultPrefetchMessages
	}
	if o.PrefetchBytes <= 0 {
		o.PrefetchBytes = DefaultPrefetchBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Quirks == nil {
		o.Quirks = imapconn.NewQuirks(o.Logger, nil)
	}
	o.Addr = withDefaultPort(o.Addr, o.TLS)
	return o
}

// validate checks what can be checked before connecting, and compiles the
// folder patterns.
func (o *Options) validate() error {
	if o.TLS < TLSImplicit || o.TLS > TLSNone {
		return fatal(fmt.Errorf("imapsrc: unknown TLS mode %v", o.TLS))
	}
	filter, err := mapping.NewFolderFilter(o.Include, o.Exclude)
	if err != nil {
		return fatal(fmt.Errorf("imapsrc: %w", err))
	}
	o.filter = filter
	return nil
}

// withDefaultPort adds the mode's default port to an address without one.
func withDefaultPort(addr string, mode TLSMode) string {
	if _, _, err := net.SplitHostPort(addr); err == nil || addr == "" {
		return addr
	}
	port := "143"
	if mode == TLSImplicit {
		port = "993"
	}
	host := addr
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return net.JoinHostPort(host, port)
}
