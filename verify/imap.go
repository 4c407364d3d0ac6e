package verify

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/internal/dialer"
	"github.com/mailferry/mailferry/internal/idleconn"
	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// ErrPlaintextRefused: the connection is not encrypted and
// IMAPOptions.AllowPlaintext is false, so nothing was sent. It is
// tlsmode.ErrPlaintext, the value every client returns for this.
var ErrPlaintextRefused = imapdst.ErrPlaintextRefused

// IMAPOptions configures DialIMAP.
type IMAPOptions struct {
	Addr      string // host:port
	TLS       imapdst.TLSMode
	TLSConfig *tls.Config // nil: system roots; ServerName defaults to Addr's host
	User      string
	// AuthzID, when set, logs in with AUTHENTICATE PLAIN as User (a master
	// user) on behalf of AuthzID (RFC 4616 §2).
	AuthzID string
	// Password is the password, or the OAuth2 bearer token when Auth is
	// imapdst.AuthXOAuth2 or imapdst.AuthOAuthBearer.
	Password secret.Value
	// Auth selects the login mechanism as for imapdst.Options.Auth; the
	// zero value is imapdst.AuthDefault.
	Auth imapdst.AuthMethod
	// PasswordFunc, when set, is called before the login and its value
	// replaces Password (a fresh OAuth2 token); its error fails DialIMAP.
	PasswordFunc func(ctx context.Context) (secret.Value, error)
	// TokenRejected, when set with PasswordFunc, is called with the token
	// when the server rejects it (an *imapdst.TokenRejectedError): a token
	// cache drops it, and DialIMAP tries once more on a new connection
	// with PasswordFunc's next value, as every connection of the copy does.
	TokenRejected  func(rejected secret.Value)
	AllowPlaintext bool
	// IdleTimeout: a read or write that makes no progress for this long
	// fails the session. 0: imapdst.DefaultIdleTimeout; negative: none.
	IdleTimeout time.Duration
	// Timeouts bound the TCP connect, the TLS handshake and the greeting,
	// each on its own (internal/dialer); the zero value: 30 s each.
	Timeouts dialer.Timeouts
	Logger   *slog.Logger // nil discards
	// Quirks, when set, remembers the optional features the server
	// refused (the STATUS item APPENDLIMIT, GETQUOTAROOT), shared with the
	// account's other sessions; nil: this session finds out for itself.
	Quirks *imapconn.Quirks
}

// IMAP is a read-only session on a destination IMAP server: it lists
// mailboxes with EXAMINE (RFC 3501 §6.3.2) and fetches with BODY.PEEK, so it
// changes nothing, not even \Seen. It implements Destination and also
// answers the questions of `mailferry plan` (capabilities, quota, mailbox
// status). It is used by one goroutine at a time.
type IMAP struct {
	opts IMAPOptions
	conn *imapconn.Conn
	c    *imapclient.Client // conn's
	caps imap.CapSet
	log  *slog.Logger
	// abandoned: a FETCH was left unread and the connection closed.
	abandoned bool
	// located maps a mailbox asked for to the one it is (see locate).
	located map[string]string
	// nsKnown: the personal namespace's prefix and separator were asked.
	nsKnown  bool
	nsPrefix string
	nsDelim  rune
	// binaryNext are the messages (mailbox and UID) whose next Fetch reads
	// BINARY[]: their BODY[] had NUL bytes replaced (imapconn.Watch80).
	binaryNext map[string]bool
}

var _ Destination = (*IMAP)(nil)

// DialIMAP connects, secures the connection as opts.TLS says, logs in
// with internal/imapconn (so as the copy does) and reads the
// capabilities. ctx bounds the whole setup. A refused login is an
// *imapdst.LoginError, a rejected OAuth2 token an
// *imapdst.TokenRejectedError (after one more try with a fresh token when
// opts.TokenRejected is set).
func DialIMAP(ctx context.Context, opts IMAPOptions) (*IMAP, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	idle := opts.IdleTimeout
	if idle == 0 {
		idle = imapdst.DefaultIdleTimeout
	}
	conn, err := imapconn.Dial(ctx, imapconn.Options{
		Addr: opts.Addr, TLS: opts.TLS, TLSConfig: opts.TLSConfig,
		Credentials:  imapconn.Credentials{User: opts.User, AuthzID: opts.AuthzID, Password: opts.Password, Auth: opts.Auth},
		PasswordFunc: opts.PasswordFunc, TokenRejected: opts.TokenRejected, AllowPlaintext: opts.AllowPlaintext,
		IdleTimeout: idle, Timeouts: opts.Timeouts,
	})
	if err != nil {
		return nil, err
	}
	if opts.Quirks == nil {
		opts.Quirks = imapconn.NewQuirks(log, nil)
	}
	s := &IMAP{opts: opts, conn: conn, c: conn.Client(), log: log}
	release := conn.Bind(ctx)
	caps, err := s.c.Capability().Wait()
	release()
	if err != nil {
		_ = s.c.Close()
		return nil, s.wrap(ctx, fmt.Errorf("verify: CAPABILITY on %s: %w", opts.Addr, err))
	}
	s.caps = caps
	return s, nil
}

