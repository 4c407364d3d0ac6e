package mapping

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds of the safe names SafeFolderNames makes.
const (
	safeLevelBytes = 60 // one level; Courier refuses names of a few hundred bytes
	safeFlatBytes  = 40 // the flattened name before the hash suffix
)

// safeReplaced are the characters a safe name does without, besides
// control characters and the separators: IMAP's list wildcards (% *),
// quoting (" \), and what servers refuse in names (Courier and Cyrus:
// a "/" or "." inside a level; "^" is Cyrus's escape for "." in the unix
// hierarchy).
const safeReplaced = `%*"\^~:;?#[]{}|<>/.`

// reservedLevels are names that servers reserve below the top (an
// "INBOX" inside another folder, Cyrus's "user" and the shared namespaces
// of Courier and Exchange); a safe name adds "_" to them.
var reservedLevels = []string{"INBOX", "user", "shared", "public", "Shared Folders", "Other Users"}

// SafeFolderNames returns, in the order to try them, names that
// destination servers accept for a folder whose name they refused: name
// as the folder map gave it (DestPrefix included, levels separated by
// delim, 0 for a flat server). The prefix, when name has it, is kept.
//
//  1. each level cleaned: control characters and the characters servers
//     refuse (safeReplaced, the other usual separator included) become
//     "_", runs of white space one space, leading and trailing white
//     space removed, a reserved level name gets "_" added, a level is cut
//     to 60 bytes, an empty level is "_";
//  2. the cleaned levels joined with "_" into one level (GNU Mailutils: a
//     folder holding mail cannot have children);
//  3. that, cut to 40 bytes, with "-" and 8 hex digits of the SHA-256 of
//     name.
//
// Names equal to name or to an earlier one are left out. The result
// depends on name, delim and prefix only, so a folder gets the same safe
// name on every run.
func SafeFolderNames(name string, delim rune, prefix string) []string {
	rel, pre := name, ""
	if prefix != "" && len(name) > len(prefix) && strings.EqualFold(name[:len(prefix)], prefix) {
		rel, pre = name[len(prefix):], name[:len(prefix)]
	}
	levels := []string{rel}
	if delim != 0 {
		levels = strings.Split(rel, string(delim))
	}
	clean := make([]string, len(levels))
	for i, l := range levels {
		clean[i] = cleanLevel(l, delim, i > 0 || pre != "")
	}
	sep := "/"
	if delim != 0 {
		sep = string(delim)
	}
	flat := strings.Join(clean, "_")
	sum := sha256.Sum256([]byte(name))
	cands := []string{
		pre + strings.Join(clean, sep),
		pre + flat,
		pre + cutUTF8(flat, safeFlatBytes) + "-" + hex.EncodeToString(sum[:4]),
	}
	var out []string
	for _, c := range cands {
		if c != name && !contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// cleanLevel makes one level safe (see SafeFolderNames); nested says the
// level is below the top, where reserved names are avoided.
func cleanLevel(l string, delim rune, nested bool) string {
	var b strings.Builder
	space := false
	for _, r := range l {
		switch {
		case unicode.IsSpace(r):
			space = true
			continue
		case r < 0x20 || r == 0x7f || r == utf8.RuneError || strings.ContainsRune(safeReplaced, r) || r == delim:
			r = '_'
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	s := cutUTF8(b.String(), safeLevelBytes)
	s = strings.TrimSpace(s)
	if s == "" {
		return "_"
	}
	if nested {
		for _, r := range reservedLevels {
			if strings.EqualFold(s, r) {
				return s + "_"
			}
		}
	}
	return s
}

// cutUTF8 cuts s to at most n bytes, at a character boundary.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
