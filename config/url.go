package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Protocol is the mail protocol of an Endpoint.
type Protocol int

// Protocols.
const (
	POP3 Protocol = iota + 1
	IMAP
)

func (p Protocol) String() string {
	switch p {
	case POP3:
		return "pop3"
	case IMAP:
		return "imap"
	}
	return "unknown"
}

// TLSMode says how a connection is secured.
type TLSMode int

// TLS modes.
const (
	// TLSImplicit starts TLS before the protocol greeting (pop3s, imaps).
	TLSImplicit TLSMode = iota + 1
	// TLSStartTLS upgrades a plain connection: POP3 STLS (RFC 2595 §4),
	// IMAP STARTTLS (RFC 9051 §6.2.1). The upgrade is required, never optional.
	TLSStartTLS
	// TLSNone sends everything in clear text. Only with ?tls=none in the URL,
	// and only used when the caller also allows plaintext (allow_plaintext).
	TLSNone
)

func (m TLSMode) String() string {
	switch m {
	case TLSImplicit:
		return "implicit"
	case TLSStartTLS:
		return "starttls"
	case TLSNone:
		return "none"
	}
	return "unknown"
}

// Auth is the authentication mechanism. The zero value is the protocol's
// default: IMAP LOGIN (RFC 9051 §6.2.3) or POP3 USER/PASS (RFC 1939 §7).
type Auth string

// Authentication mechanisms.
const (
	AuthDefault Auth = ""
	AuthLogin   Auth = "login" // IMAP LOGIN, POP3 USER/PASS
	AuthPlain   Auth = "plain" // SASL PLAIN (RFC 4616): IMAP AUTHENTICATE, POP3 AUTH (RFC 5034)
	// OAuth2 bearer tokens: the account's password source yields the token,
	// read again for every new connection.
	AuthXOAuth2     Auth = "xoauth2"     // Google's and Microsoft's XOAUTH2
	AuthOAuthBearer Auth = "oauthbearer" // OAUTHBEARER (RFC 7628)
)

// authChoices lists the accepted values of auth, for error messages.
const authChoices = `"login", "plain", "xoauth2" or "oauthbearer"`

// IsOAuth2 reports whether a is a bearer-token mechanism.
func (a Auth) IsOAuth2() bool { return a == AuthXOAuth2 || a == AuthOAuthBearer }

func parseAuth(s string) (Auth, error) {
	switch Auth(s) {
	case AuthDefault, AuthLogin, AuthPlain, AuthXOAuth2, AuthOAuthBearer:
		return Auth(s), nil
	}
	return "", fmt.Errorf("unsupported auth %q (want %s)", s, authChoices)
}

// Default ports (RFC 8314 §7 for the implicit-TLS ones).
const (
	PortPOP3  = 110
	PortPOP3S = 995
	PortIMAP  = 143
	PortIMAPS = 993
)

// Endpoint is a parsed server URL. It never holds a password: ParseURL refuses
// URLs that carry one.
type Endpoint struct {
	Protocol Protocol
	TLS      TLSMode
	Auth     Auth
	Host     string // without brackets for IPv6 literals
	Port     int
	User     string // percent-decoded; "" when the URL has none
	Mailbox  string // percent-decoded path without the leading "/"; "" when none
}

// ErrPasswordInURL is returned (wrapped) by ParseURL for user:password@host.
var ErrPasswordInURL = errors.New("a password in the URL is refused: put it in an environment variable " +
	"(MAILFERRY_SOURCE_PASSWORD, MAILFERRY_DEST_PASSWORD, *_password_env) or a file " +
	"(--source-password-file, --dest-password-file, *_password_file)")

// ErrUnsupportedScheme is returned (wrapped) by ParseURL for a scheme other
// than pop3s, pop3, imaps and imap.
var ErrUnsupportedScheme = errors.New("unsupported scheme")

// ParseURL parses a server URL:
//
//	scheme://[user@]host[:port][/Mailbox/Path][?tls=none][&auth=plain|login|xoauth2|oauthbearer]
//
// Schemes: pop3s (implicit TLS, port 995), pop3 (STLS, 110), imaps (993),
// imap (STARTTLS, 143); the scheme is case-insensitive. The user is
// percent-decoded (user%40example.com); a literal ":" in a user name must be
// written %3A, because "user:password@" is refused with ErrPasswordInURL.
// IPv6 hosts go in brackets ([::1]:1143). The mailbox path is percent-decoded
// and only allowed for IMAP. Query parameters: tls=none (plaintext, only with
// the pop3 and imap schemes) and auth=login|plain|xoauth2|oauthbearer. CR, LF, NUL and other
// control characters are refused, raw or percent-encoded. Errors never
// contain a password, nor the text after a host's ":" that is not a port.
func ParseURL(s string) (Endpoint, error) {
	ep, err := parseURL(s)
	if err != nil {
		return Endpoint{}, fmt.Errorf("parsing URL: %w", err)
	}
	return ep, nil
}

