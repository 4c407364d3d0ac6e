package providerfake

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// targets returns the indexes of the selected folder's entries that set
// names, by UID (the UID forms) or sequence number.
func (ss *session) targets(set string, byUID bool) ([]int, error) {
	f := ss.sel
	max := uint32(len(f.entries))
	if byUID {
		max = f.uidNext - 1
		if n := len(f.entries); n > 0 {
			max = f.entries[n-1].uid
		}
	}
	ns, err := parseSet(set, max)
	if err != nil {
		return nil, err
	}
	var out []int
	for i, e := range f.entries {
		v := uint32(i + 1)
		if byUID {
			v = e.uid
		}
		if ns.has(v) {
			out = append(out, i)
		}
	}
	return out, nil
}

// fetchItem is one item of a FETCH.
type fetchItem struct {
	name    string // upper case: UID, FLAGS, BODY, BINARY, X-GM-LABELS …
	section string // BODY[section] / BINARY[section], as asked
	partial string // "<0.100>" as asked, "" when none
}

func parseFetchItems(t token, byUID bool) ([]fetchItem, error) {
	var atoms []string
	switch t.kind {
	case tokList:
		for _, x := range t.list {
			atoms = append(atoms, x.s)
		}
	case tokAtom:
		atoms = []string{t.s}
	default:
		return nil, fmt.Errorf("bad FETCH items %s", t)
	}
	var out []fetchItem
	if byUID {
		out = append(out, fetchItem{name: "UID"})
	}
	for _, a := range atoms {
		up := strings.ToUpper(a)
		switch up {
		case "FAST":
			out = append(out, fetchItem{name: "FLAGS"}, fetchItem{name: "INTERNALDATE"}, fetchItem{name: "RFC822.SIZE"})
			continue
		case "ALL", "FULL":
			return nil, fmt.Errorf("FETCH %s is not supported", up)
		case "RFC822", "RFC822.PEEK":
			out = append(out, fetchItem{name: "RFC822"})
			continue
		}
		name, rest, hasSection := strings.Cut(a, "[")
		if !hasSection {
			if up == "UID" && byUID {
				continue
			}
			out = append(out, fetchItem{name: up})
			continue
		}
		section, partial, _ := strings.Cut(rest, "]")
		name = strings.TrimSuffix(strings.ToUpper(name), ".PEEK")
		out = append(out, fetchItem{name: name, section: section, partial: partial})
	}
	return out, nil
}

// fetch answers FETCH and UID FETCH (RFC 3501 §6.4.5), with BINARY (RFC
// 3516) and X-GM-EXT-1's items. The UID comes first in every response:
// go-imap v2.0.0-beta.8 drops a UID FETCH response whose UID follows a
// literal, and the real servers put it first.
func (ss *session) fetch(cmd command) error {
	byUID := cmd.name == "UID FETCH"
	if len(cmd.args) < 2 {
		return ss.bad(cmd.tag, "FETCH needs a set and items.")
	}
	items, err := parseFetchItems(cmd.args[1], byUID)
	if err != nil {
		return ss.bad(cmd.tag, err.Error())
	}
	idx, err := ss.targets(cmd.args[0].s, byUID)
	if err != nil {
		return ss.bad(cmd.tag, err.Error())
	}
	for _, i := range idx {
		e := ss.sel.entries[i]
		var parts []string
		for _, it := range items {
			parts = append(parts, ss.fetchOne(e, it))
		}
		ss.printf("* %d FETCH (%s)\r\n", i+1, strings.Join(parts, " "))
		if !ss.readOnly {
			for _, it := range items {
				if (it.name == "BODY" || it.name == "RFC822") && !strings.Contains(strings.ToUpper(cmd.line), ".PEEK") {
					e.msg.setFlags("+FLAGS", []string{`\Seen`})
				}
			}
		}
	}
	return ss.ok(cmd.tag, cmd.name+" completed.")
}

func (ss *session) fetchOne(e entry, it fetchItem) string {
	m := e.msg
	switch it.name {
	case "UID":
		return "UID " + strconv.FormatUint(uint64(e.uid), 10)
	case "FLAGS":
		return "FLAGS (" + strings.Join(m.flags, " ") + ")"
	case "INTERNALDATE":
		return `INTERNALDATE "` + m.date.Format("02-Jan-2006 15:04:05 -0700") + `"`
	case "RFC822.SIZE":
		return "RFC822.SIZE " + strconv.Itoa(len(m.body))
	case "RFC822":
		return "RFC822 " + literal(m.body, false)
	case "X-GM-MSGID":
		return "X-GM-MSGID " + strconv.FormatUint(m.gmID, 10)
	case "X-GM-THRID":
		return "X-GM-THRID " + strconv.FormatUint(m.thrID, 10)
	case "X-GM-LABELS":
		var ls []string
		for _, l := range ss.labelsOf(m) {
			ls = append(ls, quote(encodeMailbox(l)))
		}
		return "X-GM-LABELS (" + strings.Join(ls, " ") + ")"
	case "BODY", "BINARY":
		data := section(m.body, it.section)
		label := it.name + "[" + it.section + "]"
		if it.partial != "" {
			var start, n int
			if _, err := fmt.Sscanf(it.partial, "<%d.%d>", &start, &n); err == nil {
				start = min(start, len(data))
				data = data[start:min(start+n, len(data))]
				label += "<" + strconv.Itoa(start) + ">"
			}
		}
		return label + " " + literal(data, it.name == "BINARY")
	case "BINARY.SIZE":
		return "BINARY.SIZE[" + it.section + "] " + strconv.Itoa(len(section(m.body, it.section)))
	}
	return it.name + " NIL"
}

