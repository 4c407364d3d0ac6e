package mapping

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Folder patterns select source folders: --folder and --exclude-folder,
// the config's [folders] include and exclude, and the folder of a source
// URL. The syntax is the one --help, the README and migrate.toml.example
// document, after the wildcards of IMAP LIST (RFC 3501 §6.3.8):
//
//	*  any run of characters, hierarchy separators included
//	%  any run of characters within one level (no separator)
//	?  exactly one character
//
// Every other character stands for itself, case-sensitively: only INBOX,
// the one case-insensitive name (RFC 3501 §5.1), matches in any case, also
// as the first level of a longer name. A pattern without wildcards names
// one folder; "Archive/*" matches everything below Archive but not Archive
// itself.

// Match reports whether name matches pattern (see the syntax above), with
// delim as the hierarchy separator that % does not cross; delim 0 (a flat
// server) lets % match anything, like *.
func Match(pattern, name string, delim rune) bool {
	p, n := []rune(pattern), []rune(name)
	// next[j] says whether p[i+1:] matches n[j:]; cur is the same for p[i:].
	// Filled from the end of the pattern: O(len(p)·len(n)) time, O(len(n))
	// memory, and no backtracking that a mix of * and % could defeat.
	next := make([]bool, len(n)+1)
	cur := make([]bool, len(n)+1)
	next[len(n)] = true
	for i := len(p) - 1; i >= 0; i-- {
		switch c := p[i]; c {
		case '*', '%':
			cur[len(n)] = next[len(n)]
			for j := len(n) - 1; j >= 0; j-- {
				// Match nothing here, or n[j] and go on with the same wildcard.
				cur[j] = next[j] || cur[j+1] && (c == '*' || delim == 0 || n[j] != delim)
			}
		default:
			cur[len(n)] = false
			for j := len(n) - 1; j >= 0; j-- {
				cur[j] = (c == '?' || c == n[j]) && next[j+1]
			}
		}
		next, cur = cur, next
	}
	return next[0]
}

// CheckFolderPattern reports why pattern cannot select a folder, or nil.
// An empty pattern is refused (it would match nothing, silently), and so
// are control characters and invalid UTF-8, which no folder name holds (a
// name travels in a quoted string or literal and is decoded from modified
// UTF-7, RFC 3501 §5.1.3). The error wraps ErrBadFolderOption.
func CheckFolderPattern(pattern string) error {
	switch {
	case pattern == "":
		return fmt.Errorf("%w: empty folder pattern", ErrBadFolderOption)
	case !utf8.ValidString(pattern):
		return fmt.Errorf("%w: folder pattern %q is not valid UTF-8", ErrBadFolderOption, pattern)
	case strings.ContainsFunc(pattern, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("%w: folder pattern %q holds a control character", ErrBadFolderOption, pattern)
	}
	return nil
}

// FolderFilter selects folders by Include and Exclude patterns: a folder
// is copied when Include is empty or one of its patterns matches, and no
// Exclude pattern matches (Exclude wins). It is immutable and safe for
// concurrent use.
//
// A pattern may be written with "/" or with the source's own separator
// between levels, and with or without the source's personal namespace
// prefix ("INBOX." on Courier and Cyrus): it is matched against the
// folder's name as listed, the same name with "/" between levels, and both
// without the prefix; any match counts.
type FolderFilter struct {
	include, exclude []string
}

// NewFolderFilter checks every pattern (CheckFolderPattern) and returns the
// filter. The error names the first bad pattern and wraps
// ErrBadFolderOption.
func NewFolderFilter(include, exclude []string) (*FolderFilter, error) {
	f := &FolderFilter{}
	for _, p := range include {
		if err := CheckFolderPattern(p); err != nil {
			return nil, err
		}
		f.include = append(f.include, normInbox(p))
	}
	for _, p := range exclude {
		if err := CheckFolderPattern(p); err != nil {
			return nil, err
		}
		f.exclude = append(f.exclude, normInbox(p))
	}
	return f, nil
}

// Select says whether folder is copied: NotSkipped, SkipExcluded or
// SkipNotIncluded. sourcePrefix is the source's personal namespace prefix
// ("" for none). A nil FolderFilter selects every folder.
func (f *FolderFilter) Select(folder Folder, sourcePrefix string) Skip {
	if f == nil {
		return NotSkipped
	}
	names := matchNames(folder, sourcePrefix)
	for _, p := range f.exclude {
		if names.match(p) {
			return SkipExcluded
		}
	}
	if len(f.include) == 0 {
		return NotSkipped
	}
	for _, p := range f.include {
		if names.match(p) {
			return NotSkipped
		}
	}
	return SkipNotIncluded
}

// Unmatched returns, in the order given, the Include and the Exclude
// patterns that match none of folders (a misspelt name, a folder that is
// not there), so that the caller can report them.
func (f *FolderFilter) Unmatched(folders []Folder, sourcePrefix string) (include, exclude []string) {
	if f == nil {
		return nil, nil
	}
	names := make([]folderNames, len(folders))
	for i, folder := range folders {
		names[i] = matchNames(folder, sourcePrefix)
	}
	none := func(p string) bool {
		for _, n := range names {
			if n.match(p) {
				return false
			}
		}
		return true
	}
	for _, p := range f.include {
		if none(p) {
			include = append(include, p)
		}
	}
	for _, p := range f.exclude {
		if none(p) {
			exclude = append(exclude, p)
		}
	}
	return include, exclude
}

// folderNames are the forms of one folder's name a pattern may match, each
// with the separator % must not cross.
type folderNames []struct {
	name  string
	delim rune
}

func (ns folderNames) match(pattern string) bool {
	for _, n := range ns {
		if Match(pattern, n.name, n.delim) {
			return true
		}
	}
	return false
}

// matchNames returns folder's name as listed and without sourcePrefix,
// each as is and with "/" between levels (INBOX spelled "INBOX").
func matchNames(folder Folder, sourcePrefix string) folderNames {
	full := normInbox(folder.Name)
	rel := full
	if sourcePrefix != "" {
		if p := normInbox(sourcePrefix); strings.HasPrefix(full, p) && len(full) > len(p) {
			rel = full[len(p):]
		}
	}
	var out folderNames
	add := func(name string, delim rune) {
		for _, n := range out {
			if n.name == name && n.delim == delim {
				return
			}
		}
		out = append(out, struct {
			name  string
			delim rune
		}{name, delim})
	}
	for _, n := range []string{full, rel} {
		add(n, folder.Delim)
		if folder.Delim != 0 && folder.Delim != '/' {
			add(normInbox(strings.ReplaceAll(n, string(folder.Delim), "/")), '/')
		}
	}
	return out
}