func parseURL(s string) (Endpoint, error) {
	var ep Endpoint
	if i := strings.IndexFunc(s, isControl); i >= 0 {
		return ep, fmt.Errorf("control character at byte %d (CR, LF, NUL and the like are refused)", i)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return ep, errors.New(`missing "scheme://" (want pop3s://, pop3://, imaps:// or imap://)`)
	}
	var defPort int
	switch strings.ToLower(scheme) {
	case "pop3s":
		ep.Protocol, ep.TLS, defPort = POP3, TLSImplicit, PortPOP3S
	case "pop3":
		ep.Protocol, ep.TLS, defPort = POP3, TLSStartTLS, PortPOP3
	case "imaps":
		ep.Protocol, ep.TLS, defPort = IMAP, TLSImplicit, PortIMAPS
	case "imap":
		ep.Protocol, ep.TLS, defPort = IMAP, TLSStartTLS, PortIMAP
	default:
		if !isSchemeToken(scheme) {
			return ep, fmt.Errorf("%w (want pop3s, pop3, imaps or imap)", ErrUnsupportedScheme)
		}
		return ep, fmt.Errorf("%w %q (want pop3s, pop3, imaps or imap)", ErrUnsupportedScheme, scheme)
	}

	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	if !strings.Contains(authority, "@") {
		// A password holding "/", "?" or "#" splits the URL before its "@":
		// "imaps://bob:pa/ss@host" must not parse as host "bob" with
		// mailbox "ss@host", nor quote "pa" as a bad port.
		// With no user before the host, an "@" later on is refused as
		// ambiguous ("imaps://bob:123/ss@host" is a password, not port 123).
		if at := strings.LastIndexByte(tail, '@'); at >= 0 {
			if strings.Contains(tail[:at], ":") || !plausiblePort(authority) {
				return Endpoint{}, ErrPasswordInURL
			}
			return Endpoint{}, fmt.Errorf(`ambiguous "@" after the host: write an "@" in a mailbox name as %%40 (and never put a password in the URL: %w)`, ErrPasswordInURL)
		}
	}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		userinfo := authority[:at]
		authority = authority[at+1:]
		if strings.Contains(userinfo, ":") {
			return Endpoint{}, ErrPasswordInURL
		}
		if userinfo == "" {
			return ep, errors.New(`empty user name before "@"`)
		}
		u, err := unescape(userinfo)
		if err != nil {
			return ep, fmt.Errorf("user name: %w", err)
		}
		ep.User = u
	}

	host, port, err := splitHostPort(authority)
	if err != nil {
		return Endpoint{}, err
	}
	ep.Host = host
	ep.Port = defPort
	if port != 0 {
		ep.Port = port
	}

	if i := strings.IndexByte(tail, '#'); i >= 0 {
		return Endpoint{}, errors.New(`a fragment ("#") is not allowed; write "#" in a mailbox name as %23`)
	}
	path, query, _ := strings.Cut(tail, "?")
	if path != "" && path != "/" {
		if ep.Protocol == POP3 {
			return Endpoint{}, errors.New("POP3 has no mailboxes: remove the path after the host")
		}
		mbox, err := unescape(path[1:])
		if err != nil {
			return Endpoint{}, fmt.Errorf("mailbox: %w", err)
		}
		ep.Mailbox = mbox
	}
	if err := parseQuery(&ep, query, scheme); err != nil {
		return Endpoint{}, err
	}
	return ep, nil
}

func parseQuery(ep *Endpoint, query, scheme string) error {
	if query == "" {
		return nil
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(query, "&") {
		k, v, _ := strings.Cut(kv, "=")
		// Parameter names are not quoted back: with a password holding "?"
		// or "&", they could be pieces of it.
		if seen[k] {
			return errors.New("a query parameter is given twice")
		}
		seen[k] = true
		switch k {
		case "tls":
			if v != "none" {
				return errors.New(`only tls=none is supported (TLS is chosen by the scheme)`)
			}
			if ep.TLS == TLSImplicit {
				return fmt.Errorf("tls=none contradicts the %s scheme; use %s://…?tls=none",
					strings.ToLower(scheme), strings.TrimSuffix(strings.ToLower(scheme), "s"))
			}
			ep.TLS = TLSNone
		case "auth":
			a, err := parseAuth(v)
			if err != nil || a == AuthDefault {
				return errors.New("auth must be " + authChoices)
			}
			ep.Auth = a
		default:
			return errors.New("unknown query parameter (supported: tls=none, auth=login|plain|xoauth2|oauthbearer)")
		}
	}
	return nil
}

// plausiblePort reports whether a host[:port] authority has no port or a
// numeric one.
func plausiblePort(a string) bool {
	if strings.HasPrefix(a, "[") {
		return true
	}
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		return true
	}
	p := a[i+1:]
	return p != "" && strings.Trim(p, "0123456789") == ""
}

