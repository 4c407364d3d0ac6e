package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/idleconn"
	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/provider"
)

// Source is one authenticated IMAP session as a pipeline.Source. Its methods
// may be called from one goroutine at a time; a mutex guards them anyway.
// After a transport failure every method returns that (transient) error:
// open a new Source.
type Source struct {
	mu   sync.Mutex
	opts Options
	log  *slog.Logger
	conn *imapconn.Conn
	c    *imapclient.Client // conn's
	tap  *tap
	err  error // sticky: why the session is unusable

	user string // the mailbox owner, for messages
	// ns is the NAMESPACE sent at Open and not yet waited for (nil: none
	// pending); nsPrefix and nsDelim are its personal namespace once
	// awaitNamespace has read it.
	ns       *imapclient.NamespaceCommand
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
	// copyBody's reader wrappers, kept likewise (no allocation per message).
	watch80 imapconn.Watch80
	errRead errReader

	// watching: copyBody notes in suspect a BODY[] with a 0x80 byte that
	// may be a NUL the server replaced; binaryNext are the keys whose next
	// Fetch reads BINARY[] (binary.go).
	watching, suspect bool
	binaryNext        map[string]bool

	// provider is the server's family (Options.Provider, else identified
	// at Open; nil: none known), quirks its profile; gm what List learnt of
	// a server with labels.
	provider *provider.Provider
	quirks   provider.Quirks
	gm       *gmailState

	leaveOut map[string]bool // folders the next List leaves out (LeaveOut)
	// listedFolders are the folders the last LIST found, until the next
	// List (lastFolders); listedStatus the marks it returned of them
	// (LIST-STATUS), by name; nil: none asked.
	listedFolders []Folder
	listedStatus  map[string]*imap.StatusData
	// since are the folders the next List lists by their changes
	// (ListChanges), changes what the last List found of them.
	since   map[string]pipeline.FolderSince
	changes []pipeline.FolderChanges

	notMailLogged bool // leaveOutNotMail has logged the folders it left out

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
	_ pipeline.Source           = (*Source)(nil)
	_ pipeline.Prefetcher       = (*Source)(nil)
	_ pipeline.FolderSummarizer = (*Source)(nil)
)

// Open dials, secures and authenticates a session (internal/imapconn) and
// asks for the personal namespace (RFC 2342) when the server offers
// NAMESPACE, without waiting for the answer: it travels with the first
// LIST (one round trip less per session, issue 18). Authentication uses
// LOGIN, or AUTHENTICATE PLAIN when AuthzID is set or the server says
// LOGINDISABLED. Refused credentials and certificates that fail
// verification are fatal (pipeline.ClassFatal); network failures transient.
func Open(ctx context.Context, opts Options) (*Source, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	user := opts.User
	if opts.AuthzID != "" {
		user = opts.AuthzID
	}
	s := &Source{opts: opts, user: user, tap: newTap(opts.Trace), onClose: opts.OnClose}
	s.log = opts.Logger.With("server", opts.Addr, "user", user)
	var debug io.Writer // go-imap copies every byte it reads and writes to it
	if opts.Trace != nil {
		debug = s.tap
	}
	conn, err := imapconn.Dial(ctx, imapconn.Options{
		Addr: opts.Addr, TLS: opts.TLS, TLSConfig: opts.TLSConfig,
		Credentials:  imapconn.Credentials{User: opts.User, AuthzID: opts.AuthzID, Password: opts.Password, Auth: opts.Auth},
		PasswordFunc: opts.PasswordFunc, TokenRejected: opts.TokenRejected, AllowPlaintext: opts.AllowPlaintext,
		IdleTimeout: opts.IdleTimeout, Timeouts: opts.Timeouts, DebugWriter: debug, UnilateralDataHandler: opts.unilateral, Note: s.tap.note,
	})
	if err != nil {
		return nil, err
	}
	s.conn, s.c = conn, conn.Client()
	s.tap.trace(true)
	s.startNamespace()
	s.identify()
	return s, nil
}

// identify sets the server's provider: Options.Provider, else the one
// what the server said tells (provider.Identify), and logs which when
// one is known.
func (s *Source) identify() {
	s.provider = s.opts.Provider
	how := "the provider setting or the host name"
	if s.provider == nil {
		s.provider = provider.Identify(s.conn.Server())
		how = "what the server says of itself"
	}
	s.quirks = provider.QuirksOf(s.provider)
	if s.provider != nil {
		s.log.Debug("server identified; following its quirk profile", "provider", s.provider.Name, "by", how)
	}
}

