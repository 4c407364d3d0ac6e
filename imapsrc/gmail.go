package imapsrc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/mutf7"
	"github.com/mailferry/mailferry/pipeline"
)

// A server with labels (provider.Quirks.Labels: Gmail's X-GM-EXT-1,
// https://developers.google.com/gmail/imap/imap-extensions) shows one
// message in the folder of each of its labels and in [Gmail]/All Mail
// (\All, RFC 6154), and [Gmail]/Important and [Gmail]/Starred are views
// of the same messages: a folder-by-folder copy would copy most mail two
// or three times. Such a source is listed per LabelMode.

// LabelMode says how a source whose server keeps labels (Gmail) is copied.
type LabelMode int

const (
	// LabelsOneCopy lists each message once, keyed "gm:<X-GM-MSGID>"
	// (GmailKey), in the folder of one of its labels: INBOX, else a user
	// label (the first by name), else Sent, else Drafts; a message with
	// none (archived) in All Mail, whose destination is the Archive. Its
	// other labels become keywords (LabelKeyword). Trash and Spam, which
	// All Mail does not show, are listed as folders of their own. The
	// default, DECISIONS.md #11.
	LabelsOneCopy LabelMode = iota
	// LabelsPerLabel lists every label folder as a folder, so a message
	// with two labels is copied twice (imapsync's way), and from All Mail
	// only the archived messages, which no label folder shows; Important
	// and Starred are not copied.
	LabelsPerLabel
)

// Label modes as the config and the command line spell them.
const (
	LabelsOneCopyName  = "one-copy"
	LabelsPerLabelName = "per-label"
)

func (m LabelMode) String() string {
	if m == LabelsPerLabel {
		return LabelsPerLabelName
	}
	return LabelsOneCopyName
}

// ParseLabelMode parses "one-copy" or "per-label"; "" is one-copy.
func ParseLabelMode(s string) (LabelMode, error) {
	switch s {
	case "", LabelsOneCopyName:
		return LabelsOneCopy, nil
	case LabelsPerLabelName:
		return LabelsPerLabel, nil
	}
	return 0, fmt.Errorf("want %q or %q, got %q", LabelsOneCopyName, LabelsPerLabelName, s)
}

// gmailKeyPrefix starts the keys of LabelsOneCopy.
const gmailKeyPrefix = "gm:"

// GmailKey is the key of the Gmail message with X-GM-MSGID id:
// "gm:<id>", the same in every folder and every session, and after the
// message moved (labels changed).
func GmailKey(id uint64) string { return gmailKeyPrefix + strconv.FormatUint(id, 10) }

// ParseGmailKey returns the X-GM-MSGID of a key GmailKey made; ok is
// false for any other key.
func ParseGmailKey(key string) (id uint64, ok bool) {
	rest, found := strings.CutPrefix(key, gmailKeyPrefix)
	if !found {
		return 0, false
	}
	id, err := strconv.ParseUint(rest, 10, 64)
	return id, err == nil && id != 0
}

// systemKeywords are the keywords of Gmail's system labels when another
// label decides the message's folder: RFC 8457's $Important, and the
// others by their name; \Starred is the \Flagged flag the message has.
var systemKeywords = map[string]string{
	`\important`: "$Important",
	`\inbox`:     "$Inbox",
	`\sent`:      "$Sent",
	`\draft`:     "$Draft",
	`\starred`:   "",
	`\trash`:     "",
	`\spam`:      "",
}

// LabelKeyword is the keyword a label becomes: a system label as in
// systemKeywords, a user label as its name in modified UTF-7 (RFC 3501
// §5.1.3, so that non-ASCII labels stay ASCII) with every character an
// IMAP atom cannot hold (RFC 3501 §9: space, ( ) { % * " \ ] and
// controls) replaced by "_". "" for labels that become none.
func LabelKeyword(label string) string {
	if kw, ok := systemKeywords[strings.ToLower(label)]; ok {
		return kw
	}
	enc := mutf7.Encode(label)
	b := []byte(enc)
	for i, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			b[i] = '_'
		}
	}
	if len(b) > 0 && b[0] == '\\' {
		b[0] = '_'
	}
	return string(b)
}

// gmailState is what List learnt of a Gmail source's folders, for Fetch
// and Delete of the messages it listed.
type gmailState struct {
	mu          sync.Mutex
	all         string            // All Mail's name
	own         map[string]bool   // the folders listed with their own messages (Trash, Spam)
	uidValidity map[string]uint32 // UIDVALIDITY of the folders read
}

// gmListed is a message of a folder read with its labels.
type gmListed struct {
	msg    pipeline.SourceMessage
	uid    uint32
	id     uint64
	labels []string
}

