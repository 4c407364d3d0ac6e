// Package verify compares what a source holds with what a destination holds,
// message by message, the way `rclone check` compares files: its one job is
// to say, for each message, whether it is on the destination with the same
// bytes, flags and internal date, and which destination messages have no
// source message.
//
// A source message is found on the destination in one of two ways:
//
//   - By the ledger: a done entry names the destination mailbox,
//     UIDVALIDITY and UID (RFC 4315 APPENDUID). The fast check then compares
//     the entry's size with the destination's RFC822.SIZE (RFC 3501 §6.4.5);
//     the full check downloads both sides and compares SHA-256 digests.
//   - By content, when there is no usable ledger entry (no ledger, another
//     tool did the migration, or UIDVALIDITY changed): the source message is
//     downloaded, normalised as the copy does (spool: bare LF or CR becomes
//     CRLF; the copy's X-UIDL field, Options.AddHeader, put before it) and
//     hashed; it matches the destination message with the same
//     Message-ID, size and digest, else any with the same size and digest. A
//     message with the same Message-ID whose bytes differ is reported as
//     differing rather than missing.
//
// Flags and internal dates: an IMAP source's message carries its own
// (pipeline.SourceMessage.Flags and InternalDate). A POP3 message has none,
// so the expected values are the ones the copy's policies derive from the
// header (mapping.Flags and mapping.InternalDate), computed from the
// destination's copy of the header once the bytes are known to match. A
// date the policy could only take from the time of transfer is not checked.
// Flags compare as flag sync compares them (mapping.SameFlags): in any case,
// keywords too, and without \Recent, which no client can set (RFC 3501
// §2.3.2).
package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/spool"
)

// Kind is the outcome of comparing one message.
type Kind int

const (
	// Match: on the destination, same bytes (or size, in the fast check),
	// flags and internal date.
	Match Kind = iota
	// Missing: not on the destination.
	Missing
	// Differs: on the destination with another size or digest.
	Differs
	// FlagsDiffer: same bytes, other flags.
	FlagsDiffer
	// DateDiffers: same bytes and flags, another internal date.
	DateDiffers
	// Extra: a destination message no source message accounts for (a
	// live INBOX also receives other mail). It makes a check fail only
	// with Options.Strict.
	Extra
	// Duplicate: a destination message with the same bytes as a source
	// message that another destination message already stands for: the
	// source message is on the destination twice or more.
	Duplicate
	// Changed: on the destination, with the same flags and internal date,
	// and changed only in a way the server is documented to change
	// messages (Difference.Detail says which; docs/servers.md): line ends,
	// header fields of mbox storage, 8-bit header bytes replaced, or a
	// source that serves the message differently on each read. It does not
	// make a check fail.
	Changed
)

// Symbol is the one-character prefix of the text report, after
// `rclone check --combined`: "=", "-", "*", "!", "~" and "+".
func (k Kind) Symbol() string {
	switch k {
	case Match:
		return "="
	case Missing:
		return "-"
	case Differs:
		return "*"
	case FlagsDiffer:
		return "!"
	case DateDiffers:
		return "~"
	case Extra:
		return "+"
	case Duplicate:
		return "D"
	case Changed:
		return "%"
	}
	return "?"
}

