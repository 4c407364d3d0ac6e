package pipeline

import (
	"context"
	"errors"
	"io"
	"time"
)

// SourceMessage is one message as a source lists it. Key is the message's
// stable identity within its account and never a session-scoped number:
// the POP3 UIDL (or "sha256:<hex>" when the server has no UIDL), for IMAP
// sources "<mailbox>\x00<uidvalidity>\x00<uid>", for a Gmail source copied
// one copy per message "gm:<X-GM-MSGID>".
type SourceMessage struct {
	Key          string
	Mailbox      string    // source mailbox; "" for POP3
	Size         int64     // size the source announces; advisory only
	InternalDate time.Time // zero when the source has none (POP3)
	Flags        []string  // nil when the source has none (POP3)
	// Seq is the number the source gave the message in the session that
	// listed it (the POP3 message number, a Gmail message's UID in the
	// folder it is read from), so that Fetch and Delete need no index of
	// the whole listing; 0 when the source has none. It means nothing to
	// another session.
	Seq uint32
	// EmailID is the server's EMAILID of the message (RFC 8474 OBJECTID):
	// the same in every folder the message is moved or copied to, and
	// never another message's. "" when the server has none (no OBJECTID,
	// POP3). Mirror passes recognise a moved message by it before they
	// compare digests.
	EmailID string
}

