package mapping

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// DestFolder returns the destination mailbox for POP3 mail given the
// configured folder: "" means INBOX, and INBOX in any case is spelled
// "INBOX" (RFC 3501 §5.1: the name INBOX is case-insensitive). Other names,
// including INBOX's children, are returned as given.
func DestFolder(base string) string {
	if base == "" || strings.EqualFold(base, "INBOX") {
		return "INBOX"
	}
	return base
}

// Folder is a mailbox as an IMAP server lists it (RFC 3501 §7.2.2).
type Folder struct {
	// Name is the full name in UTF-8, as listed (go-imap decodes modified
	// UTF-7, RFC 3501 §5.1.3, on the wire).
	Name string
	// Delim is the hierarchy separator; 0 when the server has no hierarchy
	// (LIST's NIL delimiter).
	Delim rune
	// Attrs are the LIST attributes: `\Noselect`, `\HasChildren`, `\Sent`, …
	Attrs []string
}

// SourceFolder is a Folder listed by the source server.
type SourceFolder = Folder

// FolderRule renames source folders. From is compared with a source folder's
// name as listed and with its name after FolderOptions.SourcePrefix
// ("INBOX.Sent" and "Sent" on Courier): as an exact string (INBOX in any
// case), or, with Regexp, as an RE2 regular expression that must match (use
// ^…$ to anchor it), whose match is replaced by To with $1-style groups
// expanded (regexp.Regexp.ReplaceAllString).
//
// To is the destination folder written with "/" (or the destination's
// separator) between levels; "/" becomes the destination's separator and the
// destination prefix is added, but Root is not: a rule says where a folder
// goes. A component that cannot be written on the destination is escaped as
// in Map.
type FolderRule struct {
	From   string
	To     string
	Regexp bool
}

// FolderOptions configures a FolderMap. The zero value maps names between
// two servers with "/" as separator and no namespace prefix, and maps
// special folders to the default names (Sent, Drafts, Trash, Junk, Archive).
type FolderOptions struct {
	// SourcePrefix is the source's personal namespace prefix (RFC 2342
	// NAMESPACE), e.g. "INBOX." on Courier and Cyrus; it is removed from
	// names that start with it (INBOX in any case).
	SourcePrefix string
	// DestDelim is the destination's hierarchy separator; 0 means '/'.
	DestDelim rune
	// DestPrefix is the destination's personal namespace prefix, added to
	// every name but INBOX that does not already start with it.
	DestPrefix string
	// Root, when set, puts every folder, INBOX included, under this folder
	// ("Old": INBOX → Old/INBOX, Sent Items → Old/Sent Items). Its levels
	// are separated by "/" or the destination's separator. With a Root,
	// special folders keep their names: the old Sent does not merge into the
	// destination's Sent.
	Root string
	// Rules rename folders; the first that matches wins, and a renamed
	// folder is not special-use mapped.
	Rules []FolderRule
	// Include, when not empty, copies only folders matching one of these
	// patterns; Exclude leaves out folders matching any, and wins over
	// Include. See FolderFilter for how a folder is matched, Match for the
	// patterns.
	Include []string
	Exclude []string
	// DestFolders are the destination's folders with their attributes; a
	// special source folder maps to the one with the same attribute, else to
	// one with a well-known name for it.
	DestFolders []Folder
	// SourceMarksSpecialUse says the source server sets RFC 6154 attributes
	// (see HasSpecialUse): then only attributes make a source folder
	// special, never its name, since a server that marks its Sent folder
	// makes a user folder called "Sent Items" an ordinary one.
	SourceMarksSpecialUse bool
	// NoSpecialUse turns the special-use mapping off: every folder keeps its
	// name.
	NoSpecialUse bool
	// KeepVirtual copies the virtual folders (\All, \Flagged, \Important;
	// see IsVirtual), which are left out by default: on Gmail they hold a
	// second copy of every message.
	KeepVirtual bool
	// AllIsArchive maps the \All folder as the archive (\Archive): a
	// source with labels (Gmail) lists in it only what no other folder
	// shows, the archived mail, which must not be lost by skipping it.
	AllIsArchive bool
}

// Skip says why a folder is not copied.
type Skip int

const (
	NotSkipped      Skip = iota
	SkipExcluded         // matches an Exclude pattern
	SkipNotIncluded      // Include is set and no pattern matches
	SkipVirtual          // a virtual folder (IsVirtual) and KeepVirtual is off
	SkipNoSelect         // \Noselect or \NonExistent: holds no messages
)

// String returns "", "excluded", "not included", "virtual" or "noselect".
func (s Skip) String() string {
	switch s {
	case NotSkipped:
		return ""
	case SkipExcluded:
		return "excluded"
	case SkipNotIncluded:
		return "not included"
	case SkipVirtual:
		return "virtual"
	case SkipNoSelect:
		return "noselect"
	}
	return fmt.Sprintf("Skip(%d)", int(s))
}

