package pipeline

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sync"
)

// Destination matching (issue 14, docs/how-it-works.md "Matching what the
// destination already holds"): a copy into a destination folder the ledger
// has nothing for yet — a first run into a folder that holds mail, a lost or
// new checkpoint, a server reached under another name — first looks at what
// the folder holds. A message whose bytes the folder already holds is
// recorded as done (ReasonMatched) and not sent; one with the same
// Message-ID and size but other bytes is "probably present": skipped for
// good (ReasonPresent), reported, never deleted at the source.
//
// Candidates come from one listing of the folder's UIDs, sizes and
// Message-IDs (HeaderLister), taken once per folder before the first batch
// into it; they are confirmed by the digest of the destination's bytes
// (DigestLister: one FETCH per batch), compared with the digest of what
// the source served, after the bare-LF → CRLF normalisation, which is what
// a copy would have stored.

// destMatcher is the attempt's destination matching, shared by its batch
// writers.
type destMatcher struct {
	// known are the destination folders some entry of the account names:
	// never matched (a fetch job into a live INBOX matches once, on its
	// first copy).
	known map[string]bool
	mu    sync.Mutex
	boxes map[string]*matchBox // listed folders; nil: nothing to match there
}

// matchBox is what one destination folder held before the copy.
type matchBox struct {
	uidValidity uint32
	byKey       map[uint64][]uint32 // matchKey(Message-ID, size) → UIDs
	taken       map[uint32]bool     // UIDs matched by this run's messages
}

// newDestMatcher reads which destination folders the ledger knows; nil
// when matching is off or the destination cannot list Message-IDs.
func (a *attempt) newDestMatcher(ctx context.Context) (*destMatcher, error) {
	if a.opts.NoMatchExisting {
		return nil, nil
	}
	if _, ok := a.dst.(HeaderLister); !ok {
		return nil, nil
	}
	folders, err := a.ledger.Folders(ctx, a.opts.Account)
	if err != nil {
		return nil, fmt.Errorf("reading the ledger's folders: %w", fatal(err))
	}
	m := &destMatcher{known: map[string]bool{}, boxes: map[string]*matchBox{}}
	for _, f := range folders {
		if f.Side == DestSide && f.HasCopies {
			m.known[f.Name] = true
		}
	}
	return m, nil
}

// matchKey is a compact key of a Message-ID and a size (a collision only
// adds a candidate, which its digest then rules out).
func matchKey(messageID string, size int64) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(messageID))
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(size))
	_, _ = h.Write(b[:])
	return h.Sum64()
}

