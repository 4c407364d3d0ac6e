package account

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/imapsrc"
	"github.com/mailferry/mailferry/internal/bearer"
	"github.com/mailferry/mailferry/internal/connlimit"
	"github.com/mailferry/mailferry/internal/dialer"
	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/internal/tlsmode"
	"github.com/mailferry/mailferry/pop3src"
	"github.com/mailferry/mailferry/provider"
	"github.com/mailferry/mailferry/secret"
	"github.com/mailferry/mailferry/verify"
)

// Login says how the command line logs in to one side of a URL account:
// a password it already has (an environment variable, a prompt), or where
// to read it (a file, a command). For OAuth2 logins a Secret is read again
// for every session: tokens expire during long runs.
type Login struct {
	Password secret.Value
	Secret   config.SecretSource
	// What names the secret in errors: "source password
	// (--source-password-command)"; with OAuth2 the flag that gave it.
	What string
	// OAuth2, when set, logs in with tokens from a grant instead of a
	// password: the server settings of `copy --source-oauth2` or
	// `--dest-oauth2` (config.OAuth2Flag), whose provider, auth and oauth2
	// table replace the URL's.
	OAuth2 *config.Server
}

// side is how to connect to one server for one account.
type side struct {
	ep             config.Endpoint
	tls            *tls.Config
	allowPlaintext bool
	idleTimeout    time.Duration
	timeouts       dialer.Timeouts // connect, TLS handshake, greeting
	// user logs in; authzID, when set, is the mailbox a master user acts
	// for (SASL PLAIN, RFC 4616 §2).
	user, authzID string
	auth          bearer.Method
	// password gives the password or OAuth2 token of each new session.
	password func(context.Context) (secret.Value, error)
	// tokenRejected, with an oauth2 grant, drops a token the server
	// rejected from the cache, so that the login's one retry gets a fresh
	// one; grant is that login.
	tokenRejected func(secret.Value)
	grant         *grant
	caps          []connlimit.Cap
	userKey       string // the connlimit key of this user on this server
	// provider is the server's family when the provider key names it or
	// its host is one of the provider's; nil otherwise.
	provider *provider.Provider
	log      *slog.Logger
	trace    io.Writer
	// quirks remembers what the server refused of the optional features,
	// for every session of the account; shared carries it and the
	// mailboxes' PERMANENTFLAGS between the destination's sessions.
	quirks *imapconn.Quirks
	shared *imapdst.Shared
}

// sideSpec is what a side is made of.
type sideSpec struct {
	account string // the config's account name, for errors; "" for URLs
	section string // "source" or "destination", as the config spells it
	ep      config.Endpoint
	srv     *config.Server
	// login is the user's own password: from the account's
	// *_password keys or from the command line.
	login   Login
	cap     int // the server's connection cap; 0: none
	perUser int // max_connections_per_user; 0: the preset, if any
}

// side builds one side: the server's settings under the command line's,
// its TLS configuration (reading the CA file), its login and its caps.
func (s *Set) side(sp sideSpec) (*side, error) {
	o := &s.opts
	d := &side{ep: sp.ep, allowPlaintext: o.AllowPlaintext || sp.srv.AllowPlaintext,
		idleTimeout: sp.srv.IdleTimeout, auth: authMethod(sp.ep.Auth), log: s.log, trace: o.Trace,
		timeouts: dialer.Timeouts{Connect: sp.srv.ConnectTimeout, TLS: sp.srv.TLSTimeout, Greeting: sp.srv.GreetingTimeout},
		provider: provider.For(sp.srv.Provider, sp.ep.Host)}
	if sp.account != "" {
		d.log = s.log.With("account", sp.account)
	}
	ca := o.TLSCA
	if ca == "" {
		ca = sp.srv.TLSCA
	}
	insecure := o.InsecureSkipVerify || sp.srv.InsecureSkipVerify
	var err error
	if d.tls, err = s.tlsConfig(sp.ep, ca, insecure, d.log); err != nil {
		return nil, fmt.Errorf("%s %s: %w", sp.section, sp.ep.Addr(), err)
	}
	if insecure {
		why := "insecure_skip_verify in the config"
		if o.InsecureSkipVerify {
			why = "--insecure-skip-verify or MAILFERRY_INSECURE_SKIP_VERIFY"
		}
		s.warnOnce("insecure "+sp.ep.Addr(), "TLS certificates of this server are not verified: anyone on the network path can read the passwords and the mail",
			"server", sp.ep.Addr(), "because", why)
	}
	d.user, d.authzID = sp.srv.LoginUser(sp.ep.User)
	switch {
	case sp.srv.OAuth2 != nil:
		// Tokens from a grant, cached and refreshed for every session.
		what := sp.section
		if sp.login.OAuth2 != nil && sp.login.What != "" {
			what = sp.login.What
		}
		src, err := s.logins.source(sp.srv, sp.ep.User, sp.account, d.log)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		d.password, d.tokenRejected = src.Token, src.Rejected
		d.grant = &grant{src: src, name: sp.srv.OAuth2.Grant, provider: sp.srv.Provider}
	case sp.srv.MasterUser != "":
		d.password = s.masters.of(sp.srv, sp.section, s.log).get
	case sp.ep.Auth.IsOAuth2() && !sp.login.Secret.IsZero():
		// Read again for every session: OAuth2 tokens expire.
		src, what := sp.login.Secret, sp.login.What
		d.password = func(ctx context.Context) (secret.Value, error) {
			return secretRead(ctx, src, sp.account, what, d.log)
		}
	case !sp.login.Password.IsZero():
		pw := sp.login.Password
		d.password = func(context.Context) (secret.Value, error) { return pw, nil }
	case !sp.login.Secret.IsZero():
		src, what := sp.login.Secret, sp.login.What
		o := &once{read: func(ctx context.Context) (secret.Value, error) {
			return secretRead(ctx, src, sp.account, what, d.log)
		}}
		d.password = o.get
	}
	if sp.cap > 0 {
		d.caps = []connlimit.Cap{{Key: sp.ep.Addr(), Max: sp.cap}}
	}
	perUser := sp.perUser
	if o.MaxConnectionsPerUser > 0 {
		perUser = o.MaxConnectionsPerUser
	}
	uc := userCap(perUser, sp.ep, d.provider)
	d.userKey = uc.Key
	d.caps = append(d.caps, uc)
	if o.MaxConnectionsTotal > 0 {
		d.caps = append(d.caps, connlimit.Cap{Key: runCapKey, Max: o.MaxConnectionsTotal})
	}
	return d, nil
}

