package imapsrc

import "github.com/mailferry/mailferry/internal/bearer"

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
// §3.2.2): bearer.RejectedError, the one type every client returns for it.
// It carries the server's status, never the token, and is fatal for the
// engine.
type TokenRejectedError = bearer.RejectedError
