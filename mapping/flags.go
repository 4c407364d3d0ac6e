package mapping

import (
	"fmt"
	"strings"
)

// FlagPolicy says which flags a POP3 message gets at the destination (POP3
// has no flags of its own).
type FlagPolicy int

const (
	// FlagsNone (the default, "none") sends no flags: the mail arrives unread.
	FlagsNone FlagPolicy = iota
	// FlagsSeen ("seen") marks every message \Seen.
	FlagsSeen
	// FlagsStatusHeader ("status") derives flags from the mbox Status: and
	// X-Status: fields that mail readers store in the message: see Flags.
	FlagsStatusHeader
)

// String returns the policy's config spelling: "none", "seen" or "status".
func (p FlagPolicy) String() string {
	switch p {
	case FlagsNone:
		return "none"
	case FlagsSeen:
		return "seen"
	case FlagsStatusHeader:
		return "status"
	}
	return fmt.Sprintf("FlagPolicy(%d)", int(p))
}

// ParseFlagPolicy parses "none", "seen" or "status" (any case, surrounding
// spaces ignored); "" gives the default, FlagsNone.
func ParseFlagPolicy(s string) (FlagPolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none":
		return FlagsNone, nil
	case "seen":
		return FlagsSeen, nil
	case "status":
		return FlagsStatusHeader, nil
	}
	return FlagsNone, fmt.Errorf("mapping: unknown flag policy %q (want none, seen or status)", s)
}

