package mapping

import "strings"

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
