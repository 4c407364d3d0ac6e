package imapsrc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/pipeline"
)

// List returns every message of every included folder (Options.Include,
// Exclude), folder by folder in name order and by UID within a folder. Each
// folder is EXAMINEd; its UIDs come from UID SEARCH ALL (RETURN (ALL) with
// ESEARCH, RFC 4731), and their UID, FLAGS, INTERNALDATE and RFC822.SIZE
// from UID FETCH in batches of Options.FetchBatch UIDs (RFC 3501 §6.4.8),
// so that no single response is unbounded. No body is read.
//
// Flags are the system flags and keywords as the server spells them,
// without \Recent (RFC 3501 §2.3.2: session-only, never to be copied).
// InternalDate keeps the zone the server sent. A folder deleted between
// LIST and EXAMINE is skipped with a warning; a message expunged during
// listing is left out.
func (s *Source) List(ctx context.Context) ([]pipeline.SourceMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	done, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	folders, err := s.folders(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the folders of %s at %s: %w", s.user, s.opts.Addr, err)
	}
	if s.quirks.Labels {
		return s.listLabels(ctx, folders)
	}
	return s.listFolders(ctx, folders)
}

// listFolders lists the messages of folders, those included, in order.
func (s *Source) listFolders(ctx context.Context, folders []Folder) ([]pipeline.SourceMessage, error) {
	var out []pipeline.SourceMessage
	now := time.Now()
	for _, f := range folders {
		if !s.included(f) {
			s.log.Debug("folder excluded", "mailbox", f.Name)
			continue
		}
		msgs, err := s.listFolder(ctx, f.Name)
		if err != nil {
			return nil, fmt.Errorf("listing folder %q of %s at %s: %w", f.Name, s.user, s.opts.Addr, err)
		}
		for _, m := range msgs {
			if s.opts.inAgeWindow(m.InternalDate, now) {
				out = append(out, m)
			}
		}
	}
	return out, nil
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

func (s *Source) listFolder(ctx context.Context, mailbox string) ([]pipeline.SourceMessage, error) {
	sel, err := s.selectMailbox(ctx, mailbox, true)
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Code == imap.ResponseCodeNonExistent {
		s.log.Warn("folder disappeared while listing, skipped", "mailbox", mailbox)
		return nil, nil
	}
	if err != nil || sel.messages == 0 {
		return nil, err
	}
	uids, err := s.searchAll(ctx, mailbox)
	if err != nil {
		return nil, err
	}
	out := make([]pipeline.SourceMessage, 0, len(uids))
	for batch := range slices.Chunk(uids, s.opts.FetchBatch) {
		msgs, err := s.fetchAttrs(ctx, mailbox, sel.uidValidity, batch)
		if err != nil {
			return nil, err
		}
		if missing := len(batch) - len(msgs); missing > 0 {
			s.log.Debug("messages expunged while listing", "mailbox", mailbox, "messages", missing)
		}
		out = append(out, msgs...)
	}
	return out, nil
}

// searchAll returns the UIDs of the selected mailbox, ascending.
func (s *Source) searchAll(ctx context.Context, mailbox string) ([]imap.UID, error) {
	var sopts *imap.SearchOptions
	q := s.opts.Quirks
	if caps := s.c.Caps(); (caps.Has(imap.CapESearch) || caps.Has(imap.CapIMAP4rev2)) && !q.Refused(imapconn.FeatureESearch) {
		sopts = &imap.SearchOptions{ReturnAll: true}
	}
	data, err := s.c.UIDSearch(&imap.SearchCriteria{}, sopts).Wait()
	if sopts != nil && imapconn.IsRefusal(err) {
		q.Refuse(imapconn.FeatureESearch, err, "a plain UID SEARCH")
		data, err = s.c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	}
	if err = s.check(ctx, err, "UID SEARCH", mailbox); err != nil {
		return nil, err
	}
	uids := data.AllUIDs()
	slices.Sort(uids)
	return slices.Compact(uids), nil
}

// fetchAttrs fetches the attributes of uids, in UID order.
func (s *Source) fetchAttrs(ctx context.Context, mailbox string, uidValidity uint32, uids []imap.UID) ([]pipeline.SourceMessage, error) {
	got, err := s.fetchListed(ctx, mailbox, uidValidity, uids)
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

// fetchListed is fetchAttrs with each message's UID and sequence number.
func (s *Source) fetchListed(ctx context.Context, mailbox string, uidValidity uint32, uids []imap.UID) ([]listed, error) {
	cmd := s.c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true})
	var got []listed
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
		got = append(got, listed{seq: buf.SeqNum, uid: buf.UID, msg: pipeline.SourceMessage{
			Key:          FormatKey(mailbox, uidValidity, uint32(buf.UID)),
			Mailbox:      mailbox,
			Size:         buf.RFC822Size,
			InternalDate: buf.InternalDate,
			Flags:        sourceFlags(buf.Flags),
		}})
	}
	if err := s.check(ctx, first(cmd.Close(), bad), "UID FETCH", mailbox); err != nil {
		return nil, err
	}
	slices.SortFunc(got, func(a, b listed) int { return cmp.Compare(a.uid, b.uid) })
	return got, nil
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