// Target is where a source folder goes.
type Target struct {
	// Name is the destination folder's full name ("" when skipped).
	Name string
	// SpecialUse is the folder's special use when it was mapped as one
	// ("\Sent", …): create the folder with it (RFC 6154 §3 CREATE USE).
	SpecialUse string
	// Rule is the index in FolderOptions.Rules of the rule that renamed the
	// folder, -1 when none did.
	Rule int
	// Skip is why the folder is not copied; NotSkipped when it is.
	Skip Skip
}

// FolderMap maps source folders to destination folders. It is immutable and
// safe for concurrent use.
type FolderMap struct {
	opts    FolderOptions
	delim   rune
	root    []string
	rules   []compiledRule
	filter  *FolderFilter
	byUse   map[string]string // special use -> destination folder
	escapeC string
}

type compiledRule struct {
	FolderRule
	re *regexp.Regexp
}

// ErrBadFolderOption is wrapped by NewFolderMap's errors.
var ErrBadFolderOption = errors.New("mapping: invalid folder option")

// NewFolderMap checks opts and builds a FolderMap. The error wraps
// ErrBadFolderOption and names the rule or pattern at fault.
func NewFolderMap(opts FolderOptions) (*FolderMap, error) {
	m := &FolderMap{opts: opts, delim: opts.DestDelim, escapeC: "_"}
	if m.delim == 0 {
		m.delim = '/'
	}
	if m.delim == '_' {
		m.escapeC = "-"
	}
	if opts.Root != "" {
		for _, c := range splitAny(opts.Root, '/', m.delim) {
			if c != "" {
				m.root = append(m.root, m.escape(c))
			}
		}
		if len(m.root) == 0 {
			return nil, fmt.Errorf("%w: root %q names no folder", ErrBadFolderOption, opts.Root)
		}
	}
	for i, r := range opts.Rules {
		if r.From == "" || strings.Trim(r.To, "/"+string(m.delim)) == "" {
			return nil, fmt.Errorf("%w: folder rule %d (%q → %q): both sides must name a folder", ErrBadFolderOption, i+1, r.From, r.To)
		}
		cr := compiledRule{FolderRule: r}
		if r.Regexp {
			re, err := regexp.Compile(r.From)
			if err != nil {
				return nil, fmt.Errorf("%w: folder rule %d: %w", ErrBadFolderOption, i+1, err)
			}
			cr.re = re
		}
		m.rules = append(m.rules, cr)
	}
	filter, err := NewFolderFilter(opts.Include, opts.Exclude)
	if err != nil {
		return nil, err
	}
	m.filter = filter
	m.byUse = map[string]string{}
	// A folder marked with the attribute wins over one with a well-known name.
	for _, f := range opts.DestFolders {
		if use := specialUseAttr(f.Attrs); use != "" && m.byUse[use] == "" && !noSelect(f.Attrs) {
			m.byUse[use] = f.Name
		}
	}
	for _, f := range opts.DestFolders {
		if use := specialUseByName(m.relative(f.Name, opts.DestPrefix)); use != "" && m.byUse[use] == "" && !noSelect(f.Attrs) {
			m.byUse[use] = f.Name
		}
	}
	return m, nil
}

// Map returns the destination folder for src; ok is false when src is not
// to be copied. See Lookup.
func (m *FolderMap) Map(src Folder) (dest string, ok bool) {
	t := m.Lookup(src)
	return t.Name, t.Skip == NotSkipped
}

// Lookup decides where src goes, in this order:
//
//  1. \Noselect and \NonExistent folders are skipped (they hold no mail; the
//     destination creates parents as needed), then Exclude and Include
//     patterns are applied (FolderFilter.Select), then virtual folders are
//     skipped.
//  2. The first rule that matches gives the name.
//  3. INBOX in any case is "INBOX" (RFC 3501 §5.1), or Root/INBOX.
//  4. A special folder (by attribute, else by well-known name unless
//     SourceMarksSpecialUse) goes to the destination folder with the same
//     attribute, else the one with a well-known name for it, else the
//     default name (Sent, Drafts, Trash, Junk, Archive) under DestPrefix.
//     Not with Root or NoSpecialUse.
//  5. Otherwise the name is translated: SourcePrefix removed, split at the
//     source's separator, joined with the destination's, under Root and
//     DestPrefix.
//
// Separators are never silently turned into hierarchy: a level whose name
// contains the destination's separator (a folder "a/b" on a "." server
// copied to a "/" server) has each such character replaced by "_" ("a_b"),
// or by "-" when the destination's separator is "_". Two source folders may
// map to the same destination folder ("Sent" and "Sent Items" both to
// Sent); their messages are then merged.
func (m *FolderMap) Lookup(src Folder) Target {
	if noSelect(src.Attrs) {
		return Target{Rule: -1, Skip: SkipNoSelect}
	}
	if skip := m.filter.Select(src, m.opts.SourcePrefix); skip != NotSkipped {
		return Target{Rule: -1, Skip: skip}
	}
	use := specialUseAttr(src.Attrs)
	rel := m.relative(src.Name, m.opts.SourcePrefix)
	if use == "" && !m.opts.SourceMarksSpecialUse {
		use = specialUseByName(rel)
	}
	if use == UseAll && m.opts.AllIsArchive {
		use = UseArchive
	}
	if IsVirtual(use) && !m.opts.KeepVirtual {
		return Target{Rule: -1, Skip: SkipVirtual}
	}
	for i, r := range m.rules {
		if to, ok := r.apply(src.Name, rel); ok {
			return Target{Name: m.withPrefix(m.join(splitAny(to, '/', m.delim))), Rule: i}
		}
	}
	comps := split(rel, src.Delim)
	isInbox := len(comps) == 1 && strings.EqualFold(comps[0], "INBOX")
	if len(m.root) > 0 {
		if isInbox {
			comps[0] = "INBOX"
		}
		return Target{Name: m.withPrefix(m.join(append(append([]string(nil), m.root...), comps...))), Rule: -1}
	}
	if isInbox {
		return Target{Name: "INBOX", Rule: -1}
	}
	if use != "" && !IsVirtual(use) && !m.opts.NoSpecialUse {
		if name := m.byUse[use]; name != "" {
			return Target{Name: name, SpecialUse: use, Rule: -1}
		}
		if name := defaultNames[use]; name != "" {
			return Target{Name: m.withPrefix(name), SpecialUse: use, Rule: -1}
		}
	}
	return Target{Name: m.withPrefix(m.join(comps)), Rule: -1}
}

