package connlimit

import (
	"errors"
	"strings"
)

// Refuser is implemented by errors that know whether the server refused
// the connection because the user (or the client's address) has too many
// open: the adapters' login errors.
type Refuser interface {
	TooManyConnections() bool
}

// tooManyTexts are the refusals servers send when a user has too many
// connections, in lower case:
//
//   - Dovecot (mail_max_userip_connections), as the BYE or -ERR of the
//     login: "Maximum number of connections from user+IP exceeded
//     (mail_max_userip_connections=10)";
//   - Gmail: "[ALERT] Too many simultaneous connections. (Failure)";
//     Yahoo: "[LIMIT] Too many simultaneous connections";
//   - Exchange and Microsoft 365, and others: "too many connections",
//     "too many concurrent connections", "connection limit".
var tooManyTexts = []string{
	"maximum number of connections",
	"too many simultaneous connections",
	"too many concurrent connections",
	"too many connections",
	"too many open connections",
	"too many sessions",
	"connection limit",
	"mail_max_userip_connections",
}

// Refused reports whether err says that a server refused a connection
// because too many are open: an error in its chain that says so
// (Refuser), else the server's words in its text.
func Refused(err error) bool {
	if err == nil {
		return false
	}
	var r Refuser
	if errors.As(err, &r) {
		return r.TooManyConnections()
	}
	return TooManyText(err.Error())
}

// TooManyText reports whether a server's reply text says that the user
// (or the client's address) has too many connections open.
func TooManyText(text string) bool {
	s := strings.ToLower(text)
	for _, t := range tooManyTexts {
		if strings.Contains(s, t) {
			return true
		}
	}
	return false
}
