package imapdst

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/mailferry/mailferry/pipeline"
)

// Digests returns the SHA-256 and size of the exact bytes of those of uids
// that mailbox holds, provided it still has uidValidity (else an error
// wrapping pipeline.ErrUIDValidityChanged): one EXAMINE, one SEARCH and one
// FETCH BODY.PEEK[] for all of them (pipeline.DigestLister), where Digest
// costs the three per message. Bytes are those Digest would hash,
// BINARY[] included for messages stored with NUL bytes.
func (d *Destination) Digests(ctx context.Context, mailbox string, uidValidity uint32, uids []uint32) ([]pipeline.DestDigest, error) {
	return d.ctl.digests(ctx, mailbox, uidValidity, uids)
}

// ListHeaders lists mailbox's messages with their sizes and Message-IDs
// (one FETCH of RFC822.SIZE and the Message-ID header field), for matching
// what the destination holds before copying (pipeline.HeaderLister). A
// mailbox that does not exist holds nothing: UIDVALIDITY 0, no messages.
func (d *Destination) ListHeaders(ctx context.Context, mailbox string) (uint32, []pipeline.DestHeader, error) {
	return d.ctl.listHeaders(ctx, mailbox, d.appending())
}

var (
	_ pipeline.DigestLister = (*Destination)(nil)
	_ pipeline.HeaderLister = (*Destination)(nil)
)

// examineUnder opens mailbox read-only, provided it still has
// uidValidity: otherwise an error wrapping pipeline.ErrUIDValidityChanged
// that says what was being done.
func (ctl *control) examineUnder(ctx context.Context, mailbox string, uidValidity uint32, doing string) (*imap.SelectData, error) {
	sel, err := ctl.examine(ctx, mailbox)
	if err != nil {
		return nil, err
	}
	if sel.UIDValidity != uidValidity {
		return nil, fmt.Errorf("imapdst: %s %q: UIDVALIDITY is %d, expected %d: %w",
			doing, mailbox, sel.UIDValidity, uidValidity, pipeline.ErrUIDValidityChanged)
	}
	return sel, nil
}

func (ctl *control) digests(ctx context.Context, mailbox string, uidValidity uint32, uids []uint32) ([]pipeline.DestDigest, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	done, err := ctl.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	sel, err := ctl.examineUnder(ctx, mailbox, uidValidity, "digesting")
	if err != nil || sel.NumMessages == 0 {
		return nil, err
	}
	set := imap.UIDSet{}
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	seqs, err := ctl.searchSeq(ctx, mailbox, &imap.SearchCriteria{UID: []imap.UIDSet{set}})
	if err != nil || len(seqs) == 0 {
		return nil, err
	}
	// Bodies by sequence number (see searchSeq), untraced.
	ctl.gate.set(false)
	defer ctl.gate.set(true)
	cmd := ctl.c.Fetch(imap.SeqSetNum(seqs...), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	type got struct {
		d    pipeline.DestDigest
		seq  uint32
		seen int
	}
	var all []got
	var bad error
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		g := got{seq: msg.SeqNum}
		body := false
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				g.d.UID = uint32(it.UID)
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil {
					bad = cmp(bad, errors.New("server sent BODY[] as NIL"))
					continue
				}
				h := sha256.New()
				sw := &seenWriter{}
				n, err := io.Copy(io.MultiWriter(h, sw), it.Literal)
				if err == nil && n != it.Literal.Size() {
					err = fmt.Errorf("body ended after %d of %d bytes", n, it.Literal.Size())
				}
				if err != nil {
					return nil, ctl.check(ctx, err, "FETCH", mailbox)
				}
				copy(g.d.Sum[:], h.Sum(nil))
				g.d.Size, g.seen, body = n, sw.seen, true
			}
		}
		if body && g.d.UID != 0 {
			all = append(all, g)
		}
	}
	if err := ctl.check(ctx, cmd.Close(), "FETCH", mailbox); err != nil {
		return nil, err
	}
	if bad != nil {
		return nil, ctl.check(ctx, bad, "FETCH", mailbox)
	}
	out := make([]pipeline.DestDigest, 0, len(all))
	binary := ctl.c.Caps().Has(imap.CapBinary)
	for _, g := range all {
		if g.seen&seen80 != 0 && binary {
			// As digest does: a message stored with NUL bytes is served
			// with them replaced in BODY[]; BINARY[] has its bytes.
			bsum, bsize, bseen, err := ctl.fetchDigest(ctx, mailbox, g.d.UID, g.seq, true)
			if err != nil {
				return nil, err
			}
			if bsize == g.d.Size && bseen&seenNUL != 0 {
				g.d.Sum = bsum
			}
		}
		out = append(out, g.d)
	}
	slices.SortFunc(out, func(x, y pipeline.DestDigest) int { return int(int64(x.UID) - int64(y.UID)) })
	return out, nil
}

