package checkpoint

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// upsertRows is how many entries one INSERT statement carries: each
// statement costs the pure-Go SQLite about as much as several rows, and a
// batch's entries are written together anyway. 64 rows × 17 columns stay
// far below SQLite's limit on bound parameters.
const upsertRows = 64

// upsertShapes is how many shapes (row counts) of upsert there are:
// the powers of two up to upsertRows, 1 to 64 (upsertShape).
const upsertShapes = 7

const upsertColumns = `account_id, source_key, state, reason_class, reason, digest, size, message_id,
	dest_folder_id, dest_uidvalidity, dest_uid, dest_uidnext, move_to_folder_id, flags, updated, done_at, gone_at, source_emailid`

const upsertRow = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// copiedStates are the states of an entry whose message has (or had) a
// copy: they keep done_at across updates.
const copiedStates = `('done', 'gone', 'removing', 'removed', 'moving')`

// upsertConflict replaces an entry, keeping the time it first became done
// while it stays copied (flag syncs, gone and listed again), the time it
// was first seen gone while it stays gone, and its source EMAILID when the
// new entry carries none (a key names one message, whose EMAILID never
// changes: RFC 8474 §5.1).
const upsertConflict = `
ON CONFLICT (account_id, source_key) DO UPDATE SET
	state = excluded.state,
	reason_class = excluded.reason_class,
	reason = excluded.reason,
	digest = excluded.digest,
	size = excluded.size,
	message_id = excluded.message_id,
	dest_folder_id = excluded.dest_folder_id,
	dest_uidvalidity = excluded.dest_uidvalidity,
	dest_uid = excluded.dest_uid,
	dest_uidnext = excluded.dest_uidnext,
	move_to_folder_id = excluded.move_to_folder_id,
	flags = excluded.flags,
	updated = excluded.updated,
	done_at = CASE
		WHEN excluded.state NOT IN ` + copiedStates + ` THEN 0
		WHEN messages.state IN ` + copiedStates + ` AND messages.done_at <> 0 THEN messages.done_at
		ELSE excluded.done_at
	END,
	gone_at = CASE
		WHEN excluded.state NOT IN ('gone', 'removing', 'removed') THEN 0
		WHEN messages.state IN ('gone', 'removing', 'removed') AND messages.gone_at <> 0 THEN messages.gone_at
		ELSE excluded.gone_at
	END,
	source_emailid = COALESCE(excluded.source_emailid, messages.source_emailid)`

func upsertSQL(n int) string {
	return "INSERT INTO messages (" + upsertColumns + ") VALUES " +
		strings.Repeat(upsertRow+", ", n-1) + upsertRow + upsertConflict
}

// upsertsKept is how many shapes (row counts) of the upsert a ledger
// keeps prepared, the most recently used: all of them (upsertShape), so
// once a ledger wrote each shape it prepares no upsert again.
const upsertsKept = upsertShapes

// upserts keeps the upsert prepared across Commits: parsing the
// statement of 50 rows anew in every Commit was 2.5% of mailferry's CPU
// on *mixed* with the pure-Go SQLite, beside 5.4% for executing the
// upserts (issue 18's profile), and cost PostgreSQL a prepare and a
// deallocate round trip. A Commit takes its statements before BEGIN
// (commitWriter.prepare) and uses them in its transaction with
// Tx.StmtContext, which reuses what is prepared on the transaction's
// connection (and prepares there when it is another). Close closes them.
type upserts struct {
	mu     sync.Mutex
	closed bool
	kept   []rowsStmt // most recently used first
}

type rowsStmt struct {
	rows int
	stmt *sql.Stmt
}

// stmt returns the upsert of rows entries, prepared on db when no kept
// statement has that shape. It must be called before the transaction
// begins: SQLite has one write connection, which the transaction holds
// until it ends, so a prepare on db within it would wait for itself.
func (u *upserts) stmt(ctx context.Context, db *sql.DB, d *dialect, rows int) (*sql.Stmt, error) {
	if st := u.take(rows, nil); st != nil {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, d.q(upsertSQL(rows)))
	if err != nil {
		return nil, err
	}
	return u.take(rows, st), nil
}

