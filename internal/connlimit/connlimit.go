// Package connlimit caps the connections a run keeps open to servers
// (max_connections): servers limit connections per IP and user (Dovecot:
// 10 by default), and a run of many accounts must not trip that limit or
// look like an attack.
//
// A cap is a number of slots under a key (today one per server address;
// a cap per user or for the whole run is one more key). A session claims
// one slot per connection it opens, of every cap that applies to it. All
// the sessions a caller opens together (an account's source and
// destination) are claimed in one Acquire, which takes every slot at
// once, key by key in a fixed order, while the caller holds no other
// slot: so no two callers can each hold part of what they need and wait
// for the rest. A caller that already holds slots only tries
// (TryAcquire), never waits.
package connlimit

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"golang.org/x/sync/semaphore"
)

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
// it: callers give the same Max for a key (the smallest any account sets
// for that server).
type Limits struct {
	mu   sync.Mutex
	sems map[string]*semaphore.Weighted
}

// grant is how many slots of a key one Acquire takes, and each claim's
// share of them.
type grant struct {
	key    string
	sem    *semaphore.Weighted
	total  int64
	shares []int64 // per claim
}

// plan merges the claims' caps by key, in key order. A key whose claims
// together ask for more than its Max gets Max: a session that needs more
// connections than a cap allows then runs alone under it rather than
// never.
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
				g = &grant{key: cp.Key, sem: l.sem(cp), shares: make([]int64, len(claims))}
				byKey[cp.Key] = g
				out = append(out, g)
			}
			share := min(int64(c.N), int64(cp.Max)-g.total)
			if share > 0 {
				g.shares[i] += share
				g.total += share
			}
		}
	}
	slices.SortFunc(out, func(a, b *grant) int { return cmp.Compare(a.key, b.key) })
	return out
}

// sem returns the semaphore of c.Key, making it with c.Max slots.
func (l *Limits) sem(c Cap) *semaphore.Weighted {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sems == nil {
		l.sems = map[string]*semaphore.Weighted{}
	}
	s, ok := l.sems[c.Key]
	if !ok {
		s = semaphore.NewWeighted(int64(c.Max))
		l.sems[c.Key] = s
	}
	return s
}

// Acquire takes the slots of every claim at once, waiting while they are in
// use, until ctx ends. It returns one release function per claim, in
// order: each gives back that claim's slots (call it when the session is
// closed; calling it again is harmless). The caller must hold no slot
// while it waits here; see the package doc.
func (l *Limits) Acquire(ctx context.Context, claims ...Claim) ([]func(), error) {
	grants := l.plan(claims)
	for i, g := range grants {
		if err := g.sem.Acquire(ctx, g.total); err != nil {
			for _, h := range grants[:i] {
				h.sem.Release(h.total)
			}
			return nil, err
		}
	}
	return releases(grants, len(claims)), nil
}

// TryAcquire is Acquire without waiting: ok is false, and nothing is
// taken, when some slot is in use.
func (l *Limits) TryAcquire(claims ...Claim) (release []func(), ok bool) {
	grants := l.plan(claims)
	for i, g := range grants {
		if !g.sem.TryAcquire(g.total) {
			for _, h := range grants[:i] {
				h.sem.Release(h.total)
			}
			return nil, false
		}
	}
	return releases(grants, len(claims)), true
}

// releases returns each claim's release function.
func releases(grants []*grant, claims int) []func() {
	out := make([]func(), claims)
	for i := range out {
		var once sync.Once
		out[i] = func() {
			once.Do(func() {
				for _, g := range grants {
					if n := g.shares[i]; n > 0 {
						g.sem.Release(n)
					}
				}
			})
		}
	}
	return out
}
