package pop3src

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/connlimit"
	"github.com/mailferry/mailferry/internal/tlsmode"
	"github.com/mailferry/mailferry/pipeline"
)

// ResponseError is a -ERR reply from the server (RFC 1939 §3), with the
// extended response code of RFC 2449 §8 when the server sent one.
type ResponseError struct {
	// Command is the command that was answered, with credentials redacted
	// ("PASS ***", "AUTH PLAIN ***"); "" for the greeting.
	Command string
	// Code is the response code without brackets, e.g. "IN-USE",
	// "LOGIN-DELAY", "SYS/TEMP", "SYS/PERM", "AUTH"; "" when none was sent.
	Code string
	// Text is the human-readable rest of the line.
	Text string
	// LoginDelay is the minimum time between logins the server announced
	// with the LOGIN-DELAY capability (RFC 2449 §6.5) before this reply,
	// 0 when it announced none. The Client sets it on [LOGIN-DELAY] replies.
	LoginDelay time.Duration
}

// TooManyConnections implements connlimit.Refuser: the server refused
// the session because the user (or the client's address) has too many
// connections open (Dovecot: "-ERR [LIMIT] Maximum number of connections
// from user+IP exceeded").
func (e *ResponseError) TooManyConnections() bool { return connlimit.TooManyText(e.Text) }

func (e *ResponseError) Error() string {
	var b strings.Builder
	b.WriteString("pop3src: ")
	if e.Command == "" {
		b.WriteString("greeting")
	} else {
		b.WriteString(e.Command)
	}
	b.WriteString(": ")
	b.WriteString(e.reply())
	return b.String()
}

// reply is the server's -ERR line: "-ERR [CODE] text".
func (e *ResponseError) reply() string {
	s := "-ERR"
	if e.Code != "" {
		s += " [" + e.Code + "]"
	}
	if e.Text != "" {
		s += " " + e.Text
	}
	return s
}

// ErrorClass implements pipeline.Classifier.
//
// The response code decides first (RFC 2449 §8.1, RFC 3206 §4):
// [AUTH] and [SYS/PERM] are fatal; [IN-USE], [LOGIN-DELAY] and [SYS/TEMP]
// are transient. Without a known code, a -ERR to a command that
// authenticates or secures the session (USER, PASS, AUTH, APOP, STLS) is an
// authentication or configuration failure and fatal; a -ERR to anything else
// (RETR included) is transient.
func (e *ResponseError) ErrorClass() pipeline.Class {
	switch code := strings.ToUpper(e.Code); {
	case code == "AUTH", code == "SYS/PERM", strings.HasPrefix(code, "SYS/PERM/"):
		return pipeline.ClassFatal
	case code == "IN-USE", code == "LOGIN-DELAY", code == "SYS/TEMP", strings.HasPrefix(code, "SYS/TEMP/"):
		return pipeline.ClassTransient
	}
	switch commandName(e.Command) {
	case "USER", "PASS", "AUTH", "APOP", "STLS":
		return pipeline.ClassFatal
	}
	return pipeline.ClassTransient
}

// maxLoginDelay caps the wait RetryAfter reports, so that an absurd
// LOGIN-DELAY cannot park an account for days. RFC 2449 §6.8 suggests
// values such as 900 (15 minutes).
const maxLoginDelay = time.Hour

// RetryAfter implements pipeline.RetryAfterer. For a [LOGIN-DELAY] refusal
// (RFC 2449 §8.1.1: the user logged in too recently) it is the minimum time
// between logins from the server's LOGIN-DELAY capability, capped at an
// hour; 0 when the server did not announce it, and for every other reply,
// so the caller uses its own backoff.
func (e *ResponseError) RetryAfter() time.Duration {
	if !strings.EqualFold(e.Code, "LOGIN-DELAY") {
		return 0
	}
	return min(max(e.LoginDelay, 0), maxLoginDelay)
}

// commandName returns the upper-case verb of a command line.
func commandName(cmd string) string {
	name, _, _ := strings.Cut(cmd, " ")
	return strings.ToUpper(name)
}

// ProtocolError reports a reply that breaks the POP3 grammar. The session is
// unusable afterwards: the client can no longer tell where replies start.
type ProtocolError struct {
	Command string // as in ResponseError; "" for the greeting
	Reason  string // what was wrong
	Line    string // the offending line, shortened; may be ""
}

func (e *ProtocolError) Error() string {
	cmd := e.Command
	if cmd == "" {
		cmd = "greeting"
	}
	msg := fmt.Sprintf("pop3src: %s: protocol violation: %s", cmd, e.Reason)
	if e.Line != "" {
		msg += fmt.Sprintf(" (got %q)", e.Line)
	}
	return msg
}

// shorten keeps error messages bounded when a server sends garbage.
func shorten(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// newFatal returns an error with text msg that the engine treats as fatal.
func newFatal(msg string) error { return pipeline.Fatal(errors.New(msg)) }

var (
	// ErrNoUIDL is returned (wrapped) by Client.UIDL when the server answers
	// UIDL with a -ERR that carries no response code: it does not implement
	// the optional UIDL command (RFC 1939 §7). The error also wraps the
	// *ResponseError.
	ErrNoUIDL = errors.New("pop3src: server does not support UIDL")

	// ErrPlaintext is returned when credentials would be sent, or a plaintext
	// session opened, without TLS and the caller did not allow it. Fatal.
	// It is tlsmode.ErrPlaintext, the value every client returns for this.
	ErrPlaintext = tlsmode.ErrPlaintext

	// ErrClosed is returned by every method after Close or Quit.
	ErrClosed = errors.New("pop3src: session closed")

	// ErrUnknownKey is returned (wrapped) by Source.Fetch and Source.Delete
	// for a key that the last List did not return. Per message: the message
	// has gone from the maildrop, or List was not called.
	ErrUnknownKey = pipeline.PerMessage(errors.New("pop3src: message key not in the current listing"))
)
