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
	// none (SQLite: read from its lock file, never by taking the lock,
	// and only for an account whose last run has not finished: no other
	// is running; PostgreSQL: the pid in the name of the worker holding a
	// live lease, a process of the machine Worker names). The status page
	// shows it, and tells by it a run going on from one that was killed.
	Holder int
	// Worker is the worker holding a live lease on the account
	// ("<host>:<pid>:…"); "" when none, and always in SQLite.
	Worker      string
	Provisional bool
}

// Status returns the selected accounts with their counts, skip reasons and
// last runs, in a few queries over every selected account (accounts and
// their last runs, account_counts, skip reasons through messages_open):
// never a count over the entries (late-copy intents left out:
// leaveOutLateCopies, a key range, for accounts with removing entries
// only); and who holds each account now (Holder, Worker).
func (l *Ledger) Status(ctx context.Context, sel Selector) ([]AccountStatus, error) {
	return l.status(ctx, sel, true)
}

// StatusWithoutHolders is Status with Holder and Worker left unset, for a
// caller that does not show them (`mailferry status`): in SQLite, who
// holds an account is a look at its lock file, a system call per account
// (50 ms of CPU at 10,000 accounts, a third of Status there; issue 18).
func (l *Ledger) StatusWithoutHolders(ctx context.Context, sel Selector) ([]AccountStatus, error) {
	return l.status(ctx, sel, false)
}