func (k Kind) String() string {
	switch k {
	case Match:
		return "match"
	case Missing:
		return "missing"
	case Differs:
		return "differs"
	case FlagsDiffer:
		return "flags-differ"
	case DateDiffers:
		return "date-differs"
	case Extra:
		return "extra"
	case Duplicate:
		return "duplicate"
	case Changed:
		return "changed"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// MarshalText implements encoding.TextMarshaler (JSON reports).
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler: the names String returns.
func (k *Kind) UnmarshalText(b []byte) error {
	for c := Match; c <= Changed; c++ {
		if c.String() == string(b) {
			*k = c
			return nil
		}
	}
	return fmt.Errorf("verify: unknown kind %q", b)
}

// Source is the read side of a pipeline.Source (pop3src.Source,
// imapsrc.Source).
type Source interface {
	pipeline.Lister
	Fetch(ctx context.Context, msg pipeline.SourceMessage, w io.Writer) (int64, error)
}

// Destination is a read-only view of the destination server (IMAP).
type Destination interface {
	// List returns every message of mailbox with its UID, size, flags,
	// internal date and the header fields the policies read. A mailbox that
	// does not exist gives an empty Listing and no error.
	List(ctx context.Context, mailbox string) (Listing, error)
	// Fetch writes the exact bytes of message uid of mailbox to w. An
	// error wrapping pipeline.ErrFetchAgain means what was written is not
	// them and the next Fetch of the message writes them.
	Fetch(ctx context.Context, mailbox string, uid uint32, w io.Writer) (int64, error)
}

// Listing is one destination mailbox.
type Listing struct {
	Mailbox     string
	UIDValidity uint32
	Messages    []Message
}

// Message is one destination message.
type Message struct {
	UID          uint32
	Size         int64
	Flags        []string
	InternalDate time.Time
	// Header holds the fields the policies read (HeaderFields), in the
	// message's order.
	Header []byte
}

// HeaderFields are the header fields Destination.List fetches: what
// mapping.Flags, mapping.InternalDate and mapping.MessageID read.
var HeaderFields = []string{"Received", "Date", "Message-ID", "Status", "X-Status"}

// Options configures Check.
type Options struct {
	// Mailbox is the destination mailbox of source messages without a
	// folder of their own (POP3). Default "INBOX".
	Mailbox string
	// MailboxOf, when set, gives the destination mailbox of a source
	// message that has no ledger entry (IMAP sources, folder mapping).
	MailboxOf func(pipeline.SourceMessage) string
	// Ledger is the account's entries by key; nil or empty matches by
	// content only.
	Ledger map[string]pipeline.Entry
	// Full downloads both sides of every ledger match and compares digests
	// instead of sizes.
	Full bool
	// FlagPolicy and DatePolicy are the copy's policies for messages
	// without flags or dates of their own (POP3).
	FlagPolicy mapping.FlagPolicy
	DatePolicy mapping.DatePolicy
	// Spool bounds the memory used to hash a source message.
	Spool spool.Options
	// AddHeader is the copy's pipeline.Options.AddHeader (X-UIDL): the
	// field the copy put before each message. A source message is hashed
	// and measured with it, as the copy sent it (pipeline.StartMessage).
	AddHeader func(pipeline.SourceMessage) string
	// Strict makes extras (destination messages that are no source
	// message) a difference that fails the check, not only information.
	Strict bool
	// Now is the clock the date policy's plausibility check uses; default
	// time.Now.
	Now    func() time.Time
	Logger *slog.Logger // nil discards
}

// Difference is the outcome for one message.
type Difference struct {
	Kind Kind `json:"kind"`
	// Key is the source key; "" for Extra; for Duplicate, the source
	// message it is a second copy of.
	Key string `json:"key,omitempty"`
	// Mailbox and UID locate the destination message; UID is 0 when there
	// is none (Missing).
	Mailbox string `json:"mailbox"`
	UID     uint32 `json:"uid,omitempty"`
	// Detail says what differs, for people.
	Detail string `json:"detail,omitempty"`
}

// Name is how the report names the message: the source key (an IMAP key
// as "Mailbox;UIDVALIDITY=v;UID=u"), or for Extra and Duplicate, which
// are destination messages, an RFC 5092 style "Mailbox/;UID=u".
func (d Difference) Name() string {
	if d.Kind == Extra || d.Kind == Duplicate || d.Key == "" {
		return fmt.Sprintf("%s/;UID=%d", d.Mailbox, d.UID)
	}
	return DisplayKey(d.Key)
}

// DisplayKey prints a source key on one line: IMAP keys
// ("mailbox\x00uidvalidity\x00uid") as "mailbox;UIDVALIDITY=v;UID=u", keys
// with other control characters quoted.
func DisplayKey(key string) string {
	if parts := strings.Split(key, "\x00"); len(parts) == 3 {
		key = fmt.Sprintf("%s;UIDVALIDITY=%s;UID=%s", parts[0], parts[1], parts[2])
	}
	if strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ' ' }) {
		return fmt.Sprintf("%q", key)
	}
	return key
}

