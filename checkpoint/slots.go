package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Fleet-wide connection slots (docs/fleet.md "Connection caps across the
// fleet"): on a PostgreSQL ledger a connection cap (max_connections,
// max_connections_per_user, max_connections_total) is a scope of the
// slots table, one row per connection open, numbered 0 to the cap − 1,
// so that the primary key (scope, slot) itself keeps the count within the
// cap whoever inserts. A row holds its worker and an expiry on the
// database's clock, renewed while it is held (every quarter of the lease
// TTL) and deleted when the connection closes; a worker that died leaves
// rows that expire a TTL after their last renewal and are then free.
//
// Rows, not PostgreSQL session advisory locks: a session lock belongs to
// one database connection, so every IMAP or POP3 connection held would
// pin a database connection of its own (a worker holding 40 mail
// connections would need 40 to PostgreSQL, and a pooler in transaction
// mode breaks session locks); rows are also what status can show. The
// price is that a dead worker's slots come free after the TTL rather than
// at once.
//
// A slot's TTL is twice the lease's (slotTTL). A worker cut from the
// database loses its leases first (half a lease TTL after its last
// renewal), stops, and closes its mail connections at once (the runner
// ends the account's attempt; giving a slot back holds up the next close
// a moment at most, see give); its slots must not come free to another
// worker while those connections are still open at the server, and the
// second TTL is the margin for that close on a loaded machine.

// slotTTL is how long a slot lives after its last renewal: twice the
// lease TTL, for the reason above.
func slotTTL(leaseTTL time.Duration) time.Duration { return 2 * leaseTTL }

// slotPoll is how often a worker waiting for a fleet-wide slot asks again.
const slotPoll = 250 * time.Millisecond

// Slots are a PostgreSQL ledger's fleet-wide connection slots. They are
// safe for concurrent use; the slots still held are given back by the
// ledger's Close.
type Slots struct {
	e *pgEngine

	mu      sync.Mutex
	held    int // slots this worker holds; the renewer runs while > 0
	running bool
	waiting map[string]bool // scopes a wait was logged for, until it ends
	giving  sync.WaitGroup  // give-backs still talking to the database
}

// Slots returns the fleet-wide connection slots of a PostgreSQL ledger;
// nil for SQLite, whose runs cap connections in their own process only.
func (l *Ledger) Slots() *Slots {
	if l.pg == nil {
		return nil
	}
	return l.pg.slots
}

// ErrSlotsClosed is returned for a take after the ledger was closed.
var ErrSlotsClosed = errors.New("checkpoint: the ledger holding the connection slots is closed")

// TryTake takes n slots of scope, whose cap is size, for this worker:
// all of them or none (ok false when fewer are free). Each returned
// function gives one slot back; calling it again is harmless.
func (s *Slots) TryTake(ctx context.Context, scope string, size, n int) (release []func(), ok bool, err error) {
	if n <= 0 {
		return nil, true, nil
	}
	e := s.e
	select {
	case <-e.stop:
		return nil, false, ErrSlotsClosed
	default:
	}
	n = min(n, size)
	tx, err := e.l.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, fmt.Errorf("taking a connection slot of %s in %s: %w", scope, e.l.path, explainConnect(err))
	}
	defer func() { _ = tx.Rollback() }()
	// A row that is there but expired is free: its worker is gone. Two
	// workers inserting the same slot number at once: the second waits
	// for the first's commit and then finds the row live (no update, no
	// row returned), so the key keeps the count.
	// The count keeps a cap a process lowered (a server refused a
	// connection) from being passed through the slots numbered above it
	// that others still hold.
	rows, err := tx.QueryContext(ctx, `WITH free AS (
			SELECT s FROM generate_series(0, CAST($1 AS BIGINT) - 1) AS s
			WHERE NOT EXISTS (SELECT 1 FROM slots WHERE scope = $2 AND slot = s AND expires > `+pgNow+`)
				AND (SELECT count(*) FROM slots WHERE scope = $2 AND expires > `+pgNow+`) + $3 <= $1
			ORDER BY s LIMIT $3)
		INSERT INTO slots AS t (scope, slot, worker, account_id, expires)
			SELECT $2, s, $4, 0, `+pgNow+` + $5 FROM free
		ON CONFLICT (scope, slot) DO UPDATE SET worker = EXCLUDED.worker, account_id = 0, expires = EXCLUDED.expires
			WHERE t.expires <= `+pgNow+`
		RETURNING slot`, size, scope, n, e.worker, slotTTL(e.ttl).Nanoseconds())
	if err != nil {
		return nil, false, fmt.Errorf("taking a connection slot of %s in %s: %w", scope, e.l.path, explainConnect(err))
	}
	var got []int64
	for rows.Next() {
		var slot int64
		if err := rows.Scan(&slot); err != nil {
			rows.Close()
			return nil, false, fmt.Errorf("taking a connection slot of %s in %s: %w", scope, e.l.path, err)
		}
		got = append(got, slot)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("taking a connection slot of %s in %s: %w", scope, e.l.path, explainConnect(err))
	}
	if len(got) < n {
		return nil, false, nil // the rollback gives back the ones taken
	}
	if err := tx.Commit(); err != nil {
		return nil, false, fmt.Errorf("taking a connection slot of %s in %s: %w", scope, e.l.path, explainConnect(err))
	}
	s.added(len(got))
	release = make([]func(), len(got))
	for i, slot := range got {
		var once sync.Once
		release[i] = func() { once.Do(func() { s.give(scope, slot) }) }
	}
	return release, true, nil
}

