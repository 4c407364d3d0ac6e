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
	// One allocation, the key's (a listing makes one per message).
	var nums [2*10 + 2]byte
	b := append(nums[:0], 0)
	b = strconv.AppendUint(b, uint64(uidValidity), 10)
	b = append(b, 0)
	b = strconv.AppendUint(b, uint64(uid), 10)
	return mailbox + string(b)
}

// ParseKey splits a key made by FormatKey. It accepts exactly what FormatKey
// makes: a non-empty mailbox, and numbers in canonical decimal (no sign, no
// leading zeros) that are not 0 (RFC 3501 §2.3.1.1: UIDs and UIDVALIDITY
// are non-zero). Otherwise it returns an error wrapping ErrBadKey.
func ParseKey(key string) (mailbox string, uidValidity, uid uint32, err error) {
	mailbox, uvs, uids, ok := splitKey(key)
	if !ok {
		return "", 0, 0, badKey(key, "want <mailbox>\\x00<uidvalidity>\\x00<uid>")
	}
	if uidValidity, err = parseNonZero(uvs); err != nil {
		return "", 0, 0, badKey(key, "UIDVALIDITY: "+err.Error())
	}
	if uid, err = parseNonZero(uids); err != nil {
		return "", 0, 0, badKey(key, "UID: "+err.Error())
	}
	return mailbox, uidValidity, uid, nil
}

// splitKey cuts key at its two NULs, without allocating (the pipeline
// places every listed message's key: KeyFolder). ok is false unless there
// are exactly two and the mailbox is not empty.
func splitKey(key string) (mailbox, uidValidity, uid string, ok bool) {
	mailbox, rest, ok1 := strings.Cut(key, "\x00")
	uidValidity, uid, ok2 := strings.Cut(rest, "\x00")
	ok = ok1 && ok2 && mailbox != "" && strings.IndexByte(uid, 0) < 0
	return mailbox, uidValidity, uid, ok
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
	// The prefixes are the key's own: ParseKey accepts only the decimal
	// KeyPrefix writes, so they are KeyPrefix(mailbox, 0) and
	// KeyPrefix(mailbox, uv) without building them again (this runs for
	// every listed message, three times).
	folder := len(mailbox) + 1
	generation := folder + strings.IndexByte(key[folder:], 0) + 1
	return pipeline.KeyPlace{Mailbox: mailbox, Folder: key[:folder], Generation: key[:generation], UIDValidity: uv, UID: uid}, true
}