// Stats counts the outcomes.
type Stats struct {
	SourceMessages int `json:"source_messages"`
	// LedgerOnly are done entries whose source message is gone (moved with
	// --delete-source); they are checked against the destination too.
	LedgerOnly  int `json:"ledger_only"`
	DestMessage int `json:"destination_messages"`
	Matched     int `json:"matched"`
	Missing     int `json:"missing"`
	Differs     int `json:"differs"`
	FlagsDiffer int `json:"flags_differ"`
	DateDiffers int `json:"date_differs"`
	Extra       int `json:"extra"`
	// Duplicates are destination messages that are second (or later)
	// copies of a source message.
	Duplicates int `json:"duplicates"`
	// Changed counts the messages changed as their server documents it
	// (Kind Changed).
	Changed int `json:"changed"`
	// ByContent is how many matches were found by content, not the ledger.
	ByContent int `json:"matched_by_content"`
}

// Result is the outcome of Check.
type Result struct {
	// Items holds one entry per message, matches included, source messages
	// in source order, then ledger-only entries by key, then extras by
	// mailbox and UID.
	Items []Difference
	Stats Stats
	// Strict is Options.Strict: extras count against OK.
	Strict bool
}

// OK reports whether every source message is on the destination once,
// identical: nothing missing, different or duplicated. Extras are allowed
// unless Strict.
func (r *Result) OK() bool {
	s := r.Stats
	bad := s.Missing + s.Differs + s.FlagsDiffer + s.DateDiffers + s.Duplicates
	if r.Strict {
		bad += s.Extra
	}
	return bad == 0
}

func (s *Stats) count(k Kind) {
	switch k {
	case Match:
		s.Matched++
	case Missing:
		s.Missing++
	case Differs:
		s.Differs++
	case FlagsDiffer:
		s.FlagsDiffer++
	case DateDiffers:
		s.DateDiffers++
	case Extra:
		s.Extra++
	case Duplicate:
		s.Duplicates++
	case Changed:
		s.Changed++
	}
}

// mbox is one destination mailbox during a check.
type mbox struct {
	Listing
	byUID   map[uint32]int
	byMsgID map[string][]int
	claimed map[uint32]bool
	digests map[uint32]string
}

// subject is one message to find: a source message, or a ledger entry
// whose source message is gone.
type subject struct {
	msg     *pipeline.SourceMessage // nil: gone from the source
	key     string
	entry   *pipeline.Entry // nil: none in the ledger
	mailbox string
	// Known content: from the ledger entry or from downloading the source.
	digest    string
	size      int64
	messageID string
	fetched   bool   // digest, size and messageID come from the source's bytes
	body      []byte // the source's bytes as the copy sends them, when fetched and small
	// change, when not "", says how the destination copy was changed as
	// its server documents (allowedChange, or a source that re-encodes).
	change string
	// Outcome.
	dest     *Message
	byLedger bool
	out      Difference
	decided  bool
}

type checker struct {
	src   Source
	dst   Destination
	opts  Options
	log   *slog.Logger
	boxes map[string]*mbox
}

