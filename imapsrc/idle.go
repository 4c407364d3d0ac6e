package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// DefaultIdleRestart is how long one IDLE command lasts before Watcher
// ends it and sends a new one. RFC 2177 §3: a server may log out a client
// idle for 30 minutes, so clients "re-issue it at least every 29 minutes".
const DefaultIdleRestart = 25 * time.Minute

// ErrNoIdle: the server offers neither IDLE (RFC 2177) nor IMAP4rev2, so
// new mail cannot be announced; callers poll instead. Fatal.
var ErrNoIdle = errors.New("imapsrc: server offers no IDLE (RFC 2177)")

// WatchOptions configures Watch.
type WatchOptions struct {
	// Mailbox is the mailbox to watch; "": INBOX.
	Mailbox string
	// Restart is how long each IDLE lasts before it is re-issued (the
	// server sees traffic, NAT tables stay warm); 0: DefaultIdleRestart.
	// Keep it under 29 minutes (RFC 2177 §3).
	Restart time.Duration
}

// Watcher is a session that waits in IDLE (RFC 2177) on one mailbox,
// EXAMINEd read-only, for the server to announce new messages. Open one
// with Watch; it uses one connection of its own, separate from any Source.
// Its methods must not be called concurrently.
type Watcher struct {
	s       *Source
	mailbox string
	restart time.Duration

	news  chan struct{} // one pending "new mail" signal
	mu    sync.Mutex
	count uint32 // messages in the mailbox as last announced
}

// Watch opens a session with opts, checks that the server offers IDLE
// (an error wrapping ErrNoIdle when not) and EXAMINEs the mailbox.
func Watch(ctx context.Context, opts Options, wopts WatchOptions) (*Watcher, error) {
	w := &Watcher{mailbox: wopts.Mailbox, restart: wopts.Restart, news: make(chan struct{}, 1)}
	if w.mailbox == "" {
		w.mailbox = "INBOX"
	}
	if w.restart <= 0 {
		w.restart = DefaultIdleRestart
	}
	opts.unilateral = &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				w.exists(*d.NumMessages)
			}
		},
		Expunge: func(uint32) { w.expunged() },
	}
	// An IDLE connection is silent for minutes (servers that send no
	// keepalive "* OK" stay silent until the restart): the idle timeout
	// counts from the restart, when the server must answer DONE.
	switch {
	case opts.IdleTimeout == 0:
		opts.IdleTimeout = w.restart + DefaultIdleTimeout
	case opts.IdleTimeout > 0:
		opts.IdleTimeout += w.restart
	}
	s, err := Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	w.s = s
	caps := s.c.Caps()
	if !caps.Has(imap.CapIdle) && !caps.Has(imap.CapIMAP4rev2) {
		_ = s.Close(false)
		return nil, fatal(fmt.Errorf("watching %q on %s: %w", w.mailbox, s.opts.Addr, ErrNoIdle))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	done, err := s.begin(ctx)
	if err != nil {
		return nil, errors.Join(err, s.closeLocked())
	}
	sel, err := s.selectMailbox(ctx, w.mailbox, true)
	done()
	if err != nil {
		_ = s.closeLocked()
		return nil, err
	}
	w.mu.Lock()
	w.count = sel.messages
	w.mu.Unlock()
	return w, nil
}

// exists handles "* n EXISTS" (RFC 3501 §7.3.1): more messages than last
// announced is new mail. Called from go-imap's reader goroutine.
func (w *Watcher) exists(n uint32) {
	w.mu.Lock()
	grew := n > w.count
	w.count = n
	w.mu.Unlock()
	if grew {
		select {
		case w.news <- struct{}{}:
		default: // a signal is pending already
		}
	}
}

// expunged handles "* n EXPUNGE": one message fewer (RFC 3501 §7.4.1).
func (w *Watcher) expunged() {
	w.mu.Lock()
	if w.count > 0 {
		w.count--
	}
	w.mu.Unlock()
}

// Wait returns nil when the server announces new mail in the mailbox
// (also mail announced since the last Wait returned), re-issuing IDLE every
// Restart until then. It returns ctx's error when ctx ends (the session is
// then unusable), and a transient error when the connection fails: open a
// new Watcher.
func (w *Watcher) Wait(ctx context.Context) error {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	for {
		select {
		case <-w.news:
			return nil
		default:
		}
		cmd, err := s.c.Idle()
		if err != nil {
			return s.check(ctx, err, "IDLE", w.mailbox)
		}
		timer := time.NewTimer(w.restart)
		news := false
		select {
		case <-w.news:
			news = true
		case <-timer.C:
		case <-ctx.Done():
		case <-s.c.Closed():
		}
		timer.Stop()
		if ctx.Err() != nil {
			// begin tied the connection to ctx: it is closed already.
			return s.broken(ctx, fmt.Errorf("imapsrc: IDLE on %q on %s: %w", w.mailbox, s.opts.Addr, ctx.Err()))
		}
		// RFC 2177 §3: DONE ends the IDLE; the server answers the IDLE
		// command's tag.
		if err := cmd.Close(); err != nil {
			return s.broken(ctx, fmt.Errorf("imapsrc: ending IDLE on %q on %s: %w", w.mailbox, s.opts.Addr, s.conn.Explain(err)))
		}
		if err := s.check(ctx, cmd.Wait(), "IDLE", w.mailbox); err != nil {
			return err
		}
		if news {
			return nil
		}
	}
}

// Close logs out and closes the connection.
func (w *Watcher) Close() error { return w.s.Close(false) }

// closeLocked closes the session's connection; the caller holds s.mu.
func (s *Source) closeLocked() error {
	s.err = ErrClosed
	err := s.c.Close()
	s.ended()
	return err
}
