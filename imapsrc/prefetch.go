package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/pipeline"
)

// Defaults for Options.PrefetchMessages and Options.PrefetchBytes. One
// batched UID FETCH costs one round trip for up to this many messages: a
// whole listing page (pipeline.ListPage) of small messages goes in one, so
// that at a 40 ms round trip a page costs one round trip, not one per 100
// messages as before. Batches are not pipelined on one connection: a
// server may run two UID FETCH commands side by side and interleave their
// replies (Dovecot does), and go-imap's reader waits for each body to be
// read by its own command's reader, so a second batch in flight can
// deadlock the first. The bytes bound what an out-of-order Fetch may have
// to discard, not memory: the bodies stay on the connection until read.
const (
	DefaultPrefetchMessages = 512
	DefaultPrefetchBytes    = 16 << 20
)

// planned is one message of a Prefetch plan.
type planned struct {
	key         string
	mailbox     string
	uidValidity uint32
	uid         imap.UID
	size        int64
}

// batch is one UID FETCH in flight for the plan entries before end, all in
// one folder. Its replies are read one at a time, as Fetch asks for them:
// the bodies not read yet wait on the connection (go-imap's reader blocks
// until a body literal is consumed), so memory does not grow with the batch.
type batch struct {
	cmd     *imapclient.FetchCommand
	mailbox string
	end     int
	// held is a reply read up to its UID (heldUID), its body still unread.
	held    *imapclient.FetchMessageData
	heldUID imap.UID
	// gone are the UIDs this batch reported as gone because a later UID
	// came first; one of them coming after all means the server answers
	// out of UID order, and batching is turned off.
	gone map[imap.UID]bool
}

// Prefetch announces that the next Fetch calls ask for exactly msgs, in this
// order. Fetch then asks for the messages in batches, one UID FETCH uid-set
// (UID BODY.PEEK[]) per run of consecutive messages of one folder (RFC 3501
// §6.4.8), of up to Options.PrefetchMessages messages and
// Options.PrefetchBytes announced bytes, and streams each body to its
// writer as it arrives: one round trip per batch instead of one per message.
// A Fetch returns once the reply after its body has begun (or the FETCH has
// ended), as that is when its own reply is known to have parsed to its end:
// a body whose reply does not parse (a wrong literal length, bytes after the
// literal) fails with a transient error, like a single fetch.
// Prefetch itself sends nothing; it replaces any earlier plan.
//
// The flags and internal dates stay those List returned: Fetch writes bytes
// only. A message the FETCH does not return is looked for as in Fetch (UID
// SEARCH, then by sequence number) once the batch has ended, or reported as
// ErrMessageGone at once when the server has already answered for a later
// UID (replies come in mailbox order; RFC 3501 §2.3.1.1: UIDs ascend with
// sequence numbers, and a UID FETCH ignores UIDs that no longer exist).
// A folder whose UIDVALIDITY changed since the keys were made is never
// batched; its Fetch fails with ErrUIDValidityChanged as before.
//
// Fetch calls out of the announced order are served correctly, only more
// slowly: the replies in flight are read and discarded first. Keys that
// ParseKey rejects, and a key's second appearance, are left out of the
// plan. Any other method (List, Delete, ...) ends the batch in flight
// first. Prefetch fails only when the session is unusable.
func (s *Source) Prefetch(ctx context.Context, msgs []pipeline.SourceMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	s.plan, s.planIndex, s.pos = nil, nil, 0
	if s.opts.PrefetchMessages < 0 {
		return nil
	}
	s.plan = make([]planned, 0, len(msgs))
	s.planIndex = make(map[string]int, len(msgs))
	for _, m := range msgs {
		mailbox, uv, uid, err := s.locate(m)
		if _, dup := s.planIndex[m.Key]; err != nil || dup {
			continue
		}
		s.planIndex[m.Key] = len(s.plan)
		s.plan = append(s.plan, planned{key: m.Key, mailbox: mailbox, uidValidity: uv, uid: imap.UID(uid), size: m.Size})
	}
	return nil
}

