package pop3src

import "strings"

// UIDLOfKey returns the server's UIDL behind a key made by Source.List, and
// false for keys made from content digests on servers without UIDL
// ("sha256:..."). Keys of messages that share a UIDL carry a digest suffix
// ("<uidl>#sha256:..."), which is cut off.
func UIDLOfKey(key string) (string, bool) {
	if strings.HasPrefix(key, "sha256:") || key == "" {
		return "", false
	}
	if i := strings.Index(key, "#sha256:"); i >= 0 {
		key = key[:i]
	}
	return key, key != ""
}