// Take is TryTake that waits, asking again every 250 ms, until the slots
// are free or ctx ends. The first wait for a scope is logged once, until
// a take of that scope succeeds.
func (s *Slots) Take(ctx context.Context, scope string, size, n int) ([]func(), error) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		release, ok, err := s.TryTake(ctx, scope, size, n)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		logged := s.waiting[scope]
		if ok {
			delete(s.waiting, scope)
		} else {
			s.waiting[scope] = true
		}
		s.mu.Unlock()
		if ok {
			if logged {
				s.e.l.log.Info("fleet-wide connection slot taken", "cap", scope, "worker", s.e.worker)
			}
			return release, nil
		}
		if !logged {
			s.e.l.log.Info("waiting for a connection slot: the fleet-wide cap is reached (other workers hold its connections)",
				"cap", scope, "max", size, "worker", s.e.worker)
		}
		t.Reset(slotPoll)
		select {
		case <-ctx.Done():
			s.mu.Lock()
			delete(s.waiting, scope)
			s.mu.Unlock()
			return nil, fmt.Errorf("waiting for a fleet-wide connection slot of %s: %w", scope, ctx.Err())
		case <-t.C:
		}
	}
}

// InUse returns how many live slots of scope the whole fleet holds.
func (s *Slots) InUse(ctx context.Context, scope string) (int, error) {
	var n int
	err := s.e.l.r.QueryRowContext(ctx, `SELECT count(*) FROM slots WHERE scope = $1 AND expires > `+pgNow, scope).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting the connection slots of %s in %s: %w", scope, s.e.l.path, explainConnect(err))
	}
	return n, nil
}

// give deletes one slot row of this worker. It waits for the database a
// moment only (giveWait), then leaves the DELETE running: the session
// calls give as it closes, and an account closes its destination sessions
// before its source, so a database that does not answer would otherwise
// keep the source connection open for half a TTL per session closed
// before it, past the point where the slots that stand for it expire
// (TestE2EFleetWorkers saw 3 connections at a cap of 2). A database that
// answers has deleted the row when give returns, so this process's next
// take finds the slot free. The row is deleted after the connection
// closed, as before; a database that does not answer leaves it to
// expire. Close ends the give-backs still running (its own DELETE covers
// them).
func (s *Slots) give(scope string, slot int64) {
	e := s.e
	s.mu.Lock()
	s.held--
	select {
	case <-e.stop: // closed: Close deletes this worker's slots
		s.mu.Unlock()
		return
	default:
	}
	s.giving.Add(1) // under mu, so that closeSlots' Wait comes after it
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer s.giving.Done()
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), e.ttl/2)
		defer cancel()
		go func() {
			select {
			case <-e.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		_, err := e.l.w.ExecContext(ctx, `DELETE FROM slots WHERE scope = $1 AND slot = $2 AND worker = $3`, scope, slot, e.worker)
		select {
		case <-e.stop: // Close's DELETE gives back every slot of this worker
		default:
			if err != nil {
				e.l.log.Warn("giving back a connection slot failed; it comes free when it expires", "cap", scope, "error", explainConnect(err))
			}
		}
	}()
	t := time.NewTimer(giveWait(e.ttl))
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// giveWait is how long give waits for the database before it goes on.
func giveWait(leaseTTL time.Duration) time.Duration { return min(leaseTTL/16, 250*time.Millisecond) }

// added counts n slots taken and starts the renewer with the first.
func (s *Slots) added(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held += n
	if !s.running {
		s.running = true
		go s.renew()
	}
}

// renew extends this worker's slots every quarter of the TTL, in one
// statement, until the ledger closes.
func (s *Slots) renew() {
	e := s.e
	e.everyQuarterTTL(func() {
		s.mu.Lock()
		held := s.held
		s.mu.Unlock()
		if held <= 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), e.ttl/4)
		_, err := e.l.w.ExecContext(ctx, `UPDATE slots SET expires = `+pgNow+` + $1 WHERE worker = $2`, slotTTL(e.ttl).Nanoseconds(), e.worker)
		cancel()
		if err != nil {
			e.l.log.Warn("renewing connection slots failed; other workers may take them once they expire", "database", e.l.path, "error", explainConnect(err))
		}
	})
}

// closeSlots deletes the slots this worker still holds (Close), if it
// ever took one.
func (e *pgEngine) closeSlots(ctx context.Context) error {
	e.slots.mu.Lock() // after close(e.stop): no give-back starts from now on
	took := e.slots.running
	e.slots.mu.Unlock()
	e.slots.giving.Wait() // those running end at once: e.stop cancels them
	if !took {
		return nil
	}
	if _, err := e.l.w.ExecContext(ctx, `DELETE FROM slots WHERE worker = $1`, e.worker); err != nil {
		return fmt.Errorf("giving back the connection slots in %s: %w", e.l.path, explainConnect(outOfReach(ctx, err)))
	}
	return nil
}
