package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/imapsrc"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/pop3src"
	"github.com/mailferry/mailferry/verify"
)

// destConnections is how many connections one destination session opens:
// the appender and the control connection. A session takes both slots
// when it opens, also when its appender opens only at the first APPEND
// (imapdst.Options.AppendAtDial): a session that holds slots never waits
// for more (connlimit), so the appender's must be there when the copy
// needs it.
const destConnections = 2

// ErrNoSlot is returned by OpenExtraDestination when a connection cap of
// the destination (max_connections, max_connections_per_user,
// max_connections_total) is reached: the copy goes on with the sessions
// it has.
var ErrNoSlot = errors.New("a connection cap of the destination (max_connections, max_connections_per_user or max_connections_total) is reached")

// Job is the account as the engine runs it. Its openers hand the engine
// the adapters' own sessions (*pop3src.Source or *imapsrc.Source,
// *imapdst.Destination), never a wrapper.
func (a *Account) Job() pipeline.Job {
	return pipeline.Job{
		Options:    a.Options,
		OpenSource: a.OpenSource,
		OpenDestination: func(ctx context.Context) (pipeline.Destination, error) {
			return asDestination(a.OpenDestination(ctx))
		},
		Open: func(ctx context.Context, o pipeline.OpenOptions) (pipeline.Source, pipeline.Destination, error) {
			src, dst, err := a.Open(ctx, o)
			if err != nil {
				return nil, nil, err
			}
			// Before anything is listed, copied or created: a folder
			// the user named that is not there is a typo until told
			// otherwise.
			if err := a.checkFolders(ctx, src, dst); err != nil {
				dst.Close()
				src.Close(false)
				return nil, nil, err
			}
			return src, dst, nil
		},
		OpenExtraDestination: func(ctx context.Context) (pipeline.Destination, error) {
			return asDestination(a.OpenExtraDestination(ctx))
		},
		Notes: a.Notes,
	}
}

