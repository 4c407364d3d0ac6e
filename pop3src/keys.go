package pop3src

import (
	"strings"

	"github.com/mailferry/mailferry/pipeline"
)

// UIDLOfKey returns the server's UIDL behind a key made by Source.List, and
// false for keys made from content digests on servers without UIDL
// ("sha256:...", or "unreadable:<size>" for one the server would not
// serve). Keys of messages that share a UIDL carry a digest suffix
// ("<uidl>#sha256:...", "<uidl>#unreadable:<size>"), which is cut off.
func UIDLOfKey(key string) (string, bool) {
	if strings.HasPrefix(key, "sha256:") || strings.HasPrefix(key, "unreadable:") || key == "" {
		return "", false
	}
	if i := strings.Index(key, "#sha256:"); i >= 0 {
		key = key[:i]
	}
	if i := strings.Index(key, "#unreadable:"); i >= 0 {
		key = key[:i]
	}
	return key, key != ""
}

// XUIDLHeader returns the header field "X-UIDL: <uidl>\r\n" for a message
// listed by Source.List, to put before its bytes so that a Dovecot
// destination with pop3_reuse_xuidl serves the UIDLs the users' POP3
// clients know; "" when the server gave the message no UIDL (RFC 1939 §7:
// a UIDL is 1 to 70 printable characters, so it never holds CR or LF).
// It is pipeline.Options.AddHeader for --x-uidl.
func XUIDLHeader(m pipeline.SourceMessage) string {
	uidl, ok := UIDLOfKey(m.Key)
	if !ok || strings.ContainsAny(uidl, "\r\n") {
		return ""
	}
	return "X-UIDL: " + uidl + "\r\n"
}
