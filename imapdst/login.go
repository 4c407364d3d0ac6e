package imapdst

import (
	"context"
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// Login reads the greeting of c, a go-imap client on a fresh connection
// (after STARTTLS, when opts.TLS is TLSStartTLS), and authenticates as opts
// says: LOGIN (RFC 3501 §6.2.3); AUTHENTICATE PLAIN (RFC 4616) when
// opts.Auth is AuthPlain, an AuthzID is set or the server says
// LOGINDISABLED; AUTHENTICATE XOAUTH2 or OAUTHBEARER (RFC 7628) with
// opts.Password as the bearer token. A PREAUTH greeting needs no login.
// When opts.PasswordFunc is set, its value replaces opts.Password first.
//
// It is the login of Destination's control connection, exported for the
// read-only sessions of other packages. go-imap takes no context: the
// caller closes c's connection when ctx ends. A refused login is a
// *ReplyError (Command "LOGIN" or "AUTHENTICATE"), a rejected OAuth2 token
// a *TokenRejectedError, after which c must be closed; clear text without
// opts.AllowPlaintext is ErrPlaintextRefused, with nothing sent.
func Login(ctx context.Context, c *imapclient.Client, opts Options) error {
	opts, err := resolvePassword(ctx, opts)
	if err != nil {
		return err
	}
	if err := c.WaitGreeting(); err != nil {
		return fmt.Errorf("imapdst: reading greeting from %s: %w", opts.Addr, err)
	}
	if c.State() != imap.ConnStateNotAuthenticated {
		return nil // PREAUTH (refused on clear text by NewStartTLS)
	}
	if opts.TLS == TLSNone && !opts.AllowPlaintext {
		return fatal(fmt.Errorf("logging in to %s as %s: %w", opts.Addr, opts.User, ErrPlaintextRefused))
	}
	for what, s := range map[string]string{"user name": opts.User, "authorization identity": opts.AuthzID, "password": opts.Password.Reveal()} {
		if err := checkCredentialText(what, s); err != nil {
			return err
		}
	}
	caps := c.Caps()
	cmdName := "LOGIN"
	if err := checkOAuth(opts); err != nil {
		return err
	}
	switch mech := opts.Auth.Mechanism(); {
	case mech != "":
		if !caps.Has(imap.AuthCap(mech)) {
			return fatal(fmt.Errorf("imapdst: logging in to %s as %s: server does not offer AUTH=%s", opts.Addr, opts.User, mech))
		}
		cmdName = "AUTHENTICATE"
		err = c.Authenticate(&bearerClient{mech: mech, ir: bearerResponse(opts.Auth, opts.User, opts.Password.Reveal()), user: opts.User})
	case opts.Auth == AuthPlain || opts.AuthzID != "" || caps.Has(imap.CapLoginDisabled):
		if !caps.Has(imap.AuthCap("PLAIN")) {
			if opts.AuthzID != "" {
				return fatal(fmt.Errorf("imapdst: logging in to %s as %s for %s: server does not offer AUTH=PLAIN", opts.Addr, opts.User, opts.AuthzID))
			}
			return fatal(fmt.Errorf("logging in to %s as %s: %w", opts.Addr, opts.User, ErrLoginDisabled))
		}
		cmdName = "AUTHENTICATE"
		err = c.Authenticate(sasl.NewPlainClient(opts.AuthzID, opts.User, opts.Password.Reveal()))
	default:
		err = c.Login(opts.User, opts.Password.Reveal()).Wait()
	}
	if err != nil {
		var rej *TokenRejectedError
		if errors.As(err, &rej) {
			// go-imap sent no dummy response: the caller closes the connection.
			return fmt.Errorf("imapdst: logging in to %s as %s: %w", opts.Addr, opts.User, rej)
		}
		var ie *imap.Error
		if errors.As(err, &ie) {
			return &ReplyError{Command: cmdName, User: opts.User, Status: string(ie.Type), Code: string(ie.Code), Text: ie.Text}
		}
		// go-sasl and go-imap errors never carry the password.
		return fmt.Errorf("imapdst: logging in to %s as %s: %w", opts.Addr, opts.User, err)
	}
	return nil
}
