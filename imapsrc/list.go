package imapsrc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/pipeline"
)

// List hands every message of every included folder (Options.Include,
// Exclude) to page, folder by folder in name order and by UID within a
// folder. Each folder is EXAMINEd; its UIDs come from UID SEARCH ALL
// (RETURN (ALL) with ESEARCH, RFC 4731) as ranges, never as one number per
// message, and their UID, FLAGS, INTERNALDATE and RFC822.SIZE from UID
// FETCH in batches of Options.FetchBatch UIDs (RFC 3501 §6.4.8), each
// batch one call of page (at most pipeline.ListPage messages), so that no
// single response is unbounded and the listing is never held whole. No
// body is read.
//
// page may fetch and delete messages: the folder is EXAMINEd again before
// the next batch when page selected another one, and a UIDVALIDITY that
// changed meanwhile fails the listing (its keys would mean other
// messages). The folders LeaveOut named since the last List are not
// listed.
//
// Flags are the system flags and keywords as the server spells them,
// without \Recent (RFC 3501 §2.3.2: session-only, never to be copied).
// InternalDate keeps the zone the server sent. A folder deleted between
// LIST and EXAMINE is skipped with a warning; a message expunged during
// listing is left out.
func (s *Source) List(ctx context.Context, page func([]pipeline.SourceMessage) error) error {
	s.mu.Lock()
	locked := true
	defer func() {
		if locked {
			s.mu.Unlock()
		}
	}()
	leaveOut, since := s.leaveOut, s.since
	s.leaveOut, s.since, s.changes = nil, nil, nil
	done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	folders, err := s.lastFolders(ctx)
	s.listedFolders = nil
	done()
	if err != nil {
		return fmt.Errorf("listing the folders of %s at %s: %w", s.user, s.opts.Addr, err)
	}
	// hand calls page without the lock: page fetches through s.
	hand := func(msgs []pipeline.SourceMessage) error {
		s.mu.Unlock()
		locked = false
		err := page(msgs)
		s.mu.Lock()
		locked = true
		return err
	}
	if s.quirks.Labels {
		return s.listLabels(ctx, folders, hand)
	}
	return s.listFolders(ctx, folders, leaveOut, since, hand)
}

// listFolders lists the messages of folders, those included and not left
// out, in order, into hand, a page at a time.
func (s *Source) listFolders(ctx context.Context, folders []Folder, leaveOut map[string]bool, since map[string]pipeline.FolderSince, hand func([]pipeline.SourceMessage) error) error {
	now := time.Now()
	for _, f := range folders {
		if !s.included(f) {
			s.log.Debug("folder excluded", "mailbox", f.Name)
			continue
		}
		if leaveOut[f.Name] {
			continue
		}
		if m, ok := since[f.Name]; ok && s.opts.MaxAge <= 0 && s.opts.MinAge <= 0 {
			c, ok, err := s.listChanges(ctx, f.Name, m, hand)
			if err != nil {
				return fmt.Errorf("listing the changes of folder %q of %s at %s: %w", f.Name, s.user, s.opts.Addr, err)
			}
			if ok {
				s.changes = append(s.changes, c)
				continue
			}
		}
		err := s.listFolder(ctx, f.Name, func(msgs []pipeline.SourceMessage) error {
			msgs = slices.DeleteFunc(msgs, func(m pipeline.SourceMessage) bool { return !s.opts.inAgeWindow(m.InternalDate, now) })
			if len(msgs) == 0 {
				return nil
			}
			return hand(msgs)
		})
		if err != nil {
			return fmt.Errorf("listing folder %q of %s at %s: %w", f.Name, s.user, s.opts.Addr, err)
		}
	}
	return nil
}

// inAgeWindow reports whether a message of internal date d passes MaxAge
// and MinAge at now.
func (o Options) inAgeWindow(d, now time.Time) bool {
	if d.IsZero() {
		return true
	}
	age := now.Sub(d)
	return (o.MaxAge <= 0 || age <= o.MaxAge) && (o.MinAge <= 0 || age >= o.MinAge)
}

// listFolder lists mailbox batch by batch into each, which is called
// without the session being busy. The lock is held, except in each.
func (s *Source) listFolder(ctx context.Context, mailbox string, each func([]pipeline.SourceMessage) error) error {
	done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	// UID SEARCH goes out behind EXAMINE, both answered in one round
	// trip (issue 18: at 40 ms each reply waited for alone is 40 ms). Its
	// reply counts only once EXAMINE succeeded: after a failed one it
	// says nothing of the mailbox (no mailbox selected).
	waitSel := s.startSelect(ctx, mailbox, true)
	sopts := s.searchOptions()
	search := s.c.UIDSearch(&imap.SearchCriteria{}, sopts)
	sel, err := waitSel()
	var ie *imap.Error
	if err != nil || sel.messages == 0 {
		if err == nil || errors.As(err, &ie) {
			_, _ = search.Wait() // the connection is in step again
		}
		done()
		if errors.As(err, &ie) && ie.Code == imap.ResponseCodeNonExistent {
			s.log.Warn("folder disappeared while listing, skipped", "mailbox", mailbox)
			return nil
		}
		return err
	}
	uids, err := s.searchResult(ctx, mailbox, search, sopts)
	done()
	if err != nil {
		return err
	}
	return s.listChunks(ctx, mailbox, sel.uidValidity, uids, each)
}

