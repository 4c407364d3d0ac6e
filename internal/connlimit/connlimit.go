// Package connlimit caps the connections a run keeps open to servers
// (max_connections): servers limit connections per IP and user (Dovecot:
// 10 by default), and a run of many accounts must not trip that limit or
// look like an attack.
//
// A cap is a number of slots under a key: one per server address
// (max_connections), one per user of a server (max_connections_per_user)
// and one for the whole run (max_connections_total). A session claims
// one slot per connection it opens, of every cap that applies to it. All
// the sessions a caller opens together (an account's source and
// destination) are claimed in one Acquire, which takes every slot at
// once, key by key in a fixed order, while the caller holds no other
// slot: so no two callers can each hold part of what they need and wait
// for the rest. A caller that already holds slots only tries
// (TryAcquire), never waits.
//
// A cap can be lowered while slots are in use (Lower): a server that
// refuses a connection with "too many connections" knows its limit better
// than the config. Slots in use above the new size stay in use; no slot
// is granted until the use is below it again.
//
// A fleet of processes on one PostgreSQL checkpoint shares its caps
// (ShareWith, Fleet): a claim takes the fleet's slots of each limited key
// too, after this process's.
package connlimit

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Unlimited is the Max of a cap that has no limit yet but can be lowered
// (a user's connections to a server whose limit is unknown).
const Unlimited = 1 << 30

// Cap is one limit: Max slots under Key. Max <= 0 means no limit.
type Cap struct {
	Key string
	Max int
}

// Claim is what one session needs: N slots of each of Caps.
type Claim struct {
	Caps []Cap
	N    int
}

// Limits holds the slots of every key. The zero value is ready to use and
// has no slot in use. A key's size is the Max of the first Cap that names
// it (callers give the same Max for a key: the smallest any account sets
// for that server), until Lower makes it smaller.
type Limits struct {
	mu    sync.Mutex
	pools map[string]*pool
	fleet Fleet
}

// Fleet shares the caps with other processes (the workers of a fleet on
// one PostgreSQL ledger): once a claim has its slots in this process, it
// takes as many of the fleet's under each limited key (Max below
// Unlimited), key by key in the same order, each key's all at once. A
// process waits for the fleet's slots of one key while holding only those
// of keys before it, as every process does, so no two wait for each
// other. *checkpoint.Slots implements it.
type Fleet interface {
	// Take takes n slots of key, whose cap is size, all at once,
	// waiting until they are free or ctx ends; each returned function
	// gives one back.
	Take(ctx context.Context, key string, size, n int) ([]func(), error)
	// TryTake is Take without waiting: ok is false, and nothing is
	// taken, when fewer than n are free.
	TryTake(ctx context.Context, key string, size, n int) (release []func(), ok bool, err error)
}

// ShareWith makes every Acquire and TryAcquire from now on take the
// fleet's slots too. Call it before the first claim.
func (l *Limits) ShareWith(f Fleet) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fleet = f
}

// pool is the slots of one key: a weighted semaphore whose size can shrink.
// Waiters are served in order, so a large claim is not starved by small
// ones.
type pool struct {
	mu      sync.Mutex
	size    int64
	used    int64
	waiters []*waiter
}

type waiter struct {
	n       int64 // slots asked for
	granted int64 // slots given: n, or the size when the pool shrank below n
	ready   chan struct{}
}

// need is what a claim of n slots takes: all of them, or the whole pool
// when it is smaller (a session that needs more connections than a cap
// allows runs alone under it rather than never).
func (p *pool) need(n int64) int64 { return max(1, min(n, p.size)) }