// Check compares src with dst. It returns an error only when a side cannot
// be read; every per-message outcome is in the Result.
func Check(ctx context.Context, src Source, dst Destination, opts Options) (*Result, error) {
	if opts.Mailbox == "" {
		opts.Mailbox = "INBOX"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &checker{src: src, dst: dst, opts: opts, log: log, boxes: map[string]*mbox{}}
	msgs, err := pipeline.ListAll(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("listing the source: %w", err)
	}
	var subs []*subject
	listed := make(map[string]bool, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		listed[m.Key] = true
		s := &subject{msg: m, key: m.Key, mailbox: c.mailboxOf(*m)}
		if e, ok := opts.Ledger[m.Key]; ok {
			s.entry = &e
		}
		subs = append(subs, s)
	}
	var gone []string
	for k, e := range opts.Ledger {
		if !listed[k] && pipeline.DispositionOf(e, true) == pipeline.AlreadyDone {
			gone = append(gone, k)
		}
	}
	sort.Strings(gone)
	for _, k := range gone {
		e := opts.Ledger[k]
		subs = append(subs, &subject{key: k, entry: &e, mailbox: c.mailboxOf(pipeline.SourceMessage{Key: k})})
	}

	res := &Result{Strict: opts.Strict}
	res.Stats.SourceMessages = len(msgs)
	res.Stats.LedgerOnly = len(gone)

	// 1. The ledger's UIDs are authoritative: claim them first.
	var byContent []*subject
	for _, s := range subs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ok, err := c.byLedger(ctx, s)
		if err != nil {
			return nil, err
		}
		if !ok {
			byContent = append(byContent, s)
		}
	}
	// 2. Everything else by content.
	for _, s := range byContent {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := c.byContent(ctx, s); err != nil {
			return nil, err
		}
	}
	// 3. Compare what was paired.
	for _, s := range subs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := c.compare(ctx, s); err != nil {
			return nil, err
		}
		res.Items = append(res.Items, s.out)
		res.Stats.count(s.out.Kind)
		if (s.out.Kind == Match || s.out.Kind == Changed) && !s.byLedger {
			res.Stats.ByContent++
		}
	}
	// 4. What no source message claimed: a second copy of one, or extra.
	names := make([]string, 0, len(c.boxes))
	for n := range c.boxes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b := c.boxes[n]
		res.Stats.DestMessage += len(b.Messages)
		for i := range b.Messages {
			m := &b.Messages[i]
			if b.claimed[m.UID] {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			of, err := c.duplicateOf(ctx, b, m, subs)
			if err != nil {
				return nil, err
			}
			if of != nil {
				res.Items = append(res.Items, Difference{Kind: Duplicate, Key: of.key, Mailbox: n, UID: m.UID,
					Detail: fmt.Sprintf("a second copy of %s (UID %d), same bytes", DisplayKey(of.key), of.dest.UID)})
				res.Stats.count(Duplicate)
				continue
			}
			d := Difference{Kind: Extra, Mailbox: n, UID: m.UID, Detail: fmt.Sprintf("%d bytes, no source message", m.Size)}
			if id := mapping.MessageID(m.Header); id != "" {
				d.Detail += ", Message-ID " + id
			}
			res.Items = append(res.Items, d)
			res.Stats.count(Extra)
		}
	}
	return res, nil
}

// duplicateOf returns the subject whose destination copy m repeats: one
// found in m's mailbox whose bytes are m's (same size, and same Message-ID
// when both have one, then the same SHA-256), or nil. Only m and, when
// its digest is not known, the subject's copy are downloaded, and only
// for a candidate of the same size.
func (c *checker) duplicateOf(ctx context.Context, b *mbox, m *Message, subs []*subject) (*subject, error) {
	id := mapping.MessageID(m.Header)
	var digest string
	for _, s := range subs {
		if s.dest == nil || s.mailbox != b.Mailbox || s.dest.Size != m.Size {
			continue
		}
		if k := s.out.Kind; k != Match && k != FlagsDiffer && k != DateDiffers && k != Changed {
			continue // s's copy is not the source's bytes (or a documented change of them)
		}
		if sid := mapping.MessageID(s.dest.Header); id != "" && sid != "" && sid != id {
			continue
		}
		if digest == "" {
			d, err := c.destDigest(ctx, b, m.UID)
			if err != nil {
				return nil, err
			}
			digest = d
		}
		// The copy's own digest: the destination's bytes, which a full
		// or content match read already (the ledger's digest is of what
		// was sent, the same bytes).
		theirs, err := c.destDigest(ctx, b, s.dest.UID)
		if err != nil {
			return nil, err
		}
		if theirs == digest {
			return s, nil
		}
	}
	return nil, nil
}

func (c *checker) mailboxOf(m pipeline.SourceMessage) string {
	if c.opts.MailboxOf != nil && m.Mailbox != "" {
		if mb := c.opts.MailboxOf(m); mb != "" {
			return mb
		}
	}
	return c.opts.Mailbox
}

// box lists mailbox once per check.
func (c *checker) box(ctx context.Context, name string) (*mbox, error) {
	if b, ok := c.boxes[name]; ok {
		return b, nil
	}
	l, err := c.dst.List(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("listing destination mailbox %q: %w", name, err)
	}
	b := &mbox{Listing: l, byUID: map[uint32]int{}, byMsgID: map[string][]int{},
		claimed: map[uint32]bool{}, digests: map[uint32]string{}}
	b.Mailbox = name
	for i, m := range l.Messages {
		b.byUID[m.UID] = i
		if id := mapping.MessageID(m.Header); id != "" {
			b.byMsgID[id] = append(b.byMsgID[id], i)
		}
	}
	c.boxes[name] = b
	return b, nil
}