// tlsConfig is the TLS configuration of a server: verification on, the
// system roots plus the CA file when given, and the run's session cache
// for the server (sessionCache). A server reached without TLS (TLSNone)
// never verifies a certificate: its CA file is only checked, so that a bad
// one still fails the run, and the system roots are not loaded (parsing
// them was about 2% of mailferry's CPU time copying the 300 MB *mixed*
// workload with TLS off).
func (s *Set) tlsConfig(ep config.Endpoint, caFile string, insecure bool, log *slog.Logger) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: ep.Host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if ep.TLS == config.TLSNone {
		if caFile == "" {
			return cfg, nil
		}
		return cfg, s.checkCAFile(caFile)
	}
	if caFile != "" {
		pool, err := s.caPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	cfg.ClientSessionCache = s.sessionCache(tlsEndpoint{addr: ep.Addr(), serverName: cfg.ServerName, caFile: caFile, insecure: insecure})
	// Called after Go's own verification, on full handshakes and
	// resumptions alike; it only says which one this was.
	log = log.With("server", ep.Addr())
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if cs.DidResume {
			log.Debug("TLS session resumed", "tls_version", tls.VersionName(cs.Version))
		}
		return nil
	}
	return cfg, nil
}

// tlsEndpoint is what a TLS session may be resumed for: one server
// (address and the name its certificate is checked against), verified with
// the same roots or not verified at all.
type tlsEndpoint struct {
	addr, serverName string
	caFile           string
	insecure         bool
}

// sessionCache is the run's TLS session cache for one endpoint, shared by
// every account and connection (source, POP3 STLS, IMAP STARTTLS, the
// destination's control and appender sessions) to it, so that all but the
// first resume a session (RFC 8446 §2.2, RFC 5077) and neither side pays
// the certificate signature and chain verification again. Sessions live in
// memory for the run only; nothing is written to disk.
//
// One cache per endpoint, not one per Set: crypto/tls keys a cache by
// ServerName alone, so two servers on one host (a source and a destination
// on 127.0.0.1) would evict each other's tickets. Connections that skip
// verification get caches of their own: Go refuses to resume such a
// session on a verified connection anyway (len(verifiedChains) == 0), and
// they never share one.
//
// Resuming does not weaken verification. crypto/tls (go1.26,
// handshake_client.go, loadSession) checks, before it offers a cached
// session, that the leaf certificate has not expired (NotAfter), and,
// unless InsecureSkipVerify, that the session was verified, that the leaf
// matches ServerName (VerifyHostname) and that a verified chain is still
// within its validity and rooted in the config's RootCAs; otherwise it
// drops the entry and does a full handshake. A TLS 1.3 ticket is also
// dropped after its lifetime (useBy), and resumption keeps an (EC)DHE
// exchange (psk_dhe_ke), so forward secrecy stays.
func (s *Set) sessionCache(ep tlsEndpoint) tls.ClientSessionCache {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.sessions[ep]; ok {
		return c
	}
	if s.sessions == nil {
		s.sessions = map[tlsEndpoint]tls.ClientSessionCache{}
	}
	// One entry is enough: every connection through this cache has the
	// same ServerName, its only key.
	c := tls.NewLRUClientSessionCache(1)
	s.sessions[ep] = c
	return c
}

