package providerfake

import (
	"bytes"
	"net/mail"
	"slices"
	"sort"
	"strings"
	"time"
)

// Message is a message as a test puts it on the server or reads it back.
type Message struct {
	Body  []byte
	Date  time.Time // internal date; zero: the time of the append
	Flags []string  // system flags and keywords
	// Labels are Gmail's labels (Options.Gmail): "\\Inbox", "\\Sent",
	// "\\Draft", "\\Important", "\\Trash", "\\Spam" or a user label
	// ("Work", "Work/2024"); none: archived (only in All Mail). "\\Starred"
	// is the \Flagged flag. Ignored on other servers.
	Labels []string
	// GmailID and ThreadID are X-GM-MSGID and X-GM-THRID; set by the
	// server.
	GmailID, ThreadID uint64
}

// message is one stored message. On Gmail one message shows in the
// folder of every label it has; elsewhere it is in one folder.
type message struct {
	body   []byte
	date   time.Time
	flags  []string // in the order given, no duplicates
	labels []string
	gmID   uint64
	thrID  uint64
	msgID  string // Message-ID header, "" when none
}

func (m *message) hasFlag(f string) bool {
	return slices.ContainsFunc(m.flags, func(x string) bool { return strings.EqualFold(x, f) })
}

func (m *message) hasLabel(l string) bool {
	return slices.ContainsFunc(m.labels, func(x string) bool { return strings.EqualFold(x, l) })
}

func (m *message) setFlags(op string, flags []string) {
	switch op {
	case "FLAGS":
		m.flags = nil
		fallthrough
	case "+FLAGS":
		for _, f := range flags {
			if !m.hasFlag(f) && !strings.EqualFold(f, `\Recent`) {
				m.flags = append(m.flags, f)
			}
		}
	case "-FLAGS":
		m.flags = slices.DeleteFunc(m.flags, func(x string) bool {
			return slices.ContainsFunc(flags, func(f string) bool { return strings.EqualFold(f, x) })
		})
	}
}

func (m *message) export() Message {
	return Message{Body: slices.Clone(m.body), Date: m.date, Flags: slices.Clone(m.flags), Labels: slices.Clone(m.labels),
		GmailID: m.gmID, ThreadID: m.thrID}
}

// entry is a message in a folder, with its UID there.
type entry struct {
	uid uint32
	msg *message
}

// folder is a mailbox.
type folder struct {
	name        string   // UTF-8
	attrs       []string // special use (\Sent …) and \Noselect
	uidValidity uint32
	uidNext     uint32
	entries     []entry // by UID
	subscribed  bool
	// label is the Gmail label this folder shows: "\\Inbox" for INBOX,
	// "\\Sent" …, the folder's name for user folders; viewAll for All
	// Mail; "" on other servers (each message in one folder).
	label string
	// nonMail folders hold items that are not mail (Exchange's Calendar,
	// Contacts …): no messages, APPEND refused.
	nonMail bool
}

const viewAll = "\x00all"

func (f *folder) noSelect() bool {
	return slices.ContainsFunc(f.attrs, func(a string) bool { return strings.EqualFold(a, `\Noselect`) })
}

func (f *folder) byUID(uid uint32) (int, bool) {
	i := sort.Search(len(f.entries), func(i int) bool { return f.entries[i].uid >= uid })
	return i, i < len(f.entries) && f.entries[i].uid == uid
}

func (f *folder) add(m *message) uint32 {
	uid := f.uidNext
	f.uidNext++
	f.entries = append(f.entries, entry{uid: uid, msg: m})
	return uid
}

func (f *folder) holds(m *message) (uint32, bool) {
	for _, e := range f.entries {
		if e.msg == m {
			return e.uid, true
		}
	}
	return 0, false
}

// account is one user's mailboxes.
type account struct {
	user, password string
	folders        []*folder
	nextGmID       uint64
	uploaded       int64 // bytes appended since the daily limit was last reset
}

// gmailSystem are Gmail's folders: name, special use, the label they show.
var gmailSystem = []struct{ name, use, label string }{
	{"[Gmail]/All Mail", `\All`, viewAll},
	{"[Gmail]/Drafts", `\Drafts`, `\Draft`},
	{"[Gmail]/Important", `\Important`, `\Important`},
	{"[Gmail]/Sent Mail", `\Sent`, `\Sent`},
	{"[Gmail]/Spam", `\Junk`, `\Spam`},
	{"[Gmail]/Starred", `\Flagged`, `\Starred`},
	{"[Gmail]/Trash", `\Trash`, `\Trash`},
}

