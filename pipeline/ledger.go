package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The ledger's vocabulary (schema 5, docs/ledger.md): what the engine reads
// and writes, and the Ledger interface checkpoint.Ledger implements. No
// method returns or builds anything proportional to the account.

// AccountID is the ledger's number for an account (accounts.id). It stays
// the same when the account's servers are renamed.
type AccountID int64

// State is where a message stands in the ledger. Values are stored by name.
type State int

const (
	StatePending  State = iota + 1 // intent recorded, APPEND may or may not have happened
	StateDone                      // destination confirmed, safe to delete at the source
	StateSkipped                   // not copied, for good (ReasonClass says why); retried only when asked
	StateFailed                    // not copied this time; retried by the next run
	StateGone                      // copied; the source no longer lists it; the copy stays
	StateRemoving                  // mirror: removal of the copy recorded, not yet confirmed
	StateRemoved                   // mirror: the copy was removed from the destination
	StateMoving                    // mirror: move of the copy to MoveTo recorded, not yet confirmed
)

// States lists every state, in order.
var States = []State{StatePending, StateDone, StateSkipped, StateFailed, StateGone, StateRemoving, StateRemoved, StateMoving}

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
	case StateGone:
		return "gone"
	case StateRemoving:
		return "removing"
	case StateRemoved:
		return "removed"
	case StateMoving:
		return "moving"
	}
	return "unknown"
}

// Valid reports whether s is one of States.
func (s State) Valid() bool { return s >= StatePending && s <= StateMoving }

// ReasonClass sorts skips and failures for the engine, the report and
// retries.
type ReasonClass string

const (
	ReasonNUL     ReasonClass = "nul"     // skipped: NUL bytes and the destination has no BINARY
	ReasonTooBig  ReasonClass = "too_big" // skipped: larger than the limit in force
	ReasonRefused ReasonClass = "refused" // skipped: permanent refusal; failed: refused this time
	ReasonEmpty   ReasonClass = "empty"   // skipped: 0 bytes
	ReasonPresent ReasonClass = "present" // skipped: probably on the destination (not byte-identical)
	ReasonSource  ReasonClass = "source"  // failed: the source would not serve it
	ReasonMatched ReasonClass = "matched" // done: found on the destination, byte-identical, not sent
	ReasonDeleted ReasonClass = "deleted" // done, gone: mailferry deletes or deleted it at the source (never mirrored)
)

// Entry is one row of the ledger: what is known about one source message.
// It never holds a secret.
type Entry struct {
	Key         string // SourceMessage.Key
	State       State
	ReasonClass ReasonClass
	Reason      string // for skipped and failed, in words (valid UTF-8 once stored)
	Digest      string // hex SHA-256 of the bytes sent; "" when unknown (stored as 32 bytes)
	Size        int64  // bytes sent
	MessageID   string
	DestMailbox string // stored as a folders.id
	// DestUIDValidity and DestUID name the copy; DestUID 0 when unknown.
	DestUIDValidity uint32
	DestUID         uint32
	// DestUIDNext is the destination mailbox's UIDNEXT before the batch
	// holding this message was sent: the message, if stored, has UID >=
	// DestUIDNext.
	DestUIDNext uint32
	MoveTo      string // StateMoving: the destination mailbox the copy is moving to
	// Flags are the flags the destination copy was last given (IMAP
	// sources), so later runs can bring changed flags over.
	Flags   []string
	Updated time.Time
	// DoneAt is when the message was first confirmed on the destination.
	// Later updates (flag syncs, gone and back) keep it: a delete_after
	// period runs from here.
	DoneAt time.Time
	// GoneAt is when the source was first seen without it (gone,
	// removing, removed).
	GoneAt time.Time
	// EmailID is the source's EMAILID of the message (RFC 8474 OBJECTID,
	// SourceMessage.EmailID); "" when the server has none. A Put without
	// one keeps the one stored.
	EmailID string
}

// Query selects entries of one account for Scan.
type Query struct {
	States    []State // nil: every state
	KeyPrefix string  // only keys with this prefix (one IMAP folder: imapsrc.KeyPrefix)
	Digest    string  // only entries with this digest; with States = {StateGone} it uses an index
	After     string  // the page starts after this key; "" from the start
	Limit     int     // at most this many; 0 or more than MaxPage: MaxPage
	// KeysOnly fills Key, State, ReasonClass, Flags, Size, Updated, DoneAt
	// and GoneAt only: the columns a listing is joined with, read about
	// three times as fast as whole entries.
	KeysOnly bool
}

// MaxLookup bounds the keys of one Lookup (and the UIDs of one Copies);
// MaxPage the entries of one Scan page.
const (
	MaxLookup = 512
	MaxPage   = 1000
)

