package imapdst

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/mailferry/mailferry/internal/bearer"
	"github.com/mailferry/mailferry/pipeline"
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

// bearerResponse is the initial client response of an OAuth2 mechanism.
func bearerResponse(m AuthMethod, user, token string) []byte {
	if m == AuthXOAuth2 {
		return bearer.XOAuth2(user, token)
	}
	return bearer.OAuthBearer(user, token)
}

// checkOAuth refuses what an OAuth2 login cannot carry.
func checkOAuth(opts Options) error {
	if opts.Auth < AuthDefault || opts.Auth > AuthOAuthBearer {
		return fatal(fmt.Errorf("imapdst: logging in to %s: unknown auth method %v", opts.Addr, opts.Auth))
	}
	if opts.Auth.Mechanism() == "" {
		return nil
	}
	if opts.AuthzID != "" {
		return fatal(fmt.Errorf("imapdst: logging in to %s: %v cannot act for another user (AuthzID %q)", opts.Addr, opts.Auth, opts.AuthzID))
	}
	if opts.Password.IsZero() || strings.Contains(opts.Password.Reveal(), "\x01") || strings.Contains(opts.User, "\x01") {
		return fatal(fmt.Errorf("imapdst: logging in to %s as %s: OAuth2 token empty or user name or token contains ^A", opts.Addr, opts.User))
	}
	return nil
}

// TokenRejectedError is a server's OAuth2 error challenge (RFC 7628
// §3.2.2). It carries the server's status, never the token. It is fatal
// for the engine: the same token will not do better next time.
type TokenRejectedError struct {
	Mechanism string
	User      string
	// Status is the challenge's JSON "status" ("401", "invalid_token"), or
	// "" when it was not the expected JSON.
	Status string
	// Reply is the server's completion after the dummy response, when the
	// appender read one.
	Reply *ReplyError
}

func (e *TokenRejectedError) Error() string {
	msg := "imapdst: AUTHENTICATE " + e.Mechanism + " for " + e.User + ": server rejected the OAuth2 token"
	if e.Status != "" {
		msg += " (status " + e.Status + ")"
	}
	if e.Reply != nil {
		msg += ": " + e.Reply.Status
		if e.Reply.Text != "" {
			msg += " " + e.Reply.Text
		}
	}
	return msg
}

// Unwrap returns the server's refusal, if any.
func (e *TokenRejectedError) Unwrap() error {
	if e.Reply == nil {
		return nil
	}
	return e.Reply
}

// ErrorClass implements pipeline.Classifier.
func (e *TokenRejectedError) ErrorClass() pipeline.Class { return pipeline.ClassFatal }

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
	ir := base64.StdEncoding.EncodeToString(bearerResponse(m, a.opts.User, a.opts.Password.Reveal()))
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
		rej := &TokenRejectedError{Mechanism: mech, User: a.opts.User, Status: challengeStatus(r.Text)}
		dummy := ""
		if m == AuthOAuthBearer {
			dummy = base64.StdEncoding.EncodeToString([]byte{0x01})
		}
		a.write(dummy+"\r\n", "(dummy response)")
		a.tr.clientEnd()
		if err := a.wait(cmd); err != nil {
			return cmd, err
		}
		if rerr := a.replyError(cmd); rerr != nil {
			if re, ok := rerr.(*ReplyError); ok {
				rej.Reply = re
			}
		} else {
			return cmd, a.fail(fmt.Errorf("imapdst: %s accepted AUTHENTICATE %s after an OAuth2 error challenge", a.opts.Addr, mech))
		}
		return cmd, a.fail(rej)
	}
	return cmd, nil
}

// bearerClient is the sasl.Client of the control connection for XOAUTH2
// (which go-sasl lacks) and OAUTHBEARER. An error challenge ends the
// exchange with a *TokenRejectedError; go-imap then sends no dummy
// response, so the connection must be closed.
type bearerClient struct {
	mech, user string
	ir         []byte
}

func (c *bearerClient) Start() (string, []byte, error) { return c.mech, c.ir, nil }

func (c *bearerClient) Next(challenge []byte) ([]byte, error) {
	return nil, &TokenRejectedError{Mechanism: c.mech, User: c.user, Status: challengeStatus(string(challenge))}
}

var _ sasl.Client = (*bearerClient)(nil)

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
