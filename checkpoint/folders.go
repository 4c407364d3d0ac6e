package checkpoint

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/mailferry/mailferry/pipeline"
)

// folderKey names a folder record.
type folderKey struct {
	account pipeline.AccountID
	side    pipeline.Side
	name    string
}

// folderCache maps folder records to their ids and back: entries name
// their destination folder by id (a number instead of the repeated name),
// and a run asks for the same few folders again and again. Only committed
// rows enter it: a transaction that rolls back leaves no id behind.
type folderCache struct {
	mu     sync.Mutex
	ids    map[folderKey]folderRow
	byID   map[int64]folderKey
	loaded bool
}

type folderRow struct {
	id          int64
	uidValidity uint32
}

func (c *folderCache) init() {
	c.ids = map[folderKey]folderRow{}
	c.byID = map[int64]folderKey{}
}

func (c *folderCache) get(k folderKey) (folderRow, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.ids[k]
	return r, ok
}

func (c *folderCache) name(id int64) (folderKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.byID[id]
	return k, ok
}

func (c *folderCache) put(k folderKey, r folderRow) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.ids[k]; ok && old.id != r.id {
		delete(c.byID, old.id)
	}
	c.ids[k] = r
	c.byID[r.id] = k
}

// drop forgets one folder record (deleted).
func (c *folderCache) drop(k folderKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.ids[k]; ok {
		delete(c.ids, k)
		delete(c.byID, r.id)
	}
}

// forget drops an account's folders (its rows were moved or deleted).
func (c *folderCache) forget(account pipeline.AccountID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, r := range c.ids {
		if k.account == account {
			delete(c.ids, k)
			delete(c.byID, r.id)
		}
	}
}

// folderName returns the name of folder id (0: ""), from the cache or the
// database.
func (l *Ledger) folderName(ctx context.Context, id int64) (string, error) {
	if id == 0 {
		return "", nil
	}
	if k, ok := l.folders.name(id); ok {
		return k.name, nil
	}
	var k folderKey
	var uv int64
	var side string
	err := l.r.QueryRowContext(ctx, l.d.q(`SELECT account_id, side, name, uidvalidity FROM folders WHERE id = ?`), id).
		Scan(&k.account, &side, &k.name, &uv)
	if err != nil {
		return "", fmt.Errorf("reading folder %d: %w", id, err)
	}
	k.side = pipeline.Side(side)
	l.folders.put(k, folderRow{id: id, uidValidity: uint32(uv)})
	return k.name, nil
}

// folderIDs resolves folder records within a transaction, creating the
// missing ones; new ids enter the cache only once the transaction
// committed (commit).
type folderIDs struct {
	l       *Ledger
	tx      *sql.Tx
	fresh   map[folderKey]folderRow
	dropped []folderKey // deleted records, out of the cache at commit
}

func (l *Ledger) newFolderIDs(tx *sql.Tx) *folderIDs {
	return &folderIDs{l: l, tx: tx, fresh: map[folderKey]folderRow{}}
}

// id returns the id of the account's folder name on side, creating the
// record when there is none. uidValidity, when not 0, is the folder's
// UIDVALIDITY as a confirmed copy saw it: a destination folder records the
// last one seen (Copies across accounts asks by it).
func (f *folderIDs) id(ctx context.Context, k folderKey, uidValidity uint32) (int64, error) {
	if k.name == "" {
		return 0, nil
	}
	r, ok := f.fresh[k]
	if !ok {
		r, ok = f.l.folders.get(k)
	}
	if !ok {
		var uv int64
		err := f.tx.QueryRowContext(ctx, f.l.d.q(`SELECT id, uidvalidity FROM folders WHERE account_id = ? AND side = ? AND name = ?`),
			k.account, string(k.side), f.l.d.key(k.name)).Scan(&r.id, &uv)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			err := f.tx.QueryRowContext(ctx, f.l.d.q(`INSERT INTO folders (account_id, side, name, uidvalidity) VALUES (?, ?, ?, ?) RETURNING id`),
				k.account, string(k.side), f.l.d.key(k.name), int64(uidValidity)).Scan(&r.id)
			if err != nil {
				return 0, fmt.Errorf("recording folder %q: %w", k.name, err)
			}
			r.uidValidity = uidValidity
			f.fresh[k] = r
			return r.id, nil
		case err != nil:
			return 0, fmt.Errorf("reading folder %q: %w", k.name, err)
		}
		r.uidValidity = uint32(uv)
	}
	if k.side == pipeline.DestSide && uidValidity != 0 && uidValidity != r.uidValidity {
		if _, err := f.tx.ExecContext(ctx, f.l.d.q(`UPDATE folders SET uidvalidity = ? WHERE id = ?`), int64(uidValidity), r.id); err != nil {
			return 0, fmt.Errorf("recording the UIDVALIDITY of folder %q: %w", k.name, err)
		}
		r.uidValidity = uidValidity
	}
	f.fresh[k] = r
	return r.id, nil
}

// commit moves the ids the transaction made or read into the cache, and
// drops those of the records it deleted.
func (f *folderIDs) commit() {
	for _, k := range f.dropped {
		f.l.folders.drop(k)
	}
	for k, r := range f.fresh {
		f.l.folders.put(k, r)
	}
}