// wrap returns err, from a command on s, with the reason the connection
// failed when go-imap does not give it, and ctx's error in front when ctx
// ended (which closes the connection).
func (s *IMAP) wrap(ctx context.Context, err error) error {
	return idleconn.WithContextErr(ctx, s.conn.Explain(err))
}

// during ties the connection to ctx until the returned func runs: a
// cancelled ctx closes it, which unblocks go-imap (it takes no context).
func (s *IMAP) during(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.conn.Bind(ctx), nil
}

// Capabilities returns the capabilities the server announced after login.
func (s *IMAP) Capabilities() imap.CapSet { return s.caps }

// HasCapability reports whether the server announced name (case-insensitive).
func (s *IMAP) HasCapability(name string) bool {
	return s.caps.Has(imap.Cap(strings.ToUpper(name)))
}

// AppendLimit is the server-wide APPENDLIMIT (RFC 7889 §3); 0 when none.
func (s *IMAP) AppendLimit() int64 {
	if lim, ok := s.caps.AppendLimit(); ok && lim != nil {
		return int64(*lim)
	}
	return 0
}

// MailboxStatus is what Status reports about a mailbox.
type MailboxStatus struct {
	Exists      bool
	Messages    uint32
	UIDValidity uint32
	AppendLimit int64 // the mailbox's APPENDLIMIT, else the server's; 0 when none
}

// Status reports whether mailbox exists and, when it does, its STATUS
// (RFC 3501 §6.3.10). It creates nothing.
func (s *IMAP) Status(ctx context.Context, mailbox string) (MailboxStatus, error) {
	done, err := s.during(ctx)
	if err != nil {
		return MailboxStatus{}, err
	}
	defer done()
	out := MailboxStatus{AppendLimit: s.AppendLimit()}
	mailbox, exists, err := s.locate(mailbox)
	if err != nil || !exists {
		return out, s.wrap(ctx, err)
	}
	out.Exists = true
	q := s.opts.Quirks
	sopts := &imap.StatusOptions{NumMessages: true, UIDValidity: true}
	sopts.AppendLimit = s.caps.Has(imap.CapAppendLimit) && !q.Refused(imapconn.FeatureStatusAppendLimit)
	st, err := s.c.Status(mailbox, sopts).Wait()
	if sopts.AppendLimit && imapconn.IsRefusal(err) {
		q.Refuse(imapconn.FeatureStatusAppendLimit, err, "STATUS without it; the server-wide APPENDLIMIT applies")
		sopts.AppendLimit = false
		st, err = s.c.Status(mailbox, sopts).Wait()
	}
	if imapconn.IsRefusal(err) {
		// GNU Mailutils refuses STATUS of an INBOX that never received
		// mail; EXAMINE reports the same.
		sel, xerr := s.c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if xerr == nil {
			out.Messages, out.UIDValidity = sel.NumMessages, sel.UIDValidity
			return out, nil
		}
	}
	if err != nil {
		return out, s.wrap(ctx, fmt.Errorf("verify: STATUS %q on %s: %w", mailbox, s.opts.Addr, err))
	}
	if st.NumMessages != nil {
		out.Messages = *st.NumMessages
	}
	out.UIDValidity = st.UIDValidity
	if st.AppendLimit != nil {
		out.AppendLimit = int64(*st.AppendLimit)
	}
	return out, nil
}