// labelsOf is X-GM-LABELS: the message's labels and \Starred, without the
// label of the selected folder (Gmail leaves that one out).
func (ss *session) labelsOf(m *message) []string {
	var out []string
	for _, l := range m.labels {
		if l == "\x00gone" || strings.EqualFold(l, ss.sel.label) {
			continue
		}
		out = append(out, l)
	}
	if m.hasFlag(`\Flagged`) && ss.sel.label != `\Starred` {
		out = append(out, `\Starred`)
	}
	return out
}

func literal(b []byte, binary bool) string {
	prefix := ""
	if binary {
		prefix = "~"
	}
	return prefix + "{" + strconv.Itoa(len(b)) + "}\r\n" + string(b)
}

// section returns a part of a message as BODY[section] names it: "" the
// whole, HEADER, TEXT, HEADER.FIELDS (…) and HEADER.FIELDS.NOT (…).
func section(body []byte, sec string) []byte {
	end := bytes.Index(body, []byte("\r\n\r\n"))
	hdrEnd := len(body)
	if end >= 0 {
		hdrEnd = end + 4
	}
	spec, fields, _ := strings.Cut(strings.ToUpper(sec), " ")
	switch spec {
	case "":
		return body
	case "HEADER":
		return body[:hdrEnd]
	case "TEXT":
		return body[hdrEnd:]
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		want := strings.Fields(strings.NewReplacer("(", "", ")", "", `"`, "").Replace(fields))
		not := spec == "HEADER.FIELDS.NOT"
		var out []byte
		for _, f := range splitFields(body[:hdrEnd]) {
			name, _, _ := bytes.Cut(f, []byte(":"))
			in := slices.ContainsFunc(want, func(w string) bool { return strings.EqualFold(w, strings.TrimSpace(string(name))) })
			if in != not {
				out = append(out, f...)
			}
		}
		return append(out, "\r\n"...)
	}
	return nil
}

// splitFields splits a header into its fields, each with its folded lines
// and CRLFs.
func splitFields(h []byte) [][]byte {
	var out [][]byte
	for len(h) > 0 {
		i := 0
		for {
			j := bytes.IndexByte(h[i:], '\n')
			if j < 0 {
				i = len(h)
				break
			}
			i += j + 1
			if i >= len(h) || (h[i] != ' ' && h[i] != '\t') {
				break
			}
		}
		f := h[:i]
		h = h[i:]
		if len(bytes.TrimSpace(f)) == 0 {
			continue
		}
		out = append(out, f)
	}
	return out
}

// search answers SEARCH and UID SEARCH (RFC 3501 §6.4.4) with ESEARCH's
// RETURN (RFC 4731) and X-GM-MSGID.
func (ss *session) search(cmd command) error {
	byUID := cmd.name == "UID SEARCH"
	args := cmd.args
	var ret []string
	esearch := false
	if len(args) > 1 && strings.EqualFold(args[0].s, "RETURN") {
		esearch = true
		for _, r := range args[1].list {
			ret = append(ret, strings.ToUpper(r.s))
		}
		if len(ret) == 0 {
			ret = []string{"ALL"}
		}
		args = args[2:]
	}
	if len(args) > 1 && strings.EqualFold(args[0].s, "CHARSET") {
		args = args[2:]
	}
	var hits []uint32
	for i, e := range ss.sel.entries {
		ok, _, err := ss.matches(args, i, e)
		if err != nil {
			return ss.bad(cmd.tag, err.Error())
		}
		if !ok {
			continue
		}
		if byUID {
			hits = append(hits, e.uid)
		} else {
			hits = append(hits, uint32(i+1))
		}
	}
	if !esearch {
		var b strings.Builder
		b.WriteString("* SEARCH")
		for _, h := range hits {
			b.WriteString(" " + strconv.FormatUint(uint64(h), 10))
		}
		ss.printf("%s\r\n", b.String())
		return ss.ok(cmd.tag, cmd.name+" completed.")
	}
	out := fmt.Sprintf("* ESEARCH (TAG %q)", cmd.tag)
	if byUID {
		out += " UID"
	}
	for _, r := range ret {
		switch r {
		case "ALL":
			if len(hits) > 0 {
				out += " ALL " + formatSet(hits)
			}
		case "COUNT":
			out += " COUNT " + strconv.Itoa(len(hits))
		case "MIN":
			if len(hits) > 0 {
				out += " MIN " + strconv.FormatUint(uint64(hits[0]), 10)
			}
		case "MAX":
			if len(hits) > 0 {
				out += " MAX " + strconv.FormatUint(uint64(hits[len(hits)-1]), 10)
			}
		}
	}
	ss.printf("%s\r\n", out)
	return ss.ok(cmd.tag, cmd.name+" completed.")
}

