package checkpoint

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mailferry/mailferry/pipeline"
)

// AccountSpec is one configured account as the ledger names it.
type AccountSpec struct {
	// ID and Name are the config's id and name ("" when absent).
	ID, Name string
	// Endpoint is the endpoint key, spelled as schema 4 spelled account
	// keys (account.Key): "<proto>://<user>@<host:port> -> imap://<user>@<host:port>/<folder>".
	Endpoint string
	// SourceProto, SourceUser, DestUser and DestFolder find the candidates
	// of a renamed server: the same protocol and users, other servers.
	SourceProto string
	SourceUser  string
	DestUser    string
	DestFolder  string
	// Source and Destination are the servers for display
	// ("pop3://alice@pop.old:995").
	Source, Destination string
	// KeyScheme is how the source keys its messages: "pop3", "imap",
	// "gmail", "gmail-labels".
	KeyScheme string
	// Spec is the account's config as JSON, without secrets; nil keeps
	// what is recorded.
	Spec []byte
}

// Resolution is what ResolveAccount found or made.
type Resolution struct {
	Account pipeline.AccountID
	Ident   string // what the account was created with
	Created bool
	// Provisional: created while the ledger holds candidates (accounts it
	// may be, reached through other servers) that a proof by the source's
	// content may bind it to (BindAlias); ConfirmAccount ends it.
	Provisional bool
	Candidates  []pipeline.AccountID
}

// ResolveAccount finds the account spec names, or creates it
// (docs/ledger.md "Resolving an account"):
//
//  1. the config's id, when given, decides; a server pair not seen before
//     becomes an alias of it (proof "id"), and an id not seen before is
//     added to the account the servers name, so adding an id to a config
//     keeps the account's history. An id and servers that name two
//     different accounts are an error wrapping ErrAccountConflict;
//  2. else the endpoint key decides;
//  3. else the account is created, provisional when the ledger holds
//     candidates (same protocol, users and destination folder, other
//     servers) and no id was given.
//
// It records the servers for display, the spec, the key scheme (a source
// that would key messages another way is an error wrapping ErrKeyScheme:
// every message would look new) and the name: a name another account had
// moves to this one, with a warning naming both.
func (l *Ledger) ResolveAccount(ctx context.Context, spec AccountSpec) (Resolution, error) {
	var res Resolution
	if err := l.checkOpen(); err != nil {
		return res, err
	}
	if spec.Endpoint == "" {
		return res, errors.New("resolving an account: no endpoint key")
	}
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("resolving account %s in %s: %w", spec.Endpoint, l.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	if l.pg != nil {
		// SQLite's immediate transaction serializes writers; PostgreSQL's
		// do not see each other's new rows: two workers resolving a new
		// account at once would both create it, and one fail.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('mailferry-resolve'))`); err != nil {
			return res, fmt.Errorf("resolving account %s in %s: %w", spec.Endpoint, l.path, explainConnect(err))
		}
	}
	now := nanos(l.now())
	byID, byEndpoint, err := l.aliases(ctx, tx, spec)
	if err != nil {
		return res, err
	}
	switch {
	case byID != 0 && byEndpoint != 0 && byID != byEndpoint:
		return res, fmt.Errorf("account %s (id %q): the id names ledger account %d, the servers account %d: %w",
			spec.Endpoint, spec.ID, byID, byEndpoint, ErrAccountConflict)
	case byID != 0:
		res.Account = byID
		if byEndpoint == 0 {
			if err := l.addAlias(ctx, tx, spec.Endpoint, byID, "id", now); err != nil {
				return res, err
			}
		}
	case byEndpoint != 0:
		res.Account = byEndpoint
		if spec.ID != "" {
			if err := l.addAlias(ctx, tx, "id:"+spec.ID, byEndpoint, "id", now); err != nil {
				return res, err
			}
		}
	default:
		ident := spec.Endpoint
		if spec.ID != "" {
			ident = "id:" + spec.ID
		}
		cands, err := l.candidates(ctx, tx, spec)
		if err != nil {
			return res, err
		}
		provisional := len(cands) > 0 && spec.ID == ""
		var id int64
		err = tx.QueryRowContext(ctx, l.d.q(`INSERT INTO accounts (ident, src_proto, src_user, dst_user, dst_folder, key_scheme, created, provisional)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`), ident, spec.SourceProto, strings.ToLower(spec.SourceUser),
			strings.ToLower(spec.DestUser), strings.ToLower(spec.DestFolder), spec.KeyScheme, now, provisional).Scan(&id)
		if err != nil {
			return res, fmt.Errorf("creating account %s in %s: %w", spec.Endpoint, l.path, err)
		}
		res.Account, res.Created = pipeline.AccountID(id), true
		if err := l.addAlias(ctx, tx, spec.Endpoint, res.Account, "created", now); err != nil {
			return res, err
		}
		if spec.ID != "" {
			if err := l.addAlias(ctx, tx, "id:"+spec.ID, res.Account, "created", now); err != nil {
				return res, err
			}
		}
	}
	var scheme string
	err = tx.QueryRowContext(ctx, l.d.q(`SELECT ident, key_scheme, provisional FROM accounts WHERE id = ?`), res.Account).
		Scan(&res.Ident, &scheme, &res.Provisional)
	if err != nil {
		return res, fmt.Errorf("reading account %d in %s: %w", res.Account, l.path, err)
	}
	switch {
	case scheme != "" && spec.KeyScheme != "" && scheme != spec.KeyScheme:
		return res, fmt.Errorf("account %s keys its messages as %q, the ledger's account %q as %q (give the account a new id to start a new history): %w",
			spec.Endpoint, spec.KeyScheme, res.Ident, scheme, ErrKeyScheme)
	case scheme == "" && spec.KeyScheme != "":
		scheme = spec.KeyScheme
	}
	if res.Provisional {
		if res.Candidates, err = l.candidates(ctx, tx, spec); err != nil {
			return res, err
		}
		res.Candidates = removeID(res.Candidates, res.Account)
	}
	// Only when something changed: a re-run of a known account (every
	// account of a fleet's every pass) then writes nothing, and its
	// transaction commits without writing to the file.
	set, differs := `UPDATE accounts SET source = ?, destination = ?, key_scheme = ?`, `source <> ? OR destination <> ? OR key_scheme <> ?`
	vals := []any{spec.Source, spec.Destination, scheme}
	if spec.Spec != nil {
		set += `, spec = ?`
		differs += ` OR spec <> ?`
		vals = append(vals, string(spec.Spec))
	}
	args := slices.Concat(vals, []any{res.Account}, vals)
	if _, err := tx.ExecContext(ctx, l.d.q(set+` WHERE id = ? AND (`+differs+`)`), args...); err != nil {
		return res, fmt.Errorf("recording account %s in %s: %w", spec.Endpoint, l.path, err)
	}
	if spec.Name != "" {
		if err := l.setName(ctx, tx, res.Account, res.Ident, spec.Name); err != nil {
			return res, err
		}
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("resolving account %s in %s: %w", spec.Endpoint, l.path, err)
	}
	return res, nil
}