// fetchPlanned serves a Fetch from the plan when msg is in its rest, else
// as a single message. The caller holds s.mu and has called beginFetch.
func (s *Source) fetchPlanned(ctx context.Context, key, mailbox string, uidValidity uint32, uid imap.UID, w io.Writer) (int64, error) {
	j, ok := s.planIndex[key]
	if !ok || j < s.pos || s.seqFetch || s.unordered {
		if err := s.endBatch(ctx); err != nil {
			return 0, err
		}
		return s.fetch(ctx, mailbox, uidValidity, uid, w)
	}
	if s.batch != nil && j >= s.batch.end {
		if err := s.endBatch(ctx); err != nil {
			return 0, err
		}
	}
	if j > s.pos {
		s.log.Debug("fetch skips announced messages", "skipped", j-s.pos)
	}
	s.pos = j + 1
	if s.batch == nil {
		started, err := s.startBatch(ctx, j)
		if err != nil {
			return 0, err
		}
		if !started {
			return s.fetch(ctx, mailbox, uidValidity, uid, w)
		}
	}
	return s.fromBatch(ctx, s.plan[j], w)
}

// startBatch sends the UID FETCH for plan[j] and the messages after it in
// the same folder, within the Prefetch bounds. It starts nothing, and
// leaves plan[j] to the single-message path (which reports the folder's
// absence or its new UIDVALIDITY exactly), when the folder cannot be
// EXAMINEd or its UIDVALIDITY is not the key's.
func (s *Source) startBatch(ctx context.Context, j int) (bool, error) {
	first := s.plan[j]
	sel, err := s.selectMailbox(ctx, first.mailbox, true)
	if err != nil || sel.uidValidity != first.uidValidity {
		return false, nil
	}
	maxMsgs, maxBytes := s.opts.PrefetchMessages, s.opts.PrefetchBytes
	end := j
	var bytes int64
	var set imap.UIDSet
	for end < len(s.plan) && end-j < maxMsgs {
		p := s.plan[end]
		if p.mailbox != first.mailbox || p.uidValidity != first.uidValidity || end > j && bytes+p.size > maxBytes {
			break
		}
		set.AddNum(p.uid)
		bytes += p.size
		end++
	}
	s.tap.note(fmt.Sprintf("C: UID FETCH %v (UID BODY.PEEK[]) [%d messages; the replies' bodies are not traced]", set, end-j))
	s.tap.trace(false)
	cmd := s.c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	s.batch = &batch{cmd: cmd, mailbox: first.mailbox, end: end, gone: map[imap.UID]bool{}}
	return true, nil
}

// fromBatch writes p's body from the batch in flight to w. Replies for
// UIDs before p's (messages the caller skipped) are discarded.
func (s *Source) fromBatch(ctx context.Context, p planned, w io.Writer) (int64, error) {
	b := s.batch
	for {
		if b.held == nil {
			more, err := s.nextReply(ctx)
			if err != nil {
				return 0, err
			}
			if !more {
				// The FETCH ended without p: the single-message path
				// tells a gone message from a server quirk.
				return s.fetch(ctx, p.mailbox, p.uidValidity, p.uid, w)
			}
		}
		switch {
		case b.heldUID == p.uid:
			return s.readHeld(ctx, p, w)
		case b.heldUID < p.uid:
			if b.gone[b.heldUID] {
				s.log.Warn("server answers UID FETCH out of UID order; fetching one message at a time from now on",
					"mailbox", b.mailbox, "uid", b.heldUID)
				s.unordered = true
			}
			b.held = nil // skipped by the caller: discarded by the next reply's read
		default:
			// A later UID came first: p was not in the folder when the
			// FETCH ran (RFC 3501 §6.4.8 ignores UIDs that do not exist).
			b.gone[p.uid] = true
			return 0, perMessage(fmt.Errorf("UID %d not in %q: %w", p.uid, p.mailbox, ErrMessageGone))
		}
	}
}

// nextReply reads the batch's next reply up to its UID into b.held. At the
// end of the FETCH it ends the batch and returns false.
func (s *Source) nextReply(ctx context.Context) (bool, error) {
	b := s.batch
	for {
		msg := b.cmd.Next()
		if msg == nil {
			return false, s.endBatch(ctx)
		}
		for item := msg.Next(); item != nil; item = msg.Next() {
			if it, ok := item.(imapclient.FetchItemDataUID); ok {
				b.held, b.heldUID = msg, it.UID
				return true, nil
			}
			// go-imap beta.8 dispatches a UID FETCH reply by its UID, which
			// must come before the body: a body before the UID is not
			// reached here, and is discarded with the reply.
		}
	}
}