// MarshalText implements encoding.TextMarshaler (TOML, JSON).
func (p FlagPolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseFlagPolicy.
func (p *FlagPolicy) UnmarshalText(b []byte) error {
	v, err := ParseFlagPolicy(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// IMAP system flags (RFC 3501 §2.3.2).
const (
	FlagSeen     = `\Seen`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDeleted  = `\Deleted`
	FlagDraft    = `\Draft`
	FlagRecent   = `\Recent`
)

// statusLetters maps the mbox Status:/X-Status: letters to IMAP flags, in the
// order Flags returns them. "O" (old: seen by a reader as new mail, not yet
// read) and Status: "N" carry no IMAP flag: \Recent cannot be set by a client.
var statusLetters = [...]struct {
	letter byte
	flag   string
}{
	{'R', FlagSeen},
	{'A', FlagAnswered},
	{'F', FlagFlagged},
	{'T', FlagDraft},
}

// Flags returns the flags to append a POP3 message with under policy: none
// for FlagsNone, \Seen for FlagsSeen. For FlagsStatusHeader, the letters of
// every Status: and X-Status: field in header: R gives \Seen, A \Answered,
// F \Flagged and T \Draft (either case, in either field, as mbox
// writers differ on which field holds which letter; mutt writes "Status: RO"
// and "X-Status: AF"). The result is nil when there are no flags and is in
// the fixed order \Seen \Answered \Flagged \Draft.
//
// D ("marked for deletion") is deliberately not carried over as \Deleted:
// the next EXPUNGE at the destination would destroy mail the user still had.
func Flags(header []byte, policy FlagPolicy) []string {
	switch policy {
	case FlagsSeen:
		return []string{FlagSeen}
	case FlagsStatusHeader:
		var have [len(statusLetters)]bool
		scanFields(header, func(name, raw []byte, cr bool) bool {
			n := string(name)
			if !strings.EqualFold(n, "Status") && !strings.EqualFold(n, "X-Status") {
				return true
			}
			for _, c := range []byte(unfold(raw, cr)) {
				if c >= 'a' && c <= 'z' {
					c -= 'a' - 'A'
				}
				for i, sl := range statusLetters {
					if c == sl.letter {
						have[i] = true
					}
				}
			}
			return true
		})
		var fs []string
		for i, sl := range statusLetters {
			if have[i] {
				fs = append(fs, sl.flag)
			}
		}
		return fs
	}
	return nil
}

// systemFlags maps the lower-cased settable system flags to their canonical
// spelling. \Recent is left out: no client may set it (RFC 3501 §2.3.2).
var systemFlags = map[string]string{
	`\seen`:     FlagSeen,
	`\answered`: FlagAnswered,
	`\flagged`:  FlagFlagged,
	`\deleted`:  FlagDeleted,
	`\draft`:    FlagDraft,
}

// ValidKeyword reports whether s may be sent as a flag in APPEND or STORE:
// one of the settable system flags (\Seen \Answered \Flagged \Deleted
// \Draft, any case), or a keyword that is an RFC 3501 §9 atom: one or more
// ASCII characters from 0x21 to 0x7E other than the atom-specials
// ( ) { % * " \ ]. \Recent, \* and other backslashed words are not valid.
func ValidKeyword(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '\\' {
		_, ok := systemFlags[FlagKey(s)]
		return ok
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
		switch c {
		case '(', ')', '{', '%', '*', '"', '\\', ']':
			return false
		}
	}
	return true
}

// CleanFlags splits flags into those that can be appended and those that
// cannot. dropped gets \Recent (never sent), anything ValidKeyword rejects,
// and, when permanent is non-nil (the mailbox's PERMANENTFLAGS), every flag
// not listed in it, except that a keyword is kept when permanent holds \*
// (RFC 3501 §7.1: new keywords may be created). A nil permanent keeps every
// valid flag. Flags compare case-insensitively (SameFlags); system
// flags are kept in their canonical spelling, keywords as given, each once,
// in the order given. Both results are nil when empty.
func CleanFlags(flags []string, permanent []string) (kept, dropped []string) {
	anyKeyword := false
	allowed := make(map[string]bool, len(permanent))
	for _, p := range permanent {
		if p == `\*` {
			anyKeyword = true
		}
		allowed[FlagKey(p)] = true
	}
	seen := make(map[string]bool, len(flags))
	for _, f := range flags {
		lf := FlagKey(f)
		if seen[lf] {
			continue
		}
		seen[lf] = true
		ok := ValidKeyword(f)
		if ok && permanent != nil && !allowed[lf] {
			ok = anyKeyword && f[0] != '\\'
		}
		if !ok {
			dropped = append(dropped, f)
			continue
		}
		if canon, sys := systemFlags[lf]; sys {
			f = canon
		}
		kept = append(kept, f)
	}
	return kept, dropped
}

// SameFlags reports whether two flag lists name the same flags, the one
// rule by which mailferry compares flags (flag sync and verify alike):
//
//   - Case does not matter, for system flags and keywords alike. A keyword
//     is an atom (RFC 3501 §9 and RFC 9051 §9, flag-keyword), and "except
//     as noted otherwise, all alphabetic characters are case-insensitive"
//     (the note opening both grammars); RFC 8621 §4.1.1 says it outright:
//     "a keyword is a case-insensitive string". Dovecot 2.3 behaves so: it
//     stores one keyword per mailbox whatever the case, spelled as first
//     created there (APPEND ($label $LABEL) to a mailbox that knows $Label
//     gives one flag, $Label; STORE +FLAGS ($label) adds nothing; SEARCH
//     KEYWORD $LABEL finds it). So a copy's flags may come back in the
//     destination's spelling and are still the same flags.
//   - \Recent is ignored: the server sets it per session and no client may
//     (RFC 3501 §2.3.2; RFC 9051 dropped it).
//   - Order and repetition do not matter: FLAGS is a set.
func SameFlags(a, b []string) bool {
	na, nb := flagSet(a), flagSet(b)
	if len(na) != len(nb) {
		return false
	}
	for f := range na {
		if !nb[f] {
			return false
		}
	}
	return true
}

// FlagKey is the form under which SameFlags compares a flag: ASCII letters
// in lower case (the ABNF's case-insensitivity covers ASCII only).
func FlagKey(f string) string {
	for i := 0; i < len(f); i++ {
		if c := f[i]; c >= 'A' && c <= 'Z' {
			b := []byte(f)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return f
}

// flagSet is fs as a set of FlagKeys, without \Recent.
func flagSet(fs []string) map[string]bool {
	set := make(map[string]bool, len(fs))
	for _, f := range fs {
		if k := FlagKey(f); k != `\recent` {
			set[k] = true
		}
	}
	return set
}