// LookupAccount resolves spec as ResolveAccount does, reading only: ok is
// false when the ledger does not know the account yet (a dry run, plan,
// status). An id and servers naming two accounts are an error.
func (l *Ledger) LookupAccount(ctx context.Context, spec AccountSpec) (pipeline.AccountID, bool, error) {
	if err := l.checkOpen(); err != nil {
		return 0, false, err
	}
	tx, err := l.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, false, fmt.Errorf("looking up account %s in %s: %w", spec.Endpoint, l.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	byID, byEndpoint, err := l.aliases(ctx, tx, spec)
	if err != nil {
		return 0, false, err
	}
	return lookedUp(spec, byID, byEndpoint)
}

// lookedUp is the account of spec whose id names account byID and whose
// servers name byEndpoint (0: unknown).
func lookedUp(spec AccountSpec, byID, byEndpoint pipeline.AccountID) (pipeline.AccountID, bool, error) {
	switch {
	case byID != 0 && byEndpoint != 0 && byID != byEndpoint:
		return 0, false, fmt.Errorf("account %s (id %q): the id names ledger account %d, the servers account %d: %w",
			spec.Endpoint, spec.ID, byID, byEndpoint, ErrAccountConflict)
	case byID != 0:
		return byID, true, nil
	case byEndpoint != 0:
		return byEndpoint, true, nil
	}
	return 0, false, nil
}

// LookupAccounts is LookupAccount of each of specs (0 for an account the
// ledger does not know). More specs than a lookup takes are resolved from
// one read of every alias, not a read transaction each: `status -c` of a
// config of 10,000 accounts spent 0.2 s of CPU looking them up (issue 18).
func (l *Ledger) LookupAccounts(ctx context.Context, specs []AccountSpec) ([]pipeline.AccountID, error) {
	out := make([]pipeline.AccountID, len(specs))
	if len(specs) <= pipeline.MaxLookup {
		for i, spec := range specs {
			var err error
			if out[i], _, err = l.LookupAccount(ctx, spec); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := l.r.QueryContext(ctx, `SELECT alias, account_id FROM account_aliases`)
	if err != nil {
		return nil, fmt.Errorf("reading the account aliases of %s: %w", l.path, err)
	}
	defer rows.Close()
	aliases := map[string]pipeline.AccountID{}
	for rows.Next() {
		var alias string
		var id pipeline.AccountID
		if err := rows.Scan(&alias, &id); err != nil {
			return nil, fmt.Errorf("reading the account aliases of %s: %w", l.path, err)
		}
		aliases[alias] = id
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("reading the account aliases of %s: %w", l.path, err)
	}
	for i, spec := range specs {
		var byID, byEndpoint pipeline.AccountID
		if spec.ID != "" {
			byID = aliases["id:"+spec.ID]
		}
		if spec.Endpoint != "" {
			byEndpoint = aliases[spec.Endpoint]
		}
		if out[i], _, err = lookedUp(spec, byID, byEndpoint); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// aliases resolves spec's id and endpoint key (0: unknown).
func (l *Ledger) aliases(ctx context.Context, tx *sql.Tx, spec AccountSpec) (byID, byEndpoint pipeline.AccountID, err error) {
	one := func(alias string) (pipeline.AccountID, error) {
		var id pipeline.AccountID
		err := tx.QueryRowContext(ctx, l.d.q(`SELECT account_id FROM account_aliases WHERE alias = ?`), alias).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("resolving %q in %s: %w", alias, l.path, err)
		}
		return id, nil
	}
	if spec.ID != "" {
		if byID, err = one("id:" + spec.ID); err != nil {
			return 0, 0, err
		}
	}
	if spec.Endpoint != "" {
		if byEndpoint, err = one(spec.Endpoint); err != nil {
			return 0, 0, err
		}
	}
	return byID, byEndpoint, nil
}

func (l *Ledger) addAlias(ctx context.Context, tx *sql.Tx, alias string, account pipeline.AccountID, proof string, now int64) error {
	if _, err := tx.ExecContext(ctx, l.d.q(`INSERT INTO account_aliases (alias, account_id, added, proof) VALUES (?, ?, ?, ?)`),
		alias, account, now, proof); err != nil {
		return fmt.Errorf("recording alias %q of account %d in %s: %w", alias, account, l.path, err)
	}
	return nil
}

// candidates are the accounts spec may be, reached through other servers:
// the same source protocol, source user, destination user and destination
// folder, compared case-insensitively (accounts_candidates).
func (l *Ledger) candidates(ctx context.Context, tx *sql.Tx, spec AccountSpec) ([]pipeline.AccountID, error) {
	if spec.SourceUser == "" || spec.DestUser == "" {
		return nil, nil
	}
	rows, err := tx.QueryContext(ctx, l.d.q(`SELECT id FROM accounts WHERE src_user = ? AND dst_user = ? AND src_proto = ? AND dst_folder = ?
		ORDER BY id`), strings.ToLower(spec.SourceUser), strings.ToLower(spec.DestUser), spec.SourceProto, strings.ToLower(spec.DestFolder))
	if err != nil {
		return nil, fmt.Errorf("finding the candidates of %s in %s: %w", spec.Endpoint, l.path, err)
	}
	defer rows.Close()
	var out []pipeline.AccountID
	for rows.Next() {
		var id pipeline.AccountID
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("finding the candidates of %s in %s: %w", spec.Endpoint, l.path, err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func removeID(ids []pipeline.AccountID, id pipeline.AccountID) []pipeline.AccountID {
	out := ids[:0]
	for _, x := range ids {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

// setName gives account the name; another account holding it loses it
// (it is then shown by its ident), with a warning naming both.
func (l *Ledger) setName(ctx context.Context, tx *sql.Tx, account pipeline.AccountID, ident, name string) error {
	var other pipeline.AccountID
	var otherIdent string
	err := tx.QueryRowContext(ctx, l.d.q(`SELECT id, ident FROM accounts WHERE name = ?`), name).Scan(&other, &otherIdent)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("reading the account named %q in %s: %w", name, l.path, err)
	case other == account:
		return nil
	default:
		l.log.Warn("the account name moves to another ledger account; the earlier one keeps its entries and is shown by its ident",
			"name", name, "from", otherIdent, "to", ident)
		if _, err := tx.ExecContext(ctx, l.d.q(`UPDATE accounts SET name = NULL WHERE id = ?`), other); err != nil {
			return fmt.Errorf("moving the name %q in %s: %w", name, l.path, err)
		}
	}
	if _, err := tx.ExecContext(ctx, l.d.q(`UPDATE accounts SET name = ? WHERE id = ?`), name, account); err != nil {
		return fmt.Errorf("naming account %q %q in %s: %w", ident, name, l.path, err)
	}
	return nil
}

// BindAlias merges the provisional account into to, once the source's
// content proved they are the same mailbox (proof says how: "uidl",
// "uidvalidity", "gm-msgid"): its aliases (with the proof), name (unless
// to has one) and runs move over, and it is removed. The provisional
// account must have no entries yet, so nothing else can differ; neither
// account may be held by another run.
func (l *Ledger) BindAlias(ctx context.Context, provisional, to pipeline.AccountID, proof string) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	if provisional == to {
		return fmt.Errorf("binding account %d to itself", to)
	}
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("binding account %d to %d in %s: %w", provisional, to, l.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	var isProvisional bool
	var name sql.NullString
	err = tx.QueryRowContext(ctx, l.d.q(`SELECT provisional, name FROM accounts WHERE id = ?`), provisional).Scan(&isProvisional, &name)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("binding account %d: %w", provisional, ErrUnknownAccount)
	}
	if err != nil {
		return fmt.Errorf("binding account %d in %s: %w", provisional, l.path, err)
	}
	if !isProvisional {
		return fmt.Errorf("binding account %d to %d: it is not provisional", provisional, to)
	}
	var n int64
	if err := tx.QueryRowContext(ctx, l.d.q(`SELECT COALESCE(SUM(messages), 0) FROM account_counts WHERE account_id = ?`), provisional).Scan(&n); err != nil {
		return fmt.Errorf("binding account %d in %s: %w", provisional, l.path, err)
	}
	if n > 0 {
		return fmt.Errorf("binding account %d to %d: it has %d entries already", provisional, to, n)
	}
	var exists int
	if err := tx.QueryRowContext(ctx, l.d.q(`SELECT 1 FROM accounts WHERE id = ?`), to).Scan(&exists); err != nil {
		return fmt.Errorf("binding account %d to %d: %w", provisional, to, errors.Join(err, ErrUnknownAccount))
	}
	for _, q := range []string{
		`UPDATE account_aliases SET account_id = ?, proof = ? WHERE account_id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, l.d.q(q), to, proof, provisional); err != nil {
			return fmt.Errorf("binding account %d to %d in %s: %w", provisional, to, l.path, err)
		}
	}
	for _, q := range []string{
		`UPDATE runs SET account_id = ? WHERE account_id = ?`,
		`UPDATE resent SET account_id = ? WHERE account_id = ?`,
		`UPDATE usage SET account_id = ? WHERE account_id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, l.d.q(q), to, provisional); err != nil {
			return fmt.Errorf("binding account %d to %d in %s: %w", provisional, to, l.path, err)
		}
	}
	for _, q := range []string{
		`DELETE FROM folders WHERE account_id = ?`,
		`DELETE FROM account_counts WHERE account_id = ?`,
		`DELETE FROM accounts WHERE id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, l.d.q(q), provisional); err != nil {
			return fmt.Errorf("binding account %d to %d in %s: %w", provisional, to, l.path, err)
		}
	}
	if name.Valid {
		if _, err := tx.ExecContext(ctx, l.d.q(`UPDATE accounts SET name = COALESCE(name, ?) WHERE id = ?`), name.String, to); err != nil {
			return fmt.Errorf("binding account %d to %d in %s: %w", provisional, to, l.path, err)
		}
	}
	if _, err := tx.ExecContext(ctx, l.d.q(`UPDATE accounts SET last_run = (SELECT MAX(id) FROM runs WHERE account_id = ?) WHERE id = ?`), to, to); err != nil {
		return fmt.Errorf("binding account %d to %d in %s: %w", provisional, to, l.path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("binding account %d to %d in %s: %w", provisional, to, l.path, err)
	}
	l.folders.forget(provisional)
	return nil
}

// ConfirmAccount ends an account's provisional state: the proof was tried
// and did not bind it (another mailbox with the same users, or a source
// that cannot tell); it stands on its own.
func (l *Ledger) ConfirmAccount(ctx context.Context, account pipeline.AccountID) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	if _, err := l.w.ExecContext(ctx, l.d.q(`UPDATE accounts SET provisional = FALSE WHERE id = ?`), account); err != nil {
		return fmt.Errorf("confirming account %d in %s: %w", account, l.path, err)
	}
	return nil
}

// Selector picks accounts: by number, by the config's names, every account
// whose last run failed or ended with failed messages, or all.
type Selector struct {
	IDs    []pipeline.AccountID
	Names  []string
	Failed bool
	All    bool
}

// Pause marks the selected accounts paused (reason says who and why): a
// run holding one sees it at its next Commit, finishes its batches in
// flight and stops. It returns the names (or idents) of the accounts it
// changed.
func (l *Ledger) Pause(ctx context.Context, sel Selector, reason string) ([]string, error) {
	return l.setFlags(ctx, sel, `paused = TRUE, pause_reason = ?, paused_at = ?`, []any{reason, nanos(l.now())}, `NOT paused`)
}

// Resume clears the pause of the selected accounts (a quota wait stays:
// the quota is a rule, not a pause).
func (l *Ledger) Resume(ctx context.Context, sel Selector) ([]string, error) {
	return l.setFlags(ctx, sel, `paused = FALSE, pause_reason = '', paused_at = ?`, []any{nanos(l.now())}, `paused`)
}

// Retry makes the selected accounts run as soon as possible, and with
// skipped their skipped-for-good messages tried again (except those
// probably present already) by their next run, which clears the flag.
func (l *Ledger) Retry(ctx context.Context, sel Selector, skipped bool) ([]string, error) {
	set := `not_before = 0, retry_asked = ?`
	if skipped {
		set += `, retry_skipped = TRUE`
	}
	changed, err := l.setFlags(ctx, sel, set, []any{nanos(l.now())}, `1 = 1`)
	if err != nil || l.pg == nil {
		return changed, err
	}
	return changed, l.requeue(ctx, sel) // a fleet's queue: claimable now
}

// setFlags updates the selected accounts where cond holds.
func (l *Ledger) setFlags(ctx context.Context, sel Selector, set string, setArgs []any, cond string) ([]string, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	ids, err := l.selectAccounts(ctx, l.r, sel)
	if err != nil {
		return nil, err
	}
	var changed []string
	for _, id := range ids {
		var who string
		err := l.w.QueryRowContext(ctx, l.d.q(`UPDATE accounts SET `+set+` WHERE id = ? AND `+cond+` RETURNING COALESCE(name, ident)`),
			append(append([]any{}, setArgs...), id)...).Scan(&who)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return changed, fmt.Errorf("updating account %d in %s: %w", id, l.path, err)
		}
		changed = append(changed, who)
	}
	return changed, nil
}

// querier is what both a pool and a transaction answer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// selectAccounts returns the ids sel picks, in id order. Names that name
// no account are an error naming them.
func (l *Ledger) selectAccounts(ctx context.Context, db querier, sel Selector) ([]pipeline.AccountID, error) {
	q := `SELECT a.id, COALESCE(a.name, ''), a.ident, COALESCE(r.error, ''), COALESCE(r.result, ''), COALESCE(r.failed, 0)
		FROM accounts a LEFT JOIN runs r ON r.id = a.last_run ORDER BY a.id`
	rows, err := db.QueryContext(ctx, l.d.q(q))
	if err != nil {
		return nil, fmt.Errorf("reading the accounts of %s: %w", l.path, err)
	}
	defer rows.Close()
	want := map[string]bool{}
	for _, n := range sel.Names {
		want[n] = true
	}
	wantID := map[pipeline.AccountID]bool{}
	for _, id := range sel.IDs {
		wantID[id] = true
	}
	var out []pipeline.AccountID
	for rows.Next() {
		var id pipeline.AccountID
		var name, ident, errText, result string
		var failed int
		if err := rows.Scan(&id, &name, &ident, &errText, &result, &failed); err != nil {
			return nil, fmt.Errorf("reading the accounts of %s: %w", l.path, err)
		}
		hit := sel.All || wantID[id] || want[name] || want[ident] ||
			sel.Failed && (errText != "" && result != "paused" || result == "failed" || result == "interrupted" || failed > 0)
		if name != "" {
			delete(want, name)
		}
		delete(want, ident)
		if hit {
			out = append(out, id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the accounts of %s: %w", l.path, err)
	}
	if len(want) > 0 {
		var missing []string
		for _, n := range sel.Names {
			if want[n] {
				missing = append(missing, n)
			}
		}
		return out, fmt.Errorf("no account named %q in %s: %w", missing, l.path, ErrUnknownAccount)
	}
	return out, nil
}
