package imapdst

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/provider"
	"github.com/mailferry/mailferry/secret"
)

// logoutTimeout bounds how long Close waits for the server's LOGOUT reply.
const logoutTimeout = 5 * time.Second

// Destination is an IMAP server messages are appended to: an Appender for
// APPEND and a go-imap connection for everything else. The appender
// connection opens when the session first appends (or PrepareAppend asks
// for it), unless Options.AppendAtDial: a re-run with nothing new checks
// the destination on the control connection alone and logs in once, not
// twice. It is used by one goroutine at a time; use several Destinations
// for parallel connections.
type Destination struct {
	opts Options // Dial's, with defaults: the appender's when it opens
	ctl  *control
	// app is the appender connection, nil until it is opened; opening
	// is PrepareAppend's dial in the background, not yet taken.
	app     *Appender
	opening *appenderDial
	closed  bool
	// provider is the server's family (Options.Provider, else what the
	// server said of itself on the first connection), quirks its profile.
	provider *provider.Provider
	quirks   provider.Quirks
	onClose  func() // Options.OnClose until Close has called it
}

// appenderDial is an appender connection being opened in the background
// (PrepareAppend): done is closed when app or err is set.
type appenderDial struct {
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	app    *Appender
	err    error
}

var _ pipeline.Destination = (*Destination)(nil)

// Dial opens and authenticates the control connection, and with
// Options.AppendAtDial the appender connection too, at the same time: on a
// distant server each costs several round trips (TCP, TLS, greeting,
// login, capabilities). PasswordFunc is then still called once per
// connection (twice for a connection whose token was rejected, see
// TokenRejected), one call after the other.
func Dial(ctx context.Context, opts Options) (*Destination, error) {
	opts = opts.withDefaults()
	if err := opts.checkPlaintext(); err != nil {
		return nil, err // before dialing either connection
	}
	if !opts.AppendAtDial {
		ctl, err := dialControl(ctx, opts)
		if err != nil {
			return nil, err
		}
		return newDestination(ctx, opts, ctl, nil), nil
	}
	connOpts := opts
	if get := opts.PasswordFunc; get != nil {
		var mu sync.Mutex
		connOpts.PasswordFunc = func(ctx context.Context) (secret.Value, error) {
			mu.Lock()
			defer mu.Unlock()
			return get(ctx)
		}
	}
	var (
		ctl    *control
		ctlErr error
		done   = make(chan struct{})
	)
	go func() {
		defer close(done)
		ctl, ctlErr = dialControl(ctx, connOpts)
	}()
	app, err := DialAppender(ctx, connOpts)
	<-done
	if err != nil || ctlErr != nil {
		if app != nil {
			_ = app.Close()
		}
		if ctl != nil {
			_ = ctl.close()
		}
		if err == nil {
			err = ctlErr
		}
		return nil, err
	}
	// A reconnecting appender asks for a fresh token, on its own.
	app.opts.PasswordFunc = opts.PasswordFunc
	return newDestination(ctx, opts, ctl, app), nil
}

// newDestination is the session of ctl and app (nil: opened later), whose
// provider is Options.Provider, else the one the appender told, else the
// one the control connection's capabilities and greeting tell.
func newDestination(ctx context.Context, opts Options, ctl *control, app *Appender) *Destination {
	d := &Destination{opts: opts, ctl: ctl, app: app, provider: opts.Provider, onClose: opts.OnClose}
	switch {
	case d.provider != nil:
	case app != nil:
		d.provider = app.Provider()
	default:
		d.provider = provider.Identify(ctl.server(ctx))
	}
	d.quirks = provider.QuirksOf(d.provider)
	return d
}

// appenderOptions are the options of the appender connection opened
// after Dial: the session's provider, so that both connections follow
// one quirk profile.
func (d *Destination) appenderOptions() Options {
	o := d.opts
	o.Provider = d.provider
	return o
}

// PrepareAppend starts opening the appender connection, unless it is open
// or opening, and returns at once: the caller appends soon, and the
// connection's round trips overlap what it does meanwhile (on a distant
// server, several). The first Append or StartAppend waits for it; Close
// stops it. ctx bounds the opening.
func (d *Destination) PrepareAppend(ctx context.Context) {
	if d.app != nil || d.opening != nil || d.closed {
		return
	}
	dctx, cancel := context.WithCancel(ctx)
	o := &appenderDial{ctx: dctx, cancel: cancel, done: make(chan struct{})}
	d.opening = o
	opts := d.appenderOptions()
	go func() {
		defer close(o.done)
		o.app, o.err = DialAppender(dctx, opts)
	}()
}

var _ pipeline.AppendPreparer = (*Destination)(nil)

