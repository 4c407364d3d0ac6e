package imapdst

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/idleconn"
	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/provider"
)

// control is the connection for everything but APPEND, driven by go-imap's
// imapclient over a connection internal/imapconn dials and logs in (idle
// timeout, cancellation).
type control struct {
	opts   Options
	log    *slog.Logger
	shared *Shared // opts.Shared
	conn   *imapconn.Conn
	c      *imapclient.Client // conn's
	gate   *gateWriter        // nil without Trace
	err    error              // sticky: why the connection is unusable

	createdMu sync.Mutex
	created   []string // mailboxes this session created, in order

	// ops counts the commands begun (begin); examined is what the last
	// listHeaders' EXAMINE reported, and at which count: EnsureMailbox
	// right after it (nothing else on the connection between) takes
	// UIDVALIDITY and UIDNEXT from there instead of a STATUS of its own
	// (issue 18: one round trip less before a folder's first APPEND).
	ops      uint64
	examined examinedStatus
}

// examinedStatus is what an EXAMINE reported of a mailbox.
type examinedStatus struct {
	name        string
	ops         uint64 // control.ops when it was sent
	uidValidity uint32
	uidNext     uint32
}

// noteCreated records that the server created mailbox for this session;
// the account's sessions then take it as existing, as one listed.
func (ctl *control) noteCreated(mailbox string) {
	ctl.shared.noteListed(mailbox)
	ctl.createdMu.Lock()
	defer ctl.createdMu.Unlock()
	ctl.created = append(ctl.created, mailbox)
}

// dialControl connects, sets up TLS and authenticates.
func dialControl(ctx context.Context, opts Options) (*control, error) {
	ctl := &control{opts: opts, log: opts.Logger.With("conn", "control", "addr", opts.Addr), shared: opts.Shared}
	var debug io.Writer
	if opts.Trace != nil {
		// go-imap's debug stream shows credentials; it is only let through
		// once authenticated, and never during a message body fetch.
		ctl.gate = &gateWriter{w: &linePrefixer{w: opts.Trace, prefix: "control "}}
		debug = ctl.gate
	}
	conn, err := imapconn.Dial(ctx, imapconn.Options{
		Addr: opts.Addr, TLS: opts.TLS, TLSConfig: opts.TLSConfig, Credentials: opts.credentials(),
		PasswordFunc: opts.PasswordFunc, TokenRejected: opts.TokenRejected, AllowPlaintext: opts.AllowPlaintext,
		IdleTimeout: opts.IdleTimeout, Timeouts: opts.Timeouts, DebugWriter: debug,
	})
	if err != nil {
		return nil, err
	}
	ctl.conn, ctl.c = conn, conn.Client()
	ctl.gate.set(true)
	return ctl, nil
}

// server is what the server said of itself, for provider.Identify: its
// capabilities (asked for now if the login's reply did not carry them)
// and its greeting. A connection that fails meanwhile says less; its next
// command reports the failure.
func (ctl *control) server(ctx context.Context) provider.Server {
	done, err := ctl.begin(ctx)
	if err != nil {
		return provider.Server{}
	}
	defer done()
	return ctl.conn.Server()
}

// capabilities are the server's capabilities, in upper case.
func (ctl *control) capabilities() capSet {
	caps := capSet{}
	for c := range ctl.c.Caps() {
		caps[strings.ToUpper(string(c))] = true
	}
	return caps
}