// byLedger pairs s with the destination message its done entry names. It
// reports false when the entry cannot say (no entry, not done, no UID, or
// UIDVALIDITY changed), leaving s to be found by content; a done entry
// whose UID is no longer on the destination makes s Missing.
func (c *checker) byLedger(ctx context.Context, s *subject) (bool, error) {
	e := s.entry
	if e == nil || pipeline.DispositionOf(*e, true) != pipeline.AlreadyDone {
		return false, nil
	}
	if e.DestMailbox != "" {
		s.mailbox = e.DestMailbox
	}
	s.digest, s.size, s.messageID = e.Digest, e.Size, e.MessageID
	b, err := c.box(ctx, s.mailbox)
	if err != nil {
		return false, err
	}
	if e.DestUID == 0 || e.DestUIDValidity != b.UIDValidity {
		return false, nil
	}
	s.byLedger = true
	i, ok := b.byUID[e.DestUID]
	if !ok || b.claimed[e.DestUID] {
		s.decide(Missing, s.mailbox, 0, fmt.Sprintf("the ledger has it as UID %d, which %q no longer holds", e.DestUID, s.mailbox))
		return true, nil
	}
	b.claimed[e.DestUID] = true
	s.dest = &b.Messages[i]
	return true, nil
}

// byContent finds s on the destination by Message-ID, size and digest.
func (c *checker) byContent(ctx context.Context, s *subject) error {
	b, err := c.box(ctx, s.mailbox)
	if err != nil {
		return err
	}
	known := s.entry != nil && copied(s.entry) && s.entry.Digest != ""
	if !known {
		if s.msg == nil {
			s.decide(Missing, s.mailbox, 0, "gone from the source and not recorded with a digest")
			return nil
		}
		if err := c.fetchSource(ctx, s); err != nil {
			return err
		}
	}
	candidates := func(pred func(m *Message) bool) []int {
		var out []int
		for i := range b.Messages {
			m := &b.Messages[i]
			if !b.claimed[m.UID] && pred(m) {
				out = append(out, i)
			}
		}
		return out
	}
	var sameID []int
	if s.messageID != "" {
		for _, i := range b.byMsgID[s.messageID] {
			if !b.claimed[b.Messages[i].UID] {
				sameID = append(sameID, i)
			}
		}
	}
	try := func(idx []int) (int, error) {
		for _, i := range idx {
			m := &b.Messages[i]
			if m.Size != s.size {
				continue
			}
			d, err := c.destDigest(ctx, b, m.UID)
			if err != nil {
				return -1, err
			}
			if d == s.digest {
				return i, nil
			}
		}
		return -1, nil
	}
	i, err := try(sameID)
	if err != nil {
		return err
	}
	if i < 0 {
		if i, err = try(candidates(func(m *Message) bool { return m.Size == s.size })); err != nil {
			return err
		}
	}
	if i >= 0 {
		m := &b.Messages[i]
		b.claimed[m.UID] = true
		s.dest = m
		return nil
	}
	// Nothing byte for byte: a copy changed as its server documents it
	// (mbox storage's fields, 8-bit header bytes), by Message-ID, then
	// nearest in size; else a source that re-encodes on each read.
	for _, i := range c.changedCandidates(b, s, sameID) {
		m := &b.Messages[i]
		ok, err := c.changedCopy(ctx, s, b, m)
		if err != nil {
			return err
		}
		if ok {
			b.claimed[m.UID] = true
			s.dest = m
			return nil
		}
	}
	if len(sameID) > 0 {
		if ok, err := c.reencoded(ctx, s); err != nil {
			return err
		} else if ok {
			m := &b.Messages[sameID[0]]
			b.claimed[m.UID] = true
			s.dest = m
			return nil
		}
	}
	if len(sameID) > 0 {
		m := &b.Messages[sameID[0]]
		b.claimed[m.UID] = true
		s.dest = m
		s.decide(Differs, s.mailbox, m.UID, fmt.Sprintf("same Message-ID, other content: %d bytes at the source, %d at the destination", s.size, m.Size))
		return nil
	}
	detail := "not on the destination"
	if s.entry != nil {
		switch s.entry.State {
		case pipeline.StateSkipped, pipeline.StateFailed:
			detail = fmt.Sprintf("%s by the copy: %s", s.entry.State, s.entry.Reason)
		case pipeline.StatePending:
			detail = "left pending by an interrupted copy, not on the destination"
		case pipeline.StateDone, pipeline.StateGone:
			detail = "the ledger has it as done, but no destination message has its size and digest"
		}
	}
	s.decide(Missing, s.mailbox, 0, detail)
	return nil
}