// caPool reads a CA file once per Set.
func (s *Set) caPool(path string) (*x509.CertPool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pools[path]; ok {
		return p, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	if s.pools == nil {
		s.pools = map[string]*x509.CertPool{}
	}
	s.pools[path] = pool
	return pool, nil
}

// checkCAFile reports whether path can be read and holds a PEM
// certificate, as caPool would, without loading the system roots. Like
// caPool it reads a file once per Set: a batch's accounts without TLS each
// re-read and parsed it before.
func (s *Set) checkCAFile(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.checked[path] {
		return nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading CA file: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	if s.checked == nil {
		s.checked = map[string]bool{}
	}
	s.checked[path] = true
	return nil
}

// claim is what one session of this side with n connections needs.
func (d *side) claim(n int) connlimit.Claim { return connlimit.Claim{Caps: d.caps, N: n} }

// pop3 are the options of a POP3 source session.
func (d *side) pop3(onClose func()) pop3src.Options {
	return pop3src.Options{
		Addr: d.ep.Addr(), TLS: tlsMode(d.ep.TLS), TLSConfig: d.tls,
		User: d.user, AuthzID: d.authzID, Auth: d.auth, PasswordFunc: d.password, TokenRejected: d.tokenRejected,
		AllowPlaintext: d.allowPlaintext, IdleTimeout: d.idleTimeout, Timeouts: d.timeouts,
		Logger: d.log, Trace: d.trace, OnClose: onClose,
	}
}

// imapSource are the options of an IMAP source session reading the
// folders f selects (and the URL's folder, when it names one).
func (d *side) imapSource(f config.Folders, onClose func()) imapsrc.Options {
	include := f.Include
	if d.ep.Mailbox != "" {
		include = append([]string{d.ep.Mailbox}, include...)
	}
	labels, _ := imapsrc.ParseLabelMode(f.GmailLabels) // checked with the config and the flags
	return imapsrc.Options{
		Addr: d.ep.Addr(), TLS: tlsMode(d.ep.TLS), TLSConfig: d.tls,
		User: d.user, AuthzID: d.authzID, Auth: d.auth, PasswordFunc: d.password, TokenRejected: d.tokenRejected,
		AllowPlaintext: d.allowPlaintext, IdleTimeout: d.idleTimeout, Timeouts: d.timeouts,
		Logger: d.log, Trace: d.trace, Include: include, Exclude: f.Exclude,
		MaxAge: f.MaxAge, MinAge: f.MinAge, OnClose: onClose, Quirks: d.quirks,
		Provider: d.provider, Labels: labels,
	}
}

// imapDest are the options of a destination session.
func (d *side) imapDest(batchMessages int, batchBytes int64, onClose func()) imapdst.Options {
	return imapdst.Options{
		Addr: d.ep.Addr(), TLS: tlsMode(d.ep.TLS), TLSConfig: d.tls,
		User: d.user, AuthzID: d.authzID, Auth: d.auth, PasswordFunc: d.password, TokenRejected: d.tokenRejected,
		AllowPlaintext: d.allowPlaintext, IdleTimeout: d.idleTimeout, Timeouts: d.timeouts,
		MaxBatchMessages: batchMessages, MaxBatchBytes: batchBytes,
		Logger: d.log, Trace: d.trace, OnClose: onClose, Shared: d.shared, Provider: d.provider,
	}
}

// reader are the options of verify's and plan's read-only destination
// session.
func (d *side) reader() verify.IMAPOptions {
	return verify.IMAPOptions{
		Addr: d.ep.Addr(), TLS: tlsMode(d.ep.TLS), TLSConfig: d.tls,
		User: d.user, AuthzID: d.authzID, Auth: d.auth, PasswordFunc: d.password, TokenRejected: d.tokenRejected,
		AllowPlaintext: d.allowPlaintext, Timeouts: d.timeouts, Logger: d.log, Quirks: d.quirks,
	}
}

// tlsMode is the clients' TLS mode for a URL's (pop3src, imapsrc and
// imapdst share tlsmode.Mode).
func tlsMode(m config.TLSMode) tlsmode.Mode {
	switch m {
	case config.TLSStartTLS:
		return tlsmode.StartTLS
	case config.TLSNone:
		return tlsmode.None
	}
	return tlsmode.Implicit
}

// authMethod maps the configured auth setting to the login method the
// POP3 and IMAP clients share. "login" is the default of each (USER/PASS,
// LOGIN).
func authMethod(a config.Auth) bearer.Method {
	switch a {
	case config.AuthPlain:
		return bearer.MethodPlain
	case config.AuthXOAuth2:
		return bearer.MethodXOAuth2
	case config.AuthOAuthBearer:
		return bearer.MethodOAuthBearer
	}
	return bearer.MethodDefault
}
