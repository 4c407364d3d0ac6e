package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/mailferry/mailferry/internal/idleconn"
	"github.com/mailferry/mailferry/pipeline"
)

// logoutTimeout bounds LOGOUT in Close, which has no context.
const logoutTimeout = 5 * time.Second

// Source is one authenticated IMAP session as a pipeline.Source. Its methods
// may be called from one goroutine at a time; a mutex guards them anyway.
// After a transport failure every method returns that (transient) error:
// open a new Source.
type Source struct {
	mu   sync.Mutex
	opts Options
	log  *slog.Logger
	ic   *idleconn.Conn
	c    *imapclient.Client
	tap  *tap
	err  error // sticky: why the session is unusable

	user     string // the mailbox owner, for messages
	nsPrefix string
	nsDelim  rune

	sel      selection
	seqFetch bool // the server sends UID after BODY[]: fetch bodies by sequence number

	// Prefetch state: plan is the order Prefetch announced, plan[pos] the
	// Fetch expected next, batch the UID FETCH in flight (nil: none).
	plan      []planned
	planIndex map[string]int // key -> index in plan
	pos       int
	batch     *batch
	unordered bool // the server answered a UID FETCH out of UID order: no batches

	copyBuf []byte // copyBody's buffer, kept from one message to the next

	onClose func() // Options.OnClose until the session has ended
}

// selection is the currently selected mailbox.
type selection struct {
	name        string
	readOnly    bool
	uidValidity uint32
	messages    uint32
}

var (
	_ pipeline.Source     = (*Source)(nil)
	_ pipeline.Prefetcher = (*Source)(nil)
)

// Open dials, secures and authenticates a session and asks for the personal
// namespace (RFC 2342) when the server offers NAMESPACE. Authentication uses
// LOGIN, or AUTHENTICATE PLAIN when AuthzID is set or the server says
// LOGINDISABLED. Refused credentials and certificates that fail
// verification are fatal (pipeline.ClassFatal); network failures transient.
func Open(ctx context.Context, opts Options) (*Source, error) {
	opts = opts.withDefaults()
	s, err := openOnce(ctx, &opts)
	var rej *TokenRejectedError
	if err != nil && opts.PasswordFunc != nil && opts.TokenRejected != nil && errors.As(err, &rej) {
		opts.TokenRejected(opts.Password)
		s, err = openOnce(ctx, &opts)
	}
	return s, err
}