// changedCandidates are the unclaimed destination messages s is compared
// with when none has its bytes: sameID first, then those within 4 KiB of
// its size, nearest first; at most maxChangedCandidates.
func (c *checker) changedCandidates(b *mbox, s *subject, sameID []int) []int {
	out := append([]int(nil), sameID...)
	var near []int
	for i := range b.Messages {
		m := &b.Messages[i]
		if d := m.Size - s.size; !b.claimed[m.UID] && d >= -4096 && d <= 4096 && !slices.Contains(sameID, i) {
			near = append(near, i)
		}
	}
	dist := func(i int) int64 {
		d := b.Messages[i].Size - s.size
		if d < 0 {
			return -d
		}
		return d
	}
	slices.SortStableFunc(near, func(x, y int) int { return int(dist(x) - dist(y)) })
	out = append(out, near...)
	if len(out) > maxChangedCandidates {
		out = out[:maxChangedCandidates]
	}
	return out
}

func (s *subject) decide(k Kind, mailbox string, uid uint32, detail string) {
	s.out = Difference{Kind: k, Key: s.key, Mailbox: mailbox, UID: uid, Detail: detail}
	s.decided = true
}

// fetchSource downloads s through a spool, as the copy does (with the
// copy's header field, Options.AddHeader), for the digest, size and
// Message-ID of what the copy sent.
func (c *checker) fetchSource(ctx context.Context, s *subject) error {
	var w *spool.Writer
	for again := false; ; again = true {
		var err error
		w, err = pipeline.StartMessage(&c.opts.Spool, c.opts.AddHeader, *s.msg)
		if err != nil {
			return fmt.Errorf("spooling source message %s: %w", DisplayKey(s.key), err)
		}
		_, err = c.src.Fetch(ctx, *s.msg, w)
		if err == nil {
			break
		}
		w.Discard()
		if errors.Is(err, pipeline.ErrFetchAgain) && !again {
			continue // once, as the copy does (pipeline.ErrFetchAgain)
		}
		return fmt.Errorf("fetching source message %s: %w", DisplayKey(s.key), err)
	}
	body, err := w.Finish()
	if err != nil {
		return fmt.Errorf("spooling source message %s: %w", DisplayKey(s.key), err)
	}
	defer body.Close()
	d := body.Digest()
	s.digest, s.size = hex.EncodeToString(d[:]), body.Size()
	s.messageID = mapping.MessageID(mapping.HeaderSection(body.Header()))
	s.fetched = true
	s.body = nil
	if body.Size() <= keepBodyBytes {
		s.body = make([]byte, body.Size())
		if _, err := io.ReadFull(io.NewSectionReader(body, 0, body.Size()), s.body); err != nil {
			return fmt.Errorf("reading spooled source message %s: %w", DisplayKey(s.key), err)
		}
	}
	return nil
}

// keepBodyBytes bounds the source bytes a check keeps, to compare a
// message with a destination copy whose digest differs (changedCopy).
const keepBodyBytes = 8 << 20

// maxChangedCandidates bounds the destination messages a source message
// that matched none byte for byte is compared with (changedCopy): those
// with its Message-ID first, then those nearest in size.
const maxChangedCandidates = 8