// CopiesQuery asks which destination UIDs ledger entries name.
type CopiesQuery struct {
	Account     AccountID // 0: every account whose folder of that name has this UIDVALIDITY
	Mailbox     string
	UIDValidity uint32
	UIDs        []uint32 // candidate UIDs, at most MaxLookup
	Digest      string   // optional: only entries with this digest
	// OthersOf, with Account 0, asks about the entries of the accounts
	// other than this one that write into its destination user's
	// mailbox (the same destination user, or one the ledger does not
	// know): "does another account name this copy?", asked before mirror
	// removes or moves a copy that destination matching may have found
	// for two accounts (sharedcopies.go). It counts the entries skipped
	// "probably present" (ReasonPresent) too: the copy they name stands
	// in for their message, which is never sent.
	OthersOf AccountID
}

// Claims are the copies ledger entries may own (Ledger.Copies).
type Claims struct {
	// UIDs are those of the asked UIDs named by a done, gone, removing or
	// moving entry.
	UIDs map[uint32]bool
	// PendingFrom, when not 0, claims every UID at or above it: a pending
	// entry's APPEND may have stored a copy not yet committed.
	PendingFrom uint32
	// NoUID: with a Digest, a done entry of that digest has no UID (no
	// UIDPLUS when it was copied), so its copy cannot be told apart.
	NoUID bool
}

// Has reports whether uid may be owned by an entry.
func (c Claims) Has(uid uint32) bool {
	return c.UIDs[uid] || c.PendingFrom != 0 && uid >= c.PendingFrom
}

// Side says which server a folder record is of.
type Side string

const (
	SourceSide Side = "src"
	DestSide   Side = "dst"
)

// FolderOp is a mirror folder operation in flight or done (issue 22).
type FolderOp string

const (
	FolderRenaming FolderOp = "renaming"
	FolderDeleting FolderOp = "deleting"
	FolderDeleted  FolderOp = "deleted"
)

// Folder is the ledger's record of one folder.
type Folder struct {
	Side Side
	Name string
	// A source folder's UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and MESSAGES
	// at its last complete pass; a destination folder's UIDVALIDITY as
	// last seen.
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64
	Messages      uint32
	SyncedAt      time.Time
	Op            FolderOp // "", FolderRenaming, FolderDeleting, FolderDeleted
	OpName        string   // FolderRenaming: the new name
	HasCopies     bool     // read only: some entry names this destination folder
}

// Usage is what an account moved in one quota window.
type Usage struct {
	Window       time.Time // start of the window
	ReadBytes    int64
	WrittenBytes int64
}

// Changes is everything one Commit writes, in one transaction. Deletions
// go first, then entries, then the rest.
type Changes struct {
	Put        []Entry  // inserted or replaced in order; a key twice: the last wins
	Delete     []string // keys removed
	Resent     []Resent // recorded (Forget = Delete of pending keys + Resent)
	DropResent []int64
	Folders    []Folder // folder records written
	// DropFolders names source folder records deleted (after Folders):
	// folders the source no longer lists that no entry is in
	// (pruneFolders). Destination records are never dropped.
	DropFolders []string
	Rekey       []Rekey // source keys moved to a renamed source folder
	// Gone are keys the source no longer lists: a done entry becomes gone
	// (GoneAt now, its reason class kept), a skipped or failed one is
	// deleted (nothing of it is on the destination); other states stay.
	Gone []string
	// Deleting marks done entries ReasonDeleted before their messages are
	// deleted at the source: mailferry deleted them, so mirror never
	// removes their copies. A deletion that does not happen leaves them
	// done.
	Deleting []string
	// ConfirmDeleted makes gone every done entry marked Deleting: the
	// source confirmed the deletions (POP3 QUIT, IMAP UID EXPUNGE). The
	// engine marks only what it deletes in the same session, and unmarks
	// listed messages it does not delete.
	ConfirmDeleted bool
	Usage          Usage // added to the account's window (zero: none)
	// Take and Adopt are entries put (after Put) only when no other
	// account's entry stands in their way; the check and the write are one
	// transaction, serialised against every other Take and Adopt naming a
	// copy in the same destination folder (sharedcopies.go). Take holds
	// mirror's removing and moving intents: refused when an entry of
	// another account that writes into the same destination user's mailbox
	// (CopiesQuery.OthersOf) names their copy (done, gone, removing,
	// moving, or skipped ReasonPresent). Adopt holds the copies destination matching found (done,
	// ReasonMatched): refused when such an entry holds the copy removing
	// or moving (it is being taken away). When any is refused, Commit
	// writes nothing and returns a *ContestedError naming them.
	Take  []Entry
	Adopt []Entry
}

// ContestedError is Commit's refusal of Changes.Take or Changes.Adopt
// entries whose copy another account's entry names: nothing was written.
type ContestedError struct {
	Keys []string
}

func (e *ContestedError) Error() string {
	return fmt.Sprintf("%d copies are named by another account's entries", len(e.Keys))
}

// contested returns the keys of err's refused entries, and whether err is
// a ContestedError.
func contested(err error) (map[string]bool, bool) {
	var ce *ContestedError
	if !errors.As(err, &ce) {
		return nil, false
	}
	out := make(map[string]bool, len(ce.Keys))
	for _, k := range ce.Keys {
		out[k] = true
	}
	return out, true
}

// Rekey gives every source key starting with From the prefix To instead (a
// source folder renamed under the same UIDVALIDITY: imapsrc.KeyPrefix of
// both).
type Rekey struct{ From, To string }

