package imapsrc

import (
	"context"
	"errors"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/pipeline"
)

// changesHeld bounds the messages a listing by changes holds from one
// reply; beyond it, only their UIDs are kept (as ranges) and their
// attributes are fetched again in batches, as a full listing does.
const changesHeld = 2 * pipeline.ListPage

var _ pipeline.ChangeLister = (*Source)(nil)

// ListChanges makes the next List list each folder of since by what
// changed since the marks given (pipeline.ChangeLister); that List forgets
// them. A source with an age window (MaxAge, MinAge) lists every folder
// whole: a message can come into the window without changing.
func (s *Source) ListChanges(since []pipeline.FolderSince) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.since = make(map[string]pipeline.FolderSince, len(since))
	for _, f := range since {
		s.since[f.Last.Mailbox] = f
	}
}

// Changes returns what the last List found of the folders it listed by
// their changes (pipeline.ChangeLister).
func (s *Source) Changes() []pipeline.FolderChanges {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.changes)
}

// listChanges lists mailbox by what changed since f.Last, the marks of its
// last complete pass, into hand. Its commands go in one round trip (RFC
// 3501 §5.5 allows them in flight together):
//
//   - EXAMINE, unless the folder is selected already;
//   - UID FETCH 1:UIDNext-1 … (CHANGEDSINCE HighestModSeq) — the messages
//     whose flags changed (RFC 7162 §3.1.4);
//   - UID SEARCH RETURN (COUNT) UID 1:UIDNext-1 (RFC 4731; a plain UID
//     SEARCH without ESEARCH) — how many are left below UIDNext;
//   - UID FETCH UIDNext:* — the messages that came since, when f.Now says
//     some did (a reply for the highest message below UIDNext when none
//     is left, RFC 3501 §6.4.8: dropped).
//
// Nothing below UIDNext is gone when that count is Last.Messages (none can
// come: UIDs are ascending, RFC 3501 §2.3.1.1); then nothing else needs
// listing. Otherwise, or when UIDVALIDITY changed, or the server refused a
// command, it returns false having handed over nothing: the folder is
// listed whole, and its entries swept. QRESYNC's VANISHED (RFC 7162 §3.2)
// would name the expunged UIDs, but once enabled it replaces every EXPUNGE
// of the session, which go-imap v2.0.0-beta.8 cannot parse.
func (s *Source) listChanges(ctx context.Context, mailbox string, f pipeline.FolderSince, hand func([]pipeline.SourceMessage) error) (pipeline.FolderChanges, bool, error) {
	var out pipeline.FolderChanges
	m := f.Last
	if m.UIDNext == 0 {
		return out, false, nil
	}
	done, err := s.begin(ctx)
	if err != nil {
		return out, false, err
	}
	// The new messages' EMAILIDs are what a later mirror pass recognises
	// their moves by; asked for before any command of the listing is
	// sent (imapconn.FetchExtra).
	ids, _ := s.emailIDs()
	selected := s.startSelect(ctx, mailbox, true)
	uidNext := imap.UID(m.UIDNext)
	held := 0
	keep := func(uid imap.UID) (bool, bool) {
		if held < changesHeld {
			held++
			return true, false
		}
		return false, true
	}
	// The changes go before the new messages: the reply UID FETCH
	// UIDNext:* gets for the highest message below UIDNext when none
	// is left then finds no FETCH pending that asked for it (go-imap
	// routes UID FETCH replies by UID), and is dropped.
	var changedCmd, newCmd *imapclient.FetchCommand
	var countCmd *imapclient.SearchCommand
	esearch := false
	if uidNext > 1 {
		below := imap.UIDSet{{Start: 1, Stop: uidNext - 1}}
		changed := *listAttrs
		changed.ChangedSince = m.HighestModSeq
		changedCmd = s.c.Fetch(below, &changed)
		var sopts *imap.SearchOptions
		if caps := s.c.Caps(); (caps.Has(imap.CapESearch) || caps.Has(imap.CapIMAP4rev2)) && !s.opts.Quirks.Refused(imapconn.FeatureESearch) {
			sopts, esearch = &imap.SearchOptions{ReturnCount: true}, true
		}
		countCmd = s.c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{below}}, sopts)
	}
	if f.Now.UIDNext != m.UIDNext {
		newCmd = s.c.Fetch(imap.UIDSet{{Start: uidNext, Stop: 0}}, listAttrs)
	}
	// Every command is read to its end, whatever the others answered.
	sel, selErr := selected()
	var changed, came []listed
	var changedRest, cameRest imap.UIDSet
	var changedErr, countErr, newErr error
	count := uint32(0)
	if changedCmd != nil {
		changed, changedRest, changedErr = s.collectListed(mailbox, m.UIDValidity, changedCmd, keep)
		var data *imap.SearchData
		data, countErr = countCmd.Wait()
		if countErr == nil {
			if esearch {
				count = data.Count
			} else {
				set, _ := data.All.(imap.UIDSet)
				count = uint32(uidChunk(normalizeUIDs(set)).count())
			}
		}
	}
	if newCmd != nil {
		came, cameRest, newErr = s.collectListed(mailbox, m.UIDValidity, newCmd, func(uid imap.UID) (bool, bool) {
			if uid < uidNext {
				return false, false
			}
			return keep(uid)
		})
	}
	ids.stop()
	done()
	var ie *imap.Error
	if errors.As(selErr, &ie) {
		return out, false, nil // the full listing tells what
	}
	if selErr != nil {
		return out, false, selErr
	}
	if sel.uidValidity != m.UIDValidity {
		return out, false, nil // renumbered: listed whole
	}
	for _, c := range []struct {
		err     error
		command string
	}{{changedErr, "UID FETCH (CHANGEDSINCE)"}, {countErr, "UID SEARCH"}, {newErr, "UID FETCH"}} {
		if errors.As(c.err, &ie) {
			s.log.Debug("listing by changes refused: the folder is listed whole", "mailbox", mailbox, "command", c.command, "error", c.err)
			return out, false, nil
		}
		if err := s.check(ctx, c.err, c.command, mailbox); err != nil {
			return out, false, err
		}
	}
	if count != m.Messages {
		s.log.Debug("messages gone since the last pass: the folder is listed whole", "mailbox", mailbox,
			"messages_then", m.Messages, "messages_now", count)
		return out, false, nil
	}
	changedN := len(changed) + uidChunk(normalizeUIDs(changedRest)).count()
	cameN := len(came) + uidChunk(normalizeUIDs(cameRest)).count()
	out = pipeline.FolderChanges{Mailbox: mailbox, UIDValidity: m.UIDValidity, Messages: count + uint32(cameN),
		Unlisted: count - uint32(changedN)}
	if n := len(came); n > 0 {
		out.MaxUID = uint32(came[n-1].uid)
	}
	if rs := normalizeUIDs(cameRest); len(rs) > 0 {
		out.MaxUID = max(out.MaxUID, uint32(rs[len(rs)-1].Stop))
	}
	s.log.Debug("folder listed by its changes", "mailbox", mailbox, "changed", changedN, "new", cameN,
		"since_uidnext", m.UIDNext, "since_modseq", m.HighestModSeq)
	// Below UIDNext first, then the new ones: UID order, but for those
	// beyond changesHeld (the pipeline's scopes take any order).
	heldMsgs := make([]pipeline.SourceMessage, 0, len(changed)+len(came))
	for _, l := range slices.Concat(changed, came) {
		l.msg.EmailID = ids.of(l.seq)
		heldMsgs = append(heldMsgs, l.msg)
	}
	for p := range slices.Chunk(heldMsgs, pipeline.ListPage) {
		if err := hand(p); err != nil {
			return out, true, err
		}
	}
	rest := normalizeUIDs(slices.Concat(changedRest, cameRest))
	if err := s.listChunks(ctx, mailbox, m.UIDValidity, rest, hand); err != nil {
		return out, true, err
	}
	return out, true, nil
}