// listHeaders is ListHeaders. A mailbox the account's folder listing did
// not show is listed first; one it showed is examined at once, a LIST
// less, and listed only when EXAMINE is refused (it may have gone since).
// ahead, when the session is about to append (see ensureMailbox), sends
// the LIST, the flags probe (startFlagsProbe) and the EXAMINE together,
// answered in one round trip (RFC 3501 §5.5): the EXAMINE's reply counts
// only when LIST shows the mailbox. A mailbox EXAMINE opened is then
// taken as listed, so that EnsureMailbox right after costs nothing
// (examinedJustNow).
func (ctl *control) listHeaders(ctx context.Context, mailbox string, ahead bool) (uint32, []pipeline.DestHeader, error) {
	done, err := ctl.begin(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer done()
	listed := ctl.shared.wasListed(mailbox)
	var sel *imap.SelectData
	if ahead {
		var listCmd *imapclient.ListCommand
		if !listed {
			listCmd = ctl.c.List("", mailbox, nil)
		}
		probe := ctl.shared.startFlagsProbe(ctl, mailbox)
		exCmd := ctl.c.Select(mailbox, &imap.SelectOptions{ReadOnly: true})
		exists, lerr := true, error(nil)
		if listCmd != nil {
			exists, lerr = ctl.listedReply(ctx, mailbox, listCmd)
		}
		perr := probe.finish(ctx, ctl)
		sel, err = exCmd.Wait()
		err = ctl.check(ctx, err, "EXAMINE", mailbox)
		switch {
		case lerr != nil:
			return 0, nil, lerr
		case !exists:
			return 0, nil, nil
		case perr != nil:
			return 0, nil, perr
		}
	} else {
		if !listed {
			if ok, err := ctl.listed(ctx, mailbox); err != nil || !ok {
				return 0, nil, err
			}
		}
		sel, err = ctl.examine(ctx, mailbox)
	}
	var re *ReplyError
	if listed && errors.As(err, &re) && re.Status != "BYE" {
		ctl.shared.unlist(mailbox)
		if ok, lerr := ctl.listed(ctx, mailbox); lerr != nil || !ok {
			return 0, nil, lerr
		}
	}
	if err != nil {
		return 0, nil, err
	}
	ctl.shared.noteListed(mailbox)
	ctl.examined = examinedStatus{name: mailbox, ops: ctl.ops, uidValidity: sel.UIDValidity, uidNext: uint32(sel.UIDNext)}
	if sel.NumMessages == 0 {
		return sel.UIDValidity, nil, nil
	}
	section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
	cmd := ctl.c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}},
		&imap.FetchOptions{UID: true, RFC822Size: true, Flags: true, BodySection: []*imap.FetchItemBodySection{section}})
	var out []pipeline.DestHeader
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var h pipeline.DestHeader
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				h.UID = uint32(it.UID)
			case imapclient.FetchItemDataRFC822Size:
				h.Size = it.Size
			case imapclient.FetchItemDataFlags:
				h.Deleted = slices.Contains(it.Flags, imap.FlagDeleted)
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil {
					continue
				}
				const limit = 64 << 10
				hdr, err := io.ReadAll(io.LimitReader(it.Literal, limit))
				if err == nil && int64(len(hdr)) < min(it.Literal.Size(), limit) {
					err = fmt.Errorf("header ended after %d of %d bytes", len(hdr), it.Literal.Size())
				}
				if err != nil {
					return 0, nil, ctl.check(ctx, err, "FETCH", mailbox)
				}
				h.MessageID = headerMessageID(hdr)
			}
		}
		if h.UID != 0 {
			out = append(out, h)
		}
	}
	if err := ctl.check(ctx, cmd.Close(), "FETCH", mailbox); err != nil {
		return 0, nil, err
	}
	slices.SortFunc(out, func(x, y pipeline.DestHeader) int { return int(int64(x.UID) - int64(y.UID)) })
	return sel.UIDValidity, out, nil
}