// locate returns the mailbox the copy uses for mailbox, and whether it
// exists: mailbox itself, or, when that does not exist, the same name
// under the server's personal namespace prefix ("Archive" is
// "INBOX.Archive" on Courier and Cyrus, where the copy's destination
// creates it when the server refuses the name at the top).
func (s *IMAP) locate(mailbox string) (string, bool, error) {
	if m, ok := s.located[mailbox]; ok {
		return m, true, nil
	}
	ok, err := s.exists(mailbox)
	if err != nil || ok {
		return mailbox, ok, err
	}
	prefix, delim, err := s.personal()
	if err != nil || prefix == "" || strings.EqualFold(mailbox, "INBOX") ||
		len(mailbox) >= len(prefix) && strings.EqualFold(mailbox[:len(prefix)], prefix) {
		return mailbox, false, err
	}
	alt := mailbox
	if delim != 0 && delim != '/' {
		alt = strings.ReplaceAll(alt, "/", string(delim))
	}
	alt = prefix + alt
	if ok, err = s.exists(alt); err != nil || !ok {
		return mailbox, false, err
	}
	if s.located == nil {
		s.located = map[string]string{}
	}
	s.located[mailbox] = alt
	return alt, true, nil
}

// personal returns the personal namespace's prefix and separator (RFC
// 2342), "" without NAMESPACE.
func (s *IMAP) personal() (string, rune, error) {
	q := s.opts.Quirks
	if s.nsKnown || !s.caps.Has(imap.CapNamespace) || q.Refused(imapconn.FeatureNamespace) {
		return s.nsPrefix, s.nsDelim, nil
	}
	data, err := s.c.Namespace().Wait()
	if imapconn.IsRefusal(err) {
		q.Refuse(imapconn.FeatureNamespace, err, "mailboxes are looked for by the name given only")
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("verify: NAMESPACE on %s: %w", s.opts.Addr, err)
	}
	s.nsKnown = true
	if len(data.Personal) > 0 {
		s.nsPrefix, s.nsDelim = data.Personal[0].Prefix, data.Personal[0].Delim
	}
	return s.nsPrefix, s.nsDelim, nil
}

func (s *IMAP) exists(mailbox string) (bool, error) {
	list, err := s.c.List("", mailbox, nil).Collect()
	if err != nil {
		return false, fmt.Errorf("verify: LIST %q on %s: %w", mailbox, s.opts.Addr, err)
	}
	for _, l := range list {
		same := l.Mailbox == mailbox || strings.EqualFold(mailbox, "INBOX") && strings.EqualFold(l.Mailbox, "INBOX")
		if same && !slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) && !slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) {
			return true, nil
		}
	}
	return false, nil
}

// Quota is one quota root's storage (RFC 9208 §5.1: STORAGE counts units
// of 1024 octets), in bytes.
type Quota struct {
	Root       string
	UsedBytes  int64
	LimitBytes int64
}

