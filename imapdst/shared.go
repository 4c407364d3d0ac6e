package imapdst

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/imapconn"
)

// Shared is what the sessions of one account learn about the destination
// server and share: the optional features it refused (Quirks, so that each
// is asked for and given up once), the PERMANENTFLAGS of each mailbox
// (read once, see Destination.PermanentFlags) and the mailboxes the folder
// listing showed (not listed again). It is safe for concurrent
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

	nsMu     sync.Mutex
	nsKnown  bool
	nsPrefix string // the personal namespace's prefix ("INBOX." on Courier and Cyrus)
	nsDelim  rune

	// seen are the mailboxes the account's folder listing (Folders)
	// showed as existing and selectable: EnsureMailbox and ListHeaders
	// take them as existing without a LIST of their own (issue 18: two
	// round trips before a session's first APPEND). A mailbox refused
	// since (gone meanwhile) is forgotten and asked for as before.
	seenMu sync.Mutex
	seen   map[string]bool
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
	// UNSELECT goes out right behind SELECT, both answered in one round
	// trip: the mailbox is selected read-write only between the two.
	selCmd := ctl.c.Select(mailbox, nil)
	var unselCmd *imapclient.Command
	q := sh.Quirks
	if ctl.c.Caps().Has(imap.CapUnselect) && !q.Refused(imapconn.FeatureUnselect) {
		unselCmd = ctl.c.Unselect()
	}
	sel, err := selCmd.Wait()
	var unselErr error
	if unselCmd != nil {
		unselErr = unselCmd.Wait()
	}
	if imapconn.IsRefusal(err) {
		// UNSELECT then had no mailbox to leave: its BAD says nothing.
		ctl.log.Warn("cannot SELECT the mailbox to read the flags it keeps; sending every valid flag",
			"mailbox", mailbox, "reply", imapconn.ReplyText(err))
		sh.permanent[mailbox] = nil
		return nil, nil
	}
	if err := ctl.check(ctx, err, "SELECT", mailbox); err != nil {
		return nil, err
	}
	flags := flagStrings(sel.PermanentFlags)
	switch {
	case unselCmd != nil && unselErr == nil:
	case unselCmd != nil && !imapconn.IsRefusal(unselErr):
		return nil, ctl.check(ctx, unselErr, "UNSELECT", mailbox)
	default:
		if unselErr != nil {
			q.Refuse(imapconn.FeatureUnselect, unselErr, "EXAMINE of the same mailbox leaves it instead")
		}
		if err := ctl.deselect(ctx, mailbox); err != nil {
			return nil, err
		}
	}
	sh.permanent[mailbox] = flags
	return flags, nil
}

// flagsProbe is a SELECT and an UNSELECT of a mailbox sent ahead of
// the commands a session sends next (RFC 3501 §5.5: answered in order, in
// the same round trip), so that the mailbox's PERMANENTFLAGS are known
// when PermanentFlags asks: on a distant server, a round trip less before
// the first APPEND (issue 18). It holds Shared.mu from start to finish, as
// permanentFlags does: the mailbox is selected read-write only between the
// two commands.
type flagsProbe struct {
	sh      *Shared
	mailbox string
	sel     *imapclient.SelectCommand
	unsel   *imapclient.Command
}

// startFlagsProbe sends the probe of mailbox, or returns nil when the
// account knows its PERMANENTFLAGS already or the server lacks UNSELECT
// (RFC 3691) or refused it: then PermanentFlags reads them its own way.
// The caller must call finish, also on its error paths.
func (sh *Shared) startFlagsProbe(ctl *control, mailbox string) *flagsProbe {
	if !ctl.c.Caps().Has(imap.CapUnselect) || sh.Quirks.Refused(imapconn.FeatureUnselect) {
		return nil
	}
	sh.mu.Lock()
	if _, ok := sh.permanent[mailbox]; ok {
		sh.mu.Unlock()
		return nil
	}
	return &flagsProbe{sh: sh, mailbox: mailbox, sel: ctl.c.Select(mailbox, nil), unsel: ctl.c.Unselect()}
}

// finish reads the probe's replies and records the mailbox's
// PERMANENTFLAGS when SELECT succeeded; a refused SELECT (a mailbox that
// does not exist yet, or that the server will not select) records
// nothing, and PermanentFlags asks again, as without the probe. A refused
// UNSELECT after a SELECT that succeeded is given up for the server, and
// the mailbox left as deselect leaves it. It returns only what breaks the
// connection (see control.check). A nil probe does nothing.
func (p *flagsProbe) finish(ctx context.Context, ctl *control) error {
	if p == nil {
		return nil
	}
	defer p.sh.mu.Unlock()
	sel, err := p.sel.Wait()
	unselErr := p.unsel.Wait()
	if err != nil {
		if !imapconn.IsRefusal(err) {
			return ctl.check(ctx, err, "SELECT", p.mailbox)
		}
		// UNSELECT then had no mailbox to leave: its BAD says nothing.
		if unselErr != nil && !imapconn.IsRefusal(unselErr) {
			return ctl.check(ctx, unselErr, "UNSELECT", p.mailbox)
		}
		return nil
	}
	if unselErr != nil {
		if !imapconn.IsRefusal(unselErr) {
			return ctl.check(ctx, unselErr, "UNSELECT", p.mailbox)
		}
		p.sh.Quirks.Refuse(imapconn.FeatureUnselect, unselErr, "EXAMINE of the same mailbox leaves it instead")
		if err := ctl.deselect(ctx, p.mailbox); err != nil {
			return err
		}
	}
	p.sh.permanent[p.mailbox] = flagStrings(sel.PermanentFlags)
	return nil
}