// destBytes downloads a destination message's exact bytes.
func (c *checker) destBytes(ctx context.Context, b *mbox, uid uint32) ([]byte, error) {
	var buf bytes.Buffer
	_, err := c.dst.Fetch(ctx, b.Mailbox, uid, &buf)
	if errors.Is(err, pipeline.ErrFetchAgain) {
		buf.Reset()
		_, err = c.dst.Fetch(ctx, b.Mailbox, uid, &buf)
	}
	if err != nil {
		return nil, fmt.Errorf("fetching destination UID %d of %q: %w", uid, b.Mailbox, err)
	}
	sum := sha256.Sum256(buf.Bytes())
	b.digests[uid] = hex.EncodeToString(sum[:])
	return buf.Bytes(), nil
}

// changedCopy reports whether destination message m is s changed only as
// servers are documented to change messages (allowedChange), and sets
// s.change to how. A source message gone from the source is compared by
// the ledger's digest of what the copy sent: m without the fields mbox
// storage adds must have it.
func (c *checker) changedCopy(ctx context.Context, s *subject, b *mbox, m *Message) (bool, error) {
	if s.msg == nil {
		if s.digest == "" {
			return false, nil
		}
		dst, err := c.destBytes(ctx, b, m.UID)
		if err != nil {
			return false, err
		}
		h, body := splitHeader(crlf(dst))
		h, fields := stripFields(h, MboxFields)
		sum := sha256.Sum256(append(append([]byte(nil), h...), body...))
		if len(fields) == 0 || hex.EncodeToString(sum[:]) != s.digest {
			return false, nil
		}
		var names []string
		for n := range fields {
			names = append(names, n)
		}
		sort.Strings(names)
		s.change = change{added: names}.String()
		return true, nil
	}
	if s.body == nil && (!s.fetched || s.size <= keepBodyBytes) {
		if err := c.fetchSource(ctx, s); err != nil {
			return false, err
		}
	}
	if s.body == nil {
		return false, nil // too large to keep: compared by digest only
	}
	dst, err := c.destBytes(ctx, b, m.UID)
	if err != nil {
		return false, err
	}
	ch, ok := allowedChange(s.body, dst)
	if ok {
		s.change = ch.String()
	}
	return ok, nil
}

// reencoded reads the source message a second time and reports whether
// the two reads differ: a server that re-encodes a message on every read
// (Courier's pop3d, for a message with UTF-8 in its header, to a client
// that does not ask for UTF-8) can never be compared byte for byte. It
// sets s.change to say so.
func (c *checker) reencoded(ctx context.Context, s *subject) (bool, error) {
	if s.msg == nil {
		return false, nil
	}
	if !s.fetched {
		if err := c.fetchSource(ctx, s); err != nil {
			return false, err
		}
	}
	first := s.digest
	if err := c.fetchSource(ctx, s); err != nil {
		return false, err
	}
	if s.digest == first {
		return false, nil
	}
	s.change = "the source serves different bytes on each read (re-encoded by the server): not compared byte for byte"
	return true, nil
}

// destDigest hashes a destination message's exact bytes, once per check.
func (c *checker) destDigest(ctx context.Context, b *mbox, uid uint32) (string, error) {
	if d, ok := b.digests[uid]; ok {
		return d, nil
	}
	h := newHasher()
	_, err := c.dst.Fetch(ctx, b.Mailbox, uid, h)
	if errors.Is(err, pipeline.ErrFetchAgain) {
		h = newHasher()
		_, err = c.dst.Fetch(ctx, b.Mailbox, uid, h)
	}
	if err != nil {
		return "", fmt.Errorf("fetching destination UID %d of %q: %w", uid, b.Mailbox, err)
	}
	d := h.hex()
	b.digests[uid] = d
	return d, nil
}