// listChunks lists the messages uids (as normalizeUIDs returns them) of
// mailbox, of UIDVALIDITY uidValidity, batch by batch into each, which is
// called without the session being busy. The lock is held, except in
// each.
//
// The next batch's UID FETCH is sent before each gets the current one
// (RFC 3501 §5.5 allows pipelined commands), so that its reply is on its
// way while each fetches the page's bodies: at a 40 ms round trip that
// saves one round trip per page. A goroutine reads that reply as it
// arrives (it has no literal and is at most pipeline.ListPage small
// responses), since a server may interleave it with the replies of the
// bodies' UID FETCH (Dovecot runs UID FETCH commands side by side) and
// go-imap's reader waits for each response to be taken. (Options.Trace
// misses the lines of that reply that arrive while the bodies are read:
// tracing is off then, as the mail must not reach the trace.)
func (s *Source) listChunks(ctx context.Context, mailbox string, uidValidity uint32, uids imap.UIDSet, each func([]pipeline.SourceMessage) error) error {
	batch := min(s.opts.FetchBatch, pipeline.ListPage)
	next, stop := iter.Pull(uidChunks(uids, batch))
	defer stop()
	chunk, ok := next()
	var ahead *listAhead // the listing of chunk, sent before the last page was handed over
	for ok {
		done, err := s.begin(ctx)
		if err != nil {
			return err
		}
		now, err := s.selectMailbox(ctx, mailbox, true)
		if err == nil && now.uidValidity != uidValidity {
			err = transient(fmt.Errorf("UIDVALIDITY of %q changed from %d to %d while listing it: %w",
				mailbox, uidValidity, now.uidValidity, ErrUIDValidityChanged))
		}
		var msgs []pipeline.SourceMessage
		switch {
		case ahead != nil:
			// Sent while mailbox was selected with uidValidity: a change
			// since has failed above.
			werr := ahead.wait(ctx, s)
			if err == nil {
				msgs, err = ahead.msgs, werr
			}
			ahead = nil
		case err == nil:
			msgs, err = s.fetchAttrs(ctx, mailbox, uidValidity, chunk)
		}
		following, more := next()
		if err == nil && more && !s.asksEmailIDs() {
			ahead = s.sendListing(mailbox, uidValidity, following)
		}
		done()
		if err != nil {
			return err
		}
		if missing := chunk.count() - len(msgs); missing > 0 {
			s.log.Debug("messages expunged while listing", "mailbox", mailbox, "messages", missing)
		}
		if err := each(msgs); err != nil {
			// The listing in flight, if any, is left to its goroutine,
			// which ends with its command.
			return err
		}
		chunk, ok = following, more
	}
	return nil
}

// asksEmailIDs reports whether a listing asks for EMAILIDs (emailIDs).
// Such a listing is not sent ahead: imapconn.FetchExtra rewrites every
// FETCH of the connection, and every reply, while it is on, so it would
// span the page's body fetches; and a refusal of EMAILID is answered by
// listing again without it (fetchListed).
func (s *Source) asksEmailIDs() bool {
	return s.c.Caps().Has(imap.CapObjectID) && !s.opts.Quirks.Refused(imapconn.FeatureObjectID) && !s.quirks.Labels
}

// listAhead is a listing UID FETCH in flight, read by a goroutine.
type listAhead struct {
	mailbox string
	done    chan struct{}
	msgs    []pipeline.SourceMessage
	err     error // the command's, unchecked
}

// sendListing sends UID FETCH chunk (listAttrs) in mailbox, which is
// selected with uidValidity, and reads its reply in a goroutine.
func (s *Source) sendListing(mailbox string, uidValidity uint32, chunk uidChunk) *listAhead {
	cmd := s.c.Fetch(imap.UIDSet(chunk), listAttrs)
	a := &listAhead{mailbox: mailbox, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		got, _, err := s.collectListed(mailbox, uidValidity, cmd, nil)
		a.err = err
		a.msgs = make([]pipeline.SourceMessage, len(got))
		for i, l := range got {
			a.msgs[i] = l.msg
		}
	}()
	return a
}

