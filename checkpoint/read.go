package checkpoint

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// entryColumns are the columns of a whole entry; keyColumns those of
// Query.KeysOnly, which a listing is joined with.
const (
	entryColumns = `source_key, state, reason_class, reason, digest, size, message_id, dest_folder_id,
		dest_uidvalidity, dest_uid, dest_uidnext, move_to_folder_id, flags, updated, done_at, gone_at, source_emailid`
	keyColumns = `source_key, state, reason_class, flags, size, updated, done_at, gone_at`
)

// stateOf maps the stored state names back to pipeline.State.
var stateOf = func() map[string]pipeline.State {
	m := map[string]pipeline.State{}
	for _, s := range pipeline.States {
		m[s.String()] = s
	}
	return m
}()

// rawEntry is an entry as read, its folders still ids: their names are
// looked up once the rows are closed (a lookup needs a connection of the
// read pool, which the rows hold).
type rawEntry struct {
	e          pipeline.Entry
	dest, move int64
}

// scanEntry reads one row of entryColumns.
func scanEntry(rows *sql.Rows) (rawEntry, error) {
	var (
		r                            rawEntry
		key, messageID, state, class string
		flags                        string
		digest                       []byte
		emailID                      sql.NullString
		uidValidity, uid, next       int64
		updated, doneAt, goneAt      int64
	)
	e := &r.e
	if err := rows.Scan(&key, &state, &class, &e.Reason, &digest, &e.Size, &messageID, &r.dest,
		&uidValidity, &uid, &next, &r.move, &flags, &updated, &doneAt, &goneAt, &emailID); err != nil {
		return r, err
	}
	e.EmailID = emailID.String
	s, ok := stateOf[state]
	if !ok {
		return r, fmt.Errorf("entry %q: unknown state %q", key, state)
	}
	e.Key, e.State, e.ReasonClass, e.MessageID = key, s, pipeline.ReasonClass(class), messageID
	if len(digest) > 0 {
		e.Digest = hex.EncodeToString(digest)
	}
	e.DestUIDValidity, e.DestUID, e.DestUIDNext = uint32(uidValidity), uint32(uid), uint32(next)
	if flags != "" {
		e.Flags = strings.Fields(flags)
	}
	e.Updated, e.DoneAt, e.GoneAt = fromNanos(updated), fromNanos(doneAt), fromNanos(goneAt)
	return r, nil
}

// names fills in the folder names of raw entries.
func (l *Ledger) names(ctx context.Context, raw []rawEntry) ([]pipeline.Entry, error) {
	out := make([]pipeline.Entry, len(raw))
	for i, r := range raw {
		var err error
		if r.e.DestMailbox, err = l.folderName(ctx, r.dest); err != nil {
			return nil, err
		}
		if r.e.MoveTo, err = l.folderName(ctx, r.move); err != nil {
			return nil, err
		}
		out[i] = r.e
	}
	return out, nil
}

// scanKeys reads one row of keyColumns.
func scanKeys(rows *sql.Rows) (pipeline.Entry, error) {
	var (
		e                        pipeline.Entry
		key, state, class, flags string
		updated, doneAt, goneAt  int64
	)
	if err := rows.Scan(&key, &state, &class, &flags, &e.Size, &updated, &doneAt, &goneAt); err != nil {
		return e, err
	}
	s, ok := stateOf[state]
	if !ok {
		return e, fmt.Errorf("entry %q: unknown state %q", key, state)
	}
	e.Key, e.State, e.ReasonClass = key, s, pipeline.ReasonClass(class)
	if flags != "" {
		e.Flags = strings.Fields(flags)
	}
	e.Updated, e.DoneAt, e.GoneAt = fromNanos(updated), fromNanos(doneAt), fromNanos(goneAt)
	return e, nil
}

