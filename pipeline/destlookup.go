package pipeline

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
)

// byMailbox groups items by their destination mailbox and returns the
// mailboxes sorted, so that work over several mailboxes runs in a stable
// order.
func byMailbox[T any](items []T, mailbox func(T) string) (map[string][]T, []string) {
	groups := map[string][]T{}
	for _, it := range items {
		mb := mailbox(it)
		groups[mb] = append(groups[mb], it)
	}
	names := make([]string, 0, len(groups))
	for mb := range groups {
		names = append(names, mb)
	}
	sort.Strings(names)
	return groups, names
}

// destDigests hashes destination messages of one mailbox on demand, each
// at most once (every digest is a FETCH of the whole message).
type destDigests struct {
	dst     Destination
	mailbox string
	sums    map[uint32]string
}

func newDestDigests(dst Destination, mailbox string) *destDigests {
	return &destDigests{dst: dst, mailbox: mailbox, sums: map[uint32]string{}}
}

// load hashes the messages uids (those not hashed yet) in as few commands
// as the destination allows (DigestLister): reconcile and destination
// matching load every candidate of a mailbox before comparing, instead of
// a round trip per message.
func (d *destDigests) load(ctx context.Context, uidValidity uint32, uids []uint32) error {
	var todo []uint32
	for _, u := range uids {
		if _, ok := d.sums[u]; !ok {
			todo = append(todo, u)
		}
	}
	for chunk := range slices.Chunk(todo, MaxLookup) {
		got, err := digestsOf(ctx, d.dst, d.mailbox, uidValidity, chunk)
		if err != nil {
			return fmt.Errorf("hashing %d destination messages: %w", len(chunk), err)
		}
		for _, g := range got {
			d.sums[g.UID] = hex.EncodeToString(g.Sum[:])
		}
	}
	return nil
}

// digestsOf is DigestLister's Digests, or Digest message by message for a
// destination without it.
func digestsOf(ctx context.Context, dst Destination, mailbox string, uidValidity uint32, uids []uint32) ([]DestDigest, error) {
	if dl, ok := dst.(DigestLister); ok {
		return dl.Digests(ctx, mailbox, uidValidity, uids)
	}
	out := make([]DestDigest, 0, len(uids))
	for _, u := range uids {
		sum, size, err := dst.Digest(ctx, mailbox, u)
		if err != nil {
			return nil, fmt.Errorf("hashing destination UID %d: %w", u, err)
		}
		out = append(out, DestDigest{UID: u, Sum: sum, Size: size})
	}
	return out, nil
}

// of returns the hex SHA-256 of message uid.
func (d *destDigests) of(ctx context.Context, uid uint32) (string, error) {
	if s, ok := d.sums[uid]; ok {
		return s, nil
	}
	sum, _, err := d.dst.Digest(ctx, d.mailbox, uid)
	if err != nil {
		return "", fmt.Errorf("hashing destination UID %d: %w", uid, err)
	}
	s := hex.EncodeToString(sum[:])
	d.sums[uid] = s
	return s, nil
}