// matches evaluates search keys (all must match) on entry i; it returns
// how many keys it consumed with NOT and OR.
func (ss *session) matches(keys []token, i int, e entry) (bool, int, error) {
	all := true
	for k := 0; k < len(keys); {
		ok, n, err := ss.key(keys[k:], i, e)
		if err != nil {
			return false, 0, err
		}
		all = all && ok
		k += n
	}
	return all, len(keys), nil
}

func (ss *session) key(keys []token, i int, e entry) (bool, int, error) {
	t := keys[0]
	if t.kind == tokList {
		ok, _, err := ss.matches(t.list, i, e)
		return ok, 1, err
	}
	arg := func(n int) (string, error) {
		if len(keys) <= n {
			return "", fmt.Errorf("search key %s needs an argument", t.s)
		}
		s, _ := keys[n].astring()
		return s, nil
	}
	m := e.msg
	switch up := strings.ToUpper(t.s); up {
	case "ALL":
		return true, 1, nil
	case "DELETED", "SEEN", "FLAGGED", "ANSWERED", "DRAFT":
		return m.hasFlag(`\` + up), 1, nil
	case "UNDELETED", "UNSEEN", "UNFLAGGED", "UNANSWERED", "UNDRAFT":
		return !m.hasFlag(`\` + up[2:]), 1, nil
	case "NOT":
		ok, n, err := ss.key(keys[1:], i, e)
		return !ok, n + 1, err
	case "OR":
		a, n1, err := ss.key(keys[1:], i, e)
		if err != nil {
			return false, 0, err
		}
		b, n2, err := ss.key(keys[1+n1:], i, e)
		return a || b, 1 + n1 + n2, err
	case "UID":
		s, err := arg(1)
		if err != nil {
			return false, 0, err
		}
		set, err := parseSet(s, ss.sel.uidNext-1)
		if err != nil {
			return false, 0, err
		}
		return set.has(e.uid), 2, nil
	case "HEADER":
		name, err := arg(1)
		if err != nil {
			return false, 0, err
		}
		value, err := arg(2)
		if err != nil {
			return false, 0, err
		}
		h := section(m.body, "HEADER.FIELDS ("+name+")")
		return bytes.Contains(bytes.ToLower(h), bytes.ToLower([]byte(value))) && len(bytes.TrimSpace(h)) > 0, 3, nil
	case "X-GM-MSGID":
		s, err := arg(1)
		if err != nil {
			return false, 0, err
		}
		return s == strconv.FormatUint(m.gmID, 10), 2, nil
	}
	if set, err := parseSet(t.s, uint32(len(ss.sel.entries))); err == nil {
		return set.has(uint32(i + 1)), 1, nil
	}
	return false, 0, fmt.Errorf("search key %s is not supported", t.s)
}

// storeCmd answers STORE and UID STORE (RFC 3501 §6.4.6).
func (ss *session) storeCmd(cmd command) error {
	if ss.readOnly {
		return ss.no(cmd.tag, "Mailbox is read-only.")
	}
	if len(cmd.args) < 3 {
		return ss.bad(cmd.tag, "STORE needs a set, an item and flags.")
	}
	byUID := cmd.name == "UID STORE"
	op := strings.ToUpper(cmd.args[1].s)
	silent := strings.HasSuffix(op, ".SILENT")
	op = strings.TrimSuffix(op, ".SILENT")
	if op != "FLAGS" && op != "+FLAGS" && op != "-FLAGS" {
		return ss.bad(cmd.tag, "Unknown STORE item "+cmd.args[1].s)
	}
	var flags []string
	for _, t := range cmd.args[2:] {
		if t.kind == tokList {
			for _, f := range t.list {
				flags = append(flags, f.s)
			}
		} else {
			flags = append(flags, t.s)
		}
	}
	idx, err := ss.targets(cmd.args[0].s, byUID)
	if err != nil {
		return ss.bad(cmd.tag, err.Error())
	}
	var changed []*message
	for _, i := range idx {
		changed = append(changed, ss.sel.entries[i].msg)
	}
	for _, m := range changed {
		m.setFlags(op, flags)
		if ss.s.opts.Gmail {
			ss.s.place(ss.acct, m)
		}
	}
	if !silent {
		for i, e := range ss.sel.entries {
			if slices.Contains(changed, e.msg) {
				uid := ""
				if byUID {
					uid = "UID " + strconv.FormatUint(uint64(e.uid), 10) + " "
				}
				ss.printf("* %d FETCH (%sFLAGS (%s))\r\n", i+1, uid, strings.Join(e.msg.flags, " "))
			}
		}
	}
	return ss.ok(cmd.tag, cmd.name+" completed.")
}
