package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/pipeline"
)

// statusPipeline bounds the STATUS commands in flight at once.
const statusPipeline = 64

// featureListStatus names LIST-STATUS (RFC 5819) in Options.Quirks when a
// server that advertises it refuses the LIST asking for it.
const featureListStatus = "LIST-STATUS"

// summaryStatus are the items a folder's summary is made of, asked by
// STATUS or in the LIST (LIST-STATUS).
var summaryStatus = &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, HighestModSeq: true}

// summarizable reports whether FolderSummaries summarizes the folders
// (see there).
func (s *Source) summarizable() bool {
	// A server with labels (Gmail) lists one message under one key
	// whatever folders hold it: its folders' marks say nothing of them.
	// An age window (MaxAge, MinAge) lists part of a folder: its marks
	// would say nothing of the messages left out, which a later run
	// without the window must list.
	return s.c.Caps().Has(imap.CapCondStore) && !s.opts.Quirks.Refused(imapconn.FeatureCondStore) && !s.quirks.Labels &&
		s.opts.MaxAge == 0 && s.opts.MinAge == 0
}

// FolderSummaries tells the marks of every folder List would list, where
// the server offers CONDSTORE (RFC 7162): STATUS (MESSAGES UIDNEXT
// UIDVALIDITY HIGHESTMODSEQ) per folder, sent without waiting for the
// replies (a round trip for up to statusPipeline folders). A STATUS asking
// for HIGHESTMODSEQ is itself a CONDSTORE enabling command (RFC 7162
// §3.1), so nothing else is sent to enable it; from then on the server's
// FETCH replies may carry MODSEQ, which go-imap parses. A folder the
// server keeps no mod-sequences for (HIGHESTMODSEQ absent or 0: NOMODSEQ,
// §3.1.2.2), or whose STATUS fails (deleted meanwhile), is left out of the
// summaries: it is listed. false: no CONDSTORE, or the server refused the
// item (remembered in Options.Quirks for the account's other sessions),
// or a server with labels (Gmail), whose keys name no folder, or an age
// window.
func (s *Source) FolderSummaries(ctx context.Context) ([]pipeline.FolderSummary, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaveOut = nil
	q := s.opts.Quirks
	if !s.summarizable() {
		return nil, false, nil
	}
	done, err := s.begin(ctx)
	if err != nil {
		return nil, false, err
	}
	defer done()
	folders, err := s.lastFolders(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("listing the folders of %s at %s: %w", s.user, s.opts.Addr, err)
	}
	var names []string
	var out []pipeline.FolderSummary
	for _, f := range folders {
		if !s.included(f) {
			continue
		}
		// RFC 5819 §1: the LIST returns no STATUS of a folder whose
		// status the server cannot tell; STATUS asks it of those.
		if data, ok := s.listedStatus[f.Name]; ok {
			if sum, ok := summary(f.Name, data); ok {
				out = append(out, sum)
			}
			continue
		}
		names = append(names, f.Name)
	}
	for len(names) > 0 {
		chunk := names[:min(len(names), statusPipeline)]
		names = names[len(chunk):]
		cmds := make([]*imapclient.StatusCommand, len(chunk))
		for i, name := range chunk {
			cmds[i] = s.c.Status(name, summaryStatus)
		}
		refused := 0
		var failed, refusal error
		for i, cmd := range cmds {
			data, err := cmd.Wait()
			var ie *imap.Error
			if errors.As(err, &ie) && ie.Code == imap.ResponseCodeNonExistent {
				continue // deleted since LIST: List skips it too
			}
			if imapconn.IsRefusal(err) {
				refused++
				refusal = first(refusal, err)
				s.log.Debug("STATUS refused: the folder is listed", "mailbox", chunk[i], "error", err)
				continue
			}
			if err = s.check(ctx, err, "STATUS", chunk[i]); err != nil {
				failed = first(failed, err)
				continue
			}
			if sum, ok := summary(chunk[i], data); ok {
				out = append(out, sum)
			}
		}
		if failed != nil {
			return nil, false, failed
		}
		if refused > 0 && refused == len(chunk) && len(out) == 0 {
			// Every STATUS refused: the server does not take the item.
			q.Refuse(imapconn.FeatureCondStore, refusal, "every folder is listed on each run")
			return nil, false, nil
		}
	}
	return out, true, nil
}

// summary makes mailbox's summary of its status; false: the status says
// too little to leave the folder unlisted.
func summary(mailbox string, data *imap.StatusData) (pipeline.FolderSummary, bool) {
	// RFC 7162 §3.1.1: mod-sequences are 63-bit, which the ledger's
	// signed integers hold; one past that is not trusted.
	if data.HighestModSeq == 0 || data.HighestModSeq > math.MaxInt64 || data.UIDValidity == 0 || data.NumMessages == nil || data.UIDNext == 0 {
		return pipeline.FolderSummary{}, false
	}
	return pipeline.FolderSummary{Mailbox: mailbox, Generation: KeyPrefix(mailbox, data.UIDValidity),
		UIDValidity: data.UIDValidity, UIDNext: uint32(data.UIDNext), HighestModSeq: data.HighestModSeq,
		Messages: *data.NumMessages}, true
}

// LeaveOut makes the next List leave out mailboxes (pipeline.FolderSummarizer).
func (s *Source) LeaveOut(mailboxes []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaveOut = make(map[string]bool, len(mailboxes))
	for _, m := range mailboxes {
		s.leaveOut[m] = true
	}
}