// take returns the kept statement of rows entries, moved to the front.
// When there is none and st is not nil, st is kept (the least recently
// used statement beyond upsertsKept is closed) and returned; after Close,
// st is closed and nil returned.
func (u *upserts) take(rows int, st *sql.Stmt) *sql.Stmt {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i, k := range u.kept {
		if k.rows == rows {
			copy(u.kept[1:i+1], u.kept[:i])
			u.kept[0] = k
			if st != nil {
				st.Close() // prepared by a Commit at the same time
			}
			return k.stmt
		}
	}
	if st == nil || u.closed {
		if st != nil {
			st.Close()
		}
		return nil
	}
	if len(u.kept) == upsertsKept {
		// A Commit still using it keeps its transaction's copy:
		// database/sql closes the statement once that is done.
		u.kept[len(u.kept)-1].stmt.Close()
		u.kept = u.kept[:len(u.kept)-1]
	}
	u.kept = append(u.kept, rowsStmt{})
	copy(u.kept[1:], u.kept)
	u.kept[0] = rowsStmt{rows, st}
	return st
}

// close closes the kept statements; later Commits keep none.
func (u *upserts) close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = true
	var errs []error
	for _, k := range u.kept {
		errs = append(errs, k.stmt.Close())
	}
	u.kept = nil
	return errors.Join(errs...)
}

// copied reports whether s is a state whose message has a copy.
func copied(s pipeline.State) bool {
	switch s {
	case pipeline.StateDone, pipeline.StateGone, pipeline.StateRemoving, pipeline.StateRemoved, pipeline.StateMoving:
		return true
	}
	return false
}

// validate checks the entries of a change set before anything is written.
func validate(c *pipeline.Changes) error {
	for i := range c.Put {
		e := &c.Put[i]
		switch {
		case e.Key == "":
			return fmt.Errorf("entry without source key: %w", ErrInvalidEntry)
		case !e.State.Valid():
			return fmt.Errorf("entry %q: state %d: %w", e.Key, int(e.State), ErrInvalidEntry)
		case !validDigest(e.Digest):
			return fmt.Errorf("entry %q: digest %q is not 64 lower-case hex digits: %w", e.Key, e.Digest, ErrInvalidEntry)
		case !storable(e.Updated) || !storable(e.DoneAt) || !storable(e.GoneAt):
			return fmt.Errorf("entry %q: a time out of range (%v, %v, %v): %w", e.Key, e.Updated, e.DoneAt, e.GoneAt, ErrInvalidEntry)
		case e.Size < 0:
			return fmt.Errorf("entry %q: size %d: %w", e.Key, e.Size, ErrInvalidEntry)
		case !pipeline.ValidEmailID(e.EmailID):
			return fmt.Errorf("entry %q: EMAILID %q is not an RFC 8474 objectid: %w", e.Key, e.EmailID, ErrInvalidEntry)
		}
	}
	for _, r := range c.Resent {
		switch {
		case r.Key == "":
			return fmt.Errorf("resent record without source key: %w", ErrInvalidEntry)
		case !validDigest(r.Digest):
			return fmt.Errorf("resent record %q: digest %q: %w", r.Key, r.Digest, ErrInvalidEntry)
		case !storable(r.Recorded):
			return fmt.Errorf("resent record %q: time %v out of range: %w", r.Key, r.Recorded, ErrInvalidEntry)
		}
	}
	for _, f := range c.Folders {
		if f.Name == "" || f.Side != pipeline.SourceSide && f.Side != pipeline.DestSide {
			return fmt.Errorf("folder record %q on side %q: %w", f.Name, f.Side, ErrInvalidEntry)
		}
		switch f.Op {
		case "", pipeline.FolderRenaming, pipeline.FolderDeleting, pipeline.FolderDeleted:
		default:
			return fmt.Errorf("folder record %q: operation %q: %w", f.Name, f.Op, ErrInvalidEntry)
		}
	}
	for _, r := range c.Rekey {
		if r.From == "" || r.To == "" {
			return fmt.Errorf("rekey %q to %q: %w", r.From, r.To, ErrInvalidEntry)
		}
	}
	return nil
}