// relative returns name without prefix (compared with INBOX in any case);
// a name equal to the prefix without its trailing separator is INBOX.
func (m *FolderMap) relative(name, prefix string) string {
	name = normInbox(name)
	if prefix == "" {
		return name
	}
	prefix = normInbox(prefix)
	if strings.HasPrefix(name, prefix) && len(name) > len(prefix) {
		return name[len(prefix):]
	}
	return name
}

// normInbox spells a leading INBOX level "INBOX" (RFC 3501 §5.1: INBOX is
// case-insensitive, and so is its use as a parent).
func normInbox(name string) string {
	if len(name) >= 5 && strings.EqualFold(name[:5], "INBOX") && (len(name) == 5 || !isNameChar(name[5])) {
		return "INBOX" + name[5:]
	}
	return name
}

// isNameChar reports whether c may continue a folder name's first level:
// letters, digits and anything that is not a separator servers use.
func isNameChar(c byte) bool {
	return c != '.' && c != '/' && c != '\\' && c != ':'
}

// join escapes each level and joins them with the destination's separator.
func (m *FolderMap) join(comps []string) string {
	out := make([]string, len(comps))
	for i, c := range comps {
		out[i] = m.escape(c)
	}
	if len(out) > 0 && strings.EqualFold(out[0], "INBOX") {
		out[0] = "INBOX"
	}
	return strings.Join(out, string(m.delim))
}

// escape replaces the destination separator inside one level.
func (m *FolderMap) escape(c string) string {
	return strings.ReplaceAll(c, string(m.delim), m.escapeC)
}

// withPrefix adds DestPrefix unless name is INBOX or already under it.
func (m *FolderMap) withPrefix(name string) string {
	p := m.opts.DestPrefix
	if p == "" || strings.EqualFold(name, "INBOX") || strings.HasPrefix(name, normInbox(p)) {
		return name
	}
	return normInbox(p) + name
}

// RootTop is the destination folder that the first level of Root names
// ("Old" for the root "Old/2019"; "INBOX.Old" under the destination prefix
// "INBOX."): the folder a copy under Root creates first when it is not
// there. "" without a Root.
func (m *FolderMap) RootTop() string {
	if len(m.root) == 0 {
		return ""
	}
	return m.withPrefix(m.join(m.root[:1]))
}

// apply tries the rule on the full and the prefix-relative name.
func (r compiledRule) apply(full, rel string) (string, bool) {
	for _, n := range []string{full, rel} {
		if r.re == nil {
			if n == r.From || strings.EqualFold(n, "INBOX") && strings.EqualFold(r.From, "INBOX") {
				return r.To, true
			}
			continue
		}
		if r.re.MatchString(n) {
			return r.re.ReplaceAllString(n, r.To), true
		}
	}
	return "", false
}

// noSelect reports whether attrs mark a folder that cannot hold messages.
func noSelect(attrs []string) bool {
	for _, a := range attrs {
		if strings.EqualFold(a, `\Noselect`) || strings.EqualFold(a, `\NonExistent`) {
			return true
		}
	}
	return false
}

// split splits name at delim; delim 0 gives one level.
func split(name string, delim rune) []string {
	if delim == 0 {
		return []string{name}
	}
	return strings.Split(name, string(delim))
}

// splitAny splits name at either separator.
func splitAny(name string, a, b rune) []string {
	return strings.FieldsFunc(name, func(r rune) bool { return r == a || r == b })
}