// Provider returns the server's family (Options.Provider, or the one told
// from what the server said at Open); nil when none is known.
func (s *Source) Provider() *provider.Provider { return s.provider }

// startNamespace sends NAMESPACE (RFC 2342 §5) when the server offers
// it; awaitNamespace reads the answer.
func (s *Source) startNamespace() {
	caps := s.c.Caps()
	if !caps.Has(imap.CapNamespace) && !caps.Has(imap.CapIMAP4rev2) || s.opts.Quirks.Refused(imapconn.FeatureNamespace) {
		return
	}
	s.ns = s.c.Namespace()
}

// awaitNamespace waits for the NAMESPACE startNamespace sent, if any and
// not yet waited for, and keeps the personal namespace. A server that
// advertises NAMESPACE and refuses it has none: folder names are taken as
// listed. Waiting before the commands sent after it is harmless: go-imap
// matches each reply to its command by tag (RFC 3501 §5.5). The caller
// holds s.mu, or is Open.
func (s *Source) awaitNamespace(ctx context.Context) error {
	if s.ns == nil {
		return nil
	}
	cmd := s.ns
	s.ns = nil
	data, err := cmd.Wait()
	if imapconn.IsRefusal(err) {
		s.opts.Quirks.Refuse(imapconn.FeatureNamespace, err, "folder names are taken as listed, without a namespace prefix")
		return nil
	}
	if err = s.check(ctx, err, "NAMESPACE", ""); err != nil {
		return err
	}
	if len(data.Personal) > 0 {
		s.nsPrefix, s.nsDelim = data.Personal[0].Prefix, data.Personal[0].Delim
	}
	return nil
}

// Namespace returns the personal namespace's prefix (e.g. "INBOX." on
// Courier and Cyrus, "" on Dovecot and Gmail) and hierarchy delimiter, as
// NAMESPACE reported; "" and 0 when the server has no NAMESPACE. It waits
// for the NAMESPACE sent at Open unless Folders has; should that fail,
// the session is unusable and every later command says why.
func (s *Source) Namespace() (prefix string, delim rune) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns != nil && s.err == nil {
		// No context to bind: the connection's idle timeout bounds the wait.
		_ = s.awaitNamespace(context.Background())
	}
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
	return s.conn.Bind(ctx), nil
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
		return pipeline.Classify(replyClass(command, ie), fmt.Errorf("imapsrc: %s on %s: %w", where, s.opts.Addr, err))
	}
	return s.broken(ctx, fmt.Errorf("imapsrc: %s on %s: %w%s", where, s.opts.Addr, s.conn.Explain(err), explainTransport(err)))
}

// broken records that the connection is unusable and returns err as a
// transient error (or the context's error when ctx ended).
func (s *Source) broken(ctx context.Context, err error) error {
	var c pipeline.Classifier
	if !errors.As(err, &c) {
		err = transient(err)
	}
	err = idleconn.WithContextErr(ctx, err)
	if s.err == nil {
		s.err = err
		_ = s.c.Close()
	}
	return err
}

// selectMailbox makes mailbox the selected one, read-only (EXAMINE, RFC 3501
// §6.3.2) or read-write (SELECT, §6.3.1), unless it already is.
func (s *Source) selectMailbox(ctx context.Context, mailbox string, readOnly bool) (selection, error) {
	return s.startSelect(ctx, mailbox, readOnly)()
}

// startSelect is selectMailbox sending its command without waiting for
// the reply, so that commands for the mailbox can follow it in the same
// round trip (RFC 3501 §5.5): wait returns what selectMailbox would have.
// Call wait before the session's next wait for anything else.
func (s *Source) startSelect(ctx context.Context, mailbox string, readOnly bool) (wait func() (selection, error)) {
	if s.sel.name == mailbox && s.sel.readOnly == readOnly {
		sel := s.sel
		return func() (selection, error) { return sel, nil }
	}
	command := "SELECT"
	if readOnly {
		command = "EXAMINE"
	}
	s.sel = selection{}
	cmd := s.c.Select(mailbox, &imap.SelectOptions{ReadOnly: readOnly})
	return func() (selection, error) {
		data, err := cmd.Wait()
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
	return s.conn.Logout()
}