// Quota returns the STORAGE quota of the roots mailbox belongs to
// (GETQUOTAROOT, RFC 9208 §4.3), nil when the server has no QUOTA
// capability, refuses GETQUOTAROOT (remembered in Quirks) or sets no
// storage limit.
func (s *IMAP) Quota(ctx context.Context, mailbox string) ([]Quota, error) {
	q := s.opts.Quirks
	if !s.caps.Has(imap.CapQuota) || q.Refused(imapconn.FeatureQuota) {
		return nil, nil
	}
	done, err := s.during(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	data, err := s.c.GetQuotaRoot(mailbox).Wait()
	if imapconn.IsRefusal(err) {
		q.Refuse(imapconn.FeatureQuota, err, "the quota is not checked")
		return nil, nil
	}
	if err != nil {
		return nil, s.wrap(ctx, fmt.Errorf("verify: GETQUOTAROOT %q on %s: %w", mailbox, s.opts.Addr, err))
	}
	var out []Quota
	for _, d := range data {
		if r, ok := d.Resources[imap.QuotaResourceStorage]; ok {
			out = append(out, Quota{Root: d.Root, UsedBytes: r.Usage * 1024, LimitBytes: r.Limit * 1024})
		}
	}
	return out, nil
}

// List implements Destination: EXAMINE, then one FETCH of every message's
// UID, RFC822.SIZE, FLAGS, INTERNALDATE and BODY.PEEK[HEADER.FIELDS (…)].
// It fetches by sequence number, since go-imap v2.0.0-beta.8 drops a UID
// FETCH response whose UID follows its literal (it dispatches a reply by
// the UID seen before the first literal).
func (s *IMAP) List(ctx context.Context, mailbox string) (Listing, error) {
	out := Listing{Mailbox: mailbox}
	done, err := s.during(ctx)
	if err != nil {
		return out, err
	}
	defer done()
	name, exists, err := s.locate(mailbox)
	if err != nil || !exists {
		return out, s.wrap(ctx, err)
	}
	sel, err := s.c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return out, s.wrap(ctx, fmt.Errorf("verify: EXAMINE %q on %s: %w", mailbox, s.opts.Addr, err))
	}
	out.UIDValidity = sel.UIDValidity
	if sel.NumMessages == 0 {
		return out, nil
	}
	section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: HeaderFields, Peek: true}
	cmd := s.c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: sel.NumMessages}}, &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{section},
	})
	var bad error
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var m Message
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				m.UID = uint32(it.UID)
			case imapclient.FetchItemDataFlags:
				for _, f := range it.Flags {
					m.Flags = append(m.Flags, string(f))
				}
			case imapclient.FetchItemDataInternalDate:
				m.InternalDate = it.Time
			case imapclient.FetchItemDataRFC822Size:
				m.Size = it.Size
			case imapclient.FetchItemDataBodySection:
				if it.Literal != nil {
					b, err := io.ReadAll(it.Literal)
					if err == nil && int64(len(b)) != it.Literal.Size() {
						err = fmt.Errorf("header of message %d ended after %d of %d bytes", msg.SeqNum, len(b), it.Literal.Size())
					}
					if err != nil {
						return Listing{Mailbox: mailbox}, s.abandon(ctx, fmt.Errorf("verify: FETCH in %q on %s: %w", mailbox, s.opts.Addr, err))
					}
					m.Header = b
				}
			}
		}
		if m.UID == 0 {
			if bad == nil {
				bad = fmt.Errorf("server sent FETCH for message %d without UID", msg.SeqNum)
			}
			continue
		}
		out.Messages = append(out.Messages, m)
	}
	if err := errors.Join(cmd.Close(), bad); err != nil {
		return Listing{Mailbox: mailbox}, s.wrap(ctx, fmt.Errorf("verify: FETCH in %q on %s: %w", mailbox, s.opts.Addr, err))
	}
	if uint32(len(out.Messages)) != sel.NumMessages {
		return Listing{Mailbox: mailbox}, fmt.Errorf("verify: FETCH in %q on %s returned %d of %d messages", mailbox, s.opts.Addr, len(out.Messages), sel.NumMessages)
	}
	slices.SortFunc(out.Messages, func(a, b Message) int { return int(int64(a.UID) - int64(b.UID)) })
	return out, nil
}

// Fetch implements Destination: the exact bytes of message uid
// (BODY.PEEK[], RFC 3501 §6.4.5), checked against the literal's size; a
// message whose BODY[] has NUL bytes replaced is read again as BINARY[]
// (RFC 3516) by the next Fetch (pipeline.ErrFetchAgain).
func (s *IMAP) Fetch(ctx context.Context, mailbox string, uid uint32, w io.Writer) (int64, error) {
	done, err := s.during(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	if m, ok := s.located[mailbox]; ok {
		mailbox = m
	}
	if _, err := s.c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return 0, s.wrap(ctx, fmt.Errorf("verify: EXAMINE %q on %s: %w", mailbox, s.opts.Addr, err))
	}
	data, err := s.c.Search(&imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(imap.UID(uid))}}, nil).Wait()
	if err != nil {
		return 0, s.wrap(ctx, fmt.Errorf("verify: SEARCH UID %d in %q on %s: %w", uid, mailbox, s.opts.Addr, err))
	}
	seqs := data.AllSeqNums()
	if len(seqs) != 1 {
		return 0, fmt.Errorf("verify: UID %d is not in %q on %s", uid, mailbox, s.opts.Addr)
	}
	// A server with BINARY may serve a message appended with NUL bytes
	// with each NUL replaced in BODY[] (Dovecot: 0x80) and exactly in
	// BINARY[]; read it as the copy does (imapsrc, imapdst's Digest).
	binary := s.caps.Has(imap.CapBinary)
	key := mailbox + "\x00" + strconv.FormatUint(uint64(uid), 10)
	if binary && s.binaryNext[key] {
		delete(s.binaryNext, key)
		n, nul, err := s.fetchSection(ctx, mailbox, uid, seqs[0], true, w, nil)
		if err == nil && !nul {
			err = fmt.Errorf("verify: UID %d of %q on %s no longer holds a NUL byte in BINARY[]: %w", uid, mailbox, s.opts.Addr, pipeline.ErrFetchAgain)
		}
		return n, err
	}
	var watch *imapconn.Watch80
	n, _, err := s.fetchSection(ctx, mailbox, uid, seqs[0], false, w, func(r io.Reader) io.Reader {
		if !binary {
			return r
		}
		watch = imapconn.NewWatch80(r)
		return watch
	})
	if err != nil || watch == nil || !watch.Suspect() {
		return n, err
	}
	bn, nul, err := s.fetchSection(ctx, mailbox, uid, seqs[0], true, io.Discard, nil)
	if err != nil || !nul || bn != n {
		return n, err
	}
	if s.binaryNext == nil {
		s.binaryNext = map[string]bool{}
	}
	s.binaryNext[key] = true
	return n, fmt.Errorf("verify: UID %d of %q on %s: the server serves its NUL bytes replaced in BODY[] and exactly in BINARY[]: %w", uid, mailbox, s.opts.Addr, pipeline.ErrFetchAgain)
}

