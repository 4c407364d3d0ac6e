package pop3src

import (
	"strings"
)

// statusKind is the first token of a server reply.
type statusKind int

const (
	statusOK           statusKind = iota + 1 // "+OK" (RFC 1939 §3)
	statusErr                                // "-ERR" (RFC 1939 §3)
	statusContinuation                       // "+ " SASL challenge (RFC 5034 §4)
)

// status is one parsed status line.
type status struct {
	kind statusKind
	code string // RFC 2449 §8 response code, without brackets
	text string // the rest of the line; for a continuation, the base64 challenge
}

// parseStatus parses a status line without its line ending.
//
// RFC 1939 §3 says status indicators are upper case; mixed case is accepted,
// since nothing is gained by failing on it. A response code (RFC 2449 §8) is
// recognised only directly after the indicator: "-ERR [IN-USE] locked".
// A "[" without a closing "]" is treated as text, not as a code.
func parseStatus(line string) (status, bool) {
	var st status
	var rest string
	switch {
	case hasPrefixFold(line, "+OK") && (len(line) == 3 || line[3] == ' '):
		st.kind, rest = statusOK, line[3:]
	case hasPrefixFold(line, "-ERR") && (len(line) == 4 || line[4] == ' '):
		st.kind, rest = statusErr, line[4:]
	case line == "+" || strings.HasPrefix(line, "+ "):
		// RFC 5034 §4: "+" SP base64 challenge; some servers omit the space
		// for an empty challenge.
		st.kind = statusContinuation
		st.text = strings.TrimPrefix(strings.TrimPrefix(line, "+"), " ")
		return st, true
	default:
		return status{}, false
	}
	rest = strings.TrimPrefix(rest, " ")
	if strings.HasPrefix(rest, "[") {
		if end := strings.IndexByte(rest, ']'); end > 1 && !strings.ContainsAny(rest[1:end], " [") {
			st.code = rest[1:end]
			rest = strings.TrimPrefix(rest[end+1:], " ")
		}
	}
	st.text = rest
	return st, true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
