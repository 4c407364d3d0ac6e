// Package bearer holds the message formats of the OAuth2 bearer-token SASL
// mechanisms, shared by the POP3 and IMAP clients: the initial client
// responses of XOAUTH2 (Google's and Microsoft's) and OAUTHBEARER
// (RFC 7628 §3.1), the status of a server's error challenge
// (RFC 7628 §3.2.2) and the error for a rejected token. The token is never
// kept or printed here.
package bearer

import (
	"encoding/json"
	"strings"
)

// XOAuth2 is the XOAUTH2 initial client response, before base64.
func XOAuth2(user, token string) []byte {
	return []byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")
}

// OAuthBearer is the OAUTHBEARER initial client response (RFC 7628 §3.1),
// before base64, with a gs2 header naming user as the authorization
// identity.
func OAuthBearer(user, token string) []byte {
	return []byte("n,a=" + gs2Escape(user) + ",\x01auth=Bearer " + token + "\x01\x01")
}

// InitialResponse is the initial client response (before base64) of m,
// XOAUTH2 or OAUTHBEARER.
func InitialResponse(m Method, user, token string) []byte {
	if m == MethodXOAuth2 {
		return XOAuth2(user, token)
	}
	return OAuthBearer(user, token)
}

// gs2Escape escapes "," and "=" in a gs2 saslname (RFC 5801 §4).
func gs2Escape(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// ChallengeStatus returns the "status" of an error challenge (the JSON
// document, already base64-decoded), "" when it is not one. The result is
// safe to print: control characters are removed and it is at most 64 bytes.
func ChallengeStatus(challenge []byte) string {
	var v struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(challenge, &v) != nil {
		return ""
	}
	s := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, v.Status)
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}
