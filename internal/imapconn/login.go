package imapconn

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/mailferry/mailferry/internal/bearer"
	"github.com/mailferry/mailferry/internal/connlimit"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// Sentinels callers branch on with errors.Is. Where they are returned they
// are wrapped in an error that classifies them for the pipeline.
var (
	// ErrLoginDisabled: the server advertises LOGINDISABLED (RFC 3501
	// §6.2.3) and offers no AUTH=PLAIN either. Fatal.
	ErrLoginDisabled = errors.New("imapconn: server disables LOGIN and offers no AUTH=PLAIN")
	// ErrInvalidArgument: a user name, password, mailbox name, flag or
	// Message-ID holds bytes IMAP cannot carry (CR, LF, NUL), or a flag is
	// not an atom. Nothing was sent. Fatal for credentials.
	ErrInvalidArgument = errors.New("invalid IMAP argument")
)

// Credentials say who logs in, and how.
type Credentials struct {
	// User is the mailbox owner. With AuthzID set, User is the
	// authentication identity (a master user) and AuthzID the mailbox:
	// AUTHENTICATE PLAIN with an authorization identity (RFC 4616 §2).
	User    string
	AuthzID string
	// Password is the password, or the OAuth2 bearer token when Auth is
	// bearer.MethodXOAuth2 or bearer.MethodOAuthBearer.
	Password secret.Value
	// Auth selects the mechanism; see Mechanism.
	Auth bearer.Method
}

// Check refuses, before anything is sent, what IMAP or the chosen
// mechanism cannot carry: CR, LF or NUL in a credential, an unknown
// method, an OAuth2 login on behalf of another user, an empty token, ^A in
// a token or its user name (the XOAUTH2 and OAUTHBEARER separator). Its
// errors are fatal and never show the password.
func (c Credentials) Check() error {
	for _, f := range []struct{ what, s string }{
		{"user name", c.User}, {"authorization identity", c.AuthzID}, {"password", c.Password.Reveal()},
	} {
		if strings.ContainsAny(f.s, "\r\n\x00") {
			return pipeline.Fatal(fmt.Errorf("%w: %s contains CR, LF or NUL", ErrInvalidArgument, f.what))
		}
	}
	if c.Auth < bearer.MethodDefault || c.Auth > bearer.MethodOAuthBearer {
		return pipeline.Fatal(fmt.Errorf("unknown auth method %v", c.Auth))
	}
	if c.Auth.Mechanism() == "" {
		return nil
	}
	if c.AuthzID != "" {
		return pipeline.Fatal(fmt.Errorf("%v cannot act for another user (AuthzID %q)", c.Auth, c.AuthzID))
	}
	if c.Password.IsZero() || strings.Contains(c.Password.Reveal(), "\x01") || strings.Contains(c.User, "\x01") {
		return pipeline.Fatal(errors.New("OAuth2 token empty or user name or token contains ^A"))
	}
	return nil
}

// Mechanism returns how to log in to a server whose capabilities has
// reports (in upper case, e.g. "AUTH=PLAIN"): "" for LOGIN (RFC 3501
// §6.2.3), else the SASL mechanism for AUTHENTICATE: the OAuth2 mechanism
// Auth names, or PLAIN when Auth is bearer.MethodPlain, an AuthzID is set
// or the server says LOGINDISABLED. A mechanism the server does not offer
// is a fatal error (wrapping ErrLoginDisabled when LOGIN is disabled).
func (c Credentials) Mechanism(has func(capability string) bool) (string, error) {
	switch mech := c.Auth.Mechanism(); {
	case mech != "":
		if !has("AUTH=" + mech) {
			return "", pipeline.Fatal(fmt.Errorf("server does not offer AUTH=%s", mech))
		}
		return mech, nil
	case c.Auth == bearer.MethodPlain || c.AuthzID != "" || has("LOGINDISABLED"):
		if has("AUTH=PLAIN") {
			return sasl.Plain, nil
		}
		if c.AuthzID != "" {
			return "", pipeline.Fatal(fmt.Errorf("server does not offer AUTH=PLAIN, needed to act for %s", c.AuthzID))
		}
		if c.Auth == bearer.MethodPlain {
			return "", pipeline.Fatal(errors.New("server does not offer AUTH=PLAIN"))
		}
		return "", pipeline.Fatal(ErrLoginDisabled)
	}
	return "", nil
}

// login authenticates c, a go-imap client that has read the greeting.
func login(c *imapclient.Client, opts Options) error {
	caps := c.Caps()
	if caps == nil {
		return pipeline.Transient(fmt.Errorf("imapconn: logging in to %s as %s: could not read the capabilities", opts.Addr, opts.User))
	}
	mech, err := opts.Mechanism(func(name string) bool { return caps.Has(imap.Cap(name)) })
	if err != nil {
		return fmt.Errorf("imapconn: logging in to %s as %s: %w", opts.Addr, opts.User, err)
	}
	note := opts.Note
	if note == nil {
		note = func(string) {}
	}
	command := "AUTHENTICATE"
	pw := opts.Password.Reveal()
	switch mech {
	case "":
		command = "LOGIN"
		note(fmt.Sprintf("C: LOGIN %q ***", opts.User))
		err = c.Login(opts.User, pw).Wait()
	case sasl.Plain:
		note("C: AUTHENTICATE PLAIN ***")
		err = c.Authenticate(sasl.NewPlainClient(opts.AuthzID, opts.User, pw))
	default:
		note("C: AUTHENTICATE " + mech + " ***")
		err = c.Authenticate(newBearerClient(opts.Auth, opts.User, pw))
	}
	if err == nil {
		return nil
	}
	var rej *bearer.RejectedError
	if errors.As(err, &rej) {
		// go-imap sent no dummy response: the caller closes the connection.
		return fmt.Errorf("imapconn: logging in to %s as %s: %w", opts.Addr, opts.User, rej)
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		// The server's text and code, never the password.
		return &LoginError{Addr: opts.Addr, User: opts.User, Command: command, Status: string(ie.Type), Code: string(ie.Code), Text: ie.Text}
	}
	// go-sasl and go-imap transport errors never carry the password.
	return pipeline.Transient(fmt.Errorf("imapconn: logging in to %s as %s: %w", opts.Addr, opts.User, err))
}

