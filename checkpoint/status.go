package checkpoint

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// AccountStatus is what `status` shows of one account.
type AccountStatus struct {
	ID          pipeline.AccountID
	Ident       string // what the account was created with: its schema-4 key, endpoint key or id
	Name        string // the config's name; "" when none
	Source      string // the servers last used, for display
	Destination string
	Counts      pipeline.Counts
	// SkipReasons counts the skipped entries by reason.
	SkipReasons map[string]int
	// LastRun is the newest run; LastOK the newest that ended ok or
	// partial; LastError the newest with an error. nil when none.
	LastRun, LastOK, LastError *pipeline.RunRecord
	Paused                     bool
	PauseReason                string
	NotBefore                  time.Time
	WaitReason                 string
	// Holder is the pid of the process running the account now, 0 when
	// none (SQLite: read from its lock file, never by taking the lock;
	// PostgreSQL: the pid in the name of the worker holding a live lease,
	// a process of the machine Worker names).
	Holder int
	// Worker is the worker holding a live lease on the account
	// ("<host>:<pid>:…"); "" when none, and always in SQLite.
	Worker      string
	Provisional bool
}

// Status returns the selected accounts with their counts, skip reasons and
// last runs, in a few queries over every selected account (accounts and
// their last runs, account_counts, skip reasons through messages_open):
// never a count over the entries. Late-copy intents are left out of the
// counts (leaveOutLateCopies: a key range, for accounts with removing
// entries only).
func (l *Ledger) Status(ctx context.Context, sel Selector) ([]AccountStatus, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	tx, err := l.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("reading the status of %s: %w", l.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	// A few accounts by id (the status page's Summary, one account at a
	// time) are read by their ids alone: reading every account's row and
	// counts for each of them costs a run of 10,000 accounts 10,000 reads
	// of all 10,000 (issue 18).
	var ids []pipeline.AccountID
	// only and onlyCounts are conditions on the accounts' ids in accounts
	// and account_counts; "" for all.
	var only, onlyCounts string
	var onlyArgs []any
	if len(sel.IDs) > 0 && len(sel.IDs) <= pipeline.MaxLookup && len(sel.Names) == 0 && !sel.Failed && !sel.All {
		ids = slices.Clone(sel.IDs)
		slices.Sort(ids)
		ids = slices.Compact(ids)
		vals := make([]any, len(ids))
		for i, id := range ids {
			vals[i] = int64(id) // PostgreSQL's array is of int64
		}
		only, onlyArgs = l.d.in("id", vals)
		onlyCounts, _ = l.d.in("account_id", vals)
	} else if ids, err = l.selectAccounts(ctx, tx, sel); err != nil {
		return nil, err
	}
	want := map[pipeline.AccountID]int{}
	out := make([]AccountStatus, 0, len(ids))
	for _, id := range ids {
		want[id] = len(out)
		out = append(out, AccountStatus{ID: id, Counts: pipeline.Counts{}, SkipReasons: map[string]int{}})
	}
	q := `SELECT id, ident, COALESCE(name, ''), source, destination, paused, pause_reason,
		not_before, wait_reason, provisional, last_run, last_ok_run, last_err_run FROM accounts`
	if only != "" {
		q += ` WHERE ` + only
	}
	rows, err := tx.QueryContext(ctx, l.d.q(q), onlyArgs...)
	if err != nil {
		return nil, fmt.Errorf("reading the accounts of %s: %w", l.path, err)
	}
	found := map[pipeline.AccountID]bool{}
	runIDs := map[int64][]**pipeline.RunRecord{}
	for rows.Next() {
		var id pipeline.AccountID
		var a AccountStatus
		var notBefore int64
		var last, ok, bad sql.NullInt64
		if err := rows.Scan(&id, &a.Ident, &a.Name, &a.Source, &a.Destination, &a.Paused, &a.PauseReason,
			&notBefore, &a.WaitReason, &a.Provisional, &last, &ok, &bad); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading the accounts of %s: %w", l.path, err)
		}
		i, selected := want[id]
		if !selected {
			continue
		}
		found[id] = true
		s := &out[i]
		s.Ident, s.Name, s.Source, s.Destination = a.Ident, a.Name, a.Source, a.Destination
		s.Paused, s.PauseReason, s.NotBefore, s.WaitReason, s.Provisional = a.Paused, a.PauseReason, fromNanos(notBefore), a.WaitReason, a.Provisional
		for _, r := range []struct {
			id  sql.NullInt64
			dst **pipeline.RunRecord
		}{{last, &s.LastRun}, {ok, &s.LastOK}, {bad, &s.LastError}} {
			if r.id.Valid {
				runIDs[r.id.Int64] = append(runIDs[r.id.Int64], r.dst)
			}
		}
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("reading the accounts of %s: %w", l.path, err)
	}
	if len(found) < len(out) { // ids asked for that name no account
		kept := out[:0]
		for _, a := range out {
			if found[a.ID] {
				kept = append(kept, a)
			}
		}
		out = kept
		clear(want)
		for i, a := range out {
			want[a.ID] = i
		}
	}
	if len(runIDs) > 0 {
		ids := make([]any, 0, len(runIDs))
		for id := range runIDs {
			ids = append(ids, id)
		}
		for start := 0; start < len(ids); start += pipeline.MaxLookup {
			chunk := ids[start:min(start+pipeline.MaxLookup, len(ids))]
			cond, args := l.d.in("id", chunk)
			rows, err := tx.QueryContext(ctx, l.d.q(`SELECT id, `+runColumns+` FROM runs WHERE `+cond), args...)
			if err != nil {
				return nil, fmt.Errorf("reading the last runs of %s: %w", l.path, err)
			}
			for rows.Next() {
				var id int64
				rec, err := scanRun(scanFunc(func(dest ...any) error { return rows.Scan(append([]any{&id}, dest...)...) }))
				if err != nil {
					rows.Close()
					return nil, fmt.Errorf("reading the last runs of %s: %w", l.path, err)
				}
				for _, dst := range runIDs[id] {
					r := rec
					*dst = &r
				}
			}
			if err := rows.Close(); err != nil {
				return nil, fmt.Errorf("reading the last runs of %s: %w", l.path, err)
			}
		}
	}
	q = `SELECT account_id, state, messages, bytes FROM account_counts WHERE messages <> 0`
	if onlyCounts != "" {
		q += ` AND ` + onlyCounts
	}
	rows, err = tx.QueryContext(ctx, l.d.q(q), onlyArgs...)
	if err != nil {
		return nil, fmt.Errorf("reading the counts of %s: %w", l.path, err)
	}
	for rows.Next() {
		var id pipeline.AccountID
		var state string
		var c pipeline.Count
		if err := rows.Scan(&id, &state, &c.Messages, &c.Bytes); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading the counts of %s: %w", l.path, err)
		}
		if i, ok := want[id]; ok {
			out[i].Counts[stateOf[state]] = c
		}
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("reading the counts of %s: %w", l.path, err)
	}
	for i := range out {
		if err := l.leaveOutLateCopies(ctx, tx, out[i].ID, out[i].Counts); err != nil {
			return nil, err
		}
	}
	for i := range out {
		if out[i].Counts[pipeline.StateSkipped].Messages == 0 {
			continue
		}
		rows, err := tx.QueryContext(ctx, l.d.q(`SELECT reason, COUNT(*) FROM messages
			WHERE account_id = ? AND state <> 'done' AND state = 'skipped' GROUP BY reason`), out[i].ID)
		if err != nil {
			return nil, fmt.Errorf("reading the skip reasons of %s: %w", l.path, err)
		}
		for rows.Next() {
			var reason string
			var n int
			if err := rows.Scan(&reason, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading the skip reasons of %s: %w", l.path, err)
			}
			out[i].SkipReasons[reason] = n
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("reading the skip reasons of %s: %w", l.path, err)
		}
	}
	if l.pg != nil {
		if err := l.leaseHolders(ctx, tx, out, want); err != nil {
			return nil, err
		}
	} else {
		for i := range out {
			out[i].Holder = l.holder(out[i].Ident)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return displayName(out[i]) < displayName(out[j]) })
	return out, nil
}

