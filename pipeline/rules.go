package pipeline

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/spool"
)

// The per-message rules of a copy, exported so that plan and verify decide
// exactly as the engine does: what the ledger says about a message, the
// size limit, and which source folders are copied where. Each is a
// function of one message (and its entry), so a caller can stream a
// mailbox through it without holding the whole listing.

// Disposition is what a copy does with a listed message, by its ledger
// entry.
type Disposition int

const (
	// ToCopy: no entry, or one an earlier run left pending (reconciled
	// first: it may turn out done) or failed. The message is sent.
	ToCopy Disposition = iota
	// AlreadyDone: copied and committed by an earlier run. It is not sent
	// again; its flags may be brought up to date, and it may be deleted at
	// the source (DeleteSource, DeleteAfter).
	AlreadyDone
	// SkippedEarlier: an earlier run skipped it for good (Entry.Reason: too
	// big, NUL bytes, empty, refused for good). It is listed again, not
	// retried, and is no failure of the run (Options.RetrySkipped sends
	// it again).
	SkippedEarlier
)

func (d Disposition) String() string {
	switch d {
	case ToCopy:
		return "to copy"
	case AlreadyDone:
		return "already done"
	case SkippedEarlier:
		return "skipped earlier"
	}
	return fmt.Sprintf("Disposition(%d)", int(d))
}

// DispositionOf is the disposition of a listed message whose ledger entry
// is e; ok says whether the ledger has one (a map lookup's second result).
// A gone entry listed again is done: its copy is still there. A removed
// one (mirror took its copy away) is copied again. A copy being moved or
// removed is not sent again: the run that recorded the intent settles it.
func DispositionOf(e Entry, ok bool) Disposition {
	if !ok {
		return ToCopy
	}
	switch e.State {
	case StateDone, StateGone, StateMoving, StateRemoving:
		return AlreadyDone
	case StateSkipped:
		return SkippedEarlier
	}
	return ToCopy
}

// Reasons of skips for good, as the ledger keeps them. Their first words
// are what the ledger's reason classes are read from ("contains NUL
// bytes", "too big:", "empty message").
const (
	NULReason   = "contains NUL bytes, which an IMAP literal cannot carry, and the destination has no BINARY (RFC 3516)"
	EmptyReason = "empty message"
	// NULBinaryPartReason: a literal8 APPEND would carry the bytes, but
	// a server may store a part declared binary in another encoding (RFC
	// 3516 lets it; Dovecot converts such parts to base64), so the copy
	// would not be the message byte for byte.
	NULBinaryPartReason = "contains NUL bytes in a part declared Content-Transfer-Encoding: binary, which servers re-encode on a BINARY APPEND (RFC 3516; Dovecot stores it as base64): it would not arrive byte for byte"
)

// declaresBinaryPart reports whether a message holds a header line
// "Content-Transfer-Encoding: binary" (any part, any case). It errs on
// the side of yes: a line it cannot read whole counts as one.
func declaresBinaryPart(r io.ReaderAt, size int64) bool {
	sc := bufio.NewScanner(io.NewSectionReader(r, 0, size))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	const name = "content-transfer-encoding:"
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) < len(name) || !bytes.EqualFold(line[:len(name)], []byte(name)) {
			continue
		}
		if bytes.EqualFold(bytes.TrimSpace(line[len(name):]), []byte("binary")) {
			return true
		}
	}
	return sc.Err() != nil
}

// SizeLimit is the largest message a copy sends, in bytes as sent (after
// CRLF normalisation, with the AddHeader field): the smallest of
// Options.MaxMessageBytes and the destination's APPENDLIMIT (RFC 7889, for
// the server or the mailbox). A larger message is skipped for good, with
// a reason. The zero value is no limit.
type SizeLimit struct {
	// Bytes is the limit; 0: none.
	Bytes int64
	// ByDestination says the destination's APPENDLIMIT set Bytes (it is
	// below MaxMessageBytes, or that is 0).
	ByDestination bool
}

// NewSizeLimit is the limit of a copy with MaxMessageBytes maxMessageBytes
// to a destination announcing appendLimit (0: none).
func NewSizeLimit(maxMessageBytes, appendLimit int64) SizeLimit {
	return SizeLimit{Bytes: max(maxMessageBytes, 0)}.Tighten(appendLimit)
}

// Tighten returns l lowered to the destination's appendLimit (a mailbox's
// STATUS APPENDLIMIT, RFC 7889 §4) when that is lower; 0 changes nothing.
func (l SizeLimit) Tighten(appendLimit int64) SizeLimit {
	if appendLimit > 0 && (l.Bytes == 0 || appendLimit < l.Bytes) {
		return SizeLimit{Bytes: appendLimit, ByDestination: true}
	}
	return l
}

// Allows reports whether a message of size bytes, as sent, fits.
func (l SizeLimit) Allows(size int64) bool { return l.Bytes == 0 || size <= l.Bytes }

// Reason is the skip reason of a message of size bytes, as sent.
func (l SizeLimit) Reason(size int64) string {
	return fmt.Sprintf("too big: %d bytes, the limit is %d (%s)", size, l.Bytes, l.source())
}