// wait returns the listing's error, checked, once its reply has been read.
// The caller holds s.mu and has bound the connection to ctx.
func (a *listAhead) wait(ctx context.Context, s *Source) error {
	<-a.done
	return s.check(ctx, a.err, "UID FETCH", a.mailbox)
}

// searchAll returns the UIDs of the selected mailbox as ascending,
// disjoint ranges: a contiguous mailbox of any size is one range.
func (s *Source) searchAll(ctx context.Context, mailbox string) (imap.UIDSet, error) {
	sopts := s.searchOptions()
	return s.searchResult(ctx, mailbox, s.c.UIDSearch(&imap.SearchCriteria{}, sopts), sopts)
}

// searchOptions are the options of searchAll's UID SEARCH: RETURN (ALL)
// where ESEARCH is offered and not refused before.
func (s *Source) searchOptions() *imap.SearchOptions {
	q := s.opts.Quirks
	if caps := s.c.Caps(); (caps.Has(imap.CapESearch) || caps.Has(imap.CapIMAP4rev2)) && !q.Refused(imapconn.FeatureESearch) {
		return &imap.SearchOptions{ReturnAll: true}
	}
	return nil
}

// searchResult is searchAll for its UID SEARCH cmd, sent with sopts.
func (s *Source) searchResult(ctx context.Context, mailbox string, cmd *imapclient.SearchCommand, sopts *imap.SearchOptions) (imap.UIDSet, error) {
	q := s.opts.Quirks
	data, err := cmd.Wait()
	if sopts != nil && imapconn.IsRefusal(err) {
		q.Refuse(imapconn.FeatureESearch, err, "a plain UID SEARCH")
		data, err = s.c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	}
	if err = s.check(ctx, err, "UID SEARCH", mailbox); err != nil {
		return nil, err
	}
	set, _ := data.All.(imap.UIDSet)
	return normalizeUIDs(set), nil
}

// normalizeUIDs returns set's UIDs as ascending, disjoint, non-adjacent
// ranges without "*" (a SEARCH result names existing UIDs only).
func normalizeUIDs(set imap.UIDSet) imap.UIDSet {
	var out imap.UIDSet
	rs := slices.Clone(set)
	for i := range rs {
		if rs[i].Start > rs[i].Stop && rs[i].Stop != 0 {
			rs[i].Start, rs[i].Stop = rs[i].Stop, rs[i].Start
		}
		if rs[i].Stop == 0 {
			rs[i].Stop = rs[i].Start
		}
	}
	slices.SortFunc(rs, func(a, b imap.UIDRange) int { return cmp.Compare(a.Start, b.Start) })
	for _, r := range rs {
		if r.Start == 0 {
			continue
		}
		if n := len(out); n > 0 && r.Start <= out[n-1].Stop+1 {
			out[n-1].Stop = max(out[n-1].Stop, r.Stop)
			continue
		}
		out = append(out, r)
	}
	return out
}

// uidChunk is a run of at most n UIDs of a UID set, as a set itself.
type uidChunk imap.UIDSet

func (c uidChunk) count() int {
	n := 0
	for _, r := range c {
		n += int(r.Stop-r.Start) + 1
	}
	return n
}

// uidChunks cuts set (as normalizeUIDs returns it) into chunks of n UIDs,
// in order, without ever spelling out the UIDs one by one.
func uidChunks(set imap.UIDSet, n int) func(yield func(uidChunk) bool) {
	return func(yield func(uidChunk) bool) {
		var chunk uidChunk
		room := n
		for _, r := range set {
			for start := r.Start; ; {
				take := min(uint64(r.Stop-start)+1, uint64(room))
				stop := start + imap.UID(take) - 1
				chunk = append(chunk, imap.UIDRange{Start: start, Stop: stop})
				room -= int(take)
				if room == 0 {
					if !yield(chunk) {
						return
					}
					chunk, room = nil, n
				}
				if stop == r.Stop {
					break
				}
				start = stop + 1
			}
		}
		if len(chunk) > 0 {
			yield(chunk)
		}
	}
}

// fetchAttrs fetches the attributes of uids, in UID order.
func (s *Source) fetchAttrs(ctx context.Context, mailbox string, uidValidity uint32, uids uidChunk) ([]pipeline.SourceMessage, error) {
	got, err := s.fetchListed(ctx, mailbox, uidValidity, imap.UIDSet(uids))
	if err != nil {
		return nil, err
	}
	out := make([]pipeline.SourceMessage, len(got))
	for i, l := range got {
		out[i] = l.msg
	}
	return out, nil
}

// listed is a message fetchListed listed, with its sequence number.
type listed struct {
	seq uint32
	uid imap.UID
	msg pipeline.SourceMessage
}

