package pipeline

import (
	"context"
	"encoding/hex"
	"fmt"
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
