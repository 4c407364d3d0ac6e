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
		_, ok := systemFlags[strings.ToLower(s)]
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
// valid flag. Flags compare case-insensitively (RFC 3501 §2.3.2); system
// flags are kept in their canonical spelling, keywords as given, each once,
// in the order given. Both results are nil when empty.
func CleanFlags(flags []string, permanent []string) (kept, dropped []string) {
	anyKeyword := false
	allowed := make(map[string]bool, len(permanent))
	for _, p := range permanent {
		if p == `\*` {
			anyKeyword = true
		}
		allowed[strings.ToLower(p)] = true
	}
	seen := make(map[string]bool, len(flags))
	for _, f := range flags {
		lf := strings.ToLower(f)
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
