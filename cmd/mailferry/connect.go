package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/internal/tlsmode"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/pop3src"
	"github.com/mailferry/mailferry/secret"
)

// serverSetup is everything needed to connect to one server for one account.
type serverSetup struct {
	ep       config.Endpoint
	password secret.Value // the user's, or with masterUser the master user's
	// masterUser, when set, logs in as this user on behalf of ep.User:
	// SASL PLAIN with an authorization identity (RFC 4616), or with
	// masterLogin = separator the plain login "user*master".
	masterUser      string
	masterLogin     config.MasterLogin
	masterSeparator string
	// auth is the login mechanism (the URL's ?auth= or the config's auth);
	// passwordFunc, when set, gives the password or OAuth2 token afresh for
	// every new connection (tokens expire during long runs).
	auth         config.Auth
	passwordFunc func(context.Context) (secret.Value, error)
	// tokenRejected, with an oauth2 grant, drops a token the server
	// rejected from the cache, so the retried login gets a fresh one.
	tokenRejected  func(secret.Value)
	tlsCA          string
	insecure       bool
	allowPlaintext bool
	idleTimeout    time.Duration
	folders        folderOptions // IMAP sources: which folders, and how they map
	log            *slog.Logger
	trace          io.Writer
}

// accountSides builds the two serverSetups of a configured account, the
// same for copy and run as for verify and plan.
type accountSides struct {
	account *config.Account
	common  *commonOptions
	masters *masterPasswords
	folders folderOptions
	trace   io.Writer
	log     *slog.Logger
}

// setup is one side: server s's settings under the command line's, the
// user's password, for OAuth2 a token read again from userSecret for every
// connection (label names it in errors), and the master user's login.
func (b accountSides) setup(ctx context.Context, s *config.Server, ep config.Endpoint, userPassword secret.Value, userSecret config.SecretSource, label string) (serverSetup, error) {
	setup := serverSetup{ep: ep, password: userPassword, auth: ep.Auth, tlsCA: firstNonEmpty(b.common.tlsCA, s.TLSCA),
		insecure:       b.common.insecureSkipVerify || s.InsecureSkipVerify,
		allowPlaintext: b.common.allowPlaintext || s.AllowPlaintext,
		idleTimeout:    s.IdleTimeout, log: b.log.With("account", b.account.Name), trace: b.trace, folders: b.folders}
	switch {
	case s.OAuth2 != nil:
		// Tokens from a grant, cached and refreshed for every connection.
		var err error
		if setup.passwordFunc, setup.tokenRejected, err = b.masters.oauth.login(s, ep.User, setup.log); err != nil {
			return setup, err
		}
	case ep.Auth.IsOAuth2():
		// Read the token again for every connection: it expires.
		setup.passwordFunc = tokenFunc(userSecret, label+" of account "+strconv.Quote(b.account.Name), b.log)
	}
	err := setup.useMaster(ctx, s, b.masters, b.log)
	return setup, err
}

// tlsConfig builds the TLS settings: verification on, the system roots plus
// the extra CA file when given.
func (s serverSetup) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{ServerName: s.ep.Host, MinVersion: tls.VersionTLS12}
	if s.insecure {
		cfg.InsecureSkipVerify = true
	}
	if s.tlsCA != "" {
		pem, err := os.ReadFile(s.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", s.tlsCA)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// credentials returns the login user and the authorization identity. The
// separator form needs no protocol support: "alice*admin" goes out through
// USER/PASS or LOGIN like any user name (or SASL PLAIN without authzid).
func (s serverSetup) credentials() (user, authzID string) {
	m := config.Server{MasterUser: s.masterUser, MasterLogin: s.masterLogin, MasterSeparator: s.masterSeparator}
	return m.LoginUser(s.ep.User)
}

// useMaster makes s log in through srv's master user, if it has one, with
// the master password (resolved once per run for all accounts sharing it).
func (s *serverSetup) useMaster(ctx context.Context, srv *config.Server, masters *masterPasswords, log *slog.Logger) error {
	if srv.MasterUser == "" {
		return nil
	}
	pw, err := masters.resolve(ctx, srv, log)
	if err != nil {
		return err
	}
	s.masterUser, s.masterLogin, s.masterSeparator, s.password = srv.MasterUser, srv.MasterLogin, srv.MasterSeparator, pw
	return nil
}

// openSource returns a function that opens a session on the source.
func (s serverSetup) openSource() (func(ctx context.Context) (pipeline.Source, error), error) {
	if s.ep.Protocol == config.IMAP {
		return s.openIMAPSource(s.folders)
	}
	tlsCfg, err := s.tlsConfig()
	if err != nil {
		return nil, err
	}
	mode := clientTLSMode(s.ep.TLS)
	user, authz := s.credentials()
	opts := pop3src.Options{
		Addr: s.ep.Addr(), TLS: mode, TLSConfig: tlsCfg,
		User: user, AuthzID: authz, Password: s.password,
		AllowPlaintext: s.allowPlaintext, IdleTimeout: s.idleTimeout,
		Logger: s.log, Trace: s.trace,
		Auth: authMethod(s.auth), PasswordFunc: s.passwordFunc, TokenRejected: s.tokenRejected,
	}
	return func(ctx context.Context) (pipeline.Source, error) {
		src, err := pop3src.Open(ctx, opts)
		if err != nil {
			return nil, err
		}
		return src, nil
	}, nil
}

// openDestination returns a function that opens the destination.
func (s serverSetup) openDestination(batchMessages int, batchBytes int64) (func(ctx context.Context) (pipeline.Destination, error), error) {
	tlsCfg, err := s.tlsConfig()
	if err != nil {
		return nil, err
	}
	if s.ep.Protocol != config.IMAP {
		return nil, usagef("destination %s: must be an imaps:// or imap:// URL", s.ep)
	}
	mode := clientTLSMode(s.ep.TLS)
	user, authz := s.credentials()
	opts := imapdst.Options{
		Addr: s.ep.Addr(), TLS: mode, TLSConfig: tlsCfg,
		User: user, AuthzID: authz, Password: s.password,
		AllowPlaintext: s.allowPlaintext, IdleTimeout: s.idleTimeout,
		MaxBatchMessages: batchMessages, MaxBatchBytes: batchBytes,
		Logger: s.log, Trace: s.trace,
		Auth: authMethod(s.auth), PasswordFunc: s.passwordFunc, TokenRejected: s.tokenRejected,
	}
	return func(ctx context.Context) (pipeline.Destination, error) {
		dst, err := imapdst.Dial(ctx, opts)
		if err != nil {
			return nil, err
		}
		return dst, nil
	}, nil
}

// accountKey names an account in the ledger: the source mailbox and where it
// goes. It must not change between runs, so it is built from the servers
// and users only (never a password), the scheme reduced to the protocol so
// that pop3s and pop3+STLS on the same port count as the same mailbox.
func accountKey(src, dst config.Endpoint) string {
	mb := dst.Mailbox
	if mb == "" && src.Protocol == config.POP3 {
		mb = "INBOX"
	}
	return fmt.Sprintf("%s://%s@%s -> %s://%s@%s/%s", src.Protocol, src.User, src.Addr(),
		dst.Protocol, dst.User, dst.Addr(), mb)
}

// clientTLSMode is the clients' TLS mode for a URL's (pop3src, imapsrc and
// imapdst share tlsmode.Mode).
func clientTLSMode(m config.TLSMode) tlsmode.Mode {
	switch m {
	case config.TLSStartTLS:
		return tlsmode.StartTLS
	case config.TLSNone:
		return tlsmode.None
	}
	return tlsmode.Implicit
}
