package providerfake

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/mutf7"
)

// list answers LIST and LSUB (RFC 3501 §6.3.8; RFC 5258 RETURN with
// SUBSCRIBED and SPECIAL-USE). Special-use attributes are always given,
// as Gmail does.
func (ss *session) list(cmd command) error {
	args := cmd.args
	if len(args) > 0 && args[0].kind == tokList { // selection options
		args = args[1:]
	}
	if len(args) < 2 {
		return ss.bad(cmd.tag, "LIST needs a reference and a pattern.")
	}
	pattern, _ := args[1].astring()
	if p, err := decodeMailbox(pattern); err == nil {
		pattern = p
	}
	subscribed := cmd.name == "LSUB"
	if len(args) > 3 && strings.EqualFold(args[2].s, "RETURN") {
		for _, o := range args[3].list {
			if strings.EqualFold(o.s, "SUBSCRIBED") {
				subscribed = true
			}
		}
	}
	if pattern == "" {
		ss.printf("* %s (\\Noselect) \"/\" \"\"\r\n", cmd.name)
		return ss.ok(cmd.tag, cmd.name+" completed.")
	}
	for _, f := range ss.acct.folders {
		if !match(pattern, f.name, ss.s.opts.CaseInsensitive) {
			continue
		}
		if cmd.name == "LSUB" && !f.subscribed {
			continue
		}
		attrs := slices.Clone(f.attrs)
		children := slices.ContainsFunc(ss.acct.folders, func(g *folder) bool {
			return strings.HasPrefix(g.name, f.name+"/")
		})
		if children {
			attrs = append(attrs, `\HasChildren`)
		} else {
			attrs = append(attrs, `\HasNoChildren`)
		}
		if subscribed && f.subscribed && cmd.name == "LIST" {
			attrs = append(attrs, `\Subscribed`)
		}
		ss.printf("* %s (%s) \"/\" %s\r\n", cmd.name, strings.Join(attrs, " "), quote(encodeMailbox(f.name)))
	}
	return ss.ok(cmd.tag, cmd.name+" completed.")
}

// match matches name against a LIST pattern: * anything, % anything but
// the separator.
func match(pattern, name string, fold bool) bool {
	if fold || strings.EqualFold(name, "INBOX") {
		pattern, name = strings.ToLower(pattern), strings.ToLower(name)
	}
	if pattern == "" {
		return name == ""
	}
	switch pattern[0] {
	case '*':
		for i := 0; i <= len(name); i++ {
			if match(pattern[1:], name[i:], false) {
				return true
			}
		}
		return false
	case '%':
		for i := 0; i <= len(name); i++ {
			if match(pattern[1:], name[i:], false) {
				return true
			}
			if i < len(name) && name[i] == '/' {
				return false
			}
		}
		return false
	}
	return name != "" && name[0] == pattern[0] && match(pattern[1:], name[1:], false)
}

// selectable returns the folder a command names, or nil after answering
// the refusal.
func (ss *session) selectable(tag, name string) (*folder, error) {
	f := ss.s.folder(ss.acct, name)
	if f == nil {
		return nil, ss.no(tag, "[NONEXISTENT] Mailbox doesn't exist: "+name)
	}
	if f.noSelect() {
		return nil, ss.no(tag, "[NONEXISTENT] Mailbox is not selectable: "+name)
	}
	return f, nil
}

func (ss *session) status(cmd command) error {
	if len(cmd.args) != 2 || cmd.args[1].kind != tokList {
		return ss.bad(cmd.tag, "STATUS needs a mailbox and items.")
	}
	f, err := ss.selectable(cmd.tag, mailboxArg(cmd))
	if f == nil {
		return err
	}
	var items []string
	for _, it := range cmd.args[1].list {
		switch strings.ToUpper(it.s) {
		case "MESSAGES":
			items = append(items, "MESSAGES "+strconv.Itoa(len(f.entries)))
		case "UIDNEXT":
			items = append(items, "UIDNEXT "+strconv.FormatUint(uint64(f.uidNext), 10))
		case "UIDVALIDITY":
			items = append(items, "UIDVALIDITY "+strconv.FormatUint(uint64(f.uidValidity), 10))
		case "UNSEEN":
			n := 0
			for _, e := range f.entries {
				if !e.msg.hasFlag(`\Seen`) {
					n++
				}
			}
			items = append(items, "UNSEEN "+strconv.Itoa(n))
		case "RECENT":
			items = append(items, "RECENT 0")
		case "SIZE":
			var n int
			for _, e := range f.entries {
				n += len(e.msg.body)
			}
			items = append(items, "SIZE "+strconv.Itoa(n))
		case "APPENDLIMIT":
			if lim := ss.s.opts.AppendLimit; lim > 0 {
				items = append(items, "APPENDLIMIT "+strconv.FormatInt(lim, 10))
			} else {
				items = append(items, "APPENDLIMIT NIL")
			}
		default:
			return ss.bad(cmd.tag, "Unknown STATUS item "+it.s)
		}
	}
	ss.printf("* STATUS %s (%s)\r\n", quote(encodeMailbox(f.name)), strings.Join(items, " "))
	return ss.ok(cmd.tag, "STATUS completed.")
}

