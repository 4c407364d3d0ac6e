package imapsrc

import (
	"github.com/emersion/go-sasl"

	"github.com/mailferry/mailferry/internal/bearer"
	"github.com/mailferry/mailferry/pipeline"
)

// AuthMethod selects how Open authenticates. The zero value keeps the
// default choice: LOGIN, or AUTHENTICATE PLAIN when an AuthzID is set or the
// server says LOGINDISABLED.
type AuthMethod = bearer.Method

// The login methods; see bearer.Method.
const (
	AuthDefault     = bearer.MethodDefault
	AuthPlain       = bearer.MethodPlain
	AuthXOAuth2     = bearer.MethodXOAuth2
	AuthOAuthBearer = bearer.MethodOAuthBearer
)

// TokenRejectedError is a server's OAuth2 error challenge (RFC 7628
// §3.2.2). It carries the server's status and scope, never the token. It
// is fatal for the engine: the same token will not do better next time.
type TokenRejectedError struct {
	Mechanism string
	// Status is the challenge's JSON "status" ("401", "invalid_token"), or
	// "" when it was not the expected JSON.
	Status string
}

func (e *TokenRejectedError) Error() string {
	msg := "imapsrc: AUTHENTICATE " + e.Mechanism + ": server rejected the OAuth2 token"
	if e.Status != "" {
		msg += " (status " + e.Status + ")"
	}
	return msg
}

// ErrorClass implements pipeline.Classifier.
func (e *TokenRejectedError) ErrorClass() pipeline.Class { return pipeline.ClassFatal }

// bearerClient is a sasl.Client for XOAUTH2 and OAUTHBEARER. go-sasl has no
// XOAUTH2; its OAUTHBEARER does not escape the gs2 authzid. An error
// challenge ends the exchange with a *TokenRejectedError: go-imap then
// sends no dummy response, so the caller must close the connection.
type bearerClient struct {
	mech string
	ir   []byte
}

func newBearerClient(m AuthMethod, user, token string) *bearerClient {
	c := &bearerClient{mech: m.Mechanism(), ir: bearer.OAuthBearer(user, token)}
	if m == AuthXOAuth2 {
		c.ir = bearer.XOAuth2(user, token)
	}
	return c
}

func (c *bearerClient) Start() (string, []byte, error) { return c.mech, c.ir, nil }

func (c *bearerClient) Next(challenge []byte) ([]byte, error) {
	return nil, &TokenRejectedError{Mechanism: c.mech, Status: bearer.ChallengeStatus(challenge)}
}

var _ sasl.Client = (*bearerClient)(nil)