// compare decides the outcome of a paired subject.
func (c *checker) compare(ctx context.Context, s *subject) error {
	if s.decided {
		return nil
	}
	m := s.dest
	if m == nil {
		s.decide(Missing, s.mailbox, 0, "not on the destination")
		return nil
	}
	b := c.boxes[s.mailbox]
	switch {
	case s.byLedger && c.opts.Full:
		if s.msg != nil {
			if err := c.fetchSource(ctx, s); err != nil {
				return err
			}
		}
		d, err := c.destDigest(ctx, b, m.UID)
		if err != nil {
			return err
		}
		if d != s.digest {
			what := "the source's"
			if !s.fetched {
				what = "the ledger's (the source message is gone)"
			}
			detail := fmt.Sprintf("digest %s, %s is %s", short(d), what, short(s.digest))
			if ok, err := c.explained(ctx, s, b, m); err != nil || !ok {
				s.decide(Differs, s.mailbox, m.UID, detail)
				return err
			}
		}
	case s.byLedger:
		if m.Size != s.size {
			detail := fmt.Sprintf("%d bytes, the ledger recorded %d", m.Size, s.size)
			if ok, err := c.explained(ctx, s, b, m); err != nil || !ok {
				s.decide(Differs, s.mailbox, m.UID, detail)
				return err
			}
		}
	}
	// The bytes match, so the destination's header is the source's.
	var msg pipeline.SourceMessage
	if s.msg != nil {
		msg = *s.msg
	}
	want := msg.Flags
	if want == nil {
		want = mapping.Flags(m.Header, c.opts.FlagPolicy)
	} else {
		want = expectedSourceFlags(want, m.Flags, s.entry)
	}
	if !mapping.SameFlags(want, m.Flags) {
		s.decide(FlagsDiffer, s.mailbox, m.UID, fmt.Sprintf("flags %s, want %s", flagList(m.Flags), flagList(want)))
		return nil
	}
	wantDate, checkDate := msg.InternalDate, !msg.InternalDate.IsZero()
	if !checkDate {
		var from mapping.DateSource
		wantDate, from = mapping.InternalDate(m.Header, c.opts.DatePolicy, c.opts.Now())
		checkDate = from != mapping.FromNow
	}
	// INTERNALDATE has one-second resolution (RFC 3501 §9 date-time).
	if checkDate && !m.InternalDate.IsZero() && m.InternalDate.Unix() != wantDate.Unix() {
		s.decide(DateDiffers, s.mailbox, m.UID, fmt.Sprintf("internal date %s, want %s",
			m.InternalDate.Format(time.RFC3339), wantDate.Format(time.RFC3339)))
		return nil
	}
	if s.change != "" {
		s.decide(Changed, s.mailbox, m.UID, "changed as the server documents it: "+s.change)
		return nil
	}
	s.decide(Match, s.mailbox, m.UID, "")
	return nil
}

// explained reports whether the copy m of s, whose bytes differ from the
// source's, differs only as servers are documented to change messages,
// or comes from a source that serves different bytes on each read.
func (c *checker) explained(ctx context.Context, s *subject, b *mbox, m *Message) (bool, error) {
	if ok, err := c.changedCopy(ctx, s, b, m); err != nil || ok {
		return ok, err
	}
	return c.reencoded(ctx, s)
}

// expectedSourceFlags is what the destination copy of a message with the
// source flags src should carry. The copy drops what no server may store
// (mapping.CleanFlags) and what the destination mailbox's PERMANENTFLAGS
// refuse; verify opens the destination read-only (EXAMINE lists no
// permanent flags), so it takes the ledger's word for the refusals: a
// keyword the ledger's entry does not record as given to the destination,
// and which the destination does not have, is taken as refused and not
// expected. A keyword added at the source after the last run (or with
// flag sync off) is therefore reported only once the ledger records it;
// without a ledger entry every valid source flag is expected. System flags
// are always expected.
func expectedSourceFlags(src, dst []string, e *pipeline.Entry) []string {
	want, _ := mapping.CleanFlags(src, nil)
	if e == nil || !copied(e) {
		return want
	}
	has := func(set []string, f string) bool {
		return slices.ContainsFunc(set, func(g string) bool { return mapping.SameFlags([]string{f}, []string{g}) })
	}
	return slices.DeleteFunc(want, func(f string) bool {
		return !strings.HasPrefix(f, `\`) && !has(e.Flags, f) && !has(dst, f)
	})
}

func flagList(fs []string) string {
	fs = slices.DeleteFunc(slices.Clone(fs), func(f string) bool { return mapping.FlagKey(f) == `\recent` })
	return "(" + strings.Join(fs, " ") + ")"
}

func short(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// copied reports whether the ledger has e's message as copied: done, or
// gone from the source since (its copy stays).
func copied(e *pipeline.Entry) bool {
	return e.State == pipeline.StateDone || e.State == pipeline.StateGone
}
