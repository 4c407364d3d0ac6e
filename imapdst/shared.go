package imapdst

import (
	"context"
	"sync"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/imapconn"
)

// Shared is what the sessions of one account learn about the destination
// server and share: the optional features it refused (Quirks, so that each
// is asked for and given up once) and the PERMANENTFLAGS of each mailbox
// (read once, see Destination.PermanentFlags). It is safe for concurrent
// use; give the same *Shared to every Dial of one account.
type Shared struct {
	Quirks *imapconn.Quirks

	// mu is held while a session reads a mailbox's PERMANENTFLAGS, which
	// needs a read-write SELECT: no other session of the account reads
	// them meanwhile, and since each session asks before it appends to
	// that mailbox, no session appends to it while it is selected
	// read-write (see control.deselect for why that matters).
	mu        sync.Mutex
	permanent map[string][]string // mailbox → PERMANENTFLAGS; nil value: unknown
}

// NewShared returns a Shared for one account's destination; q may be nil
// (then the sessions remember nothing about refused features).
func NewShared(q *imapconn.Quirks) *Shared {
	return &Shared{Quirks: q, permanent: map[string][]string{}}
}

// permanentFlags returns mailbox's PERMANENTFLAGS, reading them with ctl
// the first time: SELECT (read-write: a read-only EXAMINE makes Dovecot
// report that no flag is permanent), then deselect at once. A server that
// will not SELECT the mailbox yet (an mbox INBOX before its first message)
// gives nil, "unknown": every valid flag is sent, and one the server
// refuses is dropped by the appender (keywordRefusal).
func (sh *Shared) permanentFlags(ctx context.Context, ctl *control, mailbox string) ([]string, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if flags, ok := sh.permanent[mailbox]; ok {
		return flags, nil
	}
	done, err := ctl.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	sel, err := ctl.c.Select(mailbox, nil).Wait()
	if imapconn.IsRefusal(err) {
		ctl.log.Warn("cannot SELECT the mailbox to read the flags it keeps; sending every valid flag",
			"mailbox", mailbox, "reply", imapconn.ReplyText(err))
		sh.permanent[mailbox] = nil
		return nil, nil
	}
	if err := ctl.check(ctx, err, "SELECT", mailbox); err != nil {
		return nil, err
	}
	flags := flagStrings(sel.PermanentFlags)
	if err := ctl.deselect(ctx, mailbox); err != nil {
		return nil, err
	}
	sh.permanent[mailbox] = flags
	return flags, nil
}

// forget drops what is known of mailbox (created again: its flags may
// differ).
func (sh *Shared) forget(mailbox string) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	delete(sh.permanent, mailbox)
}

// deselect leaves the mailbox a read-write SELECT opened, without
// expunging: UNSELECT (RFC 3691) where offered, else EXAMINE of the same
// mailbox (RFC 3501 §6.3.1: selecting another mailbox closes the first
// without expunging it). GNU Mailutils 3.15 writes an mbox back from the
// view of the session that has it selected read-write when that session
// leaves it or logs out, dropping what other sessions appended meanwhile
// (8 APPENDs answered OK, 1 message kept): so the control connection never
// keeps a mailbox selected read-write while the appender works.
func (ctl *control) deselect(ctx context.Context, mailbox string) error {
	q := ctl.shared.Quirks
	if ctl.c.Caps().Has(imap.CapUnselect) && !q.Refused(imapconn.FeatureUnselect) {
		err := ctl.c.Unselect().Wait()
		if err == nil {
			return nil
		}
		if !imapconn.IsRefusal(err) {
			return ctl.check(ctx, err, "UNSELECT", mailbox)
		}
		q.Refuse(imapconn.FeatureUnselect, err, "EXAMINE of the same mailbox leaves it instead")
	}
	_, err := ctl.c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	return ctl.check(ctx, err, "EXAMINE", mailbox)
}