func (l *Ledger) status(ctx context.Context, sel Selector, holders bool) ([]AccountStatus, error) {
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
	// every: all the accounts and nothing else, so the read of the
	// accounts below lists them itself; selectAccounts would read every
	// account (and its last run) once more for nothing (issue 18).
	every := sel.All && len(sel.IDs) == 0 && len(sel.Names) == 0 && !sel.Failed
	if len(sel.IDs) > 0 && len(sel.Names) == 0 && !sel.Failed && !sel.All {
		ids = slices.Clone(sel.IDs)
		slices.Sort(ids)
		ids = slices.Compact(ids)
		// More ids than a lookup takes (`status -c` of 10,000 accounts)
		// are kept from the read of every account's row.
		if len(ids) <= pipeline.MaxLookup {
			vals := make([]any, len(ids))
			for i, id := range ids {
				vals[i] = int64(id) // PostgreSQL's array is of int64
			}
			only, onlyArgs = l.d.in("id", vals)
			onlyCounts, _ = l.d.in("account_id", vals)
		}
	} else if !every {
		if ids, err = l.selectAccounts(ctx, tx, sel); err != nil {
			return nil, err
		}
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
	q += ` ORDER BY id`
	rows, err := tx.QueryContext(ctx, l.d.q(q), onlyArgs...)
	if err != nil {
		return nil, fmt.Errorf("reading the accounts of %s: %w", l.path, err)
	}
	found := map[pipeline.AccountID]bool{}
	// runsOf are each account's last, last ok and last failed runs, to be
	// read once out has its final places (it grows while every account is
	// read, and loses the ids that name no account below).
	runsOf := map[pipeline.AccountID][3]sql.NullInt64{}
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
		if every {
			want[id] = len(out)
			out = append(out, AccountStatus{ID: id, Counts: pipeline.Counts{}, SkipReasons: map[string]int{}})
		}
		i, selected := want[id]
		if !selected {
			continue
		}
		found[id] = true
		s := &out[i]
		s.Ident, s.Name, s.Source, s.Destination = a.Ident, a.Name, a.Source, a.Destination
		s.Paused, s.PauseReason, s.NotBefore, s.WaitReason, s.Provisional = a.Paused, a.PauseReason, fromNanos(notBefore), a.WaitReason, a.Provisional
		runsOf[id] = [3]sql.NullInt64{last, ok, bad}
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
	// readRuns reads the runs of a query's rows (an id, then runColumns)
	// and gives each to put with its id.
	readRuns := func(put func(id int64, rec pipeline.RunRecord), q string, args ...any) error {
		rows, err := tx.QueryContext(ctx, l.d.q(q), args...)
		if err != nil {
			return fmt.Errorf("reading the last runs of %s: %w", l.path, err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			rec, err := scanRun(scanFunc(func(dest ...any) error { return rows.Scan(append([]any{&id}, dest...)...) }))
			if err != nil {
				return fmt.Errorf("reading the last runs of %s: %w", l.path, err)
			}
			put(id, rec)
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("reading the last runs of %s: %w", l.path, err)
		}
		return nil
	}
	if only == "" {
		// Every account's last run in one read by account (those not
		// selected are passed over), not one read per MaxLookup run ids
		// (20 at 10,000 accounts, 2 of 5 of the time of Status, issue
		// 18); it is also the last ok or failed run where the account
		// says so, and the others are read by id below.
		err := readRuns(func(id int64, rec pipeline.RunRecord) {
			i, ok := want[pipeline.AccountID(id)]
			if !ok {
				return
			}
			s, runs := &out[i], runsOf[pipeline.AccountID(id)]
			for k, dst := range []**pipeline.RunRecord{&s.LastRun, &s.LastOK, &s.LastError} {
				if runs[k] == runs[0] {
					r := rec
					*dst = &r
				}
			}
		}, `SELECT a.id, `+runColumns+` FROM accounts a JOIN runs r ON r.id = a.last_run`)
		if err != nil {
			return nil, err
		}
	}
	runIDs := map[int64][]**pipeline.RunRecord{}
	for i := range out {
		s := &out[i]
		for k, dst := range []**pipeline.RunRecord{&s.LastRun, &s.LastOK, &s.LastError} {
			if r := runsOf[s.ID][k]; r.Valid && *dst == nil {
				runIDs[r.Int64] = append(runIDs[r.Int64], dst)
			}
		}
	}
	if len(runIDs) > 0 {
		ids := make([]any, 0, len(runIDs))
		for id := range runIDs {
			ids = append(ids, id)
		}
		for start := 0; start < len(ids); start += pipeline.MaxLookup {
			cond, args := l.d.in("id", ids[start:min(start+pipeline.MaxLookup, len(ids))])
			err := readRuns(func(id int64, rec pipeline.RunRecord) {
				for _, dst := range runIDs[id] {
					r := rec
					*dst = &r
				}
			}, `SELECT id, `+runColumns+` FROM runs WHERE `+cond, args...)
			if err != nil {
				return nil, err
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
	var skipping []int // the accounts with skipped entries
	for i := range out {
		if out[i].Counts[pipeline.StateSkipped].Messages != 0 {
			skipping = append(skipping, i)
		}
	}
	// reasons counts the skip reasons of one account, or of every
	// account (account 0): once many accounts have skipped entries, one
	// read of all of them through messages_open costs less than a read
	// per account (1,000 of 10,000 accounts with skipped entries took
	// 1,000 reads, issue 18); with a few, a read of each of them reads
	// only theirs.
	reasons := func(account pipeline.AccountID) error {
		q, args := `SELECT account_id, reason, COUNT(*) FROM messages
			WHERE state <> 'done' AND state = 'skipped' GROUP BY account_id, reason`, []any{}
		if account != 0 {
			q, args = `SELECT account_id, reason, COUNT(*) FROM messages
			WHERE account_id = ? AND state <> 'done' AND state = 'skipped' GROUP BY account_id, reason`, []any{account}
		}
		rows, err := tx.QueryContext(ctx, l.d.q(q), args...)
		if err != nil {
			return fmt.Errorf("reading the skip reasons of %s: %w", l.path, err)
		}
		defer rows.Close()
		for rows.Next() {
			var id pipeline.AccountID
			var reason string
			var n int
			if err := rows.Scan(&id, &reason, &n); err != nil {
				return fmt.Errorf("reading the skip reasons of %s: %w", l.path, err)
			}
			if i, ok := want[id]; ok {
				out[i].SkipReasons[reason] = n
			}
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("reading the skip reasons of %s: %w", l.path, err)
		}
		return nil
	}
	if only == "" && len(skipping) > manySkipping {
		if err := reasons(0); err != nil {
			return nil, err
		}
	} else {
		for _, i := range skipping {
			if err := reasons(out[i].ID); err != nil {
				return nil, err
			}
		}
	}
	switch {
	case !holders:
	case l.pg != nil:
		if err := l.leaseHolders(ctx, tx, out, want); err != nil {
			return nil, err
		}
	default:
		// A lock file is looked at only where a run may be going on:
		// an account whose last run finished is not running (a run
		// records its start right after taking the lock), and a stat
		// per account cost a fifth of the CPU of Status at 10,000
		// accounts (issue 18).
		for i := range out {
			if r := out[i].LastRun; r != nil && r.Finished.IsZero() {
				out[i].Holder = l.holder(out[i].Ident)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return displayName(out[i]) < displayName(out[j]) })
	return out, nil
}

// manySkipping is how many accounts with skipped entries Status reads
// the skip reasons of one by one; beyond, in one read of every account's.
const manySkipping = 64

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

// Problems gives fn every skipped and failed entry of every account (its
// key, state and reason; the other fields unset), in one read through
// messages_open, in no particular order; an error from fn stops it.
// `mailferry status` of many accounts lists them all: a Scan of each
// state of each account with any took 2,000 reads for 1,000 accounts of
// 10,000 (issue 18).
func (l *Ledger) Problems(ctx context.Context, fn func(account pipeline.AccountID, e pipeline.Entry) error) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	// The states are spelled in the statement: the partial index serves
	// only a statement whose terms imply its condition as written.
	rows, err := l.r.QueryContext(ctx, l.d.q(`SELECT account_id, source_key, state, reason FROM messages`+l.d.indexedBy("messages_open")+`
		WHERE state <> 'done' AND state IN ('skipped', 'failed')`))
	if err != nil {
		return fmt.Errorf("reading the skipped and failed entries of %s: %w", l.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id pipeline.AccountID
		var e pipeline.Entry
		var state string
		if err := rows.Scan(&id, &e.Key, &state, &e.Reason); err != nil {
			return fmt.Errorf("reading the skipped and failed entries of %s: %w", l.path, err)
		}
		e.State = stateOf[state]
		if err := fn(id, e); err != nil {
			return err
		}
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("reading the skipped and failed entries of %s: %w", l.path, err)
	}
	return nil
}