// appender returns the appender connection, opening it when it is not
// open: it takes PrepareAppend's, or dials. A dial that fails is tried
// again by the next call, as a broken connection is reconnected.
func (d *Destination) appender(ctx context.Context) (*Appender, error) {
	if d.app != nil {
		return d.app, nil
	}
	if d.closed {
		return nil, fmt.Errorf("appending to %s: %w", d.opts.Addr, ErrClosed)
	}
	if o := d.opening; o != nil {
		select {
		case <-o.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("imapdst: waiting for the append connection to %s: %w", d.opts.Addr, ctx.Err())
		}
		d.opening = nil
		ended := o.ctx.Err() != nil // PrepareAppend's context, before cancel
		o.cancel()
		if o.err == nil {
			d.app = o.app
			return d.app, nil
		}
		if !ended {
			return nil, d.dialError(o.err)
		}
		// PrepareAppend's context ended, not this call's: dial now.
	}
	app, err := DialAppender(ctx, d.appenderOptions())
	if err != nil {
		return nil, d.dialError(err)
	}
	d.app = app
	return app, nil
}

// dialError is the error of an appender connection opened after Dial, as
// Options.DialError makes it.
func (d *Destination) dialError(err error) error {
	if f := d.opts.DialError; f != nil {
		return f(err)
	}
	return err
}

// Capabilities reports what the server offers for appending: the
// appender connection's once it is open, else the control connection's
// (the same server, logged in as the same user).
func (d *Destination) Capabilities() pipeline.Capabilities {
	if d.app != nil {
		return d.app.Capabilities()
	}
	return d.ctl.capabilities().forAppend(d.quirks, d.opts.Shared)
}

// EnsureMailbox creates the mailbox when it does not exist and returns its
// status. AppendLimit is the mailbox's own limit, else the server's.
func (d *Destination) EnsureMailbox(ctx context.Context, name string) (pipeline.MailboxStatus, error) {
	return d.ctl.ensureMailbox(ctx, name, "", d.appending())
}

// appending reports whether the appender connection is open or opening:
// the session is about to append, and the control connection sends what
// appending will need with the commands before it (see
// control.ensureMailbox, control.listHeaders).
func (d *Destination) appending() bool {
	return d.app != nil || d.opening != nil
}

// Append stores msgs in mailbox; see Appender.Append. Flags the server
// does not keep when they come with APPEND are set afterwards
// (restoreFlags).
func (d *Destination) Append(ctx context.Context, mailbox string, msgs []pipeline.OutgoingMessage) ([]pipeline.AppendResult, error) {
	app, err := d.appender(ctx)
	if err != nil {
		return nil, err
	}
	res, err := app.Append(ctx, mailbox, msgs)
	d.restoreFlags(ctx, mailbox, msgs, res)
	return res, err
}

// StartAppend sends msgs to mailbox and returns before the server's reply;
// see Appender.StartAppend and Append.
func (d *Destination) StartAppend(ctx context.Context, mailbox string, msgs []pipeline.OutgoingMessage) func() ([]pipeline.AppendResult, error) {
	app, err := d.appender(ctx)
	if err != nil {
		return func() ([]pipeline.AppendResult, error) { return nil, err }
	}
	wait := app.StartAppend(ctx, mailbox, msgs)
	return func() ([]pipeline.AppendResult, error) {
		res, err := wait()
		d.restoreFlags(ctx, mailbox, msgs, res)
		return res, err
	}
}

// Provider returns the server's family: Options.Provider, or the one told
// from what the server said of itself (provider.Identify); nil when none
// is known.
func (d *Destination) Provider() *provider.Provider { return d.provider }

// restoreFlags sets again, with UID STORE on the control connection, the
// flags of the messages just stored that the server does not keep when
// they come with APPEND (provider.Quirks.FlagsLostAtAppend: Exchange
// Online drops \Flagged there and keeps it when stored): each message
// gets the exact flags it was appended with, by the UID its APPENDUID
// gave. A message without a UID, or a STORE that fails, keeps what the
// server made of it: the copy stands, the failure is logged, and verify
// reports the flags.
func (d *Destination) restoreFlags(ctx context.Context, mailbox string, msgs []pipeline.OutgoingMessage, res []pipeline.AppendResult) {
	lost := d.quirks.FlagsLostAtAppend
	if len(lost) == 0 {
		return
	}
	byValidity := map[uint32]map[uint32][]string{}
	missing := 0
	for i, r := range res {
		if r.Err != nil || i >= len(msgs) || !slices.ContainsFunc(msgs[i].Flags, func(f string) bool {
			return slices.ContainsFunc(lost, func(l string) bool { return strings.EqualFold(l, f) })
		}) {
			continue
		}
		if r.UID == 0 {
			missing++
			continue
		}
		if byValidity[r.UIDValidity] == nil {
			byValidity[r.UIDValidity] = map[uint32][]string{}
		}
		byValidity[r.UIDValidity][r.UID] = slices.DeleteFunc(slices.Clone(msgs[i].Flags), func(f string) bool { return slices.Contains(r.DroppedFlags, f) })
	}
	if missing > 0 {
		d.ctl.log.Warn("the server drops flags given with APPEND and did not say the new UIDs: those flags are missing", "mailbox", mailbox,
			"messages", missing, "flags", lost)
	}
	for v, flags := range byValidity {
		if _, err := d.StoreFlagsCounted(ctx, mailbox, v, flags); err != nil {
			d.ctl.log.Warn("setting flags the server dropped at APPEND failed; the messages are stored without them", "mailbox", mailbox,
				"messages", len(flags), "flags", lost, "err", err)
		}
	}
}