func displayName(a AccountStatus) string {
	if a.Name != "" {
		return a.Name
	}
	return a.Ident
}

// DoneSince counts the done entries of account that first became done
// after since, and returns the earliest of those times (zero when there is
// none). With a delete_after period P and since = now - P, these are the
// messages still waiting out their period before they are deleted at the
// source, and the first of them falls due at earliest + P.
func (l *Ledger) DoneSince(ctx context.Context, account pipeline.AccountID, since time.Time) (n int, earliest time.Time, err error) {
	if err := l.checkOpen(); err != nil {
		return 0, time.Time{}, err
	}
	var first sql.NullInt64
	// state = 'done' is spelled out so that SQLite can use the partial
	// index messages_done_at.
	if err := l.r.QueryRowContext(ctx, l.d.q(`SELECT COUNT(*), MIN(done_at) FROM messages
		WHERE account_id = ? AND state = 'done' AND done_at > ?`), account, nanos(since)).Scan(&n, &first); err != nil {
		return 0, time.Time{}, fmt.Errorf("counting messages of account %d done since %v in %s: %w", account, since, l.path, err)
	}
	if first.Valid && n > 0 {
		earliest = fromNanos(first.Int64)
	}
	return n, earliest, nil
}

// Size returns the ledger's size in bytes (the pages in use) and how many
// entries it holds (from account_counts).
func (l *Ledger) Size(ctx context.Context) (bytes, entries int64, err error) {
	if err := l.checkOpen(); err != nil {
		return 0, 0, err
	}
	if l.pg != nil {
		return l.pgSize(ctx)
	}
	var pages, free, size int64
	for _, p := range []struct {
		pragma string
		dst    *int64
	}{{"page_count", &pages}, {"freelist_count", &free}, {"page_size", &size}} {
		if err := l.r.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(p.dst); err != nil {
			return 0, 0, fmt.Errorf("reading the size of %s: %w", l.path, err)
		}
	}
	if err := l.r.QueryRowContext(ctx, `SELECT COALESCE(SUM(messages), 0) FROM account_counts`).Scan(&entries); err != nil {
		return 0, 0, fmt.Errorf("counting the entries of %s: %w", l.path, err)
	}
	return (pages - free) * size, entries, nil
}