// begin checks the connection and ties it to ctx until the returned func runs.
func (ctl *control) begin(ctx context.Context) (func(), error) {
	if ctl.err != nil {
		return nil, ctl.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctl.ops++
	return ctl.conn.Bind(ctx), nil
}

// check turns err into the error to return: server replies become
// *ReplyError and leave the connection usable; anything else breaks it.
//
// A body literal that could not be read in full comes here at once: the
// FETCH is abandoned unread (no Next, no Close). go-imap beta.8 hands the
// decoder back to its reader goroutine on a literal's first read error,
// yet Next and Close would read that literal again to discard it, from the
// buffer the reader goroutine now reads: a data race, and garbage parsed
// on both sides. The connection is broken anyway.
func (ctl *control) check(ctx context.Context, err error, command, mailbox string) error {
	if err == nil {
		return nil
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		return fromIMAPError(err, command, mailbox)
	}
	err = ctl.conn.Explain(err)
	if be, ok := err.(*imapconn.ByeError); ok { // Explain returns it unwrapped
		err = byeReply(be, command, mailbox, fmt.Errorf("imapdst: %s %q on %s: %w", command, mailbox, ctl.opts.Addr, be.Err))
	} else {
		err = fmt.Errorf("imapdst: %s %q on %s: %w", command, mailbox, ctl.opts.Addr, err)
	}
	err = idleconn.WithContextErr(ctx, err)
	if ctl.err == nil {
		ctl.err = err
		_ = ctl.c.Close()
	}
	return err
}

// byeReply is the error for a command on a connection the server ended
// with a BYE (be, from imapconn's Explain): a *ReplyError with status BYE,
// as the appender's failWrite reports one, joined with how the command
// then failed. imapdst has one error type for the server's replies:
// errors.As finds it, its class (BYE: transient) decides, and the message
// shows the server's reason once.
func byeReply(be *imapconn.ByeError, command, mailbox string, failed error) error {
	return fmt.Errorf("%w (%w)", &ReplyError{Command: command, Mailbox: mailbox, Status: "BYE", Code: be.Code, Text: be.Text}, failed)
}

// examine opens mailbox read-only (RFC 3501 §6.3.2).
func (ctl *control) examine(ctx context.Context, mailbox string) (*imap.SelectData, error) {
	data, err := ctl.c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	return data, ctl.check(ctx, err, "EXAMINE", mailbox)
}

// ensureMailbox lists mailbox, creates it when missing (with the special
// use, when not "", see create) and returns its status (see status).
// ahead, when the session is about to append (its appender is open or
// opening), sends the commands the next steps need with those they
// follow, to be answered in the same round trip (RFC 3501 §5.5; issue
// 18): STATUS with the LIST, and the flags probe (startFlagsProbe) with
// the STATUS. A reply to a command sent ahead that the step it was sent
// for would not have asked for (STATUS of a mailbox LIST does not show)
// is read and set aside.
func (ctl *control) ensureMailbox(ctx context.Context, name, specialUse string, ahead bool) (pipeline.MailboxStatus, error) {
	done, err := ctl.begin(ctx)
	if err != nil {
		return pipeline.MailboxStatus{}, err
	}
	defer done()
	if ctl.shared.wasListed(name) {
		// The account's folder listing showed it: STATUS at once, without
		// a LIST. Refused, the mailbox may have gone since: it is listed
		// (and created) as one the listing did not show.
		if ms, ok := ctl.examinedJustNow(name); ok {
			return ms, nil
		}
		ms, refusal, err := ctl.tryStatusAhead(ctx, name, ahead)
		if refusal == nil {
			return ms, err
		}
		ctl.shared.unlist(name)
	}
	// INBOX always exists (RFC 3501 §5.1), even when an mbox server has no
	// file for it yet and so does not list it (GNU Mailutils): CREATE
	// INBOX is an error.
	inbox := strings.EqualFold(name, "INBOX")
	var exists bool
	if ahead {
		listCmd := ctl.c.List("", name, nil)
		sc := ctl.startStatus(name)
		probe := ctl.shared.startFlagsProbe(ctl, name)
		exists, err = ctl.listedReply(ctx, name, listCmd)
		if err == nil && (exists || inbox) {
			return ctl.statusReply(ctx, sc, probe)
		}
		sc.discard()
		if perr := probe.finish(ctx, ctl); err == nil {
			err = perr
		}
	} else {
		exists, err = ctl.listed(ctx, name)
	}
	if err != nil {
		return pipeline.MailboxStatus{}, err
	}
	if !exists && !inbox {
		if name, err = ctl.createOrPrefix(ctx, name, specialUse); err != nil {
			return pipeline.MailboxStatus{}, err
		}
	}
	if !ahead {
		return ctl.status(ctx, name)
	}
	sc := ctl.startStatus(name)
	return ctl.statusReply(ctx, sc, ctl.shared.startFlagsProbe(ctl, name))
}

// createOrPrefix creates name, or on a server with a personal namespace
// prefix that has the name under it already, or refuses name itself
// (Courier and Cyrus keep personal folders under "INBOX."; a top-level
// "Archive" is "Invalid mailbox name" or "Permission denied"), the name
// under the prefix (underPrefix). It returns the mailbox used: the same
// on every run, since the prefixed name, once created, is found first.
func (ctl *control) createOrPrefix(ctx context.Context, name, specialUse string) (string, error) {
	alt, err := ctl.underPrefix(ctx, name)
	if err != nil {
		return "", err
	}
	if alt != "" {
		if ok, err := ctl.listed(ctx, alt); err != nil || ok {
			if ok {
				ctl.shared.Quirks.Note(fmt.Sprintf("mailbox %q is %q, under the server's personal namespace, where an earlier run created it", name, alt))
			}
			return alt, err
		}
	}
	err = ctl.create(ctx, name, specialUse)
	var re *ReplyError
	if err == nil || alt == "" || !errors.As(err, &re) || !re.NameRefused() {
		return name, err
	}
	if aerr := ctl.create(ctx, alt, specialUse); aerr != nil {
		return "", err
	}
	ctl.log.Warn("the server refused the mailbox name; created it under the personal namespace instead",
		"mailbox", name, "created", alt, "reply", re)
	ctl.shared.Quirks.Note(fmt.Sprintf("mailbox %q is %q, under the server's personal namespace: it refused %q (%v)", name, alt, name, re))
	return alt, nil
}

// status returns mailbox's UIDVALIDITY, UIDNEXT and APPENDLIMIT: STATUS
// (RFC 3501 §6.3.10; APPENDLIMIT per RFC 7889 §4 when advertised and not
// refused before, else the server-wide limit). A refused APPENDLIMIT item
// is given up for the server (Quirks) and STATUS is sent without it. When
// STATUS itself is refused, EXAMINE (§6.3.2) reports the same values: GNU
// Mailutils answers STATUS of an INBOX that never received mail with NO
// "Error opening mailbox", and EXAMINE opens, and so creates, it. When
// EXAMINE is refused too, the status is unknown (UIDVALIDITY 0): the
// APPENDs go ahead (a [TRYCREATE] creates the mailbox) and the pipeline
// finds interrupted copies by their content instead of their UIDs.
func (ctl *control) status(ctx context.Context, name string) (pipeline.MailboxStatus, error) {
	return ctl.statusReply(ctx, ctl.startStatus(name), nil)
}

// statusReply is status from the STATUS sc already sent, and the flags
// probe sent behind it (nil: none), which it finishes.
func (ctl *control) statusReply(ctx context.Context, sc *statusCmd, probe *flagsProbe) (pipeline.MailboxStatus, error) {
	ms, refusal, err := ctl.statusFinish(ctx, sc)
	if perr := probe.finish(ctx, ctl); perr != nil {
		return pipeline.MailboxStatus{}, perr
	}
	if refusal != nil {
		return ctl.statusByExamine(ctx, sc.name, ms.AppendLimit, refusal)
	}
	return ms, err
}

// examinedJustNow returns name's status from the EXAMINE of the command
// just before this one (listHeaders), when it was of name and the status
// needs nothing EXAMINE does not tell (a per-mailbox APPENDLIMIT). The
// caller has begun its command.
func (ctl *control) examinedJustNow(name string) (pipeline.MailboxStatus, bool) {
	ex := ctl.examined
	ctl.examined = examinedStatus{}
	caps := ctl.c.Caps()
	if ex.name != name || ex.ops+1 != ctl.ops || ex.uidValidity == 0 || ex.uidNext == 0 || caps.Has(imap.CapAppendLimit) {
		return pipeline.MailboxStatus{}, false
	}
	return pipeline.MailboxStatus{Name: name, UIDValidity: ex.uidValidity, UIDNext: ex.uidNext}, true
}

// statusCmd is a STATUS sent (startStatus) and not yet answered.
type statusCmd struct {
	name        string
	opts        *imap.StatusOptions
	cmd         *imapclient.StatusCommand
	serverLimit int64 // the server-wide APPENDLIMIT, 0 when none
}

// startStatus sends STATUS name with the items status asks for.
func (ctl *control) startStatus(name string) *statusCmd {
	q := ctl.shared.Quirks
	caps := ctl.c.Caps()
	sc := &statusCmd{name: name, opts: &imap.StatusOptions{UIDNext: true, UIDValidity: true}}
	if lim, ok := caps.AppendLimit(); ok && lim != nil {
		sc.serverLimit = int64(*lim)
	}
	sc.opts.AppendLimit = caps.Has(imap.CapAppendLimit) && !q.Refused(imapconn.FeatureStatusAppendLimit)
	sc.cmd = ctl.c.Status(name, sc.opts)
	return sc
}

// discard reads sc's reply and sets it aside: STATUS sent ahead of a LIST
// that did not show the mailbox. A broken connection shows in the next
// command.
func (sc *statusCmd) discard() { _, _ = sc.cmd.Wait() }

// tryStatus is status without EXAMINE: a refused STATUS comes back as
// refusal (err nil), with the server-wide APPENDLIMIT in ms.
func (ctl *control) tryStatus(ctx context.Context, name string) (ms pipeline.MailboxStatus, refusal, err error) {
	return ctl.statusFinish(ctx, ctl.startStatus(name))
}

// tryStatusAhead is tryStatus, with the flags probe sent behind the STATUS
// when ahead (see ensureMailbox).
func (ctl *control) tryStatusAhead(ctx context.Context, name string, ahead bool) (ms pipeline.MailboxStatus, refusal, err error) {
	sc := ctl.startStatus(name)
	var probe *flagsProbe
	if ahead {
		probe = ctl.shared.startFlagsProbe(ctl, name)
	}
	ms, refusal, err = ctl.statusFinish(ctx, sc)
	if perr := probe.finish(ctx, ctl); perr != nil {
		return pipeline.MailboxStatus{}, nil, perr
	}
	return ms, refusal, err
}

// statusFinish is tryStatus's answer from the STATUS sc already sent.
func (ctl *control) statusFinish(ctx context.Context, sc *statusCmd) (ms pipeline.MailboxStatus, refusal, err error) {
	q := ctl.shared.Quirks
	name, sopts := sc.name, sc.opts
	st, err := sc.cmd.Wait()
	if sopts.AppendLimit && imapconn.IsRefusal(err) {
		q.Refuse(imapconn.FeatureStatusAppendLimit, err, "STATUS without it; the server-wide APPENDLIMIT applies")
		sopts.AppendLimit = false
		st, err = ctl.c.Status(name, sopts).Wait()
	}
	if imapconn.IsRefusal(err) {
		return pipeline.MailboxStatus{Name: name, AppendLimit: sc.serverLimit}, err, nil
	}
	if err = ctl.check(ctx, err, "STATUS", name); err != nil {
		return pipeline.MailboxStatus{}, nil, err
	}
	ms = pipeline.MailboxStatus{Name: name, UIDValidity: st.UIDValidity, UIDNext: uint32(st.UIDNext), AppendLimit: sc.serverLimit}
	if st.AppendLimit != nil {
		ms.AppendLimit = int64(*st.AppendLimit)
	}
	return ms, nil, nil
}

// statusByExamine is status for a mailbox whose STATUS was refused
// (refusal).
func (ctl *control) statusByExamine(ctx context.Context, name string, serverLimit int64, refusal error) (pipeline.MailboxStatus, error) {
	sel, err := ctl.c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if imapconn.IsRefusal(err) {
		ctl.log.Warn("the server will neither STATUS nor EXAMINE the mailbox; appending without knowing its UIDs",
			"mailbox", name, "status_reply", imapconn.ReplyText(refusal), "examine_reply", imapconn.ReplyText(err))
		return pipeline.MailboxStatus{Name: name, AppendLimit: serverLimit}, nil
	}
	if err = ctl.check(ctx, err, "EXAMINE", name); err != nil {
		return pipeline.MailboxStatus{}, err
	}
	ctl.log.Info("STATUS refused; EXAMINE gave the mailbox's UIDs", "mailbox", name, "status_reply", imapconn.ReplyText(refusal))
	return pipeline.MailboxStatus{Name: name, UIDValidity: sel.UIDValidity, UIDNext: uint32(sel.UIDNext), AppendLimit: serverLimit}, nil
}

// listSince lists UIDs >= fromUID with their sizes and whether they are
// marked \Deleted.
func (ctl *control) listSince(ctx context.Context, mailbox string, uidValidity, fromUID uint32) ([]pipeline.DestMessage, error) {
	done, err := ctl.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	sel, err := ctl.examineUnder(ctx, mailbox, uidValidity, "listing")
	if err != nil || sel.NumMessages == 0 {
		return nil, err
	}
	fromUID = max(fromUID, 1)
	// Stop 0 is "*". RFC 3501 §6.4.8: "n:*" always includes the message
	// with the highest UID, even when it is below n, so results are filtered.
	set := imap.UIDSet{imap.UIDRange{Start: imap.UID(fromUID), Stop: 0}}
	cmd := ctl.c.Fetch(set, &imap.FetchOptions{UID: true, RFC822Size: true, Flags: true})
	var out []pipeline.DestMessage
	var bad error
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		buf, err := msg.Collect() // no literals: UID and size only
		if err != nil {
			bad = cmp(bad, err)
			continue
		}
		if buf.UID == 0 {
			bad = cmp(bad, fmt.Errorf("server sent FETCH for message %d without UID", buf.SeqNum))
			continue
		}
		if uint32(buf.UID) >= fromUID {
			out = append(out, pipeline.DestMessage{UID: uint32(buf.UID), Size: buf.RFC822Size,
				Deleted: slices.Contains(buf.Flags, imap.FlagDeleted)})
		}
	}
	err = cmp(cmd.Close(), bad)
	if err = ctl.check(ctx, err, "UID FETCH", mailbox); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(x, y pipeline.DestMessage) int { return int(int64(x.UID) - int64(y.UID)) })
	return out, nil
}

