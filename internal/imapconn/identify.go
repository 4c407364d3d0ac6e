package imapconn

import (
	"net"
	"strings"

	"github.com/mailferry/mailferry/provider"
)

// Greeting is the text of the server's greeting, after its status and
// response code ("Dovecot ready.", "Gimap ready for requests from …").
func (s *Conn) Greeting() string { return s.greeting }

// Server is what the server said about itself, its capabilities and its
// greeting, for provider.Identify.
//
// It asks for no ID (RFC 2971): go-imap v2.0.0-beta.8 cannot read an ID
// response other than NIL (its readID tries NIL first and leaves the
// decoder failed, so the next response is misread: "cannot read tag:
// expected atom, got '('"), and Gmail and Exchange tell themselves by
// capability and greeting anyway.
func (s *Conn) Server() provider.Server {
	host, _, err := net.SplitHostPort(s.addr)
	if err != nil {
		host = s.addr
	}
	ps := provider.Server{Host: host, Greeting: s.greeting}
	for c := range s.c.Caps() {
		ps.Capabilities = append(ps.Capabilities, string(c))
	}
	return ps
}

// greetingText is the human-readable text of a greeting line's status
// (after the status and any response code).
func greetingText(g greeting) string { return strings.TrimSpace(g.text) }