func (ss *session) selectCmd(cmd command) error {
	ss.sel = nil
	f, err := ss.selectable(cmd.tag, mailboxArg(cmd))
	if f == nil {
		return err
	}
	ss.sel, ss.readOnly = f, cmd.name == "EXAMINE"
	ss.printf("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n")
	if ss.readOnly {
		ss.printf("* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n")
	} else {
		ss.printf("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.\r\n")
	}
	ss.printf("* %d EXISTS\r\n* 0 RECENT\r\n", len(f.entries))
	ss.printf("* OK [UIDVALIDITY %d] UIDs valid.\r\n* OK [UIDNEXT %d] Predicted next UID.\r\n", f.uidValidity, f.uidNext)
	mode := "READ-WRITE"
	if ss.readOnly {
		mode = "READ-ONLY"
	}
	return ss.ok(cmd.tag, "["+mode+"] "+cmd.name+" completed.")
}

// create answers CREATE (RFC 3501 §6.3.3, RFC 6154 §3 USE), creating
// parents as needed.
func (ss *session) create(cmd command) error {
	s := ss.s
	name := strings.TrimSuffix(mailboxArg(cmd), "/")
	if name == "" {
		return ss.bad(cmd.tag, "CREATE needs a mailbox.")
	}
	if f := s.folder(ss.acct, name); f != nil {
		return ss.no(cmd.tag, "[ALREADYEXISTS] Mailbox already exists.")
	}
	var use []string
	if len(cmd.args) > 1 && cmd.args[1].kind == tokList && len(cmd.args[1].list) == 2 {
		for _, u := range cmd.args[1].list[1].list {
			use = append(use, u.s)
		}
	}
	levels := strings.Split(name, "/")
	nonMail := false // under a folder of items that are not mail: one too
	for i := range levels {
		p := strings.Join(levels[:i+1], "/")
		if g := s.folder(ss.acct, p); g != nil {
			nonMail = nonMail || g.nonMail
			continue
		}
		var attrs []string
		if i == len(levels)-1 {
			attrs = use
		}
		f := s.newFolder(p, attrs)
		f.nonMail = nonMail
		if s.opts.Gmail {
			f.label = p
		}
		ss.acct.folders = append(ss.acct.folders, f)
	}
	return ss.ok(cmd.tag, "CREATE completed.")
}

// appendCmd answers APPEND (RFC 3501 §6.3.11) and MULTIAPPEND (RFC 3502),
// with APPENDUID (RFC 4315) and the quirks of Options.
func (ss *session) appendCmd(cmd command) error {
	s := ss.s
	if len(cmd.args) < 2 {
		return ss.bad(cmd.tag, "APPEND needs a mailbox and a message.")
	}
	type one struct {
		flags  []string
		date   time.Time
		body   []byte
		binary bool
	}
	var msgs []one
	var cur one
	for _, t := range cmd.args[1:] {
		switch t.kind {
		case tokList:
			for _, f := range t.list {
				cur.flags = append(cur.flags, f.s)
			}
		case tokString:
			d, err := parseDate(t.s)
			if err != nil {
				return ss.bad(cmd.tag, "Invalid date-time "+strconv.Quote(t.s))
			}
			cur.date = d
		case tokLiteral, tokLiteral8:
			cur.body, cur.binary = []byte(t.s), t.kind == tokLiteral8
			msgs = append(msgs, cur)
			cur = one{}
		default:
			return ss.bad(cmd.tag, "Unexpected APPEND argument "+t.String())
		}
	}
	if len(msgs) == 0 {
		return ss.bad(cmd.tag, "APPEND without a message.")
	}
	name := mailboxArg(cmd)
	f := s.folder(ss.acct, name)
	if f == nil || f.noSelect() {
		return ss.no(cmd.tag, "[TRYCREATE] Mailbox doesn't exist: "+name)
	}
	if f.nonMail {
		return ss.no(cmd.tag, "APPEND failed: the folder "+name+" does not hold mail items.")
	}
	var size int64
	for _, m := range msgs {
		size += int64(len(m.body))
		if m.binary && !slices.Contains(s.opts.Caps, "BINARY") {
			return ss.bad(cmd.tag, "literal8 without BINARY.")
		}
		if !m.binary && bytes.IndexByte(m.body, 0) >= 0 {
			return ss.no(cmd.tag, "[CANNOT] Message contains NUL characters.")
		}
		if lim := s.opts.AppendLimit; lim > 0 && int64(len(m.body)) > lim {
			return ss.no(cmd.tag, "[TOOBIG] Message too large.")
		}
	}
	if lim := s.opts.DailyUpload; lim > 0 && ss.acct.uploaded+size > lim {
		r := s.opts.DailyLimitReply
		if r.Status == "" && r.Bye == "" {
			r = Reply{Status: "NO", Text: "[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)"}
		}
		return ss.reply(cmd.tag, &r)
	}
	ss.acct.uploaded += size
	var uids []string
	noUID := false
	for _, m := range msgs {
		flags := slices.DeleteFunc(slices.Clone(m.flags), func(x string) bool {
			return slices.ContainsFunc(s.opts.DropAtAppend, func(d string) bool { return strings.EqualFold(d, x) })
		})
		if s.opts.Duplicates != DuplicatesKept {
			if old := ss.duplicate(f, m.body); old != nil {
				if s.opts.Gmail && f.label != viewAll && f.label != "" && f.label != `\Starred` && !old.hasLabel(f.label) {
					old.labels = append(old.labels, f.label)
					s.place(ss.acct, old)
				}
				if uid, in := f.holds(old); in && s.opts.Duplicates == DuplicatesDroppedUID {
					uids = append(uids, strconv.FormatUint(uint64(uid), 10))
				} else {
					noUID = true
				}
				continue
			}
		}
		msg := s.store(ss.acct, f, Message{Body: m.body, Date: m.date, Flags: flags})
		uid, _ := f.holds(msg)
		uids = append(uids, strconv.FormatUint(uint64(uid), 10))
	}
	if noUID || !slices.Contains(s.opts.Caps, "UIDPLUS") {
		return ss.ok(cmd.tag, "APPEND completed.")
	}
	return ss.ok(cmd.tag, fmt.Sprintf("[APPENDUID %d %s] APPEND completed.", f.uidValidity, strings.Join(uids, ",")))
}