// ValidEmailID reports whether id is "" or an RFC 8474 objectid: 1 to 255
// letters, digits, "_" and "-".
func ValidEmailID(id string) bool {
	if len(id) > 255 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ListPage is how many messages a source hands over at most in one call
// of List's page function.
const ListPage = 512

// Source is where messages come from (pop3src, imapsrc). A Source is used by
// one goroutine at a time.
type Source interface {
	// List calls page with every message currently in the source, at most
	// ListPage at a time, in the source's order (IMAP: folder by folder,
	// by UID within a folder), holding no listing of the whole source
	// itself. The session is idle while page runs: page may call Fetch,
	// Prefetch and Delete, never List. An error from page stops the
	// listing and is returned.
	List(ctx context.Context, page func([]SourceMessage) error) error
	// Fetch writes the message's exact bytes to w and returns how many it wrote.
	Fetch(ctx context.Context, msg SourceMessage, w io.Writer) (int64, error)
	// Delete marks messages for deletion. For POP3 the deletion only takes
	// effect when Close(true) sends QUIT (RFC 1939 §6).
	Delete(ctx context.Context, msgs []SourceMessage) error
	// Close ends the session. commit=false must not commit pending deletions
	// (POP3: close without QUIT).
	Close(commit bool) error
}

// MailboxCreator is implemented by destinations that say which mailboxes
// their session created (imapdst), so that the summary names them: a
// folder created by mistake (a typo in a folder name) should not go
// unnoticed.
type MailboxCreator interface {
	CreatedMailboxes() []string
}

// Prefetcher is implemented by sources that can ask for several messages
// ahead (POP3 PIPELINING, RFC 2449 §6.6): msgs are the messages the next
// Fetch calls will ask for, in that order. It is a hint; Fetch calls in
// another order must still work.
type Prefetcher interface {
	Prefetch(ctx context.Context, msgs []SourceMessage) error
}

// MailboxStatus is what the destination tells about a mailbox before appending.
type MailboxStatus struct {
	Name        string
	UIDValidity uint32
	UIDNext     uint32
	AppendLimit int64 // bytes; 0 when the server sets no limit
}

// Capabilities lists what the pipeline needs to know about a destination.
type Capabilities struct {
	MultiAppend bool
	LiteralPlus bool
	UIDPlus     bool
	AppendLimit int64 // server-wide APPENDLIMIT; 0 when none
	// Binary: the server takes messages with NUL bytes as literal8 (RFC
	// 3516 BINARY); elsewhere such a message is skipped for good.
	Binary bool
	// DropsDuplicates: an APPEND of a message the account already holds is
	// answered OK and not stored, its APPENDUID naming the message there or
	// absent (Gmail, provider.Quirks.DropsDuplicates). Such a copy is
	// confirmed by the bytes the destination holds before it counts.
	DropsDuplicates bool
	// CrawlsAtLimit: once the account's daily upload allowance is spent
	// the server may take messages ever more slowly instead of refusing
	// them (Gmail, provider.Quirks.CrawlsAtLimit): a crawl pauses the
	// account as the daily limit does (Options.Crawl, crawl.go).
	CrawlsAtLimit bool
}

// OutgoingMessage is one message to append. Body must yield exactly Size bytes
// from offset 0 each time it is read (a batch may be re-sent message by message).
type OutgoingMessage struct {
	Body         io.ReaderAt
	Size         int64
	Flags        []string
	InternalDate time.Time // zero: let the server choose
	// Binary says the message holds NUL bytes: it goes as a literal8 (RFC
	// 3516), which a destination without BINARY cannot take.
	Binary bool
}

// AppendResult is the outcome for one message of an Append call. Err is nil on
// success, otherwise an error of ClassPerMessage or ClassFatal.
type AppendResult struct {
	UIDValidity uint32 // 0 when the server does not send APPENDUID
	UID         uint32
	Err         error
	// DroppedFlags are flags of the message the server refused, left out
	// of a second APPEND that stored it (imapdst: keywords over Dovecot's
	// length limit); nil when the message was stored as asked.
	DroppedFlags []string
}

// AppendStarter is implemented by destinations that can send a batch
// before the previous one has completed (pipelined MULTIAPPEND): StartAppend
// sends msgs and returns without waiting for the server; wait returns what
// Append would have. Each wait is called, in the order of the StartAppend
// calls, before the next use of the destination other than StartAppend.
type AppendStarter interface {
	StartAppend(ctx context.Context, mailbox string, msgs []OutgoingMessage) (wait func() ([]AppendResult, error))
}

// AppendPreparer is implemented by destinations that open what appending
// needs only when asked (imapdst: its APPEND connection), so that a run
// with nothing to copy never opens it. PrepareAppend starts opening it and
// returns at once; the first Append waits for it. The engine calls it when
// the listing queues the first message to copy, so that the opening
// overlaps the fetch of the first bodies. Without the call, the first
// Append opens it.
type AppendPreparer interface {
	PrepareAppend(ctx context.Context)
}

// DestMessage is a message found in a destination mailbox.
type DestMessage struct {
	UID     uint32
	Size    int64
	Deleted bool // has the \Deleted flag: a client is deleting it
}

// Destination is where messages go (imapdst). A Destination is used by one
// goroutine at a time.
type Destination interface {
	Capabilities() Capabilities
	// EnsureMailbox creates the mailbox when it does not exist and returns its status.
	EnsureMailbox(ctx context.Context, name string) (MailboxStatus, error)
	// Append stores msgs in mailbox, as one MULTIAPPEND or as pipelined APPENDs.
	// It returns one result per message, in order. A non-nil error means the
	// outcome of messages without a result is unknown (connection lost): the
	// caller must reconcile them before sending them again.
	Append(ctx context.Context, mailbox string, msgs []OutgoingMessage) ([]AppendResult, error)
	// ListSince lists the messages of mailbox with UID >= fromUID, provided the
	// mailbox still has uidValidity; otherwise it returns ErrUIDValidityChanged.
	ListSince(ctx context.Context, mailbox string, uidValidity, fromUID uint32) ([]DestMessage, error)
	// SearchMessageID returns the UIDs of messages whose Message-ID header is id.
	SearchMessageID(ctx context.Context, mailbox, id string) ([]uint32, error)
	// Digest returns the SHA-256 and size of the message's exact bytes.
	Digest(ctx context.Context, mailbox string, uid uint32) ([32]byte, int64, error)
	// Expunge removes exactly the messages uids from mailbox (late copies
	// of resent messages), provided the mailbox still has uidValidity. It
	// returns an error wrapping ErrCannotExpunge when the server cannot
	// expunge by UID (no UIDPLUS, RFC 4315), rather than expunge more.
	Expunge(ctx context.Context, mailbox string, uidValidity uint32, uids []uint32) error
	Close() error
}

// ErrCannotExpunge is wrapped by Destination.Expunge when the server cannot
// remove single messages without touching others.
var ErrCannotExpunge = errors.New("the destination cannot expunge single messages (no UIDPLUS)")

// ErrFetchAgain is wrapped by Source.Fetch when what it wrote is not the
// message's bytes, and a second Fetch of the message will write them
// (imapsrc: a message with NUL bytes that the server serves with each NUL
// replaced in BODY[] and exactly in BINARY[]). The caller discards what
// was written and fetches the message once more (FetchAgain).
var ErrFetchAgain = errors.New("the bytes read are not the message's; fetch it again")

// ErrUIDValidityChanged is returned when a mailbox's UIDVALIDITY is not the one recorded.
var ErrUIDValidityChanged = errors.New("UIDVALIDITY changed")

// ErrMessageGone is wrapped by Source.Fetch when the message is no longer at
// the source (expunged by another client between List and Fetch). The
// engine counts it in Stats.Gone and goes on; nothing is recorded, so a
// message wrongly taken for gone is tried again by the next run.
var ErrMessageGone = errors.New("message no longer at the source")

// Class sorts errors for the engine.
type Class int

const (
	ClassTransient  Class = iota // reconnect with backoff and resume
	ClassPerMessage              // skip this message, record the reason, go on
	ClassFatal                   // stop this account (auth, quota, config, ledger)
)

func (c Class) String() string {
	switch c {
	case ClassTransient:
		return "transient"
	case ClassPerMessage:
		return "per-message"
	case ClassFatal:
		return "fatal"
	}
	return "unknown"
}

// Classifier is implemented by errors that know their class (e.g. pop3src's
// and imapdst's reply errors).
type Classifier interface {
	ErrorClass() Class
}

// RetryAfterer is implemented by errors whose server said how long to wait
// before trying again (throttling replies, POP3 [LOGIN-DELAY]); 0 means it
// did not say.
type RetryAfterer interface {
	RetryAfter() time.Duration
}

// retryAfter returns the wait err asks for, 0 when none.
func retryAfter(err error) time.Duration {
	var ra RetryAfterer
	if errors.As(err, &ra) {
		return ra.RetryAfter()
	}
	return 0
}

// ClassOf returns the class of err: the first Classifier in its chain decides;
// errors that do not say are transient.
func ClassOf(err error) Class {
	var c Classifier
	if errors.As(err, &c) {
		return c.ErrorClass()
	}
	return ClassTransient
}

// ListSummary is what a ListSummarizer tells of its listing before
// handing it over.
type ListSummary struct {
	Messages int
	// Digest changes whenever the listing's keys or their order do: 63
	// bits of a cryptographic hash, so that a ledger's signed integers hold
	// it. Sizes need not count: a listed message whose key has a settled
	// entry is done or skipped by its entry, whatever its size.
	Digest uint64
}

// ListSummarizer is a Source (pop3src) that can read its whole listing
// before handing any of it over, and tell its size and digest: a listing
// that has not changed since the last complete pass, over an account
// whose entries are all settled, then needs no page read against the
// ledger (issue 20: a no-op re-run of 500,000 POP3 messages). The List
// that follows hands over the listing summarized, unless something else
// was asked of the session between them. false: no summary (the listing
// cannot be read ahead). thenList says the List follows whatever the
// summary (the ledger has no complete pass to compare it with, say): a
// source may then ask for the rest of the listing along with it.
type ListSummarizer interface {
	ListSummary(ctx context.Context, thenList bool) (ListSummary, bool, error)
}

// Lister is the listing part of a Source.
type Lister interface {
	List(ctx context.Context, page func([]SourceMessage) error) error
}

// ListAll returns src's whole listing at once, for callers that compare it
// as a whole (verify) or only inspect it (plan); the copy itself goes page
// by page.
func ListAll(ctx context.Context, src Lister) ([]SourceMessage, error) {
	var out []SourceMessage
	err := src.List(ctx, func(page []SourceMessage) error {
		out = append(out, page...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FolderSummary is what a FolderSummarizer tells of one folder its next
// List would list: the marks RFC 7162 (CONDSTORE) gives a folder, which
// all stay the same as long as nothing in it changes (a new message moves
// UIDNEXT, a flag change or an expunge HIGHESTMODSEQ).
type FolderSummary struct {
	Mailbox string
	// Generation is what every key of the folder under UIDValidity starts
	// with (KeyPlace.Generation).
	Generation    string
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64 // never 0: a folder without one is not summarized
	Messages      uint32
}

// FolderSummarizer is a Source with folders (imapsrc, where the server
// offers CONDSTORE) that can tell each folder's marks before listing:
// a folder whose marks are those of its last complete pass, every entry
// of it settled, needs no listing (issue 18: a no-op re-run of a big IMAP
// account). LeaveOut names the folders the List that follows leaves out;
// that List forgets them. false: no summaries (the server keeps no
// HIGHESTMODSEQ).
type FolderSummarizer interface {
	FolderSummaries(ctx context.Context) ([]FolderSummary, bool, error)
	LeaveOut(mailboxes []string)
}

// DestDigest is the SHA-256 and size of one destination message's exact
// bytes (what Destination.Digest returns).
type DestDigest struct {
	UID  uint32
	Sum  [32]byte
	Size int64
}

// DigestLister is a Destination that hashes many messages of one mailbox
// with one command (imapdst: one FETCH BODY.PEEK[] for all of them), where
// Digest costs a few round trips per message: reconcile and destination
// matching hash every candidate of a mailbox at once. Without it they ask
// Digest message by message.
type DigestLister interface {
	// Digests returns the digests of those of uids (at most MaxLookup)
	// that mailbox holds, provided it still has uidValidity; otherwise an
	// error wrapping ErrUIDValidityChanged.
	Digests(ctx context.Context, mailbox string, uidValidity uint32, uids []uint32) ([]DestDigest, error)
}

// DestHeader is a destination message as destination matching first sees
// it: UID, size and Message-ID ("" when it has none).
type DestHeader struct {
	UID       uint32
	Size      int64
	MessageID string
	Deleted   bool // has the \Deleted flag: a client is deleting it
}

// HeaderLister is a Destination that lists a mailbox's messages with their
// sizes and Message-IDs (imapdst: one FETCH), so that a copy into a folder
// the ledger knows nothing of first matches what the folder already holds
// (match.go). Without it nothing is matched. A mailbox that does not
// exist lists nothing, with UIDVALIDITY 0.
type HeaderLister interface {
	ListHeaders(ctx context.Context, mailbox string) (uidValidity uint32, msgs []DestHeader, err error)
}

// ChangeLister is a FolderSummarizer (imapsrc, where the server offers
// CONDSTORE) that can list a folder by what changed in it since its last
// complete pass, from that pass's marks, instead of listing every message
// (issue 18: a re-run after a few changes in a big folder): the messages
// from the marks' UIDNext on, and those below it whose flags changed since
// their HighestModSeq (RFC 7162 §3.1.4 CHANGEDSINCE). It does so only
// where it can tell that no message below UIDNext is gone since: one is
// listed whole otherwise, and swept as usual.
type ChangeLister interface {
	// ListChanges names the folders the List that follows lists by their
	// changes. That List forgets them.
	ListChanges(since []FolderSince)
	// Changes returns what the last List found of the folders it listed
	// by their changes; a folder named to ListChanges and missing here
	// was listed whole.
	Changes() []FolderChanges
}

// FolderSince names a folder to list by its changes.
type FolderSince struct {
	// Last are the marks and MESSAGES of its last complete pass (its
	// Folder record's UIDNext, HighestModSeq, Messages).
	Last FolderSummary
	// Now are its marks before this listing (FolderSummaries).
	Now FolderSummary
}

// FolderChanges is what a ChangeLister's List found of one folder it
// listed by its changes.
type FolderChanges struct {
	Mailbox     string
	UIDValidity uint32
	// Messages the folder holds, as the listing accounts for them: those
	// below the UIDNext it started from (as many as the last pass had:
	// none gone) and those it listed from there on.
	Messages uint32
	// Unlisted are the messages of Messages the listing did not hand
	// over: below UIDNext, unchanged since the last pass.
	Unlisted uint32
	// MaxUID is the highest UID listed from UIDNext on; 0 when none.
	MaxUID uint32
}