// Check verifies the ledger: the database's own check (SQLite quick_check)
// and every row of account_counts against a count of the entries. It reads
// every entry; an admin's `ledger check` and the tests use it, never a
// run.
func (l *Ledger) Check(ctx context.Context) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	res := "ok"
	if l.pg != nil {
		// PostgreSQL checks its pages itself; the counts are checked below.
	} else if err := l.r.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&res); err != nil {
		return fmt.Errorf("checking %s: %w", l.path, err)
	}
	if res != "ok" {
		return fmt.Errorf("checking %s: %s", l.path, res)
	}
	rows, err := l.r.QueryContext(ctx, `SELECT COALESCE(c.account_id, g.account_id), COALESCE(c.state, g.state),
			COALESCE(c.messages, 0), COALESCE(c.bytes, 0), COALESCE(g.messages, 0), COALESCE(g.bytes, 0)
		FROM account_counts c FULL OUTER JOIN
			(SELECT account_id, state, COUNT(*) AS messages, SUM(size) AS bytes FROM messages GROUP BY account_id, state) g
			ON g.account_id = c.account_id AND g.state = c.state
		WHERE COALESCE(c.messages, 0) <> COALESCE(g.messages, 0) OR COALESCE(c.bytes, 0) <> COALESCE(g.bytes, 0)`)
	if err != nil {
		return fmt.Errorf("checking the counts of %s: %w", l.path, err)
	}
	defer rows.Close()
	var errs []error
	for rows.Next() {
		var id pipeline.AccountID
		var state string
		var cm, cb, gm, gb int64
		if err := rows.Scan(&id, &state, &cm, &cb, &gm, &gb); err != nil {
			return fmt.Errorf("checking the counts of %s: %w", l.path, err)
		}
		errs = append(errs, fmt.Errorf("account %d, %s: counted %d entries of %d bytes, there are %d of %d", id, state, cm, cb, gm, gb))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("checking the counts of %s: %w", l.path, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("checking %s: %w", l.path, errors.Join(errs...))
	}
	return nil
}