// duplicate returns the message of the account (Gmail) or of f (others)
// with body's Message-ID.
func (ss *session) duplicate(f *folder, body []byte) *message {
	id := headerMessageID(body)
	if id == "" {
		return nil
	}
	if ss.s.opts.Gmail {
		return findByMessageID(ss.acct, id)
	}
	for _, e := range f.entries {
		if e.msg.msgID == id {
			return e.msg
		}
	}
	return nil
}

// dateLayouts are IMAP's date-time (RFC 3501 §9), with a day of one or two
// digits.
var dateLayouts = []string{"02-Jan-2006 15:04:05 -0700", "_2-Jan-2006 15:04:05 -0700", "2-Jan-2006 15:04:05 -0700"}

func parseDate(s string) (time.Time, error) {
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("bad date")
}

// seqRange is a range of numbers (UIDs or sequence numbers).
type seqRange struct{ lo, hi uint32 }

// numSet is a sequence set (RFC 3501 §9); "*" is max.
type numSet []seqRange

func (n numSet) has(v uint32) bool {
	for _, r := range n {
		if v >= r.lo && v <= r.hi {
			return true
		}
	}
	return false
}

func parseSet(s string, max uint32) (numSet, error) {
	var out numSet
	num := func(x string) (uint32, error) {
		if x == "*" {
			return max, nil
		}
		v, err := strconv.ParseUint(x, 10, 32)
		if err != nil || v == 0 {
			return 0, fmt.Errorf("invalid set %q", s)
		}
		return uint32(v), nil
	}
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(part, ":")
		lo, err := num(a)
		if err != nil {
			return nil, err
		}
		hi := lo
		if isRange {
			if hi, err = num(b); err != nil {
				return nil, err
			}
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		out = append(out, seqRange{lo, hi})
	}
	return out, nil
}

// formatSet writes numbers (ascending) as a compact set.
func formatSet(nums []uint32) string {
	var parts []string
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d:%d", nums[i], nums[j]))
		} else {
			parts = append(parts, strconv.FormatUint(uint64(nums[i]), 10))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// expunge removes the \Deleted messages of the selected folder (only those
// with a UID in uids when set), telling the client when announce. On
// Gmail a message leaves a label folder by losing the label, All Mail by
// going to Trash, Trash for good.
func (ss *session) expunge(uids numSet, announce bool) {
	f := ss.sel
	var gone []*message
	for i := 0; i < len(f.entries); {
		e := f.entries[i]
		if !e.msg.hasFlag(`\Deleted`) || uids != nil && !uids.has(e.uid) {
			i++
			continue
		}
		f.entries = slices.Delete(f.entries, i, i+1)
		if announce {
			ss.printf("* %d EXPUNGE\r\n", i+1)
		}
		gone = append(gone, e.msg)
	}
	if !ss.s.opts.Gmail {
		return
	}
	for _, m := range gone {
		m.setFlags("-FLAGS", []string{`\Deleted`})
		switch f.label {
		case viewAll:
			m.labels = []string{`\Trash`}
		case `\Trash`:
			m.labels = []string{`\Trash`, "\x00gone"}
		case `\Starred`:
			m.setFlags("-FLAGS", []string{`\Flagged`})
		default:
			m.labels = slices.DeleteFunc(m.labels, func(l string) bool { return strings.EqualFold(l, f.label) })
		}
		ss.s.place(ss.acct, m)
		if f.label == `\Trash` {
			for _, g := range ss.acct.folders {
				g.entries = slices.DeleteFunc(g.entries, func(e entry) bool { return e.msg == m })
			}
		}
	}
}

func encodeMailbox(name string) string { return mutf7.Encode(name) }

func decodeMailbox(s string) (string, error) { return mutf7.Decode(s) }

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