// searchSeq runs SEARCH (by sequence number) in the selected mailbox.
// Bodies are then fetched by sequence number, not UID: go-imap beta.8 drops
// a UID FETCH response whose UID follows its literal (imapclient's
// handleFetch dispatches a reply by the UID seen before the first literal).
func (ctl *control) searchSeq(ctx context.Context, mailbox string, crit *imap.SearchCriteria) ([]uint32, error) {
	data, err := ctl.c.Search(crit, nil).Wait()
	if err = ctl.check(ctx, err, "SEARCH", mailbox); err != nil {
		return nil, err
	}
	return data.AllSeqNums(), nil
}

// searchMessageID finds the messages whose Message-ID is exactly id. SEARCH
// HEADER matches substrings (RFC 3501 §6.4.4), so each hit's header is
// fetched and compared.
func (ctl *control) searchMessageID(ctx context.Context, mailbox, id string) ([]uint32, error) {
	id = strings.TrimSpace(id)
	if id == "" || strings.ContainsAny(id, "\r\n\x00") {
		return nil, invalidArg("Message-ID %q", id)
	}
	done, err := ctl.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	if _, err := ctl.examine(ctx, mailbox); err != nil {
		return nil, err
	}
	seqs, err := ctl.searchSeq(ctx, mailbox, &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: id}}})
	if err != nil || len(seqs) == 0 {
		return nil, err
	}
	section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
	cmd := ctl.c.Fetch(imap.SeqSetNum(seqs...), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}})
	var uids []uint32
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var uid imap.UID
		var hdr []byte
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = it.UID
			case imapclient.FetchItemDataBodySection:
				if it.Literal != nil {
					const limit = 64 << 10
					var err error
					hdr, err = io.ReadAll(io.LimitReader(it.Literal, limit))
					if err == nil && int64(len(hdr)) < min(it.Literal.Size(), limit) {
						err = fmt.Errorf("header ended after %d of %d bytes", len(hdr), it.Literal.Size())
					}
					if err != nil {
						return nil, ctl.check(ctx, err, "FETCH", mailbox)
					}
				}
			}
		}
		if uid != 0 && headerMessageID(hdr) == id {
			uids = append(uids, uint32(uid))
		}
	}
	if err := ctl.check(ctx, cmd.Close(), "FETCH", mailbox); err != nil {
		return nil, err
	}
	slices.Sort(uids)
	return uids, nil
}