// asDestination keeps a nil *imapdst.Destination from becoming a non-nil
// interface.
func asDestination(d *imapdst.Destination, err error) (pipeline.Destination, error) {
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Open opens a source and a destination session at the same time, having
// taken the connection slots of both in one step. Its errors say which
// side failed; on error nothing stays open. With o.LikelyToCopy the
// destination's appender connection opens with it, else at its first
// APPEND.
func (a *Account) Open(ctx context.Context, o pipeline.OpenOptions) (pipeline.Source, *imapdst.Destination, error) {
	release, err := a.set.limits.Acquire(ctx, a.src.claim(1), a.dst.claim(destConnections))
	if err != nil {
		return nil, nil, fmt.Errorf("waiting for a connection slot (max_connections, max_connections_per_user, max_connections_total): %w", err)
	}
	src, dst, err := pipeline.OpenBoth(ctx,
		func(ctx context.Context) (pipeline.Source, error) { return a.openSource(ctx, release[0]) },
		func(ctx context.Context) (pipeline.Destination, error) {
			return asDestination(a.openDestination(ctx, release[1], o.LikelyToCopy))
		})
	if err != nil {
		return nil, nil, err
	}
	return src, dst.(*imapdst.Destination), nil
}

// OpenSource opens a session on the source, waiting for its connection
// slot: a *pop3src.Source or an *imapsrc.Source.
func (a *Account) OpenSource(ctx context.Context) (pipeline.Source, error) {
	release, err := a.set.limits.Acquire(ctx, a.src.claim(1))
	if err != nil {
		return nil, fmt.Errorf("waiting for a connection slot (max_connections, max_connections_per_user, max_connections_total): %w", err)
	}
	return a.openSource(ctx, release[0])
}

// openSource opens the source; release gives its slot back, when the
// session closes or at once when it does not open.
func (a *Account) openSource(ctx context.Context, release func()) (pipeline.Source, error) {
	if a.sourceIMAP {
		src, err := imapsrc.Open(ctx, a.src.imapSource(a.Folders, release))
		if err != nil {
			err = a.set.refused(a.src, 1, err)
			release()
			return nil, a.src.refused(err)
		}
		return src, nil
	}
	src, err := pop3src.Open(ctx, a.src.pop3(release))
	if err != nil {
		err = a.set.refused(a.src, 1, err)
		release()
		return nil, a.src.refused(err)
	}
	return src, nil
}

// OpenDestination opens a destination session, waiting for its
// connection slots.
func (a *Account) OpenDestination(ctx context.Context) (*imapdst.Destination, error) {
	release, err := a.set.limits.Acquire(ctx, a.dst.claim(destConnections))
	if err != nil {
		return nil, fmt.Errorf("waiting for a connection slot (max_connections, max_connections_per_user, max_connections_total): %w", err)
	}
	return a.openDestination(ctx, release[0], false)
}

// OpenExtraDestination opens one more destination session for a copy
// that holds one already (Options.DestSessions > 1). It never waits for a
// connection slot: an account holding a session while waiting for another
// could wait for ever on the other accounts. It returns ErrNoSlot when the
// slots are in use. The session appends at once (the copy has batches
// queued): both its connections open at the same time.
func (a *Account) OpenExtraDestination(ctx context.Context) (*imapdst.Destination, error) {
	release, ok := a.set.limits.TryAcquire(a.dst.claim(destConnections))
	if !ok {
		return nil, ErrNoSlot
	}
	return a.openDestination(ctx, release[0], true)
}

// openDestination opens a destination session whose slots are taken;
// release gives them back, when the session closes or at once when it
// does not open. appendNow opens its appender connection with it, else
// the first APPEND does.
func (a *Account) openDestination(ctx context.Context, release func(), appendNow bool) (*imapdst.Destination, error) {
	opts := a.dst.imapDest(a.Options.BatchMessages, a.Options.BatchBytes, release)
	opts.AppendAtDial = appendNow
	// An appender opened later is one connection more, beside the
	// control connection, on a server that may refuse it or its token:
	// told as Dial's errors are.
	opts.DialError = func(err error) error { return a.dst.refused(a.set.refused(a.dst, 1, err)) }
	dst, err := imapdst.Dial(ctx, opts)
	if err != nil {
		err = a.set.refused(a.dst, destConnections, err)
		release()
		return nil, a.dst.refused(err)
	}
	return dst, nil
}

// OpenReader opens the read-only destination session of verify and plan
// (EXAMINE and BODY.PEEK only). It takes no connection slot: it is short
// and opened beside the source, so waiting for a slot could stall.
func (a *Account) OpenReader(ctx context.Context) (*verify.IMAP, error) {
	r, err := verify.DialIMAP(ctx, a.dst.reader())
	return r, a.dst.refused(err)
}

// SourceIsIMAP reports whether the source is an IMAP server (with folders,
// flags and internal dates) rather than a POP3 maildrop.
func (a *Account) SourceIsIMAP() bool { return a.sourceIMAP }

// Watch opens an IDLE watcher on an IMAP source's INBOX (or the URL's
// folder), with the source's settings; the service polls the account when
// it announces new mail. It takes no connection slot: it stays open for
// the whole service run. A POP3 source has none: ErrNoWatch.
func (a *Account) Watch(ctx context.Context, restart time.Duration) (*imapsrc.Watcher, error) {
	if !a.sourceIMAP {
		return nil, ErrNoWatch
	}
	mailbox := a.Source.Mailbox
	if mailbox == "" {
		mailbox = "INBOX"
	}
	w, err := imapsrc.Watch(ctx, a.src.imapSource(a.Folders, nil), imapsrc.WatchOptions{Mailbox: mailbox, Restart: restart})
	return w, a.src.refused(err)
}

// ErrNoWatch is returned by Watch for a POP3 source, which cannot announce
// new mail.
var ErrNoWatch = errors.New("a POP3 source cannot be watched")

// SourceCapabilities asks a POP3 source for CAPA before logging in (what
// it offers to every client: STLS, USER, SASL) and disconnects without
// authenticating. A server without CAPA gives no capabilities (RFC 2449
// §5: they are unknown).
func (a *Account) SourceCapabilities(ctx context.Context) (pop3src.Capabilities, error) {
	d := a.src
	c, err := pop3src.Dial(ctx, pop3src.DialOptions{Addr: d.ep.Addr(), TLS: tlsMode(d.ep.TLS), TLSConfig: d.tls,
		AllowPlaintext: d.allowPlaintext, IdleTimeout: d.idleTimeout, Timeouts: d.timeouts, Logger: d.log, Trace: d.trace})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	caps, err := c.Capa(ctx)
	var re *pop3src.ResponseError
	if errors.As(err, &re) {
		return pop3src.Capabilities{}, nil
	}
	if err != nil {
		return nil, err
	}
	_ = c.Quit(ctx)
	return caps, nil
}
