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
	// listed it (a Gmail message's UID in the folder it is read from), so
	// that Fetch and Delete need no index of the whole listing; 0 when the
	// source has none. It means nothing to another session.
	Seq uint32
}

// Source is where messages come from (pop3src, imapsrc). A Source is used by
// one goroutine at a time.
type Source interface {
	// List returns every message currently in the source.
	List(ctx context.Context) ([]SourceMessage, error)
	// Fetch writes the message's exact bytes to w and returns how many it wrote.
	Fetch(ctx context.Context, msg SourceMessage, w io.Writer) (int64, error)
	// Delete marks messages for deletion. For POP3 the deletion only takes
	// effect when Close(true) sends QUIT (RFC 1939 §6).
	Delete(ctx context.Context, msgs []SourceMessage) error
	// Close ends the session. commit=false must not commit pending deletions
	// (POP3: close without QUIT).
	Close(commit bool) error
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

// DestMessage is a message found in a destination mailbox.
type DestMessage struct {
	UID     uint32
	Size    int64
	Deleted bool // has the \Deleted flag: a client is deleting it
}

// Claims are the copies ledger entries may own (Ledger.Claims).
type Claims struct {
	UIDs map[uint32]bool
	// PendingFrom, when not 0, claims every UID at or above it.
	PendingFrom uint32
}

// Has reports whether uid may be owned by an entry.
func (c Claims) Has(uid uint32) bool {
	return c.UIDs[uid] || c.PendingFrom != 0 && uid >= c.PendingFrom
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

// ErrLocked is wrapped by Ledger.Lock when another run holds the account.
var ErrLocked = errors.New("the account is locked by another run")

// ErrUIDValidityChanged is returned when a mailbox's UIDVALIDITY is not the one recorded.
var ErrUIDValidityChanged = errors.New("UIDVALIDITY changed")

// ErrMessageGone is wrapped by Source.Fetch when the message is no longer at
// the source (expunged by another client between List and Fetch). The
// engine counts it in Stats.Gone and goes on; nothing is recorded, so a
// message wrongly taken for gone is tried again by the next run.
var ErrMessageGone = errors.New("message no longer at the source")

// State is where a message stands in the ledger.
type State int

const (
	StatePending State = iota + 1 // intent recorded, APPEND may or may not have happened
	StateDone                     // destination confirmed, safe to delete at the source
	StateSkipped                  // will not be copied (reason says why); not retried
	StateFailed                   // could not be copied this run; retried next run
)

func (s State) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateDone:
		return "done"
	case StateSkipped:
		return "skipped"
	case StateFailed:
		return "failed"
	}
	return "unknown"
}

// Entry is one row of the ledger: what is known about one source message.
// It never holds a secret.
type Entry struct {
	Account         string
	Key             string // SourceMessage.Key
	State           State
	Reason          string // for skipped and failed
	Digest          string // hex SHA-256 of the bytes sent
	Size            int64  // bytes sent
	MessageID       string
	DestMailbox     string
	DestUIDValidity uint32
	DestUID         uint32 // 0 when unknown
	// DestUIDNext is the destination mailbox's UIDNEXT before the batch holding
	// this message was sent: the message, if stored, has UID >= DestUIDNext.
	DestUIDNext uint32
	// Flags are the flags the destination copy was last given (IMAP
	// sources), so later runs can bring changed flags over.
	Flags   []string
	Updated time.Time
	// DoneAt is when the message was first confirmed on the destination
	// (state done; zero otherwise). Later updates (flag syncs) keep it: a
	// delete_after period runs from here.
	DoneAt time.Time
}

// Resent remembers a message that reconcile did not find on the
// destination and forgot, so that it is sent again. Its first APPEND may
// still complete later: a command the client gave up on (timeout, crash)
// can sit in a send queue or a slow network and reach the server after
// the second copy is stored. Such a late copy has a UID at or above
// FromUID and the same size and digest; later runs look for it until a run
// at least Options.LateCopyWindow after Recorded finds none.
type Resent struct {
	ID          int64 // the ledger's; 0 before it is stored
	Account     string
	Key         string // SourceMessage.Key
	Mailbox     string // destination mailbox of the forgotten attempt
	UIDValidity uint32
	FromUID     uint32 // the UIDNEXT recorded before the forgotten attempt
	Digest      string
	Size        int64
	Recorded    time.Time
}

// RunRecord is one run over one account, for `mailferry status`.
type RunRecord struct {
	Account  string
	Started  time.Time
	Finished time.Time // zero while running or after a crash
	Result   string    // "ok", "partial", "failed", "interrupted"
	Error    string    // last error, never a secret
	// ErrorClass sorts Error for people: what Runner.Explain named
	// ("login", "tls-certificate", ...) or else the engine's class
	// ("fatal", "transient", "interrupted"); "" without an error.
	ErrorClass string
	// Hint says what fixes Error (Runner.Explain); "" when nothing useful
	// can be said.
	Hint    string
	Copied  int
	Skipped int
	Failed  int
}

// Ledger is the durable checkpoint (checkpoint.Ledger). It is safe for
// concurrent use by several accounts.
type Ledger interface {
	// Lock takes the per-account lock held for the whole run, so that two
	// processes never work on the same account at once. It returns an error
	// wrapping checkpoint.ErrLocked when another process holds it.
	Lock(ctx context.Context, account string) (unlock func() error, err error)
	// Entries returns every entry of the account, by Key.
	Entries(ctx context.Context, account string) (map[string]Entry, error)
	// Put writes entries in one durable transaction (synced before it returns).
	Put(ctx context.Context, entries []Entry) error
	// Delete removes entries.
	Delete(ctx context.Context, account string, keys []string) error
	// Forget removes pending entries that reconcile did not find on the
	// destination and records resent, in one durable transaction, so that
	// a crash cannot forget an entry without remembering to look for its
	// late copy.
	Forget(ctx context.Context, account string, keys []string, resent []Resent) error
	// Resent returns the account's Resent records, oldest first.
	Resent(ctx context.Context, account string) ([]Resent, error)
	// DropResent removes Resent records by ID.
	DropResent(ctx context.Context, account string, ids []int64) error
	// Claims tells which copies of messages with digest in mailbox (under
	// uidValidity) ledger entries of any account may own: the UIDs done
	// entries name, and every UID from the lowest UIDNEXT a pending entry
	// recorded (its APPEND may have stored a copy not yet committed).
	// Any account: mailbox names of different destination users may
	// collide, which only makes the answer larger, the safe side.
	Claims(ctx context.Context, mailbox string, uidValidity uint32, digest string) (Claims, error)
	StartRun(ctx context.Context, account string, started time.Time) (runID int64, err error)
	FinishRun(ctx context.Context, runID int64, rec RunRecord) error
	Close() error
}

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