// fetchListed is fetchAttrs with each message's UID and sequence number,
// and its EMAILID when the server has OBJECTID (emailIDs).
func (s *Source) fetchListed(ctx context.Context, mailbox string, uidValidity uint32, uids imap.UIDSet) ([]listed, error) {
	ids, asked := s.emailIDs()
	cmd := s.c.Fetch(uids, listAttrs)
	got, _, err := s.collectListed(mailbox, uidValidity, cmd, nil)
	ids.stop()
	if asked && imapconn.IsRefusal(err) {
		// OBJECTID advertised, EMAILID refused: listed without.
		s.opts.Quirks.Refuse(imapconn.FeatureObjectID, err, "moves recognised by digest only")
		cmd = s.c.Fetch(uids, listAttrs)
		got, _, err = s.collectListed(mailbox, uidValidity, cmd, nil)
	}
	if err = s.check(ctx, err, "UID FETCH", mailbox); err != nil {
		return nil, err
	}
	for i := range got {
		got[i].msg.EmailID = ids.of(got[i].seq)
	}
	return got, nil
}

// objectIDs are the EMAILIDs (RFC 8474 §5.1) the server sent with the
// FETCH replies of one listing command, by sequence number.
type objectIDs struct {
	mu   sync.Mutex
	ids  map[uint32]string
	stop func()
}

// of returns the EMAILID of the message of sequence number seq; "" when
// none came, or one that is not an objectid (ignored: a move of that
// message is found by its digest).
func (o *objectIDs) of(seq uint32) string {
	if o == nil {
		return ""
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ids[seq]
}

// emailIDs makes the FETCH commands sent until ids.stop ask for each
// message's EMAILID too, when the server advertises OBJECTID (RFC 8474)
// and has not refused it. go-imap v2.0.0-beta.8 can neither ask for nor
// parse EMAILID, so imapconn.FetchExtra adds it to the command and takes
// it out of the replies (as Gmail's X-GM-MSGID). Not while a Gmail
// listing asks for its own items. asked says whether it was asked for.
func (s *Source) emailIDs() (ids *objectIDs, asked bool) {
	if !s.c.Caps().Has(imap.CapObjectID) || s.opts.Quirks.Refused(imapconn.FeatureObjectID) || s.quirks.Labels {
		return &objectIDs{stop: func() {}}, false
	}
	o := &objectIDs{ids: map[uint32]string{}}
	o.stop = s.conn.FetchExtra([]string{"EMAILID"}, func(seq uint32, _, value string) {
		// emailid-fetch = "EMAILID" SP "(" objectid ")"
		id, ok := strings.CutPrefix(strings.TrimSpace(value), "(")
		id, ok2 := strings.CutSuffix(id, ")")
		if !ok || !ok2 || id == "" || !pipeline.ValidEmailID(id) {
			return
		}
		o.mu.Lock()
		o.ids[seq] = id
		o.mu.Unlock()
	})
	return o, true
}

// listAttrs are what a listing fetches of each message: no body.
var listAttrs = &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true}

// collectListed reads the replies of cmd, a UID FETCH of listAttrs, in
// UID order. keep, when not nil, is asked for each UID: held keeps the
// message, rest its UID alone (and a message it refuses both is dropped),
// so that a reply of unknown size is never held whole. The error is the
// command's, unchecked.
func (s *Source) collectListed(mailbox string, uidValidity uint32, cmd *imapclient.FetchCommand, keep func(uid imap.UID) (held, rest bool)) ([]listed, imap.UIDSet, error) {
	var got []listed
	var rest imap.UIDSet
	var bad error
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		buf, err := msg.Collect() // no literal was asked for: small
		if err != nil {
			bad = first(bad, err)
			continue
		}
		if buf.UID == 0 {
			continue // go-imap dispatches UID FETCH responses by UID: not reached
		}
		if keep != nil {
			held, later := keep(buf.UID)
			if later {
				rest.AddNum(buf.UID)
			}
			if !held {
				continue
			}
		}
		got = append(got, listed{seq: buf.SeqNum, uid: buf.UID, msg: pipeline.SourceMessage{
			Key:          FormatKey(mailbox, uidValidity, uint32(buf.UID)),
			Mailbox:      mailbox,
			Size:         buf.RFC822Size,
			InternalDate: buf.InternalDate,
			Flags:        sourceFlags(buf.Flags),
		}})
	}
	slices.SortFunc(got, func(a, b listed) int { return cmp.Compare(a.uid, b.uid) })
	return got, rest, first(cmd.Close(), bad)
}

// sourceFlags converts flags for the pipeline, dropping \Recent. The
// result is never nil, so that the pipeline knows the source has flags.
func sourceFlags(flags []imap.Flag) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if strings.EqualFold(string(f), `\Recent`) {
			continue
		}
		out = append(out, string(f))
	}
	return out
}
