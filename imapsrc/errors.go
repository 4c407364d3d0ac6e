package imapsrc

import (
	"errors"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/internal/tlsmode"
	"github.com/mailferry/mailferry/pipeline"
)

// Sentinels callers branch on with errors.Is. Each is returned wrapped in an
// error that classifies it for the pipeline (pipeline.ClassOf).
var (
	// ErrPlaintext: the connection is not encrypted and
	// Options.AllowPlaintext is false, so nothing was sent. Fatal. It is
	// tlsmode.ErrPlaintext, the value every client returns for this.
	ErrPlaintext = tlsmode.ErrPlaintext
	// ErrLoginDisabled: the server advertises LOGINDISABLED (RFC 3501
	// §6.2.3) and offers no AUTH=PLAIN either. Fatal. It is
	// imapconn.ErrLoginDisabled.
	ErrLoginDisabled = imapconn.ErrLoginDisabled
	// ErrNoUIDPlus: Delete was asked of a server without UIDPLUS (RFC 4315)
	// or IMAP4rev2. Nothing was deleted: a plain EXPUNGE would also remove
	// messages someone else marked \Deleted. Fatal.
	ErrNoUIDPlus = errors.New("imapsrc: server lacks UIDPLUS, refusing to delete (a plain EXPUNGE could remove other messages)")
	// ErrUIDValidityChanged: the folder's UIDVALIDITY is no longer the one in
	// the key, so the key's UID may name another message (RFC 3501 §2.3.1.1).
	// It is pipeline.ErrUIDValidityChanged itself. Transient: the engine
	// reconnects and lists again, which yields keys with the new UIDVALIDITY.
	ErrUIDValidityChanged = pipeline.ErrUIDValidityChanged
	// ErrMessageGone: the message is no longer in its folder (expunged by
	// another client, or the folder was deleted). Per message. It is
	// pipeline.ErrMessageGone itself: the engine counts such a message as
	// gone and goes on.
	ErrMessageGone = pipeline.ErrMessageGone
	// ErrBadKey: a key that FormatKey did not make. Per message.
	ErrBadKey = errors.New("imapsrc: malformed message key")
	// ErrClosed: Close was called.
	ErrClosed = errors.New("imapsrc: session closed")
)

func fatal(err error) error      { return pipeline.Fatal(err) }
func perMessage(err error) error { return pipeline.PerMessage(err) }
func transient(err error) error  { return pipeline.Transient(err) }

// replyClass sorts a tagged NO or BAD (*imap.Error) to command:
//
//   - codes meaning "not allowed" or "not possible for this account"
//     (AUTHENTICATIONFAILED, AUTHORIZATIONFAILED, EXPIRED, PRIVACYREQUIRED,
//     CONTACTADMIN, NOPERM; RFC 5530 §3): fatal (a refused login is an
//     *imapconn.LoginError, which classifies itself);
//   - UNAVAILABLE, INUSE, LIMIT, SERVERBUG: transient;
//   - a refusal of FETCH (the server cannot serve this message; Dovecot
//     says NO for a message expunged meanwhile or a broken file): per
//     message;
//   - anything else: transient.
func replyClass(command string, ie *imap.Error) pipeline.Class {
	switch strings.ToUpper(string(ie.Code)) {
	case "AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED", "PRIVACYREQUIRED", "CONTACTADMIN", "NOPERM":
		return pipeline.ClassFatal
	case "UNAVAILABLE", "INUSE", "LIMIT", "SERVERBUG":
		return pipeline.ClassTransient
	}
	switch command {
	case "FETCH", "UID FETCH":
		return pipeline.ClassPerMessage
	}
	return pipeline.ClassTransient
}

// explainTransport adds what the engine will do to errors go-imap reports
// when it dropped the connection itself.
func explainTransport(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "unsupported response type"), strings.Contains(msg, "unsupported msg-att name"):
		return " (the server sent a response go-imap v2.0.0-beta.8 cannot parse; it closed the connection)"
	}
	return ""
}

// first returns a if it is not nil, else b.
func first(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