// openOnce is Open without the retry after a rejected token; opts.Password is
// left holding the password or token it used.
func openOnce(ctx context.Context, opts *Options) (*Source, error) {
	if opts.PasswordFunc != nil {
		pw, err := opts.PasswordFunc(ctx)
		if err != nil {
			return nil, fmt.Errorf("imapsrc: getting the password or token of %s for %s: %w", opts.User, opts.Addr, err)
		}
		opts.Password = pw
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.TLS == TLSNone && !opts.AllowPlaintext {
		return nil, fatal(fmt.Errorf("connecting to %s as %s: %w", opts.Addr, opts.User, ErrPlaintext))
	}
	for what, s := range map[string]string{"user name": opts.User, "authorization identity": opts.AuthzID, "password": opts.Password.Reveal()} {
		if strings.ContainsAny(s, "\r\n\x00") {
			return nil, fatal(fmt.Errorf("imapsrc: %s contains CR, LF or NUL", what))
		}
	}
	ic, conn, err := opts.dial(ctx)
	if err != nil {
		return nil, withCtx(ctx, err)
	}
	ic.CloseOnDone(ctx)
	user := opts.User
	if opts.AuthzID != "" {
		user = opts.AuthzID
	}
	s := &Source{opts: *opts, ic: ic, user: user, tap: newTap(opts.Trace), onClose: opts.OnClose}
	s.log = opts.Logger.With("server", opts.Addr, "user", user)
	copts := &imapclient.Options{DebugWriter: s.tap, UnilateralDataHandler: opts.unilateral}
	if opts.TLS == TLSStartTLS {
		copts.TLSConfig = opts.tlsConfig()
		if s.c, err = imapclient.NewStartTLS(conn, copts); err != nil {
			_ = ic.Close()
			return nil, withCtx(ctx, classifyHandshake(fmt.Errorf("imapsrc: STARTTLS with %s: %w", opts.Addr, err)))
		}
	} else {
		s.c = imapclient.New(conn, copts)
	}
	if err := s.login(); err != nil {
		_ = s.c.Close()
		return nil, withCtx(ctx, err)
	}
	s.tap.trace(true)
	if err := s.namespace(); err != nil {
		_ = s.c.Close()
		return nil, withCtx(ctx, err)
	}
	ic.CloseOnDone(context.Background())
	return s, nil
}

func (s *Source) login() error {
	c, opts := s.c, s.opts
	if err := c.WaitGreeting(); err != nil {
		return transient(fmt.Errorf("imapsrc: reading the greeting of %s: %w", opts.Addr, s.tap.annotate(err)))
	}
	if c.State() != imap.ConnStateNotAuthenticated {
		return nil // PREAUTH (refused on clear text by NewStartTLS)
	}
	caps := c.Caps()
	var err error
	command := "LOGIN"
	switch mech := opts.Auth.Mechanism(); {
	case opts.Auth < AuthDefault || opts.Auth > AuthOAuthBearer:
		return fatal(fmt.Errorf("imapsrc: logging in to %s: unknown auth method %v", opts.Addr, opts.Auth))
	case mech != "":
		if opts.AuthzID != "" {
			return fatal(fmt.Errorf("imapsrc: logging in to %s: %v cannot act for another user (AuthzID %q)", opts.Addr, opts.Auth, opts.AuthzID))
		}
		if !caps.Has(imap.AuthCap(mech)) {
			return fatal(fmt.Errorf("imapsrc: logging in to %s as %s: server does not offer AUTH=%s", opts.Addr, opts.User, mech))
		}
		if opts.Password.IsZero() || strings.Contains(opts.Password.Reveal(), "\x01") || strings.Contains(opts.User, "\x01") {
			return fatal(fmt.Errorf("imapsrc: logging in to %s as %s: OAuth2 token empty or user name or token contains ^A", opts.Addr, opts.User))
		}
		command = "AUTHENTICATE"
		s.tap.note("C: AUTHENTICATE " + mech + " ***")
		err = c.Authenticate(newBearerClient(opts.Auth, opts.User, opts.Password.Reveal()))
		var rej *TokenRejectedError
		if errors.As(err, &rej) {
			return fmt.Errorf("imapsrc: logging in to %s as %s: %w", opts.Addr, opts.User, rej)
		}
	case opts.Auth == AuthPlain || opts.AuthzID != "" || caps.Has(imap.CapLoginDisabled):
		if !caps.Has(imap.AuthCap(sasl.Plain)) {
			if opts.AuthzID != "" {
				return fatal(fmt.Errorf("imapsrc: logging in to %s as %s for %s: server does not offer AUTH=PLAIN", opts.Addr, opts.User, opts.AuthzID))
			}
			return fatal(fmt.Errorf("logging in to %s as %s: %w", opts.Addr, opts.User, ErrLoginDisabled))
		}
		command = "AUTHENTICATE"
		s.tap.note("C: AUTHENTICATE PLAIN ***")
		err = c.Authenticate(sasl.NewPlainClient(opts.AuthzID, opts.User, opts.Password.Reveal()))
	default:
		s.tap.note(fmt.Sprintf("C: LOGIN %q ***", opts.User))
		err = c.Login(opts.User, opts.Password.Reveal()).Wait()
	}
	if err == nil {
		return nil
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		// The server's text and code, never the password.
		return &classified{err: &LoginError{Addr: opts.Addr, User: opts.User, Command: command, Err: ie}, class: replyClass(command, ie)}
	}
	// go-sasl and go-imap transport errors never carry the password.
	return transient(fmt.Errorf("imapsrc: logging in to %s as %s: %w", opts.Addr, opts.User, s.tap.annotate(err)))
}

// namespace asks for the personal namespace (RFC 2342 §5).
func (s *Source) namespace() error {
	caps := s.c.Caps()
	if !caps.Has(imap.CapNamespace) && !caps.Has(imap.CapIMAP4rev2) {
		return nil
	}
	data, err := s.c.Namespace().Wait()
	if err = s.check(context.Background(), err, "NAMESPACE", ""); err != nil {
		return err
	}
	if len(data.Personal) > 0 {
		s.nsPrefix, s.nsDelim = data.Personal[0].Prefix, data.Personal[0].Delim
	}
	return nil
}

// Namespace returns the personal namespace's prefix (e.g. "INBOX." on
// Courier and Cyrus, "" on Dovecot and Gmail) and hierarchy delimiter, as
// NAMESPACE reported at Open; "" and 0 when the server has no NAMESPACE.
func (s *Source) Namespace() (prefix string, delim rune) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nsPrefix, s.nsDelim
}

