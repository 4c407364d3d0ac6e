package checkpoint

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/mailferry/mailferry/pipeline"
)

// Changes.Take and Changes.Adopt (docs/ledger.md, "Copies two accounts
// name"): mirror's intent to remove or move a copy, and destination
// matching's adoption of a copy, are each checked against the other
// accounts' entries in the transaction that writes them. SQLite's
// immediate transactions are one at a time already; PostgreSQL's run side
// by side, so there each takes a transaction-scoped advisory lock per
// destination folder (name and UIDVALIDITY) before reading: a Take and an
// Adopt naming one copy cannot both read before the other wrote.

// othersFolders selects the destination folders named ? of the accounts
// other than ? that write into its destination user's mailbox (dst_user
// is kept lower-case; an empty one is not known, so it may be the same):
// the accounts CopiesQuery.OthersOf asks about.
const othersFolders = `SELECT f.id FROM folders f JOIN accounts a ON a.id = f.account_id
	WHERE f.side = 'dst' AND f.name = ? AND f.account_id <> ?
		AND (a.dst_user = '' OR a.dst_user = (SELECT dst_user FROM accounts WHERE id = ?)
			OR (SELECT dst_user FROM accounts WHERE id = ?) = '')`

// othersStates are the entries of another account that keep a copy from
// mirror (Changes.Take, CopiesQuery.OthersOf): those whose copy it is
// (done, gone, removing, moving), and those skipped "probably present",
// which name the copy standing in for their message (never sent).
const othersStates = `state IN ('done', 'gone', 'removing', 'moving') OR state = 'skipped' AND reason_class = 'present'`

// copyLockSpace keeps the advisory lock keys apart from any other user of
// pg_advisory_xact_lock in the same database.
const copyLockSpace = "mailferry copies\x00"

// contest returns a *pipeline.ContestedError naming the entries of take
// whose copy another account's entry names (othersStates), and those of adopt whose copy another account's entry holds removing or
// moving; nil when none is.
func (w *commitWriter) contest(ctx context.Context, take, adopt []pipeline.Entry) error {
	type box struct {
		name        string
		uidValidity uint32
	}
	type want struct {
		entries []pipeline.Entry
		states  string
	}
	boxes := map[box][2][]pipeline.Entry{}
	for i, list := range [2][]pipeline.Entry{take, adopt} {
		for _, e := range list {
			if e.DestMailbox == "" || e.DestUID == 0 {
				continue
			}
			b := box{e.DestMailbox, e.DestUIDValidity}
			v := boxes[b]
			v[i] = append(v[i], e)
			boxes[b] = v
		}
	}
	if len(boxes) == 0 {
		return nil
	}
	if w.l.pg != nil {
		keys := make([]int64, 0, len(boxes))
		for b := range boxes {
			h := fnv.New64a()
			_, _ = h.Write([]byte(copyLockSpace + b.name))
			_ = binary.Write(h, binary.BigEndian, b.uidValidity)
			keys = append(keys, int64(h.Sum64()))
		}
		// In one order, so that two commits never wait for each other.
		slices.Sort(keys)
		for _, k := range slices.Compact(keys) {
			if _, err := w.tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, k); err != nil {
				return fmt.Errorf("locking the destination copies: %w", err)
			}
		}
	}
	var refused []string
	for b, lists := range boxes {
		ids, err := w.othersFolders(ctx, b.name)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			continue
		}
		for _, c := range []want{{lists[0], othersStates}, {lists[1], `state IN ('removing', 'moving')`}} {
			if len(c.entries) == 0 {
				continue
			}
			named, err := w.named(ctx, ids, b.uidValidity, c.entries, c.states)
			if err != nil {
				return fmt.Errorf("reading which copies in %q other accounts name: %w", b.name, err)
			}
			for _, e := range c.entries {
				if named[e.DestUID] {
					refused = append(refused, e.Key)
				}
			}
		}
	}
	if len(refused) == 0 {
		return nil
	}
	slices.Sort(refused)
	return &pipeline.ContestedError{Keys: refused}
}

// othersFolders returns the ids of the destination folders named name of
// the accounts othersFolders (the statement) selects.
func (w *commitWriter) othersFolders(ctx context.Context, name string) ([]int64, error) {
	rows, err := w.tx.QueryContext(ctx, w.l.d.q(othersFolders), w.l.d.key(name), w.account, w.account, w.account)
	if err != nil {
		return nil, fmt.Errorf("reading the folders named %q: %w", name, err)
	}
	return scanIDs(rows, name)
}

func scanIDs(rows *sql.Rows, name string) ([]int64, error) {
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("reading the folders named %q: %w", name, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the folders named %q: %w", name, err)
	}
	return ids, nil
}

// named returns which of the entries' UIDs an entry in one of the folders
// ids names under uidValidity, of those the condition states selects.
func (w *commitWriter) named(ctx context.Context, ids []int64, uidValidity uint32, entries []pipeline.Entry, states string) (map[uint32]bool, error) {
	out := map[uint32]bool{}
	for chunk := range slices.Chunk(entries, pipeline.MaxLookup) {
		vals := make([]any, len(chunk))
		for i, e := range chunk {
			vals[i] = int64(e.DestUID)
		}
		cond, uargs := w.l.d.in("dest_uid", vals)
		for _, id := range ids {
			args := append(append([]any{id}, uargs...), int64(uidValidity))
			rows, err := w.tx.QueryContext(ctx, w.l.d.q(`SELECT dest_uid FROM messages WHERE dest_folder_id = ? AND dest_folder_id <> 0 AND `+cond+
				` AND dest_uidvalidity = ? AND (`+states+`)`), args...)
			if err != nil {
				return nil, err
			}
			for rows.Next() {
				var uid int64
				if err := rows.Scan(&uid); err != nil {
					rows.Close()
					return nil, err
				}
				out[uint32(uid)] = true
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