// headerMessageID returns the Message-ID of a header block as the source
// side reads it (mapping.MessageID: the msg-id, without comments or white
// space), so that matching and searching compare like with like: the raw
// field ("<a@b> (comment)", a folded or spaced one) never equalled the
// source's, and the message was copied again.
func headerMessageID(hdr []byte) string {
	return mapping.MessageID(hdr)
}

// digest streams the message's exact bytes (BODY.PEEK[], RFC 3501 §6.4.5)
// into SHA-256, checking the literal's length against its announced size and
// the command's completion, since go-imap beta.8 reports a connection cut
// mid-literal only there: the literal itself ends early with io.EOF.
//
// A server with BINARY may hold a message with NUL bytes, appended as a
// literal8, and serve it in BODY[] with each NUL replaced (Dovecot: 0x80).
// When BODY[] holds a 0x80 byte, the message is read again as BINARY.PEEK[]
// (RFC 3516), and when that has the same size and holds a NUL byte it is
// the message's bytes: else a copy appended with NUL bytes would never
// match its digest and reconcile would append it again.
func (ctl *control) digest(ctx context.Context, mailbox string, uid uint32) ([32]byte, int64, error) {
	var sum [32]byte
	done, err := ctl.begin(ctx)
	if err != nil {
		return sum, 0, err
	}
	defer done()
	if _, err := ctl.examine(ctx, mailbox); err != nil {
		return sum, 0, err
	}
	seqs, err := ctl.searchSeq(ctx, mailbox, &imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(imap.UID(uid))}})
	if err != nil {
		return sum, 0, err
	}
	if len(seqs) != 1 {
		return sum, 0, fmt.Errorf("digesting UID %d in %q: %w", uid, mailbox, ErrMessageNotFound)
	}
	ctl.gate.set(false) // the body is not traced
	defer ctl.gate.set(true)
	sum, size, seen, err := ctl.fetchDigest(ctx, mailbox, uid, seqs[0], false)
	if err != nil || seen&seen80 == 0 || !ctl.c.Caps().Has(imap.CapBinary) {
		return sum, size, err
	}
	bsum, bsize, bseen, err := ctl.fetchDigest(ctx, mailbox, uid, seqs[0], true)
	if err != nil {
		return sum, 0, err
	}
	if bsize == size && bseen&seenNUL != 0 {
		return bsum, bsize, nil
	}
	return sum, size, nil
}

