package bearer

import "github.com/mailferry/mailferry/pipeline"

// RejectedError is a server's OAuth2 error challenge (RFC 7628 §3.2.2)
// after which the client gave up: the one error the POP3 and IMAP clients
// return for a rejected token. It carries the server's status, never the
// token, and is fatal for the engine: the same token will not do better
// next time.
type RejectedError struct {
	Command   string // "AUTHENTICATE" (IMAP) or "AUTH" (POP3)
	Mechanism string // "XOAUTH2" or "OAUTHBEARER"
	User      string // "" when not known
	// Status is the challenge's JSON "status" ("401", "invalid_token"), or
	// "" when it was not the expected JSON.
	Status string
	// Said is the server's final refusal after the dummy response, as it
	// was sent ("NO [AUTHENTICATIONFAILED] Authentication failed.",
	// "-ERR [AUTH] Invalid token"); "" when none was read.
	Said string
	// Reply is that refusal as an error of the client's package
	// (*imapconn.LoginError, *pop3src.ResponseError); nil when none.
	Reply error
}

func (e *RejectedError) Error() string {
	msg := e.Command + " " + e.Mechanism
	if e.User != "" {
		msg += " for " + e.User
	}
	msg += ": server rejected the OAuth2 token"
	if e.Status != "" {
		msg += " (status " + e.Status + ")"
	}
	if e.Said != "" {
		msg += ": " + e.Said
	}
	return msg
}

// Unwrap returns the server's refusal, if any.
func (e *RejectedError) Unwrap() error { return e.Reply }

// ErrorClass implements pipeline.Classifier: a rejected token is fatal.
func (e *RejectedError) ErrorClass() pipeline.Class { return pipeline.ClassFatal }

var _ pipeline.Classifier = (*RejectedError)(nil)