// bearerClient is the sasl.Client for XOAUTH2 (which go-sasl lacks) and
// OAUTHBEARER (whose go-sasl version does not escape the gs2 authzid). An
// error challenge ends the exchange with a *bearer.RejectedError: go-imap
// then sends no dummy response, so the connection must be closed.
type bearerClient struct {
	mech, user string
	ir         []byte
}

func newBearerClient(m bearer.Method, user, token string) *bearerClient {
	return &bearerClient{mech: m.Mechanism(), user: user, ir: bearer.InitialResponse(m, user, token)}
}

func (c *bearerClient) Start() (string, []byte, error) { return c.mech, c.ir, nil }

func (c *bearerClient) Next(challenge []byte) ([]byte, error) {
	return nil, &bearer.RejectedError{Command: "AUTHENTICATE", Mechanism: c.mech, User: c.user, Status: bearer.ChallengeStatus(challenge)}
}

var _ sasl.Client = (*bearerClient)(nil)

// LoginError is a server's refusal of LOGIN or AUTHENTICATE (a tagged NO
// or BAD, or a BYE in its place), on any of mailferry's IMAP connections.
// It carries the server's code and text, never the password.
type LoginError struct {
	Addr    string
	User    string
	Command string // "LOGIN" or "AUTHENTICATE"
	Status  string // "NO", "BAD" or "BYE"
	Code    string // RFC 5530 response code without brackets, "" when none
	Text    string
}

func (e *LoginError) Error() string {
	return fmt.Sprintf("imapconn: %s as %s on %s: %s", e.Command, e.User, e.Addr, e.Reply())
}

// Reply is the server's refusal as it was sent: "NO [CODE] text".
func (e *LoginError) Reply() string {
	s := e.Status
	if e.Code != "" {
		s += " [" + e.Code + "]"
	}
	if e.Text != "" {
		s += " " + e.Text
	}
	return s
}

// ErrorClass implements pipeline.Classifier. A refused login is fatal
// (wrong credentials, AUTHENTICATIONFAILED, EXPIRED, PRIVACYREQUIRED, … do
// not heal by retrying), unless the server said it is busy: a BYE, the
// codes UNAVAILABLE, INUSE, LIMIT and SERVERBUG (RFC 5530), Gmail's
// THROTTLED, or a text that says it throttles (Office 365's bare NO
// "Request is throttled. Suggested Backoff Time: …"): transient.
func (e *LoginError) ErrorClass() pipeline.Class {
	if e.Status == "BYE" {
		return pipeline.ClassTransient
	}
	switch strings.ToUpper(e.Code) {
	case "UNAVAILABLE", "INUSE", "LIMIT", "SERVERBUG", "THROTTLED":
		return pipeline.ClassTransient
	}
	if Throttled(e.Text) {
		return pipeline.ClassTransient
	}
	return pipeline.ClassFatal
}

// TooManyConnections implements connlimit.Refuser: the server refused
// the login because the user (or the client's address) has too many
// connections open (Dovecot's NO [LIMIT] "Maximum number of connections
// from user+IP exceeded", Gmail's "Too many simultaneous connections").
// The code alone does not tell: LIMIT is any implementation limit (RFC
// 5530).
func (e *LoginError) TooManyConnections() bool { return connlimit.TooManyText(e.Text) }

// RetryAfter implements pipeline.RetryAfterer: the wait the server named
// in its text (SuggestedBackoff), 0 when none.
func (e *LoginError) RetryAfter() time.Duration { return SuggestedBackoff(e.Text) }

var (
	_ pipeline.Classifier   = (*LoginError)(nil)
	_ pipeline.RetryAfterer = (*LoginError)(nil)
)

// maxRetryAfter caps the wait a server may ask for, so that a garbled or
// absurd value cannot park an account for days.
const maxRetryAfter = 15 * time.Minute

// suggestedBackoff matches Office 365's throttling text: "Request is
// throttled. Suggested Backoff Time: 1234 milliseconds". A missing unit
// means milliseconds, as Office 365 uses; seconds are understood too.
var suggestedBackoff = regexp.MustCompile(`(?i)suggested\s+backoff\s+time\s*:?\s*([0-9]+)\s*(milliseconds?|msecs?|ms|seconds?|secs?|s)?\b`)

// SuggestedBackoff returns the wait a server's reply text asks for (Office
// 365's "Suggested Backoff Time: N milliseconds", anywhere in text,
// case-insensitive), capped at 15 minutes; 0 when it names none.
func SuggestedBackoff(text string) time.Duration {
	m := suggestedBackoff.FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	unit := time.Millisecond
	if u := strings.ToLower(m[2]); u != "" && !strings.HasPrefix(u, "m") {
		unit = time.Second
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > int64(maxRetryAfter/unit) {
		return maxRetryAfter // absurd, or too many digits for an int64
	}
	return time.Duration(n) * unit
}

// Throttled reports whether a reply text without a telling code says the
// server is throttling the client.
func Throttled(text string) bool {
	return strings.Contains(strings.ToLower(text), "throttl")
}