// Bytes fetchDigest reports having seen.
const (
	seen80 = 1 << iota
	seenNUL
)

// seenWriter notes whether 0x80 or NUL bytes pass through it.
type seenWriter struct{ seen int }

func (w *seenWriter) Write(p []byte) (int, error) {
	if bytes.IndexByte(p, 0x80) >= 0 {
		w.seen |= seen80
	}
	if bytes.IndexByte(p, 0) >= 0 {
		w.seen |= seenNUL
	}
	return len(p), nil
}

// fetchDigest fetches message seq (UID uid) as BODY.PEEK[], or as
// BINARY.PEEK[] when binary, and returns its SHA-256, its size, and which
// of 0x80 and NUL it holds.
func (ctl *control) fetchDigest(ctx context.Context, mailbox string, uid, seq uint32, binary bool) ([32]byte, int64, int, error) {
	var sum [32]byte
	opts := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
	what := "BODY[]"
	if binary {
		opts = &imap.FetchOptions{UID: true, BinarySection: []*imap.FetchItemBinarySection{{Peek: true}}}
		what = "BINARY[]"
	}
	cmd := ctl.c.Fetch(imap.SeqSetNum(seq), opts)
	var (
		gotUID imap.UID
		size   int64
		got    bool
		bad    error
	)
	h := sha256.New()
	sw := &seenWriter{}
	body := func(lit imap.LiteralReader) error {
		if lit == nil {
			bad = cmp(bad, errors.New("server sent "+what+" as NIL"))
			return nil
		}
		n, err := io.Copy(io.MultiWriter(h, sw), lit) // a hash never fails: err is the connection's
		if err == nil && n != lit.Size() {
			err = fmt.Errorf("body ended after %d of %d bytes", n, lit.Size())
		}
		if err != nil {
			return ctl.check(ctx, err, "FETCH", mailbox)
		}
		size, got = n, true
		return nil
	}
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				gotUID = it.UID
			case imapclient.FetchItemDataBodySection:
				if err := body(it.Literal); err != nil {
					return sum, 0, 0, err
				}
			case imapclient.FetchItemDataBinarySection:
				if err := body(it.Literal); err != nil {
					return sum, 0, 0, err
				}
			}
		}
	}
	if err := ctl.check(ctx, cmd.Close(), "FETCH", mailbox); err != nil {
		return sum, 0, 0, err
	}
	if bad != nil {
		return sum, 0, 0, ctl.check(ctx, bad, "FETCH", mailbox)
	}
	if !got || gotUID != imap.UID(uid) {
		return sum, 0, 0, fmt.Errorf("imapdst: FETCH of UID %d in %q returned UID %d, body %v", uid, mailbox, gotUID, got)
	}
	copy(sum[:], h.Sum(nil))
	return sum, size, sw.seen, nil
}