var _ pipeline.AppendStarter = (*Destination)(nil)

// ListSince lists the messages of mailbox with UID >= fromUID, sorted by UID.
// It returns an error wrapping pipeline.ErrUIDValidityChanged when the
// mailbox's UIDVALIDITY is not uidValidity.
func (d *Destination) ListSince(ctx context.Context, mailbox string, uidValidity, fromUID uint32) ([]pipeline.DestMessage, error) {
	return d.ctl.listSince(ctx, mailbox, uidValidity, fromUID)
}

// SearchMessageID returns the UIDs, sorted, of the messages in mailbox whose
// Message-ID header is exactly id (surrounding white space ignored).
func (d *Destination) SearchMessageID(ctx context.Context, mailbox, id string) ([]uint32, error) {
	return d.ctl.searchMessageID(ctx, mailbox, id)
}

// Digest returns the SHA-256 and size of the exact bytes of message uid in
// mailbox, or an error wrapping ErrMessageNotFound.
func (d *Destination) Digest(ctx context.Context, mailbox string, uid uint32) ([32]byte, int64, error) {
	return d.ctl.digest(ctx, mailbox, uid)
}

// Expunge removes exactly the messages uids from mailbox, provided it still
// has uidValidity (UID STORE \Deleted, UID EXPUNGE). It returns an error
// wrapping pipeline.ErrCannotExpunge when the server lacks UIDPLUS.
func (d *Destination) Expunge(ctx context.Context, mailbox string, uidValidity uint32, uids []uint32) error {
	return d.ctl.expunge(ctx, mailbox, uidValidity, uids)
}

// Close logs out of both connections and closes them, side by side: on a
// distant server each LOGOUT waits a round trip for its reply. An
// appender connection still opening (PrepareAppend) is given up. Closing
// again does nothing.
func (d *Destination) Close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	if o := d.opening; o != nil {
		d.opening = nil
		o.cancel()
		<-o.done
		d.app = o.app // logged in just before: logged out below
	}
	ctlErr := make(chan error, 1)
	go func() { ctlErr <- d.ctl.close() }()
	var appErr error
	if d.app != nil {
		appErr = d.app.Close()
	}
	err := errors.Join(appErr, <-ctlErr)
	if f := d.onClose; f != nil {
		d.onClose = nil
		f()
	}
	return err
}

func isClosedErr(err error) bool { return errors.Is(err, net.ErrClosed) }

// Move moves exactly the messages uids of mailbox, provided it still has
// uidValidity, to target (UID MOVE, else UID COPY + STORE \Deleted + UID
// EXPUNGE of those UIDs), and returns target's UIDVALIDITY and the UID
// each got there (none the server did not name). It returns an error
// wrapping pipeline.ErrCannotExpunge when the server has neither MOVE nor
// UIDPLUS.
func (d *Destination) Move(ctx context.Context, mailbox string, uidValidity uint32, uids []uint32, target string) (uint32, map[uint32]uint32, error) {
	return d.ctl.move(ctx, mailbox, uidValidity, uids, target)
}

// DeleteMailbox deletes the mailbox name when it holds no message, and
// reports whether it is gone (deleted now, or not there); one that holds
// messages is left as it is.
func (d *Destination) DeleteMailbox(ctx context.Context, name string) (bool, error) {
	return d.ctl.deleteEmptyMailbox(ctx, name)
}

// RenameMailbox renames the mailbox from to to, which must not exist,
// and returns to's status (its UIDVALIDITY as the server has it after
// the rename).
func (d *Destination) RenameMailbox(ctx context.Context, from, to string) (pipeline.MailboxStatus, error) {
	return d.ctl.renameMailbox(ctx, from, to)
}

// MailboxHasChildren reports whether mailboxes exist under name.
func (d *Destination) MailboxHasChildren(ctx context.Context, name string) (bool, error) {
	return d.ctl.mailboxHasChildren(ctx, name)
}

// MailboxExists reports whether the mailbox name exists.
func (d *Destination) MailboxExists(ctx context.Context, name string) (bool, error) {
	return d.ctl.mailboxExists(ctx, name)
}