// wants reports whether a batch into mailbox is to be matched.
func (m *destMatcher) wants(mailbox string) bool {
	if m == nil || m.known[mailbox] {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b, listed := m.boxes[mailbox]
	return !listed || b != nil
}

// box lists mailbox once (through dst, a session with nothing in flight).
func (m *destMatcher) box(ctx context.Context, a *attempt, dst Destination, mailbox string) (*matchBox, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b, ok := m.boxes[mailbox]; ok {
		return b, nil
	}
	uv, msgs, err := dst.(HeaderLister).ListHeaders(ctx, mailbox)
	if err != nil {
		return nil, fmt.Errorf("listing what destination folder %q already holds: %w", mailbox, err)
	}
	var b *matchBox
	live := 0
	for _, h := range msgs {
		if h.Deleted {
			continue // on its way out: nobody's copy
		}
		if b == nil {
			b = &matchBox{uidValidity: uv, byKey: map[uint64][]uint32{}, taken: map[uint32]bool{}}
		}
		k := matchKey(h.MessageID, h.Size)
		b.byKey[k] = append(b.byKey[k], h.UID)
		live++
	}
	m.boxes[mailbox] = b
	if b != nil {
		a.log.Info("the destination folder holds messages the ledger does not know; matching them before copying",
			"account", a.opts.Name, "mailbox", mailbox, "messages", live)
	}
	return b, nil
}

// matchExisting decides, for each message of the batch, whether the
// destination folder already holds it (item.matchUID) or probably holds
// it (item.presentUID). It finishes the batches in flight first: the
// session's next command must not overtake them.
func (w *batchWriter) matchExisting(ctx context.Context, budget *byteBudget) error {
	a := w.a
	mailbox := w.batch[0].mailbox
	if !a.match.wants(mailbox) {
		return nil
	}
	if err := w.finishAll(ctx, budget); err != nil {
		return err
	}
	b, err := a.match.box(ctx, a, w.dst, mailbox)
	if err != nil || b == nil {
		return err
	}
	var hash []uint32
	seen := map[uint32]bool{}
	for _, it := range w.batch {
		if it.body == nil || it.skipReason != "" || it.failReason != "" {
			continue
		}
		for _, u := range b.byKey[matchKey(it.entry.MessageID, it.entry.Size)] {
			if !seen[u] {
				seen[u] = true
				hash = append(hash, u)
			}
		}
	}
	if len(hash) == 0 {
		return nil
	}
	digests := newDestDigests(w.dst, mailbox)
	if err := digests.load(ctx, b.uidValidity, hash); err != nil {
		return fmt.Errorf("matching what destination folder %q already holds: %w", mailbox, err)
	}
	a.match.mu.Lock()
	defer a.match.mu.Unlock()
	for _, it := range w.batch {
		if it.body == nil || it.skipReason != "" || it.failReason != "" {
			continue
		}
		var other uint32
		for _, u := range b.byKey[matchKey(it.entry.MessageID, it.entry.Size)] {
			if b.taken[u] {
				continue
			}
			d, ok := digests.sums[u]
			if !ok {
				continue // gone since the listing
			}
			if d == it.entry.Digest {
				it.matchUID, other = u, 0
				b.taken[u] = true
				break
			}
			if other == 0 {
				other = u
			}
		}
		if it.matchUID == 0 && other != 0 && it.entry.MessageID != "" {
			it.presentUID = other
			b.taken[other] = true
		}
		if it.matchUID != 0 || it.presentUID != 0 {
			it.matchValidity = b.uidValidity
		}
	}
	return nil
}

// presentReason is the reason a probably-present message is skipped with.
func presentReason(messageID string, uid uint32, mailbox string) string {
	return fmt.Sprintf("probably on the destination already: UID %d of %q has the same Message-ID %s and size, but other bytes; not copied, and never deleted at the source",
		uid, mailbox, messageID)
}

// Holder (optional, on a Destination) tells which of uids mailbox holds
// under uidValidity (not marked \Deleted), without reading them:
// destination matching's second look at the copies it recorded (adopt).
// Without it their digests are read again.
type Holder interface {
	Holding(ctx context.Context, mailbox string, uidValidity uint32, uids []uint32) (map[uint32]bool, error)
}

// holding is dst's Holding, or the UIDs digestsOf finds.
func holding(ctx context.Context, dst Destination, mailbox string, uidValidity uint32, uids []uint32) (map[uint32]bool, error) {
	if h, ok := dst.(Holder); ok {
		return h.Holding(ctx, mailbox, uidValidity, uids)
	}
	got, err := digestsOf(ctx, dst, mailbox, uidValidity, uids)
	out := make(map[uint32]bool, len(got))
	for _, g := range got {
		out[g.UID] = true
	}
	return out, err
}

// adopt records the copies destination matching found (entries, of one
// folder) as the account's own, and returns the keys of those it may not
// take, which are then sent like any other message: copies another
// account's entry holds removing or moving (the ledger refuses them in the
// transaction that would record them: Changes.Adopt), and copies gone from
// the destination between the match and the record (another account's
// removal or move that ended in between; checked after the record, so
// that one that ends later found the record first: sharedcopies.go;
// Holder, so that their bytes are not read twice).
func (w *batchWriter) adopt(ctx context.Context, entries []Entry) (map[string]bool, error) {
	a := w.a
	a.opts.Crashpoint("matched")
	refused := map[string]bool{}
	for {
		todo := slices.DeleteFunc(slices.Clone(entries), func(e Entry) bool { return refused[e.Key] })
		if len(todo) == 0 {
			break
		}
		err := a.ledger.Commit(ctx, a.opts.Account, Changes{Adopt: todo})
		if err == nil {
			break
		}
		keys, ok := contested(err)
		if !ok {
			return nil, fmt.Errorf("recording %d messages found on the destination: %w", len(todo), fatal(err))
		}
		maps.Copy(refused, keys)
	}
	if len(refused) > 0 {
		a.log.Info("destination matching: copies another account is removing or moving are not adopted; the messages are copied",
			"account", a.opts.Name, "mailbox", entries[0].DestMailbox, "messages", len(refused))
	}
	if a.dry {
		return refused, nil
	}
	var uids []uint32
	for _, e := range entries {
		if !refused[e.Key] {
			uids = append(uids, e.DestUID)
		}
	}
	there := map[uint32]bool{}
	for chunk := range slices.Chunk(uids, MaxLookup) {
		got, err := holding(ctx, w.dst, entries[0].DestMailbox, entries[0].DestUIDValidity, chunk)
		if err != nil && !errors.Is(err, ErrUIDValidityChanged) {
			return nil, fmt.Errorf("looking again for the copies found in destination folder %q: %w", entries[0].DestMailbox, err)
		}
		maps.Copy(there, got)
	}
	var gone []string
	for _, e := range entries {
		if !refused[e.Key] && !there[e.DestUID] {
			gone = append(gone, e.Key)
			refused[e.Key] = true
		}
	}
	if len(gone) == 0 {
		return refused, nil
	}
	if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Delete: gone}); err != nil {
		return nil, fmt.Errorf("forgetting %d copies gone from the destination since they were found: %w", len(gone), fatal(err))
	}
	a.log.Info("destination matching: copies left the destination while they were adopted (another account removed or moved them); the messages are copied",
		"account", a.opts.Name, "mailbox", entries[0].DestMailbox, "messages", len(gone))
	return refused, nil
}
