package pipeline

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
)

// Proving that servers reached under new names are an account the ledger
// knows (issue 14, docs/ledger.md "Proving that a renamed server is the
// same mailbox"): what does not change when a server is renamed is what
// the mailbox holds and how the server names it.

// ProofKeys is how many keys of a source's listing a proof looks up.
const ProofKeys = 256

// SourceProof is what ProveSource found.
type SourceProof struct {
	Asked, Known int // keys of the listing looked up, and found in the candidate
}

// Proved: at least one key is known and at least half of them are.
func (p SourceProof) Proved() bool { return p.Known > 0 && 2*p.Known >= p.Asked }

// errEnoughKeys stops a proof's listing once it has its keys.
var errEnoughKeys = errors.New("enough keys for the proof")

// ProveSource looks up the first ProofKeys keys of src's listing in the
// ledger's account candidate. Keys are the source's own names for its
// messages: POP3 UIDLs, IMAP "<folder>\x00<UIDVALIDITY>\x00<UID>" (so the
// folders' UIDVALIDITY and the UIDs must both match), Gmail X-GM-MSGIDs.
// Another mailbox with the same user shares none of them; a source that
// holds nothing, or only mail the ledger never saw, cannot tell (Known 0).
// It lists on src (a session of its own, which the caller closes).
//
// A key counts as known only with the size the ledger recorded for it
// (expected gives the size a copy of a listed message has: the size the
// source announces, plus an added header): a Dovecot UIDL is the UID and
// the UIDVALIDITY, a time in seconds, which two servers may share.
func ProveSource(ctx context.Context, src Source, ledger Ledger, candidate AccountID, expected func(SourceMessage) int64) (SourceProof, error) {
	var keys []string
	sizes := map[string]int64{}
	err := src.List(ctx, func(page []SourceMessage) error {
		for _, m := range page {
			keys = append(keys, m.Key)
			sizes[m.Key] = expected(m)
			if len(keys) == ProofKeys {
				return errEnoughKeys
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnoughKeys) {
		return SourceProof{}, fmt.Errorf("listing the source to prove which mailbox it is: %w", err)
	}
	p := SourceProof{Asked: len(keys)}
	for chunk := range slices.Chunk(keys, MaxLookup) {
		err := ledger.Lookup(ctx, candidate, chunk, func(e Entry) error {
			if e.Size == sizes[e.Key] {
				p.Known++
			}
			return nil
		})
		if err != nil {
			return p, fmt.Errorf("reading the ledger: %w", err)
		}
	}
	return p, nil
}

// ProveDestination reports whether dst holds what the ledger's account
// candidate copied: a done entry with a UID (the first of at most a page)
// is looked for at that UID, under the UIDVALIDITY it recorded, with the
// entry's size and digest (one FETCH). A candidate without such an entry
// cannot tell: false, so that a destination that is another server is
// never taken for the one holding the copies.
func ProveDestination(ctx context.Context, dst Destination, ledger Ledger, candidate AccountID) (bool, error) {
	page, _, err := ledger.Scan(ctx, candidate, Query{States: []State{StateDone}, Limit: 100})
	if err != nil {
		return false, fmt.Errorf("reading the ledger: %w", err)
	}
	i := slices.IndexFunc(page, func(e Entry) bool { return e.DestUID != 0 && e.DestMailbox != "" && e.Digest != "" })
	if i < 0 {
		return false, nil
	}
	e := page[i]
	got, err := digestsOf(ctx, dst, e.DestMailbox, e.DestUIDValidity, []uint32{e.DestUID})
	if errors.Is(err, ErrUIDValidityChanged) || err != nil && ClassOf(err) != ClassTransient {
		return false, nil // not there: another mailbox, or one recreated
	}
	if err != nil {
		return false, fmt.Errorf("reading UID %d of %q to prove which mailbox the destination is: %w", e.DestUID, e.DestMailbox, err)
	}
	return len(got) == 1 && got[0].Size == e.Size && hex.EncodeToString(got[0].Sum[:]) == e.Digest, nil
}