// noteListed records that the folder listing showed mailbox as existing
// and selectable.
func (sh *Shared) noteListed(mailbox string) {
	sh.seenMu.Lock()
	defer sh.seenMu.Unlock()
	if sh.seen == nil {
		sh.seen = map[string]bool{}
	}
	sh.seen[canonicalInbox(mailbox)] = true
}

// wasListed reports whether the folder listing showed mailbox (and no
// command found it gone since).
func (sh *Shared) wasListed(mailbox string) bool {
	sh.seenMu.Lock()
	defer sh.seenMu.Unlock()
	return sh.seen[canonicalInbox(mailbox)]
}

// unlist forgets that mailbox was listed: a command on it was refused.
func (sh *Shared) unlist(mailbox string) {
	sh.seenMu.Lock()
	defer sh.seenMu.Unlock()
	delete(sh.seen, canonicalInbox(mailbox))
}

// canonicalInbox is name, with INBOX in any case as "INBOX" (RFC 3501
// §5.1: INBOX is case-insensitive; other names are not).
func canonicalInbox(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return name
}

// knowNamespace records what Folders learnt of the personal namespace, so
// that personal need not ask again.
func (sh *Shared) knowNamespace(prefix string, delim rune) {
	sh.nsMu.Lock()
	defer sh.nsMu.Unlock()
	sh.nsKnown, sh.nsPrefix, sh.nsDelim = true, prefix, delim
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
	return ctl.startDeselect(ctx, mailbox)()
}

// startDeselect is deselect sending its command without waiting for the
// reply, so that it goes out in one round trip with the commands before
// it (RFC 3501 §5.5; the server answers them first): wait returns what
// deselect would have. A refused UNSELECT costs the EXAMINE a round trip
// of its own.
func (ctl *control) startDeselect(ctx context.Context, mailbox string) (wait func() error) {
	q := ctl.shared.Quirks
	if ctl.c.Caps().Has(imap.CapUnselect) && !q.Refused(imapconn.FeatureUnselect) {
		cmd := ctl.c.Unselect()
		return func() error {
			err := cmd.Wait()
			if err == nil {
				return nil
			}
			if !imapconn.IsRefusal(err) {
				return ctl.check(ctx, err, "UNSELECT", mailbox)
			}
			q.Refuse(imapconn.FeatureUnselect, err, "EXAMINE of the same mailbox leaves it instead")
			_, err = ctl.c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
			return ctl.check(ctx, err, "EXAMINE", mailbox)
		}
	}
	cmd := ctl.c.Select(mailbox, &imap.SelectOptions{ReadOnly: true})
	return func() error {
		_, err := cmd.Wait()
		return ctl.check(ctx, err, "EXAMINE", mailbox)
	}
}

// personal returns the personal namespace's prefix and separator (RFC
// 2342; the separator of LIST "" "" without NAMESPACE), asked once per
// account.
func (sh *Shared) personal(ctx context.Context, ctl *control) (string, rune, error) {
	sh.nsMu.Lock()
	defer sh.nsMu.Unlock()
	if sh.nsKnown {
		return sh.nsPrefix, sh.nsDelim, nil
	}
	q := sh.Quirks
	if caps := ctl.c.Caps(); (caps.Has(imap.CapNamespace) || caps.Has(imap.CapIMAP4rev2)) && !q.Refused(imapconn.FeatureNamespace) {
		ns, err := ctl.c.Namespace().Wait()
		switch {
		case imapconn.IsRefusal(err):
			q.Refuse(imapconn.FeatureNamespace, err, "no personal namespace prefix; the separator comes from LIST")
		case err != nil:
			return "", 0, ctl.check(ctx, err, "NAMESPACE", "")
		case len(ns.Personal) > 0:
			sh.nsPrefix, sh.nsDelim = ns.Personal[0].Prefix, ns.Personal[0].Delim
		}
	}
	if sh.nsDelim == 0 {
		d, err := ctl.delimiter(ctx)
		if err != nil {
			return "", 0, err
		}
		sh.nsDelim = d
	}
	sh.nsKnown = true
	return sh.nsPrefix, sh.nsDelim, nil
}

// underPrefix returns name in the personal namespace, its levels ("/" or
// the server's separator between them) joined with the server's
// separator under its prefix ("Archive/2019" → "INBOX.Archive.2019" on
// Courier and Cyrus), or "" when the server has no prefix or name is
// already under it.
func (ctl *control) underPrefix(ctx context.Context, name string) (string, error) {
	prefix, delim, err := ctl.shared.personal(ctx, ctl)
	if err != nil || prefix == "" || len(name) >= len(prefix) && strings.EqualFold(name[:len(prefix)], prefix) {
		return "", err
	}
	if delim != 0 && delim != '/' {
		name = strings.ReplaceAll(name, "/", string(delim))
	}
	return prefix + name, nil
}

// listed reports whether LIST shows mailbox as a mailbox that exists.
func (ctl *control) listed(ctx context.Context, mailbox string) (bool, error) {
	return ctl.listedReply(ctx, mailbox, ctl.c.List("", mailbox, nil))
}

// listedReply is listed's answer from the LIST cmd already sent.
func (ctl *control) listedReply(ctx context.Context, mailbox string, cmd *imapclient.ListCommand) (bool, error) {
	list, err := cmd.Collect()
	if err = ctl.check(ctx, err, "LIST", mailbox); err != nil {
		return false, err
	}
	for _, l := range list {
		same := l.Mailbox == mailbox || strings.EqualFold(mailbox, "INBOX") && strings.EqualFold(l.Mailbox, "INBOX")
		if same && !slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) {
			return true, nil
		}
	}
	return false, nil
}