// acquire takes n slots (at most the pool's size), waiting in order until
// ctx ends. It returns how many it took.
func (p *pool) acquire(ctx context.Context, n int64) (int64, error) {
	p.mu.Lock()
	if len(p.waiters) == 0 && p.used+p.need(n) <= p.size {
		g := p.need(n)
		p.used += g
		p.mu.Unlock()
		return g, nil
	}
	w := &waiter{n: n, ready: make(chan struct{})}
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()
	select {
	case <-w.ready:
		return w.granted, nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-w.ready: // granted meanwhile: give it back
		p.used -= w.granted
	default:
		p.waiters = slices.DeleteFunc(p.waiters, func(x *waiter) bool { return x == w })
	}
	p.grant() // the head may have changed
	return 0, ctx.Err()
}

// tryAcquire takes n slots (at most the pool's size) if they are free and
// nobody waits.
func (p *pool) tryAcquire(n int64) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.waiters) > 0 || p.used+p.need(n) > p.size {
		return 0, false
	}
	g := p.need(n)
	p.used += g
	return g, true
}

func (p *pool) release(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used -= n
	p.grant()
}

// grant serves the waiters in order while their slots are free.
func (p *pool) grant() {
	for len(p.waiters) > 0 {
		w := p.waiters[0]
		g := p.need(w.n)
		if p.used+g > p.size {
			return
		}
		p.used += g
		w.granted = g
		close(w.ready)
		p.waiters = p.waiters[1:]
	}
}

// lower shrinks the pool to size (at least 1); it reports whether it did.
func (p *pool) lower(size int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	size = max(1, size)
	if size >= p.size {
		return false
	}
	p.size = size
	p.grant() // waiters asking for more than the new size take all of it
	return true
}

// pool returns the pool of c.Key, making it with c.Max slots.
func (l *Limits) pool(c Cap) *pool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pools == nil {
		l.pools = map[string]*pool{}
	}
	p, ok := l.pools[c.Key]
	if !ok {
		p = &pool{size: int64(c.Max)}
		l.pools[c.Key] = p
	}
	return p
}

// grant is how many slots of a key one Acquire asks for, and each claim's
// share of them.
type grant struct {
	key    string
	pool   *pool
	total  int64
	got    int64   // taken: total, or less when the pool shrank
	shares []int64 // per claim
	// fleet gives back the fleet's slots taken for this key, one
	// function a slot (Fleet).
	fleet []func()
}

// plan merges the claims' caps by key, in key order.
func (l *Limits) plan(claims []Claim) []*grant {
	byKey := map[string]*grant{}
	var out []*grant
	for i, c := range claims {
		for _, cp := range c.Caps {
			if cp.Max <= 0 || c.N <= 0 {
				continue
			}
			g, ok := byKey[cp.Key]
			if !ok {
				g = &grant{key: cp.Key, pool: l.pool(cp), shares: make([]int64, len(claims))}
				byKey[cp.Key] = g
				out = append(out, g)
			}
			g.shares[i] += int64(c.N)
			g.total += int64(c.N)
		}
	}
	slices.SortFunc(out, func(a, b *grant) int { return cmp.Compare(a.key, b.key) })
	return out
}

// Acquire takes the slots of every claim at once, waiting while they are in
// use, until ctx ends. A key whose claims together ask for more than its
// size gets all of it. It returns one release function per claim, in
// order: each gives back that claim's slots (call it when the session is
// closed; calling it again is harmless). The caller must hold no slot
// while it waits here; see the package doc.
func (l *Limits) Acquire(ctx context.Context, claims ...Claim) ([]func(), error) {
	grants := l.plan(claims)
	for i, g := range grants {
		n, err := g.pool.acquire(ctx, g.total)
		if err != nil {
			for _, h := range grants[:i] {
				h.pool.release(h.got)
			}
			return nil, err
		}
		g.got = n
	}
	if err := l.takeFleet(ctx, grants, true); err != nil {
		for _, g := range grants {
			g.pool.release(g.got)
		}
		return nil, err
	}
	return releases(grants, len(claims)), nil
}