// Lookup calls fn with the entry of each of keys the ledger has, in no
// particular order. It takes at most pipeline.MaxLookup keys; one query
// answers them all (through the primary key), never one query per key.
func (l *Ledger) Lookup(ctx context.Context, account pipeline.AccountID, keys []string, fn func(pipeline.Entry) error) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	if len(keys) > pipeline.MaxLookup {
		return fmt.Errorf("looking up %d keys of account %d: at most %d at once", len(keys), account, pipeline.MaxLookup)
	}
	raw, err := l.lookupRange(ctx, account, keys)
	if err == nil && raw == nil {
		raw, err = l.lookupIn(ctx, account, keys)
	}
	if err != nil {
		return fmt.Errorf("looking up %d keys of account %d in %s: %w", len(keys), account, l.path, err)
	}
	out, err := l.names(ctx, raw)
	if err != nil {
		return fmt.Errorf("looking up keys of account %d in %s: %w", account, l.path, err)
	}
	for _, e := range out {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// lookupIn reads the entries of keys through one IN condition: a seek in
// the primary key per key.
func (l *Ledger) lookupIn(ctx context.Context, account pipeline.AccountID, keys []string) ([]rawEntry, error) {
	vals := make([]any, len(keys))
	for i, k := range keys {
		vals[i] = l.d.key(k)
	}
	cond, args := l.d.in("source_key", vals)
	rows, err := l.r.QueryContext(ctx, l.d.q(`SELECT `+entryColumns+` FROM messages WHERE account_id = ? AND `+cond),
		append([]any{account}, args...)...)
	if err != nil {
		return nil, err
	}
	// Read every row first: fn may write to the ledger, and the read
	// connection must not be held meanwhile.
	raw := []rawEntry{}
	for rows.Next() {
		r, err := scanEntry(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		raw = append(raw, r)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	return raw, rows.Err()
}

// rangeLookupMin is the fewest keys lookupRange reads as a range.
const rangeLookupMin = 16

// lookupRange reads the entries of keys as one range of the primary key
// when keys come in ascending order (a listing in key order: Dovecot's
// POP3 UIDLs, zero-padded UIDs), which costs a fraction of a seek per key
// on a re-run of a large mailbox (issue 20: 500,000 keys). Entries in the
// range that are not among keys are passed over. It returns nil, nil when
// the keys are not ascending, or when the range holds more than twice as
// many entries as keys (sparse: the caller seeks each key instead).
func (l *Ledger) lookupRange(ctx context.Context, account pipeline.AccountID, keys []string) ([]rawEntry, error) {
	if len(keys) < rangeLookupMin {
		return nil, nil
	}
	for i := 1; i < len(keys); i++ {
		if keys[i] <= keys[i-1] {
			return nil, nil
		}
	}
	limit := 2 * len(keys)
	rows, err := l.r.QueryContext(ctx, l.d.q(`SELECT `+entryColumns+` FROM messages
		WHERE account_id = ? AND source_key >= ? AND source_key <= ? ORDER BY source_key LIMIT ?`),
		account, l.d.key(keys[0]), l.d.key(keys[len(keys)-1]), limit)
	if err != nil {
		return nil, err
	}
	raw := []rawEntry{}
	read, next := 0, 0 // rows read; the first of keys not passed yet
	for rows.Next() {
		read++
		r, err := scanEntry(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		for next < len(keys) && keys[next] < r.e.Key {
			next++
		}
		if next < len(keys) && keys[next] == r.e.Key {
			raw = append(raw, r)
			next++
		}
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if read == limit {
		return nil, nil
	}
	return raw, nil
}

// Scan returns one page of the account's entries matching q, in key order,
// and the key to pass as q.After for the next page ("" after the last).
// Every condition is one the indexes answer without reading the whole
// account: a state other than done through messages_open, gone with a
// digest through messages_gone_digest, a key prefix or a page start
// through the primary key.
func (l *Ledger) Scan(ctx context.Context, account pipeline.AccountID, q pipeline.Query) ([]pipeline.Entry, string, error) {
	if err := l.checkOpen(); err != nil {
		return nil, "", err
	}
	limit := q.Limit
	if limit <= 0 || limit > pipeline.MaxPage {
		limit = pipeline.MaxPage
	}
	query, args, err := l.scanQuery(account, q, limit)
	if err != nil {
		return nil, "", err
	}
	rows, err := l.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("scanning account %d in %s: %w", account, l.path, err)
	}
	var raw []rawEntry
	for rows.Next() {
		var r rawEntry
		var err error
		if q.KeysOnly {
			r.e, err = scanKeys(rows)
		} else {
			r, err = scanEntry(rows)
		}
		if err != nil {
			rows.Close()
			return nil, "", fmt.Errorf("scanning account %d in %s: %w", account, l.path, err)
		}
		raw = append(raw, r)
	}
	if err := rows.Close(); err != nil {
		return nil, "", fmt.Errorf("scanning account %d in %s: %w", account, l.path, err)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("scanning account %d in %s: %w", account, l.path, err)
	}
	out, err := l.names(ctx, raw)
	if err != nil {
		return nil, "", fmt.Errorf("scanning account %d in %s: %w", account, l.path, err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].Key
	}
	return out, next, nil
}

// scanQuery is Scan's statement for q, a page of limit (and one more to
// know there is a next page). Which index it reads is chosen here, not left
// to the planner, which has no statistics and, asked for the rows in key
// order, prefers the primary key even when a partial index holds a
// handful of them (a folder of 5,000 done entries read through for each
// new message's earlier identity, none of them gone):
//
//   - states without done: messages_open (account, state, and the primary
//     key's source_key after them, so one state's rows come in key order);
//     gone alone with a digest: messages_gone_digest;
//   - otherwise the primary key, a key prefix its range.
//
// The states are spelled in the statement, never bound: a partial index
// serves only a statement whose terms imply its condition as written.
func (l *Ledger) scanQuery(account pipeline.AccountID, q pipeline.Query, limit int) (string, []any, error) {
	cols := entryColumns
	if q.KeysOnly {
		cols = keyColumns
	}
	index := ""
	var where []string
	args := []any{account}
	where = append(where, "account_id = ?")
	if len(q.States) > 0 {
		done, gone := false, true
		var names []string
		for _, s := range q.States {
			if !s.Valid() {
				return "", nil, fmt.Errorf("scanning account %d: state %d: %w", account, int(s), ErrInvalidEntry)
			}
			done = done || s == pipeline.StateDone
			gone = gone && s == pipeline.StateGone
			if !slices.Contains(names, "'"+s.String()+"'") {
				names = append(names, "'"+s.String()+"'") // from the fixed set: nothing to quote
			}
		}
		if !done {
			where = append(where, "state <> 'done'")
			index = "messages_open"
			if gone && q.Digest != "" {
				index = "messages_gone_digest"
			}
		}
		if len(names) == 1 {
			where = append(where, "state = "+names[0])
		} else {
			where = append(where, "state IN ("+strings.Join(names, ", ")+")")
		}
	}
	// One lower bound on source_key, never two: given the prefix's and
	// After's, SQLite seeks by the prefix's and only filters by After's,
	// so each page of a folder read every key of the pages before it
	// again (quadratic: an IMAP first run's sweep of a 500,000-message
	// folder). Keys compare bytewise here and in both dialects.
	after := q.After
	if q.KeyPrefix != "" {
		lo, hi := prefixRange(q.KeyPrefix)
		if after < lo {
			where = append(where, "source_key >= ?")
			args = append(args, l.d.key(lo))
			after = ""
		}
		if hi != "" {
			where = append(where, "source_key < ?")
			args = append(args, l.d.key(hi))
		}
	}
	if after != "" {
		where = append(where, "source_key > ?")
		args = append(args, l.d.key(after))
	}
	if q.Digest != "" {
		if !validDigest(q.Digest) {
			return "", nil, fmt.Errorf("scanning account %d: digest %q: %w", account, q.Digest, ErrInvalidEntry)
		}
		where = append(where, "digest = ?")
		args = append(args, digestBytes(q.Digest))
	}
	from := "messages"
	if index != "" {
		from += l.d.indexedBy(index)
	}
	args = append(args, limit+1)
	return l.d.q(`SELECT ` + cols + ` FROM ` + from + ` WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY source_key LIMIT ?`), args, nil
}

// Copies tells which of q.UIDs entries name in the destination folder
// q.Mailbox under q.UIDValidity: entries of q.Account, or (0) of every
// account with a folder of that name (two accounts may write into one
// mailbox), or only of those other than q.OthersOf that write into its
// destination user's mailbox. With q.Digest, only
// entries of that digest, and Claims also says from which UID a pending
// entry of that digest may own a copy (PendingFrom) and whether a done one
// has no UID (NoUID). Through folders_dst_name and messages_dest: never a
// scan of an account.
func (l *Ledger) Copies(ctx context.Context, q pipeline.CopiesQuery) (pipeline.Claims, error) {
	out := pipeline.Claims{UIDs: map[uint32]bool{}}
	if err := l.checkOpen(); err != nil {
		return out, err
	}
	if len(q.UIDs) > pipeline.MaxLookup {
		return out, fmt.Errorf("asking for %d UIDs in %q: at most %d at once", len(q.UIDs), q.Mailbox, pipeline.MaxLookup)
	}
	if q.Digest != "" && !validDigest(q.Digest) {
		return out, fmt.Errorf("asking for copies of digest %q: %w", q.Digest, ErrInvalidEntry)
	}
	var folderRows *sql.Rows
	var err error
	if q.Account != 0 {
		folderRows, err = l.r.QueryContext(ctx, l.d.q(`SELECT id FROM folders WHERE account_id = ? AND side = 'dst' AND name = ?`),
			q.Account, l.d.key(q.Mailbox))
	} else if q.OthersOf == 0 {
		// Every folder of that name, whatever UIDVALIDITY it was last seen
		// with: the entries' own UIDVALIDITY decides, and a claim missed
		// here would let a late-copy check take another account's copy.
		folderRows, err = l.r.QueryContext(ctx, l.d.q(`SELECT id FROM folders WHERE side = 'dst' AND name = ?`),
			l.d.key(q.Mailbox))
	} else {
		// Not q.OthersOf's folders, nor those of accounts that write into
		// another destination user's mailbox (dst_user is kept lower-case;
		// '' is not known, so it may be the same).
		folderRows, err = l.r.QueryContext(ctx, l.d.q(othersFolders), l.d.key(q.Mailbox), q.OthersOf, q.OthersOf, q.OthersOf)
	}
	if err != nil {
		return out, fmt.Errorf("reading the folders named %q: %w", q.Mailbox, err)
	}
	var ids []int64
	for folderRows.Next() {
		var id int64
		if err := folderRows.Scan(&id); err != nil {
			folderRows.Close()
			return out, fmt.Errorf("reading the folders named %q: %w", q.Mailbox, err)
		}
		ids = append(ids, id)
	}
	if err := folderRows.Close(); err != nil {
		return out, fmt.Errorf("reading the folders named %q: %w", q.Mailbox, err)
	}
	digest := ""
	var digestArgs []any
	if q.Digest != "" {
		digest = " AND digest = ?"
		digestArgs = []any{digestBytes(q.Digest)}
	}
	for _, id := range ids {
		if len(q.UIDs) > 0 {
			vals := make([]any, len(q.UIDs))
			for i, u := range q.UIDs {
				vals[i] = int64(u)
			}
			cond, uargs := l.d.in("dest_uid", vals)
			args := append([]any{id}, uargs...)
			args = append(append(args, int64(q.UIDValidity)), digestArgs...)
			states := `state IN ('done', 'gone', 'removing', 'moving')`
			if q.OthersOf != 0 {
				states = othersStates // and the copies skipped "probably present" name
			}
			if err := l.eachUID(ctx, `SELECT dest_uid FROM messages WHERE dest_folder_id = ? AND dest_folder_id <> 0 AND `+cond+
				` AND dest_uidvalidity = ? AND (`+states+`)`+digest, args, func(uid uint32) {
				out.UIDs[uid] = true
			}); err != nil {
				return out, err
			}
		}
		if q.Digest == "" {
			continue
		}
		// Pending entries of the digest in this folder: messages_open.
		rows, err := l.r.QueryContext(ctx, l.d.q(`SELECT dest_uidvalidity, dest_uidnext FROM messages
			WHERE dest_folder_id = ? AND dest_folder_id <> 0 AND state <> 'done' AND state = 'pending'`+digest), append([]any{id}, digestArgs...)...)
		if err != nil {
			return out, fmt.Errorf("reading the pending copies in %q: %w", q.Mailbox, err)
		}
		for rows.Next() {
			var uv, next int64
			if err := rows.Scan(&uv, &next); err != nil {
				rows.Close()
				return out, fmt.Errorf("reading the pending copies in %q: %w", q.Mailbox, err)
			}
			from := uint32(1)
			if uint32(uv) == q.UIDValidity && next > 0 {
				from = uint32(next)
			}
			if out.PendingFrom == 0 || from < out.PendingFrom {
				out.PendingFrom = from
			}
		}
		if err := rows.Close(); err != nil {
			return out, fmt.Errorf("reading the pending copies in %q: %w", q.Mailbox, err)
		}
		// A done entry of the digest without a UID: messages_dest at UID 0.
		var one int
		err = l.r.QueryRowContext(ctx, l.d.q(`SELECT 1 FROM messages WHERE dest_folder_id = ? AND dest_folder_id <> 0 AND dest_uid = 0 AND state = 'done'`+digest+` LIMIT 1`),
			append([]any{id}, digestArgs...)...).Scan(&one)
		switch {
		case err == nil:
			out.NoUID = true
		case err != sql.ErrNoRows:
			return out, fmt.Errorf("reading the copies without UID in %q: %w", q.Mailbox, err)
		}
	}
	return out, nil
}

func (l *Ledger) eachUID(ctx context.Context, q string, args []any, fn func(uint32)) error {
	rows, err := l.r.QueryContext(ctx, l.d.q(q), args...)
	if err != nil {
		return fmt.Errorf("reading copies in %s: %w", l.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var uid int64
		if err := rows.Scan(&uid); err != nil {
			return fmt.Errorf("reading copies in %s: %w", l.path, err)
		}
		fn(uint32(uid))
	}
	return rows.Err()
}

// Counts returns the account's entries and bytes by state, from
// account_counts (kept by triggers): never a count over the entries. The
// intents of late-copy removal are left out (pipeline.LateCopyKeyPrefix):
// counted by their keys' range only when the account has removing
// entries at all.
func (l *Ledger) Counts(ctx context.Context, account pipeline.AccountID) (pipeline.Counts, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := l.r.QueryContext(ctx, l.d.q(`SELECT state, messages, bytes FROM account_counts WHERE account_id = ? AND messages <> 0`), account)
	if err != nil {
		return nil, fmt.Errorf("counting the entries of account %d in %s: %w", account, l.path, err)
	}
	defer rows.Close()
	out := pipeline.Counts{}
	for rows.Next() {
		var state string
		var c pipeline.Count
		if err := rows.Scan(&state, &c.Messages, &c.Bytes); err != nil {
			return nil, fmt.Errorf("counting the entries of account %d in %s: %w", account, l.path, err)
		}
		s, ok := stateOf[state]
		if !ok {
			return nil, fmt.Errorf("counting the entries of account %d in %s: unknown state %q", account, l.path, state)
		}
		out[s] = c
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("counting the entries of account %d in %s: %w", account, l.path, err)
	}
	if err := l.leaveOutLateCopies(ctx, l.r, account, out); err != nil {
		return nil, err
	}
	return out, nil
}

// leaveOutLateCopies takes the account's intents to remove a late copy
// (removing entries keyed pipeline.LateCopyKeyPrefix…) out of counts: they
// hold a duplicate copy while it is expunged and are no message of the
// account, so neither a copy for mirror's caps nor mirroring work in
// status. account_counts' triggers count every entry; the intents are few
// and short-lived, found by a range of the primary key, and looked for
// only when counts has removing entries.
func (l *Ledger) leaveOutLateCopies(ctx context.Context, db querier, account pipeline.AccountID, counts pipeline.Counts) error {
	if counts[pipeline.StateRemoving].Messages == 0 {
		return nil
	}
	lo, hi := prefixRange(pipeline.LateCopyKeyPrefix)
	rows, err := db.QueryContext(ctx, l.d.q(`SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages
		WHERE account_id = ? AND source_key >= ? AND source_key < ? AND state = 'removing'`), account, l.d.key(lo), l.d.key(hi))
	if err != nil {
		return fmt.Errorf("counting the late-copy intents of account %d in %s: %w", account, l.path, err)
	}
	defer rows.Close()
	var c pipeline.Count
	if rows.Next() {
		if err := rows.Scan(&c.Messages, &c.Bytes); err != nil {
			return fmt.Errorf("counting the late-copy intents of account %d in %s: %w", account, l.path, err)
		}
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("counting the late-copy intents of account %d in %s: %w", account, l.path, err)
	}
	if c.Messages == 0 {
		return nil
	}
	left := counts[pipeline.StateRemoving]
	left.Messages -= c.Messages
	left.Bytes -= c.Bytes
	if left.Messages <= 0 {
		delete(counts, pipeline.StateRemoving)
	} else {
		counts[pipeline.StateRemoving] = left
	}
	return nil
}

// Folders returns the account's folder records. HasCopies says whether an
// entry names a destination folder (messages_dest).
func (l *Ledger) Folders(ctx context.Context, account pipeline.AccountID) ([]pipeline.Folder, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	// "dest_folder_id <> 0" lets the planner use the partial index
	// messages_dest (the index's condition must appear in the query):
	// without it each destination folder scanned the account's entries,
	// most of the CPU of a no-op re-run of 100,000 IMAP messages (issue 18).
	rows, err := l.r.QueryContext(ctx, l.d.q(`SELECT id, side, name, uidvalidity, uidnext, highestmodseq, messages, synced_at, op, op_name,
			side = 'dst' AND EXISTS (SELECT 1 FROM messages m WHERE m.dest_folder_id = folders.id AND m.dest_folder_id <> 0)
		FROM folders WHERE account_id = ? ORDER BY side, name`), account)
	if err != nil {
		return nil, fmt.Errorf("reading the folders of account %d in %s: %w", account, l.path, err)
	}
	defer rows.Close()
	var out []pipeline.Folder
	for rows.Next() {
		var f pipeline.Folder
		var id, uv, next, modseq, msgs, synced int64
		var side, op string
		if err := rows.Scan(&id, &side, &f.Name, &uv, &next, &modseq, &msgs, &synced, &op, &f.OpName, &f.HasCopies); err != nil {
			return nil, fmt.Errorf("reading the folders of account %d in %s: %w", account, l.path, err)
		}
		f.Side, f.Op = pipeline.Side(side), pipeline.FolderOp(op)
		f.UIDValidity, f.UIDNext, f.HighestModSeq, f.Messages = uint32(uv), uint32(next), uint64(modseq), uint32(msgs)
		f.SyncedAt = fromNanos(synced)
		out = append(out, f)
	}
	return out, rows.Err()
}

// Resent returns the account's Resent records, oldest first.
func (l *Ledger) Resent(ctx context.Context, account pipeline.AccountID) ([]pipeline.Resent, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := l.r.QueryContext(ctx, l.d.q(`SELECT r.id, r.source_key, COALESCE(f.name, ''), r.dest_uidvalidity, r.from_uid, r.digest, r.size, r.recorded
		FROM resent r LEFT JOIN folders f ON f.id = r.dest_folder_id WHERE r.account_id = ? ORDER BY r.id`), account)
	if err != nil {
		return nil, fmt.Errorf("reading resent messages of account %d from %s: %w", account, l.path, err)
	}
	defer rows.Close()
	var out []pipeline.Resent
	for rows.Next() {
		var r pipeline.Resent
		var uidValidity, fromUID, recorded int64
		var digest []byte
		if err := rows.Scan(&r.ID, &r.Key, &r.Mailbox, &uidValidity, &fromUID, &digest, &r.Size, &recorded); err != nil {
			return nil, fmt.Errorf("reading resent messages of account %d from %s: %w", account, l.path, err)
		}
		r.UIDValidity, r.FromUID, r.Recorded = uint32(uidValidity), uint32(fromUID), fromNanos(recorded)
		if len(digest) > 0 {
			r.Digest = hex.EncodeToString(digest)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Usage returns what the account moved in the quota window starting at
// window.
func (l *Ledger) Usage(ctx context.Context, account pipeline.AccountID, window time.Time) (pipeline.Usage, error) {
	u := pipeline.Usage{Window: window}
	if err := l.checkOpen(); err != nil {
		return u, err
	}
	err := l.r.QueryRowContext(ctx, l.d.q(`SELECT read_bytes, written_bytes FROM usage WHERE account_id = ? AND window_start = ?`),
		account, nanos(window)).Scan(&u.ReadBytes, &u.WrittenBytes)
	if err != nil && err != sql.ErrNoRows {
		return u, fmt.Errorf("reading the quota usage of account %d in %s: %w", account, l.path, err)
	}
	return u, nil
}
