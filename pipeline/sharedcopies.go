package pipeline

import (
	"context"
	"fmt"
	"slices"
)

// Copies named by two accounts. Destination matching (match.go) records a
// byte-identical copy as the account's own whoever put it there, so when
// two accounts of one ledger feed one destination folder (an old POP3 box
// and an IMAP box, or two users who share mail) both accounts' entries may
// name one copy. That is what keeps matching useful (the second account
// copies nothing twice), and every reader of a copy is fine with it; only
// what takes a copy away is not: it would take the other account's copy,
// which that account then counts as copied (verify: missing; and after
// delete_source or delete_after its only copy). So mirror asks the ledger
// first (CopiesQuery.OthersOf) and leaves such a copy where it is: a removal
// drops only this account's entry (removed, the destination untouched); a
// move becomes a copy of the message into its new folder (the copy pass
// appends it under its new key, and the old entry is then dropped as a
// removal is). Late-copy removal (latecopies.go) leaves every copy another
// account's entry names, and records its intent through Changes.Take too.

// sharedCopies returns the keys of those of entries whose copy another
// account's entry also names.
func (a *attempt) sharedCopies(ctx context.Context, entries []Entry) (map[string]bool, error) {
	out := map[string]bool{}
	for _, group := range byCopyMailbox(entries) {
		if group[0].DestMailbox == "" {
			continue
		}
		byUID := map[uint32][]string{}
		var uids []uint32
		for _, e := range group {
			if e.DestUID == 0 {
				continue
			}
			if _, ok := byUID[e.DestUID]; !ok {
				uids = append(uids, e.DestUID)
			}
			byUID[e.DestUID] = append(byUID[e.DestUID], e.Key)
		}
		for chunk := range slices.Chunk(uids, MaxLookup) {
			cl, err := a.ledger.Copies(ctx, CopiesQuery{OthersOf: a.opts.Account, Mailbox: group[0].DestMailbox,
				UIDValidity: group[0].DestUIDValidity, UIDs: chunk})
			if err != nil {
				return nil, fmt.Errorf("reading which copies in %q other accounts name: %w", group[0].DestMailbox, fatal(err))
			}
			for u := range cl.UIDs {
				for _, k := range byUID[u] {
					out[k] = true
				}
			}
		}
	}
	return out, nil
}

// leaveShared returns those of the copies to remove that no other
// account's entry names; the others' entries are recorded removed without
// touching the destination (a dry run only says so).
func (a *attempt) leaveShared(ctx context.Context, remove []Entry) ([]Entry, error) {
	shared, err := a.sharedCopies(ctx, remove)
	if err != nil || len(shared) == 0 {
		return remove, err
	}
	return a.dropShared(ctx, remove, shared)
}

// dropShared records those of entries whose keys are in shared removed
// without touching the destination (a dry run only says so), and returns
// the others.
func (a *attempt) dropShared(ctx context.Context, entries []Entry, shared map[string]bool) ([]Entry, error) {
	now := a.opts.Now()
	var keep, dropped []Entry
	for _, e := range entries {
		if !shared[e.Key] {
			keep = append(keep, e)
			continue
		}
		e.State, e.Updated = StateRemoved, now
		if e.GoneAt.IsZero() {
			e.GoneAt = now
		}
		dropped = append(dropped, e)
	}
	a.log.Info("mirror: copies gone from the source that another account's entries also name stay on the destination",
		"account", a.opts.Name, "messages", len(dropped), "dry_run", a.dry)
	if a.dry {
		return keep, nil
	}
	for chunk := range slices.Chunk(dropped, MaxLookup) {
		if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Put: chunk}); err != nil {
			return nil, fmt.Errorf("recording %d copies another account names as no longer this account's: %w", len(chunk), fatal(err))
		}
	}
	return keep, nil
}

// unsharedMoves returns those of moves that may move their copy: the
// others (into another folder, of a copy another account's entry names)
// are copied into their new folder instead, and their old copy stays.
func (a *attempt) unsharedMoves(ctx context.Context, moves []move) ([]move, error) {
	var olds []Entry
	for _, mv := range moves {
		if mv.old.DestMailbox != mv.target {
			olds = append(olds, mv.old)
		}
	}
	shared, err := a.sharedCopies(ctx, olds)
	if err != nil || len(shared) == 0 {
		return moves, err
	}
	m := a.mirror()
	keep := moves[:0:0]
	for _, mv := range moves {
		if mv.old.DestMailbox != mv.target && shared[mv.old.Key] {
			delete(m.moved, mv.old.Key) // copied again; the old entry goes as a removal
			continue
		}
		keep = append(keep, mv)
	}
	a.log.Info("mirror: messages moved at the source whose copy another account's entries also name are copied into their new folder; the copy stays",
		"account", a.opts.Name, "messages", len(moves)-len(keep))
	return keep, nil
}

// moveShared is moveGroup after the ledger refused to record the moves
// whose old copy another account's entry names (shared, by new key): they
// become copies, as in unsharedMoves (a move a crash left moving is
// forgotten, so that the copy appends the message); the others are moved.
func (a *attempt) moveShared(ctx context.Context, from string, uidValidity uint32, to string, moves []move, shared map[string]bool) error {
	m := a.mirror()
	var keep []move
	var forget []string
	for _, mv := range moves {
		switch {
		case !shared[mv.msg.Key]:
			keep = append(keep, mv)
		case mv.old.State == StateMoving:
			forget = append(forget, mv.old.Key)
		default:
			delete(m.moved, mv.old.Key) // copied again; the old entry goes as a removal
		}
	}
	a.log.Info("mirror: messages moved at the source whose copy another account's entries also name are copied into their new folder; the copy stays",
		"account", a.opts.Name, "messages", len(moves)-len(keep))
	if len(forget) > 0 {
		if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Delete: forget}); err != nil {
			return fmt.Errorf("forgetting %d moves of copies another account names: %w", len(forget), fatal(err))
		}
	}
	if len(keep) == 0 {
		return nil
	}
	return a.moveGroup(ctx, from, uidValidity, to, keep)
}
