package imapconn

import (
	"errors"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
)

// Optional features mailferry asks servers for, as Quirks names them.
// Each is something a copy can do without: a server that refuses one is
// asked no more, and the copy goes on without it.
const (
	// FeatureStatusAppendLimit: the APPENDLIMIT item of STATUS (RFC 7889
	// §4). Cyrus 3.6 advertises APPENDLIMIT=… and answers BAD to the item.
	FeatureStatusAppendLimit = "STATUS APPENDLIMIT"
	// FeatureNamespace: NAMESPACE (RFC 2342).
	FeatureNamespace = "NAMESPACE"
	// FeatureListReturn: LIST … RETURN (SUBSCRIBED SPECIAL-USE) (RFC 5258
	// §3, RFC 6154 §5.1).
	FeatureListReturn = "LIST RETURN"
	// FeatureCreateUse: CREATE … (USE (…)) (RFC 6154 §3).
	FeatureCreateUse = "CREATE-SPECIAL-USE"
	// FeatureQuota: GETQUOTAROOT (RFC 9208 §4.3).
	FeatureQuota = "QUOTA"
	// FeatureUnselect: UNSELECT (RFC 3691).
	FeatureUnselect = "UNSELECT"
	// FeatureUIDExpunge: UID EXPUNGE (RFC 4315 §2.1).
	FeatureUIDExpunge = "UID EXPUNGE"
	// FeaturePermanentFlags: SELECT to read PERMANENTFLAGS (RFC 3501 §7.1).
	FeaturePermanentFlags = "PERMANENTFLAGS"
	// FeatureESearch: SEARCH RETURN (…) (RFC 4731).
	FeatureESearch = "ESEARCH"
	// FeatureMultiAppend: APPEND of several messages (RFC 3502).
	FeatureMultiAppend = "MULTIAPPEND"
	// FeatureCondStore: STATUS … (HIGHESTMODSEQ) (RFC 7162 §3.1.2).
	FeatureCondStore = "CONDSTORE"
	// FeatureObjectID: FETCH … EMAILID (RFC 8474 §5.1).
	FeatureObjectID = "OBJECTID"
)

// Quirks remembers which optional features one server refused (a NO or a
// BAD to a command or an item the copy could do without), so that the
// sessions of one account ask for each at most once and go on without it.
// A capability the server advertises and then refuses counts as absent.
// Each refusal is logged once, with what is given up.
//
// The zero value is not usable; a nil *Quirks remembers nothing (every
// session then finds out for itself). It is safe for concurrent use.
type Quirks struct {
	log    *slog.Logger
	notify func(note string)

	mu      sync.Mutex
	refused map[string]string // feature → the server's reply
}

// NewQuirks returns an empty Quirks for one server. log (nil: discard)
// gets one line per refused feature; notify, when set, gets the same as
// a sentence, for a run's summary.
func NewQuirks(log *slog.Logger, notify func(note string)) *Quirks {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Quirks{log: log, notify: notify, refused: map[string]string{}}
}

// Refused reports whether the server refused feature before.
func (q *Quirks) Refused(feature string) bool {
	if q == nil {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	_, ok := q.refused[feature]
	return ok
}

// Refuse records that the server answered reply (its NO or BAD) to
// feature; without is what the copy does instead, for the log. The first
// refusal of each feature is logged; later ones are not.
func (q *Quirks) Refuse(feature string, reply error, without string) {
	if q == nil {
		return
	}
	text := ReplyText(reply)
	q.mu.Lock()
	_, seen := q.refused[feature]
	if !seen {
		q.refused[feature] = text
	}
	q.mu.Unlock()
	if seen {
		return
	}
	q.log.Warn("the server refused an optional feature; going on without it",
		"feature", feature, "reply", text, "instead", without)
	if q.notify != nil {
		q.notify("the server refused " + feature + " (" + text + "): " + without)
	}
}

// Note passes note on to the notify function of NewQuirks, for the run's
// summary: something the sessions did differently on this server, besides
// refused features.
func (q *Quirks) Note(note string) {
	if q != nil && q.notify != nil {
		q.notify(note)
	}
}

// List returns the refused features, sorted, each with the server's reply.
func (q *Quirks) List() []string {
	if q == nil {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]string, 0, len(q.refused))
	for f, r := range q.refused {
		out = append(out, f+": "+r)
	}
	sort.Strings(out)
	return out
}

// ReplyText is the server's reply in err ("BAD Invalid Status attributes
// appendlimit"), or err's text when err holds no reply.
func ReplyText(err error) string {
	if err == nil {
		return ""
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		s := string(ie.Type)
		if ie.Code != "" {
			s += " [" + string(ie.Code) + "]"
		}
		if ie.Text != "" {
			s += " " + ie.Text
		}
		return s
	}
	return err.Error()
}

// IsRefusal reports whether err is the server's NO or BAD to a command
// (go-imap's *imap.Error), which leaves the session usable, as opposed to
// a broken connection or a BYE.
func IsRefusal(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie) && (ie.Type == imap.StatusResponseTypeNo || ie.Type == imap.StatusResponseTypeBad)
}

// CodeInText returns the response code a server put after the command
// name rather than first in the text, where RFC 3501 §7.1 wants it:
// GNU Mailutils 3.15 answers "NO APPEND [TRYCREATE] failed", which
// parsers (go-imap's, ours) leave in the text. It returns "" when text
// holds no "[CODE" in its first two words.
func CodeInText(text string) string {
	fields := strings.Fields(text)
	for i := 0; i < len(fields) && i < 2; i++ {
		f := fields[i]
		if !strings.HasPrefix(f, "[") {
			continue
		}
		code := strings.TrimPrefix(f, "[")
		code, _, _ = strings.Cut(code, "]")
		if code == "" {
			return ""
		}
		return strings.ToUpper(code)
	}
	return ""
}

// AlreadyExists reports whether a refusal of CREATE says the mailbox
// exists: the ALREADYEXISTS code (RFC 5530 §3), or a text that says so
// (GNU Mailutils 3.15: "BAD CREATE Already exist" for a name that differs
// from an existing one only in case, as "Inbox"; servers that compare
// names without case, such as Exchange, say it in words too).
func AlreadyExists(code, text string) bool {
	if strings.EqualFold(code, "ALREADYEXISTS") || strings.EqualFold(CodeInText(text), "ALREADYEXISTS") {
		return true
	}
	t := strings.ToLower(text)
	return strings.Contains(t, "already exist") || strings.Contains(t, "mailbox exists")
}
