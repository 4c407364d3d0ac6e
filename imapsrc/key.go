package imapsrc

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/pipeline"
)

// FormatKey returns the key of the message uid in mailbox while the mailbox
// has uidValidity: "<mailbox>\x00<uidvalidity>\x00<uid>", both numbers in
// decimal. A mailbox name never contains NUL (RFC 3501 §5.1), so the key
// splits back unambiguously.
func FormatKey(mailbox string, uidValidity, uid uint32) string {
	return mailbox + "\x00" + strconv.FormatUint(uint64(uidValidity), 10) + "\x00" + strconv.FormatUint(uint64(uid), 10)
}

// ParseKey splits a key made by FormatKey. It accepts exactly what FormatKey
// makes: a non-empty mailbox, and numbers in canonical decimal (no sign, no
// leading zeros) that are not 0 (RFC 3501 §2.3.1.1: UIDs and UIDVALIDITY
// are non-zero). Otherwise it returns an error wrapping ErrBadKey.
func ParseKey(key string) (mailbox string, uidValidity, uid uint32, err error) {
	parts := strings.Split(key, "\x00")
	if len(parts) != 3 || parts[0] == "" {
		return "", 0, 0, badKey(key, "want <mailbox>\\x00<uidvalidity>\\x00<uid>")
	}
	if uidValidity, err = parseNonZero(parts[1]); err != nil {
		return "", 0, 0, badKey(key, "UIDVALIDITY: "+err.Error())
	}
	if uid, err = parseNonZero(parts[2]); err != nil {
		return "", 0, 0, badKey(key, "UID: "+err.Error())
	}
	return parts[0], uidValidity, uid, nil
}

func parseNonZero(s string) (uint32, error) {
	if s == "" || s[0] < '1' || s[0] > '9' {
		return 0, fmt.Errorf("%q is not a positive decimal number without leading zeros", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a decimal number", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return uint32(n), nil
}

func badKey(key, why string) error {
	return perMessage(fmt.Errorf("parsing key %q: %s: %w", key, why, ErrBadKey))
}

// SameOrigin tells whether oldKey may be an earlier identity of newKey:
// the same source folder under another UIDVALIDITY (RFC 3501 §2.3.1.1: a
// server that renumbers a folder changes its UIDVALIDITY), so the message
// behind newKey may be the one copied as oldKey. Keys that FormatKey did
// not make are never the same origin.
func SameOrigin(oldKey, newKey string) bool {
	o, ok1 := KeyFolder(oldKey)
	n, ok2 := KeyFolder(newKey)
	return ok1 && ok2 && o.Folder == n.Folder && o.Generation != n.Generation
}

// KeyPrefix is what every key FormatKey makes for mailbox under
// uidValidity starts with ("<mailbox>\x00<uidvalidity>\x00"); with
// uidValidity 0, what every key of mailbox starts with, under any
// UIDVALIDITY ("<mailbox>\x00"). A ledger scan by it reads one folder.
func KeyPrefix(mailbox string, uidValidity uint32) string {
	if uidValidity == 0 {
		return mailbox + "\x00"
	}
	return mailbox + "\x00" + strconv.FormatUint(uint64(uidValidity), 10) + "\x00"
}

// KeyFolder says where a key made by FormatKey puts its message: the
// prefix of its folder's keys (KeyPrefix with uidValidity 0), of its
// folder's keys under its UIDVALIDITY (its generation), the UIDVALIDITY and
// the UID; ok is false for keys FormatKey did not make. It is
// pipeline.Options.KeyFolder for IMAP sources: keys of another generation
// of a listed folder can never be listed again.
func KeyFolder(key string) (pipeline.KeyPlace, bool) {
	mailbox, uv, uid, err := ParseKey(key)
	if err != nil {
		return pipeline.KeyPlace{}, false
	}
	return pipeline.KeyPlace{Mailbox: mailbox, Folder: KeyPrefix(mailbox, 0), Generation: KeyPrefix(mailbox, uv), UIDValidity: uv, UID: uid}, true
}