// fetchSection fetches message seq (UID uid) of the selected mailbox as
// BODY.PEEK[], or BINARY.PEEK[] when binary, into w, through watch when
// not nil. It returns the bytes written and whether they hold a NUL byte.
func (s *IMAP) fetchSection(ctx context.Context, mailbox string, uid, seq uint32, binary bool, w io.Writer, watch func(io.Reader) io.Reader) (int64, bool, error) {
	opts := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
	what := "BODY[]"
	if binary {
		opts, what = &imap.FetchOptions{UID: true, BinarySection: []*imap.FetchItemBinarySection{{Peek: true}}}, "BINARY[]"
	}
	cmd := s.c.Fetch(imap.SeqSetNum(seq), opts)
	var (
		n      int64
		got    bool
		nul    bool
		gotUID imap.UID
		bad    error
	)
	body := func(lit imap.LiteralReader) error {
		if lit == nil {
			bad = errors.New("server sent " + what + " as NIL")
			return nil
		}
		var r io.Reader = lit
		if watch != nil {
			r = watch(r)
		}
		ew := &errWriter{w: w}
		nw := &imapconn.NULWriter{W: ew}
		c, err := io.Copy(nw, r)
		if err == nil && c != lit.Size() {
			err = fmt.Errorf("body ended after %d of %d bytes", c, lit.Size())
		}
		if err != nil && ew.err == nil {
			return s.abandon(ctx, fmt.Errorf("verify: fetching UID %d of %q on %s: %w", uid, mailbox, s.opts.Addr, err))
		}
		if err != nil && bad == nil {
			bad = err
		}
		n, got, nul = c, true, nw.NUL
		return nil
	}
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			var err error
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				gotUID = it.UID
			case imapclient.FetchItemDataBodySection:
				err = body(it.Literal)
			case imapclient.FetchItemDataBinarySection:
				err = body(it.Literal)
			}
			if err != nil {
				return n, false, err
			}
		}
	}
	if err := errors.Join(cmd.Close(), bad); err != nil {
		return n, false, s.wrap(ctx, fmt.Errorf("verify: fetching UID %d of %q on %s: %w", uid, mailbox, s.opts.Addr, err))
	}
	if !got || gotUID != imap.UID(uid) {
		return n, false, fmt.Errorf("verify: fetching UID %d of %q on %s: got UID %d, %s %v", uid, mailbox, s.opts.Addr, gotUID, what, got)
	}
	return n, nul, nil
}

// abandon returns err for a literal that could not be read in full and
// closes the connection, leaving the FETCH unread (no Next, no Close).
// go-imap beta.8 hands the decoder back to its reader goroutine on a
// literal's first read error, yet Next and Close would read that literal
// again to discard it, from the buffer the reader goroutine now reads: a
// data race, and garbage parsed on both sides.
func (s *IMAP) abandon(ctx context.Context, err error) error {
	s.abandoned = true
	_ = s.c.Close()
	return s.wrap(ctx, err)
}

// errWriter remembers w's error, so that it is told apart from a read
// error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// Close logs out and closes the connection (already closed after a
// failed body read: nothing to do).
func (s *IMAP) Close() error {
	if s.abandoned {
		return nil
	}
	return s.conn.Logout()
}

// hasher is an io.Writer that hashes with SHA-256.
type hasher struct{ h hash.Hash }

func newHasher() *hasher                      { return &hasher{h: sha256.New()} }
func (h *hasher) Write(p []byte) (int, error) { return h.h.Write(p) }
func (h *hasher) hex() string                 { return hex.EncodeToString(h.h.Sum(nil)) }
