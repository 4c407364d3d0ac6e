package bearer

import "fmt"

// Method selects how a POP3 or IMAP client logs in. Each client package
// names it AuthMethod and documents what its zero value does (USER/PASS or
// LOGIN, switching to SASL PLAIN where needed).
type Method int

const (
	// MethodDefault is the protocol's own login, or PLAIN where needed.
	MethodDefault Method = iota
	// MethodPlain always uses SASL PLAIN (RFC 4616).
	MethodPlain
	// MethodXOAuth2 sends the password as an OAuth2 bearer token with
	// Google's and Microsoft's XOAUTH2 mechanism.
	MethodXOAuth2
	// MethodOAuthBearer sends the password as an OAuth2 bearer token with
	// OAUTHBEARER (RFC 7628).
	MethodOAuthBearer
)

func (m Method) String() string {
	switch m {
	case MethodDefault:
		return "default"
	case MethodPlain:
		return "plain"
	case MethodXOAuth2:
		return "xoauth2"
	case MethodOAuthBearer:
		return "oauthbearer"
	}
	return fmt.Sprintf("AuthMethod(%d)", int(m))
}

// Mechanism is the SASL name of an OAuth2 method, "" for the others.
func (m Method) Mechanism() string {
	switch m {
	case MethodXOAuth2:
		return "XOAUTH2"
	case MethodOAuthBearer:
		return "OAUTHBEARER"
	}
	return ""
}