// expunge removes exactly uids from mailbox: UID STORE +FLAGS.SILENT
// (\Deleted), then UID EXPUNGE (RFC 4315 §2.1), which leaves alone any
// other message a user marked \Deleted, then leaves the mailbox
// (deselect). Without UIDPLUS it does nothing; a server that advertises
// UIDPLUS and refuses UID EXPUNGE has the \Deleted flags taken off again
// and counts as without.
func (ctl *control) expunge(ctx context.Context, mailbox string, uidValidity uint32, uids []uint32) (err error) {
	if len(uids) == 0 {
		return nil
	}
	cannot := func() error {
		return fmt.Errorf("imapdst: removing %d messages from %q on %s: %w", len(uids), mailbox, ctl.opts.Addr, pipeline.ErrCannotExpunge)
	}
	q := ctl.shared.Quirks
	if !ctl.c.Caps().Has(imap.CapUIDPlus) || q.Refused(imapconn.FeatureUIDExpunge) {
		return cannot()
	}
	done, err := ctl.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	sel, err := ctl.c.Select(mailbox, nil).Wait()
	if err = ctl.check(ctx, err, "SELECT", mailbox); err != nil {
		return err
	}
	defer func() { err = cmp(err, ctl.leave(ctx, mailbox)) }()
	if sel.UIDValidity != uidValidity {
		return fmt.Errorf("imapdst: removing messages from %q: UIDVALIDITY is %d, expected %d: %w",
			mailbox, sel.UIDValidity, uidValidity, pipeline.ErrUIDValidityChanged)
	}
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	deleted := []imap.Flag{imap.FlagDeleted}
	err = ctl.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: deleted}, nil).Close()
	if err = ctl.check(ctx, err, "UID STORE", mailbox); err != nil {
		return err
	}
	_, err = ctl.c.UIDExpunge(set).Collect()
	if imapconn.IsRefusal(err) {
		q.Refuse(imapconn.FeatureUIDExpunge, err, "duplicates are kept and named in the log")
		err = ctl.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: deleted}, nil).Close()
		if err = ctl.check(ctx, err, "UID STORE", mailbox); err != nil {
			return err
		}
		return cannot()
	}
	return ctl.check(ctx, err, "UID EXPUNGE", mailbox)
}

