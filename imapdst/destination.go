package imapdst

import (
	"context"
	"errors"
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
// APPEND and a go-imap connection for everything else. It is used by one
// goroutine at a time; use several Destinations for parallel connections.
type Destination struct {
	app     *Appender
	ctl     *control
	onClose func() // Options.OnClose until Close has called it
}

var _ pipeline.Destination = (*Destination)(nil)

// Dial opens and authenticates both connections, at the same time: on a
// distant server each costs several round trips (TCP, TLS, greeting,
// login, capabilities). PasswordFunc is still called once per connection
// (twice for a connection whose token was rejected, see TokenRejected), one
// call after the other.
func Dial(ctx context.Context, opts Options) (*Destination, error) {
	opts = opts.withDefaults()
	if err := opts.checkPlaintext(); err != nil {
		return nil, err // before dialing either connection
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
	return &Destination{app: app, ctl: ctl, onClose: opts.OnClose}, nil
}

// Appender returns the appender connection, e.g. for a benchmark.
func (d *Destination) Appender() *Appender { return d.app }

// Capabilities reports what the server offers for appending.
func (d *Destination) Capabilities() pipeline.Capabilities { return d.app.Capabilities() }

// EnsureMailbox creates the mailbox when it does not exist and returns its
// status. AppendLimit is the mailbox's own limit, else the server's.
func (d *Destination) EnsureMailbox(ctx context.Context, name string) (pipeline.MailboxStatus, error) {
	return d.ctl.ensureMailbox(ctx, name, "")
}

// Append stores msgs in mailbox; see Appender.Append. Flags the server
// does not keep when they come with APPEND are set afterwards
// (restoreFlags).
func (d *Destination) Append(ctx context.Context, mailbox string, msgs []pipeline.OutgoingMessage) ([]pipeline.AppendResult, error) {
	res, err := d.app.Append(ctx, mailbox, msgs)
	d.restoreFlags(ctx, mailbox, msgs, res)
	return res, err
}

// StartAppend sends msgs to mailbox and returns before the server's reply;
// see Appender.StartAppend and Append.
func (d *Destination) StartAppend(ctx context.Context, mailbox string, msgs []pipeline.OutgoingMessage) func() ([]pipeline.AppendResult, error) {
	wait := d.app.StartAppend(ctx, mailbox, msgs)
	return func() ([]pipeline.AppendResult, error) {
		res, err := wait()
		d.restoreFlags(ctx, mailbox, msgs, res)
		return res, err
	}
}

// Provider returns the server's family: Options.Provider, or the one told
// from what the server said of itself (provider.Identify); nil when none
// is known.
func (d *Destination) Provider() *provider.Provider { return d.app.Provider() }

// restoreFlags sets again, with UID STORE on the control connection, the
// flags of the messages just stored that the server does not keep when
// they come with APPEND (provider.Quirks.FlagsLostAtAppend: Exchange
// Online drops \Flagged there and keeps it when stored): each message
// gets the exact flags it was appended with, by the UID its APPENDUID
// gave. A message without a UID, or a STORE that fails, keeps what the
// server made of it: the copy stands, the failure is logged, and verify
// reports the flags.
func (d *Destination) restoreFlags(ctx context.Context, mailbox string, msgs []pipeline.OutgoingMessage, res []pipeline.AppendResult) {
	lost := d.app.quirks.FlagsLostAtAppend
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
// distant server each LOGOUT waits a round trip for its reply.
func (d *Destination) Close() error {
	ctlErr := make(chan error, 1)
	go func() { ctlErr <- d.ctl.close() }()
	appErr := d.app.Close()
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