// takeFleet takes the fleet's slots of every limited key of grants, in
// key order, waiting (wait) or not; on failure it gives back the fleet's
// slots it took and reports ok false (not waiting) or the error.
func (l *Limits) takeFleet(ctx context.Context, grants []*grant, wait bool) error {
	l.mu.Lock()
	f := l.fleet
	l.mu.Unlock()
	if f == nil {
		return nil
	}
	for i, g := range grants {
		g.pool.mu.Lock()
		size := g.pool.size
		g.pool.mu.Unlock()
		if size >= Unlimited || g.got <= 0 {
			continue
		}
		var rel []func()
		var err error
		if wait {
			rel, err = f.Take(ctx, g.key, int(size), int(g.got))
		} else {
			var ok bool
			rel, ok, err = f.TryTake(ctx, g.key, int(size), int(g.got))
			if err == nil && !ok {
				err = errNoFleetSlot
			}
		}
		if err != nil {
			for _, h := range grants[:i] {
				for _, r := range h.fleet {
					r()
				}
				h.fleet = nil
			}
			return err
		}
		g.fleet = rel
	}
	return nil
}

// tryFleetTimeout bounds TryAcquire's question to the fleet.
const tryFleetTimeout = 5 * time.Second

// errNoFleetSlot: a TryAcquire found the fleet's slots of a key in use.
var errNoFleetSlot = errors.New("connlimit: the fleet's slots are in use")

// TryAcquire is Acquire without waiting: ok is false, and nothing is
// taken, when some slot is in use.
func (l *Limits) TryAcquire(claims ...Claim) (release []func(), ok bool) {
	grants := l.plan(claims)
	for i, g := range grants {
		n, ok := g.pool.tryAcquire(g.total)
		if !ok {
			for _, h := range grants[:i] {
				h.pool.release(h.got)
			}
			return nil, false
		}
		g.got = n
	}
	// A database that does not answer soon is a slot not to be had: the
	// caller goes on with the sessions it has.
	ctx, cancel := context.WithTimeout(context.Background(), tryFleetTimeout)
	defer cancel()
	if err := l.takeFleet(ctx, grants, false); err != nil {
		for _, g := range grants {
			g.pool.release(g.got)
		}
		return nil, false
	}
	return releases(grants, len(claims)), true
}

// Lower makes key's cap max (at least 1) for the rest of the run, when it
// is larger: a server refused a connection because the user (or the
// client's address) has too many. Slots in use stay in use. It reports
// whether the cap changed; a key no claim has named yet is left alone.
func (l *Limits) Lower(key string, max int) bool {
	l.mu.Lock()
	p, ok := l.pools[key]
	l.mu.Unlock()
	return ok && p.lower(int64(max))
}

// InUse returns how many slots of key are in use, and the key's size (0, 0
// for a key no claim has named).
func (l *Limits) InUse(key string) (used, size int) {
	l.mu.Lock()
	p, ok := l.pools[key]
	l.mu.Unlock()
	if !ok {
		return 0, 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return int(p.used), int(p.size)
}

// releases returns each claim's release function. When a pool shrank
// below what a key asked for, the claims' shares are cut in claim order so
// that together they give back exactly what was taken.
func releases(grants []*grant, claims int) []func() {
	for _, g := range grants {
		left := g.got
		for i, s := range g.shares {
			g.shares[i] = min(s, left)
			left -= g.shares[i]
		}
	}
	// Each claim gives back the fleet's slots of its share, from the
	// front of the key's list.
	fleet := make([][][]func(), claims)
	for i := range fleet {
		fleet[i] = make([][]func(), len(grants))
	}
	for k, g := range grants {
		rest := g.fleet
		for i, s := range g.shares {
			n := min(int(s), len(rest))
			fleet[i][k], rest = rest[:n], rest[n:]
		}
	}
	out := make([]func(), claims)
	for i := range out {
		var once sync.Once
		out[i] = func() {
			once.Do(func() {
				for k, g := range grants {
					for _, r := range fleet[i][k] {
						r()
					}
					if n := g.shares[i]; n > 0 {
						g.pool.release(n)
					}
				}
			})
		}
	}
	return out
}