// readHeld copies the held reply's body, which is p's, to w, with the same
// checks as a single fetch: the body's length against its literal's
// announced size, NIL and repeated bodies, and the reply parsing to its end
// (confirmEnd) before the body counts as fetched.
func (s *Source) readHeld(ctx context.Context, p planned, w io.Writer) (int64, error) {
	b := s.batch
	msg := b.held
	b.held = nil
	var (
		n    int64
		got  bool
		bad  error
		werr error
	)
	for item := msg.Next(); item != nil; item = msg.Next() {
		it, ok := item.(imapclient.FetchItemDataBodySection)
		if !ok {
			continue
		}
		w2, r2, berr := s.takeBody(w, it, &got, &n)
		if r2 != nil {
			// The connection failed mid-body: the batch is abandoned
			// unread (see takeBody).
			s.batch = nil
			s.tap.trace(true)
			return n, s.check(ctx, r2, "UID FETCH", b.mailbox)
		}
		werr, bad = first(werr, w2), first(bad, berr)
	}
	switch {
	case werr != nil:
		return n, fmt.Errorf("writing the message: %w", werr)
	case bad != nil:
		return n, fmt.Errorf("imapsrc: UID FETCH in %q on %s: UID %d: %w", b.mailbox, s.opts.Addr, p.uid, bad)
	case !got:
		// A reply with the UID but no body (an unsolicited flag update
		// that go-imap took for this command's reply): ask again alone.
		if err := s.endBatch(ctx); err != nil {
			return 0, err
		}
		return s.fetch(ctx, p.mailbox, p.uidValidity, p.uid, w)
	}
	if err := s.confirmEnd(ctx, p); err != nil {
		return n, err
	}
	return n, nil
}

// confirmEnd returns once the reply that carried p's body is known to have
// been parsed to its end, and fails when it was not. go-imap beta.8 ends a
// reply's items the same way whether its closing ")" CRLF parsed or not, so
// a wrong literal length (the body swallowing the next bytes, or leaving
// some over) would otherwise pass as p's body. What follows tells: go-imap
// reads the next response only after the previous one parsed up to its
// CRLF, so the FETCH's next reply arriving, or the command's tagged reply,
// confirms p; a parse error ends the command with that error instead.
//
// The bytes it waits for normally follow the body on the connection: this
// costs no round trip. The next reply is read up to its UID only and held,
// as after a skipped message: its body stays on the connection.
func (s *Source) confirmEnd(ctx context.Context, p planned) error {
	mailbox := s.batch.mailbox
	more, err := s.nextReply(ctx)
	var ie *imap.Error
	switch {
	case more || err == nil:
		return nil
	case errors.As(err, &ie):
		// A tagged NO or BAD parsed after p's reply, so that reply is
		// whole. The NO concerns the command: the messages of the batch
		// not served yet are asked for again, each getting its own answer.
		s.log.Warn("server refused part of a batched UID FETCH; the messages of the batch not served yet are asked for again", "mailbox", mailbox, "after_uid", p.uid, "error", err)
		return nil
	}
	return fmt.Errorf("the reply carrying the body did not parse to its end (wrong literal length, or bytes after the body), so the body read is not the message: %w", err)
}

// endBatch reads the rest of the batch in flight, discarding its bodies,
// so that the next command's reply is next on the connection.
func (s *Source) endBatch(ctx context.Context) error {
	b := s.batch
	if b == nil {
		return nil
	}
	s.batch = nil
	defer s.tap.trace(true)
	return s.check(ctx, b.cmd.Close(), "UID FETCH", b.mailbox)
}

// abortBatch ends the batch in flight without reading it: it closes the
// connection first, so that draining fails fast, and lets go-imap's reader
// stop (it waits for each body to be consumed). The session is unusable
// afterwards.
func (s *Source) abortBatch() {
	b := s.batch
	if b == nil {
		return
	}
	s.batch = nil
	_ = s.conn.Abort()
	_ = b.cmd.Close()
}