// AnnouncedMargin is how far above the limit a size announced by the
// source (POP3 LIST, IMAP RFC822.SIZE) may be before the message is
// skipped unread: Bytes/16 + 16 KiB.
//
// Announced sizes are not always the bytes that arrive, in either
// direction. Servers count line ends as stored (LF) rather than as sent
// (CRLF), count the dot-stuffing of POP3, add or hide header fields of
// mbox-backed mail (Status, X-Status, X-UID, X-Keywords, Content-Length:
// a few hundred bytes), or announce an estimate from their own storage
// (Exchange's RFC822.SIZE; imapsync has --skipsize for it). Too low does
// no harm: the copy measures what it reads, and the spool stops at the
// limit (Options.Spool.MaxBytes). Too high must not skip a message that
// fits, and a skip is for good. So a message announced a little over the
// limit is fetched and measured. Line-end and stuffing disagreements are
// at most one byte per line: a sixteenth of the size covers lines of 16
// characters on average, far shorter than mail's (RFC 5322 §2.1.1: at
// most 78); 16 KiB covers the header fields with room to spare. The
// margin costs at most the download of a message that is then skipped,
// never memory or disk beyond the limit.
func (l SizeLimit) AnnouncedMargin() int64 {
	if l.Bytes == 0 {
		return 0
	}
	return l.Bytes/16 + 16<<10
}

// SkipAnnounced reports whether a message announced at announced bytes is
// skipped without fetching it: it is over the limit by more than
// AnnouncedMargin.
func (l SizeLimit) SkipAnnounced(announced int64) bool {
	return l.Bytes > 0 && announced > l.Bytes+l.AnnouncedMargin()
}

// AnnouncedReason is the skip reason of a message SkipAnnounced skips.
func (l SizeLimit) AnnouncedReason(announced int64) string {
	return fmt.Sprintf("too big: the source announces %d bytes, the limit is %d (%s); not downloaded", announced, l.Bytes, l.source())
}

// ProbableReason says why a message announced at announced bytes, over
// the limit but within AnnouncedMargin, will probably be skipped: the copy
// downloads it to measure (plan reports it).
func (l SizeLimit) ProbableReason(announced int64) string {
	return fmt.Sprintf("probably too big: the source announces %d bytes, the limit is %d (%s); the copy downloads it to measure", announced, l.Bytes, l.source())
}

// StoppedReason is the skip reason of a message whose download was stopped
// when it passed the limit, though the source announced announced bytes.
func (l SizeLimit) StoppedReason(announced int64) string {
	return fmt.Sprintf("too big: more than %d bytes, the limit (%s), though the source announced %d; download stopped", l.Bytes, l.source(), announced)
}

func (l SizeLimit) source() string {
	if l.ByDestination {
		return "the destination's APPENDLIMIT"
	}
	return "max message size"
}

// FolderPlan says which source mailboxes a copy copies and where each goes:
// every message to one mailbox (POP3), or each source mailbox to the one
// Options.MapFolders gave it. The zero value copies nothing.
type FolderPlan struct {
	folders map[string]string
	all     string
}

// AllTo is the plan of a source without folders: every message goes to
// mailbox ("" is INBOX, as for Options.Mailbox).
func AllTo(mailbox string) FolderPlan { return FolderPlan{all: mapping.DestFolder(mailbox)} }

// MappedFolders is the plan MapFolders returned: folders maps a source
// mailbox to its destination; one absent or mapped to "" is not copied.
func MappedFolders(folders map[string]string) FolderPlan { return FolderPlan{folders: folders} }

// Dest returns the destination mailbox of m; ok is false when m's mailbox
// is not copied (the copy does not list, fetch or count it).
func (p FolderPlan) Dest(m SourceMessage) (mailbox string, ok bool) {
	if p.all != "" {
		return p.all, true
	}
	d := p.folders[m.Mailbox]
	return d, d != ""
}

// ExpectedSize is what the copy expects to send for m before fetching it:
// the size the source announces plus the AddHeader field.
func (o *Options) ExpectedSize(m SourceMessage) int64 {
	return m.Size + int64(len(o.header(m)))
}

// header is the AddHeader field for m, "" when there is none.
func (o *Options) header(m SourceMessage) string { return headerOf(o.AddHeader, m) }

func headerOf(addHeader func(SourceMessage) string, m SourceMessage) string {
	if addHeader == nil {
		return ""
	}
	return addHeader(m)
}

// StartMessage returns a spool (spool options so) that already holds what
// the copy sends ahead of m's bytes: the field addHeader gives (the copy's
// Options.AddHeader; nil adds none). The caller writes the source's bytes
// after it. verify spools a source message through it too, so that it
// hashes and measures what the copy sent, not the bare source.
func StartMessage(so *spool.Options, addHeader func(SourceMessage) string, m SourceMessage) (*spool.Writer, error) {
	w := spool.New(so)
	w.Expect(m.Size + int64(len(headerOf(addHeader, m))))
	if h := headerOf(addHeader, m); h != "" {
		if _, err := w.Write([]byte(h)); err != nil {
			w.Discard()
			return nil, err
		}
	}
	return w, nil
}
