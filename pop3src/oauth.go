package pop3src

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/mailferry/mailferry/internal/bearer"
	"github.com/mailferry/mailferry/secret"
)

// AuthMethod selects how Open authenticates. The zero value keeps the
// default choice: USER/PASS, or SASL PLAIN when an AuthzID is set or the
// server offers PLAIN but not USER.
type AuthMethod = bearer.Method

// The login methods; see bearer.Method.
const (
	AuthDefault     = bearer.MethodDefault
	AuthPlain       = bearer.MethodPlain
	AuthXOAuth2     = bearer.MethodXOAuth2
	AuthOAuthBearer = bearer.MethodOAuthBearer
)

// XOAuth2Response is the XOAUTH2 initial client response (before base64).
func XOAuth2Response(user, token string) []byte { return bearer.XOAuth2(user, token) }

// OAuthBearerResponse is the OAUTHBEARER initial client response (RFC 7628
// §3.1) with a gs2 header naming user as the authorization identity.
func OAuthBearerResponse(user, token string) []byte { return bearer.OAuthBearer(user, token) }

// TokenRejectedError is a server's OAuth2 error challenge (RFC 7628
// §3.2.2) after which the client gave up: bearer.RejectedError, the one
// type every client returns for it. It carries the server's status, never
// the token; it is fatal for the engine (an expired or wrong token does
// not heal by retrying the same one). Its Reply is the server's final
// *ResponseError, when one was read.
type TokenRejectedError = bearer.RejectedError

// oauthChallengeStatus decodes the "status" of an RFC 7628 §3.2.2 error
// challenge (base64 JSON), "" when it is not one.
func oauthChallengeStatus(b64 string) string {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return ""
	}
	return bearer.ChallengeStatus(raw)
}

// AuthXOAuth2 authenticates user with an OAuth2 bearer token using XOAUTH2
// (RFC 5034 AUTH). The token appears in no trace or error.
func (c *Client) AuthXOAuth2(ctx context.Context, user string, token secret.Value) error {
	return c.authBearer(ctx, "XOAUTH2", user, token)
}

// AuthOAuthBearer authenticates user with an OAuth2 bearer token using
// OAUTHBEARER (RFC 7628, RFC 5034 AUTH). The token appears in no trace or
// error.
func (c *Client) AuthOAuthBearer(ctx context.Context, user string, token secret.Value) error {
	return c.authBearer(ctx, "OAUTHBEARER", user, token)
}

// authBearer runs AUTH mech with an initial response (on the AUTH line when
// it fits in 255 octets, RFC 5034 §4, else after the empty "+ "). An error
// challenge is answered with the mechanism's dummy response (XOAUTH2: an
// empty line; OAUTHBEARER: %x01, RFC 7628 §3.2.3) and the server's -ERR
// read; the session is then unusable, and the caller should close it.
func (c *Client) authBearer(ctx context.Context, mech, user string, token secret.Value) error {
	if err := c.checkPlaintext("AUTH " + mech); err != nil {
		return err
	}
	if user == "" {
		return fmt.Errorf("pop3src: AUTH %s: empty user name", mech)
	}
	tok := token.Reveal()
	if tok == "" {
		return newFatal(fmt.Sprintf("pop3src: AUTH %s: empty token", mech))
	}
	if strings.ContainsAny(tok, "\x00\x01\r\n") || strings.ContainsAny(user, "\x00\x01\r\n") {
		return newFatal(fmt.Sprintf("pop3src: AUTH %s: user name or token contains control characters", mech))
	}
	var raw []byte
	dummy := ""
	if mech == "XOAUTH2" {
		raw = XOAuth2Response(user, tok)
	} else {
		raw = OAuthBearerResponse(user, tok)
		dummy = base64.StdEncoding.EncodeToString([]byte{0x01})
	}
	resp := base64.StdEncoding.EncodeToString(raw)
	shown := "AUTH " + mech + " ***"
	return c.do(ctx, shown, func() error {
		sent := false
		if line := "AUTH " + mech + " " + resp; len(line)+2 <= maxAuthLine {
			if err := c.send(line, shown); err != nil {
				return err
			}
			sent = true
		} else if err := c.send("AUTH "+mech, "AUTH "+mech); err != nil {
			return err
		}
		st, err := c.readStatusOrContinuation(shown, true)
		if err != nil || st.kind == statusOK {
			return err
		}
		if !sent {
			if err := c.send(resp, "***"); err != nil {
				return err
			}
			if st, err = c.readStatusOrContinuation(shown, true); err != nil || st.kind == statusOK {
				return err
			}
		}
		// An error challenge: answer it, expect -ERR, give up the session.
		rej := &TokenRejectedError{Command: "AUTH", Mechanism: mech, User: user, Status: oauthChallengeStatus(st.text)}
		if err := c.send(dummy, "(dummy response)"); err != nil {
			return err
		}
		_, err = c.readStatus(shown)
		var re *ResponseError
		switch {
		case errors.As(err, &re):
			rej.Reply, rej.Said = re, re.reply()
		case err == nil:
			return c.fail(&ProtocolError{Command: shown, Reason: "+OK after an OAuth2 error challenge"})
		default:
			return err
		}
		return c.fail(rej)
	})
}