func (s *Server) newAccount(user, password string) *account {
	a := &account{user: user, password: password, nextGmID: 1700000000000000001}
	inbox := s.newFolder("INBOX", nil)
	a.folders = append(a.folders, inbox)
	if s.opts.Gmail {
		inbox.label = `\Inbox`
		a.folders = append(a.folders, s.newFolder("[Gmail]", []string{`\Noselect`}))
		for _, g := range gmailSystem {
			f := s.newFolder(g.name, []string{g.use})
			f.label = g.label
			a.folders = append(a.folders, f)
		}
	}
	for _, h := range s.opts.NonMailFolders {
		f := s.newFolder(h, nil)
		f.nonMail = true
		a.folders = append(a.folders, f)
	}
	return a
}

func (s *Server) newFolder(name string, attrs []string) *folder {
	s.uidValidity++
	return &folder{name: name, attrs: attrs, uidValidity: s.uidValidity, uidNext: 1}
}

// sameName compares folder names as the server does: INBOX in any case,
// every name in any case with Options.CaseInsensitive.
func (s *Server) sameName(a, b string) bool {
	if strings.EqualFold(a, "INBOX") || s.opts.CaseInsensitive {
		return strings.EqualFold(a, b)
	}
	return a == b
}

func (s *Server) folder(a *account, name string) *folder {
	for _, f := range a.folders {
		if s.sameName(f.name, name) {
			return f
		}
	}
	return nil
}

// shows reports whether Gmail folder f shows m.
func shows(f *folder, m *message) bool {
	switch f.label {
	case "":
		return false
	case viewAll:
		return !m.hasLabel(`\Trash`) && !m.hasLabel(`\Spam`)
	case `\Starred`:
		return m.hasFlag(`\Flagged`) && !m.hasLabel(`\Trash`) && !m.hasLabel(`\Spam`)
	}
	return m.hasLabel(f.label)
}

// place puts a Gmail message into every folder that shows it, and out of
// those that no longer do (a label or \Flagged changed).
func (s *Server) place(a *account, m *message) {
	for _, f := range a.folders {
		_, in := f.holds(m)
		switch want := shows(f, m); {
		case want && !in:
			f.add(m)
		case !want && in:
			f.entries = slices.DeleteFunc(f.entries, func(e entry) bool { return e.msg == m })
		}
	}
}

// store adds a message to folder f of a (Gmail: with f's label, or as
// given). It returns the new message.
func (s *Server) store(a *account, f *folder, m Message) *message {
	msg := &message{body: slices.Clone(m.Body), date: m.Date, msgID: headerMessageID(m.Body)}
	if msg.date.IsZero() {
		msg.date = time.Now()
	}
	msg.setFlags("+FLAGS", m.Flags)
	if !s.opts.Gmail {
		f.add(msg)
		return msg
	}
	msg.gmID = a.nextGmID
	msg.thrID = a.nextGmID
	a.nextGmID += 3
	msg.labels = slices.Clone(m.Labels)
	if m.Labels == nil {
		switch f.label {
		case "", viewAll, `\Starred`:
		default:
			msg.labels = []string{f.label}
		}
	}
	for _, l := range msg.labels {
		if !strings.HasPrefix(l, `\`) && s.folder(a, l) == nil {
			nf := s.newFolder(l, nil)
			nf.label = l
			a.folders = append(a.folders, nf)
		}
	}
	s.place(a, msg)
	return msg
}

// findByMessageID returns a message of a with this Message-ID.
func findByMessageID(a *account, id string) *message {
	if id == "" {
		return nil
	}
	for _, f := range a.folders {
		for _, e := range f.entries {
			if e.msg.msgID == id {
				return e.msg
			}
		}
	}
	return nil
}

// headerMessageID returns the Message-ID of a message, "" when none.
func headerMessageID(body []byte) string {
	end := bytes.Index(body, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(body)
	}
	m, err := mail.ReadMessage(bytes.NewReader(append(slices.Clone(body[:end]), "\r\n\r\n"...)))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(m.Header.Get("Message-Id"))
}