// listLabels lists a source with labels (see LabelMode) into hand, a page
// at a time. folders are its folders as s.folders gives them. The lock is
// held, except in hand.
func (s *Source) listLabels(ctx context.Context, folders []Folder, hand func([]pipeline.SourceMessage) error) error {
	special := func(attr string) *Folder {
		for i := range folders {
			if folders[i].HasAttr(attr) {
				return &folders[i]
			}
		}
		return nil
	}
	all := special(`\All`)
	if all == nil {
		s.log.Warn("the server has labels but no All Mail folder (\\All); copying it folder by folder")
		return s.listFolders(ctx, folders, nil, nil, hand)
	}
	gm := &gmailState{all: all.Name, own: map[string]bool{}, uidValidity: map[string]uint32{}}
	s.gm = gm
	// The folder that shows each label, for choosing and the filter.
	byLabel := map[string]*Folder{}
	for i := range folders {
		f := &folders[i]
		switch {
		case strings.EqualFold(f.Name, "INBOX"):
			byLabel[`\inbox`] = f
		case f.HasAttr(`\Sent`):
			byLabel[`\sent`] = f
		case f.HasAttr(`\Drafts`):
			byLabel[`\draft`] = f
		}
		if !isSpecial(*f) {
			byLabel[strings.ToLower(f.Name)] = f
		}
	}
	now := time.Now()
	if s.opts.Labels == LabelsPerLabel {
		var plain []Folder
		for _, f := range folders {
			if f.Name != all.Name && !f.HasAttr(`\Flagged`) && !f.HasAttr(`\Important`) {
				plain = append(plain, f)
			}
		}
		if err := s.listFolders(ctx, plain, nil, nil, hand); err != nil {
			return err
		}
		if !s.included(*all) {
			return nil
		}
		return s.listWithLabels(ctx, all.Name, func(listed []gmListed) error {
			var out []pipeline.SourceMessage
			for _, l := range listed {
				if !slices.ContainsFunc(l.labels, func(lb string) bool { return byLabel[strings.ToLower(lb)] != nil }) && s.opts.inAgeWindow(l.msg.InternalDate, now) {
					out = append(out, l.msg)
				}
			}
			if len(out) == 0 {
				return nil
			}
			return hand(out)
		})
	}
	// One copy per message. All Mail shows neither Trash nor Spam, which
	// are listed as folders of their own, after it; should a message show
	// in both, All Mail's listing wins, as each key must be listed once.
	// Trash and Spam are read first, into memory (Gmail empties them
	// after 30 days: few), so that All Mail is handed over page by page
	// without a record of its messages.
	var own []gmListed
	ownAt := map[uint64]int{} // index in own
	for _, attr := range []string{`\Trash`, `\Junk`} {
		f := special(attr)
		if f == nil || !s.included(*f) {
			continue
		}
		gm.own[f.Name] = true
		err := s.listWithLabels(ctx, f.Name, func(listed []gmListed) error {
			for _, l := range listed {
				if _, dup := ownAt[l.id]; dup || !s.opts.inAgeWindow(l.msg.InternalDate, now) {
					continue
				}
				l.msg = oneCopy(l, f, byLabel)
				ownAt[l.id] = len(own)
				own = append(own, l)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	// Archived mail shows in All Mail alone: a folder filter that leaves
	// All Mail out (an explicit exclude, or an include list without it)
	// leaves archived mail out, as it does in per-label mode. It is the
	// user's choice, but not a silent one: the run says how many archived
	// messages the filter kept back (docs/google-workspace.md).
	allIncluded := s.included(*all)
	archivedOut := 0
	err := s.listWithLabels(ctx, all.Name, func(listed []gmListed) error {
		var out []pipeline.SourceMessage
		for _, l := range listed {
			if i, ok := ownAt[l.id]; ok {
				own[i].id = 0 // listed here
			}
			if !s.opts.inAgeWindow(l.msg.InternalDate, now) {
				continue
			}
			home := s.chooseFolder(l.labels, byLabel)
			if home == nil {
				continue // its label folders are excluded
			}
			// chooseFolder makes a new Folder for All Mail: compare by
			// name (a pointer comparison never matched, and the filter
			// was ignored).
			if home.Name == all.Name && !allIncluded {
				archivedOut++
				continue
			}
			out = append(out, oneCopy(l, home, byLabel))
		}
		if len(out) == 0 {
			return nil
		}
		// One batch takes one destination folder: keep each folder's
		// messages of the page together.
		slices.SortStableFunc(out, func(a, b pipeline.SourceMessage) int { return cmp.Compare(a.Mailbox, b.Mailbox) })
		return hand(out)
	})
	if err != nil {
		return err
	}
	if archivedOut > 0 {
		note := fmt.Sprintf("%d archived messages (no label, shown in %q only) not copied: the folder filter excludes %q", archivedOut, all.Name, all.Name)
		s.log.Warn(note)
		s.opts.Quirks.Note(note)
	}
	var out []pipeline.SourceMessage
	for _, l := range own {
		if l.id != 0 {
			out = append(out, l.msg)
		}
	}
	for page := range slices.Chunk(out, pipeline.ListPage) {
		if err := hand(page); err != nil {
			return err
		}
	}
	return nil
}

// oneCopy is l as LabelsOneCopy lists it: keyed by its X-GM-MSGID, in
// home (whose UID in the folder read is Seq), its other labels as
// keywords.
func oneCopy(l gmListed, home *Folder, byLabel map[string]*Folder) pipeline.SourceMessage {
	m := l.msg
	m.Key, m.Mailbox, m.Seq = GmailKey(l.id), home.Name, l.uid
	for _, lb := range l.labels {
		if byLabel[strings.ToLower(lb)] == home {
			continue
		}
		if kw := LabelKeyword(lb); kw != "" && !slices.Contains(m.Flags, kw) {
			m.Flags = append(m.Flags, kw)
		}
	}
	return m
}

// isSpecial reports whether f has a special use (RFC 6154) or is INBOX:
// not a user label's folder.
func isSpecial(f Folder) bool {
	if strings.EqualFold(f.Name, "INBOX") {
		return true
	}
	for _, a := range []string{`\All`, `\Archive`, `\Drafts`, `\Flagged`, `\Important`, `\Junk`, `\Sent`, `\Trash`} {
		if f.HasAttr(a) {
			return true
		}
	}
	return false
}

// chooseFolder returns the folder a message with labels is copied to:
// INBOX, else its first user label's folder by name, else Sent, else
// Drafts, among those the folder filter includes; All Mail's (the
// archive) when it has no label with a folder; nil when it has some but
// the filter excludes them all.
func (s *Source) chooseFolder(labels []string, byLabel map[string]*Folder) *Folder {
	var user []*Folder
	var inbox, sent, drafts *Folder
	has := false
	for _, lb := range labels {
		f := byLabel[strings.ToLower(lb)]
		if f == nil {
			continue
		}
		has = true
		if !s.included(*f) {
			continue
		}
		switch strings.ToLower(lb) {
		case `\inbox`:
			inbox = f
		case `\sent`:
			sent = f
		case `\draft`:
			drafts = f
		default:
			user = append(user, f)
		}
	}
	slices.SortFunc(user, func(a, b *Folder) int { return strings.Compare(a.Name, b.Name) })
	switch {
	case inbox != nil:
		return inbox
	case len(user) > 0:
		return user[0]
	case sent != nil:
		return sent
	case drafts != nil:
		return drafts
	case has:
		return nil
	}
	return s.allFolder()
}

// allFolder is All Mail as List found it.
func (s *Source) allFolder() *Folder { return &Folder{Name: s.gm.all, Attrs: []string{`\All`}} }

// listWithLabels lists mailbox with each message's X-GM-MSGID and
// X-GM-LABELS, asked for besides the usual attributes through
// imapconn.FetchExtra (go-imap cannot), into each, a batch at a time. The
// lock is held, except in each, which is called with the session idle
// (it may fetch through s): every batch selects mailbox again and checks
// its UIDVALIDITY.
func (s *Source) listWithLabels(ctx context.Context, mailbox string, each func([]gmListed) error) error {
	where := func(err error) error {
		return fmt.Errorf("listing folder %q of %s at %s: %w", mailbox, s.user, s.opts.Addr, err)
	}
	done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	sel, err := s.selectMailbox(ctx, mailbox, true)
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Code == imap.ResponseCodeNonExistent {
		done()
		s.log.Warn("folder disappeared while listing, skipped", "mailbox", mailbox)
		return nil
	}
	if err != nil {
		done()
		return where(err)
	}
	s.gm.mu.Lock()
	s.gm.uidValidity[mailbox] = sel.uidValidity
	s.gm.mu.Unlock()
	if sel.messages == 0 {
		done()
		return nil
	}
	uids, err := s.searchAll(ctx, mailbox)
	done()
	if err != nil {
		return where(err)
	}
	for chunk := range uidChunks(uids, min(s.opts.FetchBatch, pipeline.ListPage)) {
		listed, err := s.listLabelsChunk(ctx, mailbox, sel.uidValidity, chunk)
		if err != nil {
			return where(err)
		}
		if err := each(listed); err != nil {
			return err
		}
	}
	return nil
}

// listLabelsChunk lists the messages of chunk in mailbox, whose
// UIDVALIDITY was uidValidity, with their labels.
func (s *Source) listLabelsChunk(ctx context.Context, mailbox string, uidValidity uint32, chunk uidChunk) ([]gmListed, error) {
	done, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	now, err := s.selectMailbox(ctx, mailbox, true)
	if err != nil {
		return nil, err
	}
	if now.uidValidity != uidValidity {
		return nil, transient(fmt.Errorf("UIDVALIDITY of %q changed from %d to %d while listing it: %w",
			mailbox, uidValidity, now.uidValidity, ErrUIDValidityChanged))
	}
	type extra struct {
		id     uint64
		labels []string
		err    error
	}
	var mu sync.Mutex
	bySeq := map[uint32]*extra{}
	stop := s.conn.FetchExtra([]string{"X-GM-MSGID", "X-GM-LABELS"}, func(seq uint32, item, value string) {
		mu.Lock()
		defer mu.Unlock()
		e := bySeq[seq]
		if e == nil {
			e = &extra{}
			bySeq[seq] = e
		}
		switch item {
		case "X-GM-MSGID":
			e.id, e.err = strconv.ParseUint(value, 10, 64)
		case "X-GM-LABELS":
			e.labels, e.err = parseLabels(value)
		}
	})
	listed, err := s.fetchListed(ctx, mailbox, uidValidity, imap.UIDSet(chunk))
	stop()
	if err != nil {
		return nil, err
	}
	out := make([]gmListed, 0, len(listed))
	for _, l := range listed {
		e := bySeq[l.seq]
		if e == nil || e.err != nil || e.id == 0 {
			return nil, s.broken(ctx, fmt.Errorf("imapsrc: listing %q on %s: the server sent no valid X-GM-MSGID or X-GM-LABELS for UID %d", mailbox, s.opts.Addr, l.uid))
		}
		out = append(out, gmListed{msg: l.msg, uid: uint32(l.uid), id: e.id, labels: e.labels})
	}
	return out, nil
}

// parseLabels parses X-GM-LABELS' value: a parenthesised list of astrings
// (atoms, quoted strings with \ escapes, literals), label names in
// modified UTF-7.
func parseLabels(v string) ([]string, error) {
	v = strings.TrimSpace(v)
	if len(v) < 2 || v[0] != '(' || v[len(v)-1] != ')' {
		return nil, fmt.Errorf("X-GM-LABELS %q is not a list", v)
	}
	v = v[1 : len(v)-1]
	var out []string
	for i := 0; i < len(v); {
		switch c := v[i]; {
		case c == ' ':
			i++
		case c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(v) && v[j] != '"'; j++ {
				if v[j] == '\\' && j+1 < len(v) {
					j++
				}
				b.WriteByte(v[j])
			}
			if j >= len(v) {
				return nil, fmt.Errorf("X-GM-LABELS %q: unterminated string", v)
			}
			out = append(out, decodeLabel(b.String()))
			i = j + 1
		case c == '{':
			end := strings.IndexByte(v[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("X-GM-LABELS %q: bad literal", v)
			}
			n, err := strconv.Atoi(strings.TrimSuffix(v[i+1:i+end], "+"))
			start := i + end + 1
			if start < len(v) && v[start] == '\r' {
				start++
			}
			if start < len(v) && v[start] == '\n' {
				start++
			}
			if err != nil || n < 0 || start+n > len(v) {
				return nil, fmt.Errorf("X-GM-LABELS %q: bad literal", v)
			}
			out = append(out, decodeLabel(v[start:start+n]))
			i = start + n
		default:
			j := i
			for j < len(v) && v[j] != ' ' {
				j++
			}
			if a := v[i:j]; !strings.EqualFold(a, "NIL") {
				out = append(out, decodeLabel(a))
			}
			i = j
		}
	}
	return out, nil
}

// decodeLabel decodes a label's modified UTF-7; one that is not valid
// stays as sent.
func decodeLabel(s string) string {
	if d, err := mutf7.Decode(s); err == nil {
		return d
	}
	return s
}

// locate returns where the message m names is: the folder, its UIDVALIDITY
// and the UID. An IMAP key says it all (ParseKey); a Gmail key needs the
// listing of this session: m.Seq is the UID in All Mail, or in the folder
// of its own (Trash, Spam) that m.Mailbox names.
func (s *Source) locate(m pipeline.SourceMessage) (mailbox string, uidValidity, uid uint32, err error) {
	if _, ok := ParseGmailKey(m.Key); !ok {
		return ParseKey(m.Key)
	}
	if s.gm == nil || m.Seq == 0 {
		return "", 0, 0, badKey(m.Key, "a Gmail key is fetched in the session that listed it")
	}
	s.gm.mu.Lock()
	defer s.gm.mu.Unlock()
	mailbox = s.gm.all
	if s.gm.own[m.Mailbox] {
		mailbox = m.Mailbox
	}
	return mailbox, s.gm.uidValidity[mailbox], m.Seq, nil
}
