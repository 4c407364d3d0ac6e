package imapsrc

import (
	"context"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/mapping"
)

// Folder is a selectable mailbox on the source.
type Folder struct {
	// Name is the full name as the server has it (with its personal
	// namespace prefix and hierarchy delimiter), modified UTF-7 already
	// decoded by go-imap (RFC 3501 §5.1.3).
	Name      string
	Delimiter rune // hierarchy delimiter; 0 when the server has none (flat)
	// Attrs are the LIST attributes as sent, e.g. \HasChildren, and the
	// special-use ones (RFC 6154 §2): \All, \Archive, \Drafts, \Flagged,
	// \Junk, \Sent, \Trash.
	Attrs []string
	// Subscribed is whether the user subscribes to the folder. It is
	// known only on servers with LIST-EXTENDED (RFC 5258) or IMAP4rev2;
	// elsewhere it is false (go-imap beta.8 cannot send LSUB).
	Subscribed bool
}

// HasAttr reports whether f has attr, compared case-insensitively.
func (f Folder) HasAttr(attr string) bool {
	return slices.ContainsFunc(f.Attrs, func(a string) bool { return strings.EqualFold(a, attr) })
}

// Folders lists every selectable folder (RFC 3501 §6.3.8 LIST "" "*"),
// sorted by name. With LIST-EXTENDED it asks RETURN (SUBSCRIBED) and, where
// SPECIAL-USE is advertised, SPECIAL-USE too (RFC 6154 §5.2); otherwise a
// plain LIST, whose attributes servers such as Dovecot fill in anyway.
// Where FolderSummaries will want the folders' marks and the server
// offers LIST-STATUS (RFC 5819), the LIST asks them too (RETURN (STATUS
// ...)), which spares FolderSummaries its STATUS round trip; a server that
// refuses it is asked again without, and FolderSummaries sends STATUS.
// \Noselect and \NonExistent entries (parents that are only part of the
// hierarchy, subscriptions to deleted folders) are left out.
func (s *Source) Folders(ctx context.Context) ([]Folder, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	done, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	folders, err := s.folders(ctx)
	s.listedFolders = folders
	return folders, err
}

// lastFolders returns the folders the session's last LIST found when
// one was sent since the last List (a run maps the folders, summarizes
// them and lists them in a row: one LIST serves the three, two round
// trips less per run), else lists them; List forgets them.
func (s *Source) lastFolders(ctx context.Context) ([]Folder, error) {
	if s.listedFolders != nil {
		return s.listedFolders, nil
	}
	folders, err := s.folders(ctx)
	s.listedFolders = folders
	return folders, err
}

func (s *Source) folders(ctx context.Context) ([]Folder, error) {
	caps := s.c.Caps()
	q := s.opts.Quirks
	var lopts *imap.ListOptions
	if (caps.Has(imap.CapListExtended) || caps.Has(imap.CapIMAP4rev2)) && !q.Refused(imapconn.FeatureListReturn) {
		lopts = &imap.ListOptions{ReturnSubscribed: true, ReturnSpecialUse: caps.Has(imap.CapSpecialUse)}
	}
	if lopts != nil && caps.Has(imap.CapListStatus) && !q.Refused(featureListStatus) && s.summarizable() {
		lopts.ReturnStatus = summaryStatus
	}
	// The NAMESPACE sent at Open is answered in the same round trip as
	// this LIST; the folders are filtered by its prefix.
	cmd := s.c.List("", "*", lopts)
	if err := s.awaitNamespace(ctx); err != nil {
		_, _ = cmd.Collect()
		return nil, err
	}
	list, err := cmd.Collect()
	if lopts != nil && lopts.ReturnStatus != nil && imapconn.IsRefusal(err) {
		q.Refuse(featureListStatus, err, "the folders' marks asked by STATUS, a round trip more")
		lopts.ReturnStatus = nil
		list, err = s.c.List("", "*", lopts).Collect()
	}
	if lopts != nil && imapconn.IsRefusal(err) {
		q.Refuse(imapconn.FeatureListReturn, err, "a plain LIST: subscriptions unknown, special use only where the server sends it anyway")
		list, err = s.c.List("", "*", nil).Collect()
	}
	if err = s.check(ctx, err, "LIST", "*"); err != nil {
		return nil, err
	}
	var out []Folder
	s.listedStatus = nil
	for _, l := range list {
		f := Folder{Name: l.Mailbox, Delimiter: l.Delim}
		if l.Status != nil {
			if s.listedStatus == nil {
				s.listedStatus = make(map[string]*imap.StatusData)
			}
			s.listedStatus[l.Mailbox] = l.Status
		}
		skip := false
		for _, a := range l.Attrs {
			switch {
			case strings.EqualFold(string(a), string(imap.MailboxAttrNoSelect)),
				strings.EqualFold(string(a), string(imap.MailboxAttrNonExistent)):
				skip = true
			case strings.EqualFold(string(a), string(imap.MailboxAttrSubscribed)):
				f.Subscribed = true
			}
			f.Attrs = append(f.Attrs, string(a))
		}
		if l.ChildInfo != nil && l.ChildInfo.Subscribed {
			f.Subscribed = true
		}
		if !skip && !slices.ContainsFunc(out, func(o Folder) bool { return o.Name == f.Name }) {
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b Folder) int { return strings.Compare(a.Name, b.Name) })
	return s.leaveOutNotMail(out), nil
}

// leaveOutNotMail leaves out the folders of items that are not mail on a
// server that lists them as folders (provider.Quirks.ReservedNames:
// Exchange's Calendar, Contacts, Journal, Notes, Tasks and Sync Issues,
// with their subfolders): they are never copied, by copy, verify, plan
// or mirror alike, and the session says so once.
func (s *Source) leaveOutNotMail(folders []Folder) []Folder {
	if len(s.quirks.ReservedNames) == 0 {
		return folders
	}
	var left []string
	out := slices.DeleteFunc(folders, func(f Folder) bool {
		rel := f.Name
		if s.nsPrefix != "" && len(rel) > len(s.nsPrefix) && strings.EqualFold(rel[:len(s.nsPrefix)], s.nsPrefix) {
			rel = rel[len(s.nsPrefix):]
		}
		if s.quirks.NotMail(rel, f.Delimiter) {
			left = append(left, f.Name)
			return true
		}
		return false
	})
	if len(left) > 0 && !s.notMailLogged {
		s.notMailLogged = true
		name := "the server"
		if s.provider != nil {
			name = s.provider.Name
		}
		s.log.Info("folders of items that are not mail not copied", "provider", name, "folders", left)
	}
	return out
}

// Included reports whether f passes Options.Include and Exclude: only such
// folders are listed and copied, and only they get destination folders.
func (s *Source) Included(f Folder) bool { return s.included(f) }

// included reports whether f passes Options.Include and Exclude, matched
// by mapping.FolderFilter against its name as listed and without the
// personal namespace prefix.
func (s *Source) included(f Folder) bool {
	return s.opts.filter.Select(mapping.Folder{Name: f.Name, Delim: f.Delimiter, Attrs: f.Attrs}, s.nsPrefix) == mapping.NotSkipped
}

// FolderNames returns the name of every selectable folder, copied or not
// (pipeline.FolderNamer): mirror tells a folder deleted or renamed at the
// source from one the copy leaves out.
func (s *Source) FolderNames(ctx context.Context) ([]string, error) {
	folders, err := s.Folders(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(folders))
	for i, f := range folders {
		names[i] = f.Name
	}
	return names, nil
}
