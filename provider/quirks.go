package provider

import (
	"slices"
	"strings"
)

// Quirks is a server family's quirk profile: how its IMAP servers differ
// from what RFC 3501 leads a client to expect, as the provider documents
// it or its users report it, and so what mailferry does differently with
// them. The adapters and the engine read it from their options (imapsrc,
// imapdst, pipeline); it holds data only. The zero value is a server with
// no known quirk.
type Quirks struct {
	// Labels: the server keeps labels, not folders (Gmail's X-GM-EXT-1,
	// https://developers.google.com/gmail/imap/imap-extensions): a message
	// shows in the folder of each of its labels and in [Gmail]/All Mail,
	// and Important and Starred are views of the same messages. An IMAP
	// source lists each message once, keyed by its X-GM-MSGID, in the
	// folder of one of its labels (or once per label folder, as imapsync
	// does: gmail_labels = "per-label"), and mail with no label but All
	// Mail (archived) goes to the destination's Archive.
	Labels bool
	// DropsDuplicates: an APPEND of a message the account already holds
	// (the same Message-ID) is answered OK and not stored; its APPENDUID
	// names the message already there, or is absent (Gmail). The engine
	// confirms such a copy by its bytes before it records it.
	DropsDuplicates bool
	// DailyLimit are words of the refusal (a NO, or a BYE) the server gives
	// once an account has moved its day's allowance ("bandwidth limits":
	// Gmail's "[OVERQUOTA] Account exceeded command or bandwidth limits");
	// the account then pauses until the next quota day instead of failing.
	DailyLimit []string
	// CrawlsAtLimit: once the day's allowance is spent the server may
	// not refuse an APPEND but take it ever more slowly (Gmail's users
	// report uploads that crawl after the limit): a sustained crawl
	// pauses the account as DailyLimit does (pipeline.CrawlRule).
	CrawlsAtLimit bool
	// FlagsLostAtAppend are flags the server does not keep when they come
	// with APPEND (Exchange Online: \Flagged): the destination sets them
	// with STORE after the APPEND.
	FlagsLostAtAppend []string
	// CaseInsensitiveNames: folder names that differ only in case name one
	// folder (Exchange).
	CaseInsensitiveNames bool
	// ReservedNames are top-level folders the server keeps for items that
	// are not mail, with their subfolders (Exchange's Calendar, Contacts,
	// Journal, Notes, Tasks and Sync Issues, which its IMAP server lists
	// as folders): from such a source they are not copied (one log line),
	// and on such a destination a source folder of such a name goes to
	// ReservedTarget's name instead of a folder that cannot take mail.
	// Compared without case.
	ReservedNames []string
	// MaxErrors is how many NO and BAD replies the server takes on one
	// connection before it ends it (Exchange Online: about 10): the
	// appender starts a new connection before it gets there.
	MaxErrors int
}

// Reserved reports whether the server keeps name (a top-level folder) for
// itself: ReservedNames, compared without case.
func (q Quirks) Reserved(name string) bool {
	return slices.ContainsFunc(q.ReservedNames, func(r string) bool { return strings.EqualFold(r, name) })
}

// NotMail reports whether folder name (relative to the personal
// namespace, levels separated by delim, 0 for none) is a reserved folder
// or under one: a folder of items that are not mail.
func (q Quirks) NotMail(name string, delim rune) bool {
	top := name
	if delim != 0 {
		top, _, _ = strings.Cut(name, string(delim))
	}
	return q.Reserved(top)
}

// ReservedTarget returns the name a folder name (relative to the personal
// namespace, levels separated by delim) goes to on a server that keeps
// its top level for items that are not mail: that level with " (mail)"
// added ("Tasks/Open" → "Tasks (mail)/Open"); name itself elsewhere.
func (q Quirks) ReservedTarget(name string, delim rune) string {
	if !q.NotMail(name, delim) {
		return name
	}
	if delim == 0 {
		return name + " (mail)"
	}
	top, rest, found := strings.Cut(name, string(delim))
	if !found {
		return top + " (mail)"
	}
	return top + " (mail)" + string(delim) + rest
}

// DailyLimitReached reports whether a server's reply text says the
// account's daily allowance is spent (DailyLimit).
func (q Quirks) DailyLimitReached(text string) bool {
	t := strings.ToLower(text)
	return slices.ContainsFunc(q.DailyLimit, func(w string) bool { return strings.Contains(t, strings.ToLower(w)) })
}

// Server is what a server says about itself when a client connects, the
// evidence Identify reads.
type Server struct {
	// Host is the host name the client connected to.
	Host string
	// Capabilities are the server's, in any case.
	Capabilities []string
	// Greeting is the text of its greeting after "* OK " ("Gimap ready for
	// requests from …", "The Microsoft Exchange IMAP4 service is ready.").
	Greeting string
	// ID are the fields of its ID response (RFC 2971), when the client
	// asked; nil otherwise.
	ID map[string]string
}

// Identify returns the provider whose server s is, nil when nothing tells:
// Gmail by its X-GM-EXT-1 capability (Google's documentation says a client
// must check it), its "Gimap" greeting or its ID name "GImap"; Microsoft
// 365 by the greeting of Exchange ("The Microsoft Exchange IMAP4 service is
// ready") or an ID that names Exchange; then by the host name (Detect).
// The server's own words win over the host: a host name may be an alias of
// anything.
func Identify(s Server) *Provider {
	for _, c := range s.Capabilities {
		if strings.EqualFold(c, "X-GM-EXT-1") {
			return Gmail
		}
	}
	g := strings.ToLower(s.Greeting)
	switch {
	case strings.HasPrefix(g, "gimap ready"):
		return Gmail
	case strings.Contains(g, "microsoft exchange"):
		return Microsoft365
	}
	name := strings.ToLower(s.ID["name"])
	switch {
	case name == "gimap":
		return Gmail
	case strings.Contains(name, "exchange"):
		return Microsoft365
	}
	return Detect(s.Host)
}

// QuirksOf returns p's quirk profile; the zero Quirks for nil (a server
// with no known quirk).
func QuirksOf(p *Provider) Quirks {
	if p == nil {
		return Quirks{}
	}
	return p.Quirks
}