// begin checks the session, ties the connection to ctx until the returned
// func runs, and ends a prefetch batch still in flight, so that the
// caller's command is answered next. The caller holds s.mu.
func (s *Source) begin(ctx context.Context) (func(), error) {
	done, err := s.beginFetch(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.endBatch(ctx); err != nil {
		done()
		return nil, err
	}
	return done, nil
}

// beginFetch is begin without ending the batch in flight, for Fetch.
func (s *Source) beginFetch(ctx context.Context) (func(), error) {
	if s.err != nil {
		return nil, s.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.ic.CloseOnDone(ctx)
	return func() { s.ic.CloseOnDone(context.Background()) }, nil
}

// check turns err from command into the error to return. A server's NO or
// BAD (*imap.Error) leaves the session usable and is classified by
// replyClass; anything else means go-imap has dropped the connection, which
// makes the session unusable and the error transient.
func (s *Source) check(ctx context.Context, err error, command, mailbox string) error {
	if err == nil {
		return nil
	}
	where := command
	if mailbox != "" {
		where += fmt.Sprintf(" %q", mailbox)
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		return &classified{err: fmt.Errorf("imapsrc: %s on %s: %w", where, s.opts.Addr, err), class: replyClass(command, ie)}
	}
	return s.broken(ctx, fmt.Errorf("imapsrc: %s on %s: %w%s", where, s.opts.Addr, s.tap.annotate(err), explainTransport(err)))
}

// broken records that the connection is unusable and returns err as a
// transient error (or the context's error when ctx ended).
func (s *Source) broken(ctx context.Context, err error) error {
	var c *classified
	if !errors.As(err, &c) {
		err = transient(err)
	}
	err = withCtx(ctx, err)
	if s.err == nil {
		s.err = err
		_ = s.c.Close()
	}
	return err
}

// selectMailbox makes mailbox the selected one, read-only (EXAMINE, RFC 3501
// §6.3.2) or read-write (SELECT, §6.3.1), unless it already is.
func (s *Source) selectMailbox(ctx context.Context, mailbox string, readOnly bool) (selection, error) {
	if s.sel.name == mailbox && s.sel.readOnly == readOnly {
		return s.sel, nil
	}
	command := "SELECT"
	if readOnly {
		command = "EXAMINE"
	}
	s.sel = selection{}
	data, err := s.c.Select(mailbox, &imap.SelectOptions{ReadOnly: readOnly}).Wait()
	if err = s.check(ctx, err, command, mailbox); err != nil {
		return selection{}, err
	}
	if data.UIDValidity == 0 {
		// RFC 3501 §7.1: UIDVALIDITY is required; without it no key is stable.
		return selection{}, s.broken(ctx, fmt.Errorf("imapsrc: %s %q on %s: server sent no UIDVALIDITY", command, mailbox, s.opts.Addr))
	}
	s.sel = selection{name: mailbox, readOnly: readOnly, uidValidity: data.UIDValidity, messages: data.NumMessages}
	return s.sel, nil
}

// ended calls Options.OnClose the first time the session ends; the
// caller holds s.mu and has closed the connection.
func (s *Source) ended() {
	if f := s.onClose; f != nil {
		s.onClose = nil
		f()
	}
}

// Close logs out (RFC 3501 §6.1.3) and closes the connection. IMAP has no
// pending deletions: Delete's UID EXPUNGE has already removed the messages,
// so commit makes no difference.
func (s *Source) Close(commit bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.ended()
	if errors.Is(s.err, ErrClosed) {
		return nil
	}
	if s.err != nil {
		s.err = ErrClosed
		s.abortBatch()
		_ = s.c.Close()
		return nil
	}
	if s.batch != nil {
		// Reading the rest of a batch only to log out is a waste: IMAP
		// has nothing to commit at LOGOUT (Delete has expunged already).
		s.err = ErrClosed
		s.abortBatch()
		_ = s.c.Close()
		return nil
	}
	s.err = ErrClosed
	ctx, cancel := context.WithTimeout(context.Background(), logoutTimeout)
	defer cancel()
	s.ic.CloseOnDone(ctx)
	lerr := s.c.Logout().Wait()
	cerr := s.c.Close()
	if lerr != nil {
		return fmt.Errorf("imapsrc: logging out of %s: %w", s.opts.Addr, lerr)
	}
	if cerr != nil && !errors.Is(cerr, net.ErrClosed) {
		return fmt.Errorf("imapsrc: closing the connection to %s: %w", s.opts.Addr, cerr)
	}
	return nil
}