func validDigest(d string) bool {
	if d == "" {
		return true
	}
	if len(d) != 64 {
		return false
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// digestBytes is how a digest is stored: 32 bytes, NULL when unknown.
func digestBytes(d string) any {
	if d == "" {
		return nil
	}
	b, _ := hex.DecodeString(d) // validated
	return b
}

// Commit writes c in one transaction, synced to disk before it returns,
// provided this process holds the account (Hold): else it writes nothing
// and returns an error wrapping ErrHoldLost. It starts by reading the
// account's pause flag (the fencing statement of docs/ledger.md): a paused
// account closes its hold's Paused channel.
//
// Deletions go first, then entries (in order; a key twice: the last wins),
// then resent records, folder records, key moves, gone and deleting marks,
// and usage. An entry with a zero Updated gets the current time; a copied
// state without DoneAt takes Updated; a gone one without GoneAt too. It
// fails with an error wrapping ErrInvalidEntry before writing anything
// when an entry, record or folder is not storable, and with one wrapping
// a *pipeline.ContestedError when another account's entry stands in the
// way of a Take or Adopt entry (contest.go).
func (l *Ledger) Commit(ctx context.Context, account pipeline.AccountID, c pipeline.Changes) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	h := l.holdOf(account)
	if h == nil {
		return fmt.Errorf("committing to account %d in %s: not held by this process: %w", account, l.path, ErrHoldLost)
	}
	take, adopt := c.Take, c.Adopt
	if len(take)+len(adopt) > 0 {
		c.Put = slices.Concat(c.Put, take, adopt)
	}
	if err := validate(&c); err != nil {
		return fmt.Errorf("committing to account %d in %s: %w", account, l.path, err)
	}
	ctx, cancel, err := h.bound(ctx)
	if err != nil {
		return fmt.Errorf("committing to account %q in %s: %w", h.ident, l.path, err)
	}
	defer cancel()
	w := &commitWriter{l: l, account: account, now: l.now(), ends: chunkEnds(c.Put)}
	if err := w.prepare(ctx); err != nil {
		return fmt.Errorf("committing to account %q in %s: %w", h.ident, l.path, err)
	}
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("committing to account %d in %s: starting transaction: %w", account, l.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	paused, err := l.fence(ctx, tx, account, h)
	if err != nil {
		return fmt.Errorf("committing to account %d in %s: %w", account, l.path, err)
	}
	if paused {
		h.markPaused()
	}
	folders := l.newFolderIDs(tx)
	w.tx, w.folders = tx, folders
	if len(take)+len(adopt) > 0 {
		if err := w.contest(ctx, take, adopt); err != nil {
			return fmt.Errorf("committing to account %q in %s: %w", h.ident, l.path, err)
		}
		l.crashpoint("contest: checked")
	}
	if err := w.write(ctx, &c); err != nil {
		return fmt.Errorf("committing to account %q in %s: %w", h.ident, l.path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing to account %q in %s: %w", h.ident, l.path, err)
	}
	folders.commit()
	return nil
}

// commitWriter writes one change set within its transaction.
type commitWriter struct {
	l       *Ledger
	tx      *sql.Tx
	account pipeline.AccountID
	now     time.Time
	folders *folderIDs
	// ends are where the upserts of the entries end (chunkEnds); kept
	// are the ledger's statements for their shapes, taken before the
	// transaction (prepare).
	ends []int
	kept [upsertShapes]rowsStmt
}

// prepare takes the ledger's upsert statements for the shapes among
// w.ends (upsertShape: at most upsertShapes) before the transaction. A
// shape it could not take (the ledger closing) is prepared within the
// transaction, for it alone.
func (w *commitWriter) prepare(ctx context.Context) error {
	n := 0 // kept[:n] are taken
	for i, end := range w.ends {
		start := 0
		if i > 0 {
			start = w.ends[i-1]
		}
		rows := end - start
		if slices.ContainsFunc(w.kept[:n], func(k rowsStmt) bool { return k.rows == rows }) {
			continue
		}
		if n == len(w.kept) {
			break
		}
		st, err := w.l.ups.stmt(ctx, w.l.w, w.l.d, rows)
		if err != nil {
			return fmt.Errorf("preparing the upsert of %d entries: %w", rows, err)
		}
		w.kept[n] = rowsStmt{rows, st}
		n++
	}
	return nil
}

func (w *commitWriter) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return w.tx.ExecContext(ctx, w.l.d.q(q), args...)
}

func (w *commitWriter) write(ctx context.Context, c *pipeline.Changes) error {
	l, now := w.l, nanos(w.now)
	if err := w.writeFolders(ctx, c.Folders); err != nil {
		return err
	}
	if err := w.dropFolders(ctx, c.DropFolders); err != nil {
		return err
	}
	if len(c.Delete) > 0 {
		if err := w.eachKey(ctx, c.Delete, `DELETE FROM messages WHERE account_id = ? AND %s`, nil); err != nil {
			return fmt.Errorf("deleting %d entries: %w", len(c.Delete), err)
		}
	}
	if err := w.put(ctx, c.Put); err != nil {
		return err
	}
	for _, r := range c.Resent {
		fid, err := w.folders.id(ctx, folderKey{w.account, pipeline.DestSide, r.Mailbox}, 0)
		if err != nil {
			return err
		}
		rec := nanos(r.Recorded)
		if rec == 0 {
			rec = now
		}
		if _, err := w.exec(ctx, `INSERT INTO resent (account_id, source_key, dest_folder_id, dest_uidvalidity, from_uid, digest, size, recorded)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, w.account, l.d.key(r.Key), fid, int64(r.UIDValidity), int64(r.FromUID),
			digestBytes(r.Digest), r.Size, rec); err != nil {
			return fmt.Errorf("recording resent message %q: %w", r.Key, err)
		}
	}
	for _, id := range c.DropResent {
		if _, err := w.exec(ctx, `DELETE FROM resent WHERE account_id = ? AND id = ?`, w.account, id); err != nil {
			return fmt.Errorf("dropping resent record %d: %w", id, err)
		}
	}
	for _, r := range c.Rekey {
		lo, hi := prefixRange(r.From)
		q := l.d.rekey
		args := []any{l.d.key(r.To), len(r.From) + 1, w.account, l.d.key(lo)}
		if hi != "" {
			q += ` AND source_key < ?`
			args = append(args, l.d.key(hi))
		}
		if _, err := w.exec(ctx, q, args...); err != nil {
			return fmt.Errorf("moving the keys of %q to %q: %w", r.From, r.To, err)
		}
	}
	if len(c.Gone) > 0 {
		if err := w.eachKey(ctx, c.Gone, `UPDATE messages SET state = 'gone', gone_at = ?, updated = ?
			WHERE account_id = ? AND %s AND state = 'done'`, []any{now, now}); err != nil {
			return fmt.Errorf("marking %d entries gone: %w", len(c.Gone), err)
		}
		// Nothing of a skipped or failed message is on the destination.
		if err := w.eachKey(ctx, c.Gone, `DELETE FROM messages WHERE account_id = ? AND %s AND state IN ('skipped', 'failed')`, nil); err != nil {
			return fmt.Errorf("dropping %d entries gone from the source: %w", len(c.Gone), err)
		}
	}
	if len(c.Deleting) > 0 {
		if err := w.eachKey(ctx, c.Deleting, `UPDATE messages SET reason_class = 'deleted', updated = ?
			WHERE account_id = ? AND %s AND state = 'done'`, []any{now}); err != nil {
			return fmt.Errorf("marking %d entries deleted at the source: %w", len(c.Deleting), err)
		}
	}
	if c.ConfirmDeleted {
		// state = 'done' spelled out: the account's done rows through
		// messages_done_at, not the whole account.
		if _, err := w.exec(ctx, `UPDATE messages`+l.d.indexedBy("messages_done_at")+` SET state = 'gone', gone_at = ?, updated = ?
			WHERE account_id = ? AND state = 'done' AND reason_class = 'deleted'`, now, now, w.account); err != nil {
			return fmt.Errorf("recording the deletions at the source: %w", err)
		}
	}
	if u := c.Usage; u.ReadBytes != 0 || u.WrittenBytes != 0 {
		if _, err := w.exec(ctx, `INSERT INTO usage (account_id, window_start, read_bytes, written_bytes) VALUES (?, ?, ?, ?)
			ON CONFLICT (account_id, window_start) DO UPDATE SET read_bytes = usage.read_bytes + excluded.read_bytes,
				written_bytes = usage.written_bytes + excluded.written_bytes`,
			w.account, nanos(u.Window), u.ReadBytes, u.WrittenBytes); err != nil {
			return fmt.Errorf("recording the quota usage: %w", err)
		}
	}
	return nil
}

// eachKey runs q (with "%s" for the key condition) for keys, a chunk at a
// time: pre are the arguments before the account's, then the key values.
func (w *commitWriter) eachKey(ctx context.Context, keys []string, q string, pre []any) error {
	for start := 0; start < len(keys); start += pipeline.MaxLookup {
		chunk := keys[start:min(start+pipeline.MaxLookup, len(keys))]
		vals := make([]any, len(chunk))
		for i, k := range chunk {
			vals[i] = w.l.d.key(k)
		}
		cond, kargs := w.l.d.in("source_key", vals)
		args := append(append(append([]any{}, pre...), w.account), kargs...)
		if _, err := w.exec(ctx, fmt.Sprintf(q, cond), args...); err != nil {
			return err
		}
	}
	return nil
}

// put upserts entries, in order, a chunk (w.ends) at a time.
func (w *commitWriter) put(ctx context.Context, entries []pipeline.Entry) error {
	l, now := w.l, w.now
	var stmts map[int]*sql.Stmt // by rows: the shapes not kept by the ledger
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	var inTx [len(w.kept)]*sql.Stmt // the kept statements within tx
	args := make([]any, 0, upsertRows*18)
	start := 0
	for _, end := range w.ends {
		chunk := entries[start:end]
		start = end
		var stmt *sql.Stmt
		for i, k := range w.kept {
			if k.stmt != nil && k.rows == len(chunk) {
				if inTx[i] == nil {
					inTx[i] = w.tx.StmtContext(ctx, k.stmt) // closed with tx
				}
				stmt = inTx[i]
			}
		}
		if stmt == nil {
			if stmt = stmts[len(chunk)]; stmt == nil {
				var err error
				if stmt, err = w.tx.PrepareContext(ctx, l.d.q(upsertSQL(len(chunk)))); err != nil {
					return fmt.Errorf("writing %d entries: preparing: %w", len(entries), err)
				}
				if stmts == nil {
					stmts = map[int]*sql.Stmt{}
				}
				stmts[len(chunk)] = stmt
			}
		}
		args = args[:0]
		for _, e := range chunk {
			updated := e.Updated
			if updated.IsZero() {
				updated = now
			}
			var doneAt, goneAt int64
			if copied(e.State) {
				doneAt = nanos(e.DoneAt)
				if doneAt == 0 {
					doneAt = nanos(updated)
				}
			}
			switch e.State {
			case pipeline.StateGone, pipeline.StateRemoving, pipeline.StateRemoved:
				goneAt = nanos(e.GoneAt)
				if goneAt == 0 {
					goneAt = nanos(updated)
				}
			}
			// Only a confirmed copy says what UIDVALIDITY the folder has
			// now; a pending entry may be of a replaced mailbox.
			seen := uint32(0)
			if e.State == pipeline.StateDone && e.DestUID != 0 {
				seen = e.DestUIDValidity
			}
			dest, err := w.folders.id(ctx, folderKey{w.account, pipeline.DestSide, e.DestMailbox}, seen)
			if err != nil {
				return err
			}
			moveTo, err := w.folders.id(ctx, folderKey{w.account, pipeline.DestSide, e.MoveTo}, 0)
			if err != nil {
				return err
			}
			args = append(args,
				w.account, l.d.key(e.Key), e.State.String(), string(e.ReasonClass), strings.ToValidUTF8(e.Reason, "\uFFFD"),
				digestBytes(e.Digest), e.Size, l.d.key(e.MessageID), dest, int64(e.DestUIDValidity), int64(e.DestUID),
				int64(e.DestUIDNext), moveTo, strings.Join(e.Flags, " "), nanos(updated), doneAt, goneAt, emailID(e.EmailID))
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			if len(chunk) == 1 {
				return fmt.Errorf("writing entry %q: %w", chunk[0].Key, err)
			}
			return fmt.Errorf("writing entries %q to %q: %w", chunk[0].Key, chunk[len(chunk)-1].Key, err)
		}
	}
	return nil
}

// emailID binds an entry's source EMAILID: NULL when it has none.
func emailID(id string) any {
	if id == "" {
		return nil
	}
	return id
}

// chunkEnds returns where each upsert statement of entries ends: the
// chunks of chunkEnd, each cut into upsert shapes (upsertShape).
func chunkEnds(entries []pipeline.Entry) []int {
	var ends []int
	for start := 0; start < len(entries); {
		end := chunkEnd(entries, start)
		for start < end {
			start += upsertShape(end - start)
			ends = append(ends, start)
		}
	}
	return ends
}

// upsertShape is how many of n entries (at most upsertRows) the next
// upsert statement carries: the largest power of two up to n, so that a
// ledger only ever prepares the seven shapes 1, 2, 4 … 64 and keeps them
// all (upsertsKept). With the exact count, batches whose size varies
// from one Commit to the next (on *mixed* a batch goes when it holds half
// the fetch budget) prepared the statement anew in most Commits; a few
// more small statements cost less (BenchmarkCommitMixedSizes).
func upsertShape(n int) int {
	return 1 << (bits.Len(uint(n)) - 1)
}

// chunkEnd returns where the upsert statement starting at entries[start]
// ends: after upsertRows entries, or before a key it already carries.
// PostgreSQL refuses a statement that upserts one row twice; a key twice
// in a change set is written by two statements in order (the last wins),
// in both engines alike.
func chunkEnd(entries []pipeline.Entry, start int) int {
	seen := make(map[string]bool, upsertRows)
	end := start
	for end < len(entries) && end-start < upsertRows && !seen[entries[end].Key] {
		seen[entries[end].Key] = true
		end++
	}
	return end
}

// writeFolders upserts folder records.
func (w *commitWriter) writeFolders(ctx context.Context, folders []pipeline.Folder) error {
	for _, f := range folders {
		var id int64
		err := w.tx.QueryRowContext(ctx, w.l.d.q(`INSERT INTO folders (account_id, side, name, uidvalidity, uidnext, highestmodseq, messages, synced_at, op, op_name)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (account_id, side, name) DO UPDATE SET uidvalidity = excluded.uidvalidity, uidnext = excluded.uidnext,
				highestmodseq = excluded.highestmodseq, messages = excluded.messages, synced_at = excluded.synced_at,
				op = excluded.op, op_name = excluded.op_name
			RETURNING id`),
			w.account, string(f.Side), w.l.d.key(f.Name), int64(f.UIDValidity), int64(f.UIDNext), int64(f.HighestModSeq),
			int64(f.Messages), nanos(f.SyncedAt), string(f.Op), w.l.d.key(f.OpName)).Scan(&id)
		if err != nil {
			return fmt.Errorf("recording folder %q: %w", f.Name, err)
		}
		w.folders.fresh[folderKey{w.account, f.Side, f.Name}] = folderRow{id: id, uidValidity: f.UIDValidity}
	}
	return nil
}

// dropFolders deletes the account's source folder records of names
// (pipeline.Changes.DropFolders). Only source records: destination
// records are named by entries (dest_folder_id).
func (w *commitWriter) dropFolders(ctx context.Context, names []string) error {
	for _, name := range names {
		if _, err := w.exec(ctx, `DELETE FROM folders WHERE account_id = ? AND side = 'src' AND name = ?`, w.account, w.l.d.key(name)); err != nil {
			return fmt.Errorf("dropping the record of source folder %q: %w", name, err)
		}
		k := folderKey{w.account, pipeline.SourceSide, name}
		delete(w.folders.fresh, k)
		w.folders.dropped = append(w.folders.dropped, k)
	}
	return nil
}

// prefixRange returns the range of keys starting with prefix: [lo, hi),
// hi "" when unbounded (a prefix of 0xff bytes only).
func prefixRange(prefix string) (lo, hi string) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return prefix, string(b[:i+1])
		}
	}
	return prefix, ""
}