// splitHostPort parses host[:port] and [v6]:port. Error messages never echo
// the port text: when a password contains "/" or "?", the URL splits early
// and the "port" is part of the password.
func splitHostPort(a string) (string, int, error) {
	if a == "" {
		return "", 0, errors.New("missing host")
	}
	var host, port string
	if a[0] == '[' {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return "", 0, errors.New(`IPv6 address without closing "]"`)
		}
		host = a[1:end]
		after := a[end+1:]
		if after != "" {
			if after[0] != ':' {
				return "", 0, errors.New(`unexpected text after "]" (want ":port")`)
			}
			port = after[1:]
			if port == "" {
				return "", 0, errors.New(`empty port after ":"`)
			}
		}
		addr, err := netip.ParseAddr(host)
		if err != nil || !addr.Is6() {
			return "", 0, errors.New("invalid IPv6 address in brackets")
		}
		if addr.Zone() != "" {
			return "", 0, errors.New("IPv6 zones (%) are not supported")
		}
	} else {
		switch strings.Count(a, ":") {
		case 0:
			host = a
		case 1:
			host, port, _ = strings.Cut(a, ":")
			if port == "" {
				return "", 0, errors.New(`empty port after ":"`)
			}
		default:
			return "", 0, errors.New("an IPv6 address must be in brackets, as in imap://user@[::1]:1143")
		}
		if err := checkHostname(host); err != nil {
			return "", 0, err
		}
	}
	if port == "" {
		return host, 0, nil
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || port[0] == '+' || port[0] == '-' {
		return "", 0, fmt.Errorf("invalid port for host %q (want a number from 1 to 65535)", host)
	}
	return host, n, nil
}

func checkHostname(h string) error {
	if h == "" {
		return errors.New("missing host")
	}
	if len(h) > 253 {
		return errors.New("host name longer than 253 bytes")
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		case c >= utf8.RuneSelf:
			return errors.New("non-ASCII host name: write it in its xn-- (punycode) form")
		default:
			return fmt.Errorf("invalid character %q in host name", c)
		}
	}
	return nil
}

// unescape percent-decodes s and refuses control characters and invalid UTF-8
// in the result.
func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
			return "", errors.New(`invalid percent escape ("%" must be followed by two hex digits; write "%" itself as %25)`)
		}
		b.WriteByte(byte(unhex(s[i+1])<<4 | unhex(s[i+2])))
		i += 2
	}
	out := b.String()
	if !utf8.ValidString(out) {
		return "", errors.New("not valid UTF-8")
	}
	if strings.IndexFunc(out, isControl) >= 0 {
		return "", errors.New("control character (CR, LF, NUL and the like are refused)")
	}
	return out, nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// isSchemeToken reports whether s is short and plain enough to quote in an
// error without risk of echoing part of a secret.
func isSchemeToken(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '+' || c == '.') {
			return false
		}
	}
	return true
}

// Scheme returns the URL scheme for the endpoint's protocol and TLS mode.
func (e Endpoint) Scheme() string {
	s := e.Protocol.String()
	if e.TLS == TLSImplicit {
		s += "s"
	}
	return s
}

// Addr returns host:port for net.Dial, with IPv6 literals in brackets.
func (e Endpoint) Addr() string {
	h := e.Host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	return h + ":" + strconv.Itoa(e.Port)
}

// String returns the endpoint as a URL that ParseURL accepts. It holds no
// secret: an Endpoint never has a password.
func (e Endpoint) String() string {
	var b strings.Builder
	b.WriteString(e.Scheme())
	b.WriteString("://")
	if e.User != "" {
		b.WriteString(escape(e.User, true))
		b.WriteByte('@')
	}
	b.WriteString(e.Addr())
	if e.Mailbox != "" {
		b.WriteByte('/')
		b.WriteString(escape(e.Mailbox, false))
	}
	sep := "?"
	if e.TLS == TLSNone {
		b.WriteString(sep + "tls=none")
		sep = "&"
	}
	if e.Auth != AuthDefault {
		b.WriteString(sep + "auth=" + string(e.Auth))
	}
	return b.String()
}

// escape percent-encodes what ParseURL would misread or refuse. In a user
// name ":", "/" and brackets are encoded too; in a mailbox "/" is kept as the
// path separator.
func escape(s string, user bool) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		enc := c <= ' ' || c == 0x7f || c == '%' || c == '?' || c == '#' || c == '@'
		if user {
			enc = enc || c == ':' || c == '/' || c == '[' || c == ']'
		}
		if enc {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