// leave deselects the mailbox a read-write SELECT opened, unless the
// connection has failed meanwhile.
func (ctl *control) leave(ctx context.Context, mailbox string) error {
	if ctl.err != nil {
		return nil
	}
	return ctl.deselect(ctx, mailbox)
}

// close logs out and closes the connection.
func (ctl *control) close() error {
	if ctl.err != nil {
		return ctl.c.Close()
	}
	ctl.err = ErrClosed
	return ctl.conn.Logout()
}

// linePrefixer writes prefix at the start of each line.
type linePrefixer struct {
	w      io.Writer
	prefix string
	mid    bool
}

func (l *linePrefixer) Write(p []byte) (int, error) {
	var b bytes.Buffer
	for _, c := range p {
		if !l.mid {
			b.WriteString(l.prefix)
			l.mid = true
		}
		b.WriteByte(c)
		if c == '\n' {
			l.mid = false
		}
	}
	_, err := l.w.Write(b.Bytes())
	return len(p), err
}

// move moves exactly uids from mailbox to target and returns target's
// UIDVALIDITY and each message's UID there (COPYUID, RFC 4315 §3): UID
// MOVE where the server offers it (RFC 6851), else UID COPY, UID STORE
// +FLAGS.SILENT (\Deleted) and UID EXPUNGE of exactly those UIDs. Without
// MOVE and UIDPLUS it does nothing: a plain EXPUNGE would also remove
// what a user marked \Deleted.
func (ctl *control) move(ctx context.Context, mailbox string, uidValidity uint32, uids []uint32, target string) (uint32, map[uint32]uint32, error) {
	if len(uids) == 0 {
		return 0, nil, nil
	}
	caps := ctl.c.Caps()
	if !caps.Has(imap.CapMove) && !caps.Has(imap.CapUIDPlus) {
		return 0, nil, fmt.Errorf("imapdst: moving %d messages from %q to %q on %s: %w", len(uids), mailbox, target, ctl.opts.Addr, pipeline.ErrCannotExpunge)
	}
	done, err := ctl.begin(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer done()
	sel, err := ctl.c.Select(mailbox, nil).Wait()
	if err = ctl.check(ctx, err, "SELECT", mailbox); err != nil {
		return 0, nil, err
	}
	if sel.UIDValidity != uidValidity {
		return 0, nil, fmt.Errorf("imapdst: moving messages from %q: UIDVALIDITY is %d, expected %d: %w",
			mailbox, sel.UIDValidity, uidValidity, pipeline.ErrUIDValidityChanged)
	}
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	var (
		destValidity   uint32
		srcSet, dstSet imap.UIDSet
	)
	if caps.Has(imap.CapMove) {
		data, err := ctl.c.Move(set, target).Wait()
		if err = ctl.check(ctx, err, "UID MOVE", mailbox); err != nil {
			return 0, nil, err
		}
		destValidity = data.UIDValidity
		srcSet, _ = data.SourceUIDs.(imap.UIDSet)
		dstSet, _ = data.DestUIDs.(imap.UIDSet)
	} else {
		data, err := ctl.c.Copy(set, target).Wait()
		if err = ctl.check(ctx, err, "UID COPY", mailbox); err != nil {
			return 0, nil, err
		}
		destValidity, srcSet, dstSet = data.UIDValidity, data.SourceUIDs, data.DestUIDs
		err = ctl.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
		if err = ctl.check(ctx, err, "UID STORE", mailbox); err != nil {
			return 0, nil, err
		}
		_, err = ctl.c.UIDExpunge(set).Collect()
		if err = ctl.check(ctx, err, "UID EXPUNGE", mailbox); err != nil {
			return 0, nil, err
		}
	}
	out := map[uint32]uint32{}
	from, ok1 := srcSet.Nums()
	to, ok2 := dstSet.Nums()
	if ok1 && ok2 && len(from) == len(to) {
		for i := range from {
			out[uint32(from[i])] = uint32(to[i])
		}
	}
	return destValidity, out, nil
}

// deleteEmptyMailbox deletes mailbox (RFC 3501 §6.3.4) when it holds no
// message, and reports whether it is gone: deleted now, or not there (a
// run that deleted it and crashed before recording it). One that holds
// messages is left alone.
func (ctl *control) deleteEmptyMailbox(ctx context.Context, name string) (bool, error) {
	done, err := ctl.begin(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	list, err := ctl.c.List("", name, nil).Collect()
	if err = ctl.check(ctx, err, "LIST", name); err != nil {
		return false, err
	}
	if len(list) == 0 {
		return true, nil
	}
	sel, err := ctl.examine(ctx, name)
	if err != nil {
		return false, err
	}
	if sel.NumMessages > 0 {
		return false, nil
	}
	if ctl.c.Caps().Has(imap.CapUnselect) {
		if err := ctl.c.Unselect().Wait(); err != nil {
			return false, ctl.check(ctx, err, "UNSELECT", name)
		}
	}
	err = ctl.c.Delete(name).Wait()
	return err == nil, ctl.check(ctx, err, "DELETE", name)
}

// renameMailbox renames from to to (RFC 3501 §6.3.5), which must not
// exist, and returns to's status. Dovecot 2.3 and Cyrus 3.6 keep the
// mailbox's UIDVALIDITY and UIDs; a server that changes them says so in
// the status.
func (ctl *control) renameMailbox(ctx context.Context, from, to string) (pipeline.MailboxStatus, error) {
	done, err := ctl.begin(ctx)
	if err != nil {
		return pipeline.MailboxStatus{}, err
	}
	defer done()
	// RFC 3501 §6.3.5 allows renaming the selected mailbox (the control
	// connection may have examined it last); Dovecot and Cyrus do.
	err = ctl.c.Rename(from, to, nil).Wait()
	if err = ctl.check(ctx, err, "RENAME", from); err != nil {
		return pipeline.MailboxStatus{}, err
	}
	ctl.shared.forget(from)
	ctl.shared.forget(to)
	return ctl.status(ctx, to)
}

// mailboxHasChildren reports whether LIST shows a mailbox under name
// (RFC 3501 §6.3.8: the hierarchy delimiter, then "*").
func (ctl *control) mailboxHasChildren(ctx context.Context, name string) (bool, error) {
	done, err := ctl.begin(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	_, delim, err := ctl.shared.personal(ctx, ctl)
	if err != nil || delim == 0 {
		return delim == 0, err // no hierarchy known: taken as children, the safe side
	}
	list, err := ctl.c.List("", name+string(delim)+"*", nil).Collect()
	if err = ctl.check(ctx, err, "LIST", name); err != nil {
		return false, err
	}
	return len(list) > 0, nil
}

// mailboxExists reports whether LIST shows name.
func (ctl *control) mailboxExists(ctx context.Context, name string) (bool, error) {
	done, err := ctl.begin(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	return ctl.listed(ctx, name)
}