// Count is a number of entries and the sum of their sizes.
type Count struct{ Messages, Bytes int64 }

// Counts are an account's entries and bytes by state.
type Counts map[State]Count

// Resent remembers a message that reconcile did not find on the
// destination and forgot, so that it is sent again. Its first APPEND may
// still complete later: a command the client gave up on (timeout, crash)
// can sit in a send queue or a slow network and reach the server after
// the second copy is stored. Such a late copy has a UID at or above
// FromUID and the same size and digest; later runs look for it until a run
// at least Options.LateCopyWindow after Recorded finds none.
type Resent struct {
	ID          int64  // the ledger's; 0 before it is stored
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
	Started  time.Time
	Finished time.Time // zero while running or after a crash
	Result   string    // "ok", "partial", "failed", "interrupted", "paused", "waiting"
	Error    string    // last error, never a secret
	// ErrorClass sorts Error for people: what Runner.Explain named
	// ("login", "tls-certificate", ...) or else the engine's class
	// ("fatal", "transient", "interrupted"); "" without an error.
	ErrorClass string
	// Hint says what fixes Error (Runner.Explain); "" when nothing useful
	// can be said.
	Hint string
	// What the source held: "done / total" on a status page.
	Listed      int
	ListedBytes int64
	// This run's figures.
	Copied  int
	Found   int // found on the destination, not sent (reconciled, rematched, late copies adopted)
	Skipped int
	Failed  int
	Gone    int // found deleted at the source
	Moved   int
	Removed int
	Deleted int // deleted at the source by this run
	Bytes   int64
	// ResumeAt: result "waiting" (quota), when the account may run again.
	ResumeAt time.Time
	// Mirror tells FinishRun's pruning that the account mirrors: its gone
	// entries are kept until mirror removed their copies.
	Mirror bool
}

// Hold is a run's exclusive hold on one account: the flock (SQLite) or the
// queue's lease (PostgreSQL).
type Hold interface {
	// Lost is closed when this process can no longer be sure it holds the
	// account (a lease not renewed in time): stop sending at once, settle
	// what is in flight; every later Commit fails with ErrHoldLost.
	Lost() <-chan struct{}
	// Paused is closed when an admin paused the account: finish the batches
	// in flight, commit them, stop (RunRecord.Result "paused").
	Paused() <-chan struct{}
	// RetrySkipped tells whether skipped-for-good messages are to be tried
	// again this run (the account's retry_skipped flag, cleared by
	// FinishRun).
	RetrySkipped() bool
	Release(ctx context.Context) error
}

// ErrLocked is wrapped by Ledger.Hold when another run holds the account.
var ErrLocked = errors.New("the account is locked by another run")

// ErrHoldLost is wrapped by Ledger.Commit when this process no longer
// holds the account.
var ErrHoldLost = errors.New("the hold on the account was lost")

// Ledger is the durable checkpoint (checkpoint.Ledger). It is safe for
// concurrent use by several accounts.
type Ledger interface {
	// Hold takes the account for one run; an error wrapping ErrLocked when
	// another run holds it.
	Hold(ctx context.Context, account AccountID) (Hold, error)
	// Lookup calls fn with the entry of each of keys the ledger has, in no
	// particular order (at most MaxLookup keys).
	Lookup(ctx context.Context, account AccountID, keys []string, fn func(Entry) error) error
	// Scan returns one page of the account's entries matching q, in key
	// order, and the key to pass as q.After for the next page ("" after
	// the last). Pages are separate reads: writes between them are fine.
	Scan(ctx context.Context, account AccountID, q Query) (page []Entry, next string, err error)
	// Copies tells which of q.UIDs ledger entries name, and from which UID
	// a pending entry may own a copy.
	Copies(ctx context.Context, q CopiesQuery) (Claims, error)
	// Counts returns the account's entries and bytes by state, without the
	// intents of late-copy removal (LateCopyKeyPrefix): they are no
	// message of the account.
	Counts(ctx context.Context, account AccountID) (Counts, error)
	// Folders returns the account's folder records (a few hundred at most).
	Folders(ctx context.Context, account AccountID) ([]Folder, error)
	// Resent returns the account's Resent records, oldest first.
	Resent(ctx context.Context, account AccountID) ([]Resent, error)
	// Usage returns what the account moved in the quota window starting at
	// window.
	Usage(ctx context.Context, account AccountID, window time.Time) (Usage, error)
	// Commit writes c in one durable transaction (synced before it
	// returns), provided this process still holds the account: else it
	// writes nothing and returns an error wrapping ErrHoldLost.
	Commit(ctx context.Context, account AccountID, c Changes) error
	StartRun(ctx context.Context, account AccountID, started time.Time) (runID int64, err error)
	// UpdateRun records a running run's figures (listed, copied...) for a
	// status page; FinishRun records its end, sets the account's last runs
	// and applies the pruning rules.
	UpdateRun(ctx context.Context, runID int64, rec RunRecord) error
	FinishRun(ctx context.Context, runID int64, rec RunRecord) error
}
