package imapdst

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/mailferry/mailferry/internal/bearer"
)

// AuthMethod selects how a connection authenticates. The zero value keeps
// the default choice: LOGIN, or AUTHENTICATE PLAIN when an AuthzID is set or
// the server says LOGINDISABLED.
type AuthMethod = bearer.Method

// The login methods; see bearer.Method.
const (
	AuthDefault     = bearer.MethodDefault
	AuthPlain       = bearer.MethodPlain
	AuthXOAuth2     = bearer.MethodXOAuth2
	AuthOAuthBearer = bearer.MethodOAuthBearer
)

// TokenRejectedError is a server's OAuth2 error challenge (RFC 7628
// §3.2.2): bearer.RejectedError, the one type every client returns for it.
// It carries the server's status, never the token, and is fatal for the
// engine. After the appender's dummy response, its Reply is the server's
// *LoginError.
type TokenRejectedError = bearer.RejectedError

// challengeStatus decodes the "status" of an RFC 7628 §3.2.2 error
// challenge (base64 JSON; raw JSON is accepted too), "" when it is not one.
func challengeStatus(b64 string) string {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		raw = []byte(b64)
	}
	return bearer.ChallengeStatus(raw)
}

// authBearer sends AUTHENTICATE XOAUTH2 or OAUTHBEARER with the token as
// initial response, inline when the server offers SASL-IR (RFC 4959). An
// error challenge is answered with the mechanism's dummy response
// (XOAUTH2: an empty line; OAUTHBEARER: %x01, RFC 7628 §3.2.3), the
// completion read, and the connection closed with a *TokenRejectedError.
func (a *Appender) authBearer() (*command, error) {
	m := a.opts.Auth
	mech := m.Mechanism()
	ir := base64.StdEncoding.EncodeToString(bearer.InitialResponse(m, a.opts.User, a.opts.Password.Reveal()))
	cmd := a.newCommand("AUTHENTICATE", "")
	if a.caps["SASL-IR"] {
		a.write(cmd.tag+" AUTHENTICATE "+mech+" "+ir+"\r\n", cmd.tag+" AUTHENTICATE "+mech+" ***")
		a.tr.clientEnd()
	} else {
		a.write(cmd.tag+" AUTHENTICATE "+mech+"\r\n", "")
		a.tr.clientEnd()
		if rejected, err := a.waitContinuation(cmd); err != nil || rejected {
			return cmd, err
		}
		a.write(ir+"\r\n", "***")
		a.tr.clientEnd()
	}
	if err := a.flush(); err != nil {
		return cmd, err
	}
	for !cmd.done {
		r, err := a.next()
		if err != nil {
			return cmd, err
		}
		if r.Tag != "+" {
			continue
		}
		rej := &TokenRejectedError{Command: "AUTHENTICATE", Mechanism: mech, User: a.opts.User, Status: challengeStatus(r.Text)}
		dummy := ""
		if m == AuthOAuthBearer {
			dummy = base64.StdEncoding.EncodeToString([]byte{0x01})
		}
		a.write(dummy+"\r\n", "(dummy response)")
		a.tr.clientEnd()
		if err := a.wait(cmd); err != nil {
			return cmd, err
		}
		if lerr := a.loginError(cmd); lerr != nil {
			rej.Reply, rej.Said = lerr, lerr.Reply()
		} else {
			return cmd, a.fail(fmt.Errorf("imapdst: %s accepted AUTHENTICATE %s after an OAuth2 error challenge", a.opts.Addr, mech))
		}
		return cmd, a.fail(rej)
	}
	return cmd, nil
}

// resolvePassword returns opts with Password from PasswordFunc, when set.
func resolvePassword(ctx context.Context, opts Options) (Options, error) {
	if opts.PasswordFunc == nil {
		return opts, nil
	}
	pw, err := opts.PasswordFunc(ctx)
	if err != nil {
		return opts, fmt.Errorf("imapdst: getting the password or token of %s for %s: %w", opts.User, opts.Addr, err)
	}
	opts.Password = pw
	return opts, nil
}
