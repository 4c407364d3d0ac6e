package config

import (
	"errors"
	"net"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Endpoint
		addr string
	}{
		{"pop3s default port", "pop3s://alice@pop.example",
			Endpoint{Protocol: POP3, TLS: TLSImplicit, Host: "pop.example", Port: 995, User: "alice"}, "pop.example:995"},
		{"pop3 STLS", "pop3://alice@pop.example",
			Endpoint{Protocol: POP3, TLS: TLSStartTLS, Host: "pop.example", Port: 110, User: "alice"}, "pop.example:110"},
		{"imaps default port", "imaps://alice@imap.example",
			Endpoint{Protocol: IMAP, TLS: TLSImplicit, Host: "imap.example", Port: 993, User: "alice"}, "imap.example:993"},
		{"imap STARTTLS", "imap://alice@imap.example",
			Endpoint{Protocol: IMAP, TLS: TLSStartTLS, Host: "imap.example", Port: 143, User: "alice"}, "imap.example:143"},
		{"explicit port", "imaps://alice@imap.example:1993",
			Endpoint{Protocol: IMAP, TLS: TLSImplicit, Host: "imap.example", Port: 1993, User: "alice"}, "imap.example:1993"},
		{"no user", "pop3s://pop.old.example:995",
			Endpoint{Protocol: POP3, TLS: TLSImplicit, Host: "pop.old.example", Port: 995}, "pop.old.example:995"},
		{"percent-encoded at in user", "imaps://user%40example.com@imap.example",
			Endpoint{Protocol: IMAP, TLS: TLSImplicit, Host: "imap.example", Port: 993, User: "user@example.com"}, "imap.example:993"},
		{"percent-encoded colon in user", "imaps://a%3Ab@h",
			Endpoint{Protocol: IMAP, TLS: TLSImplicit, Host: "h", Port: 993, User: "a:b"}, "h:993"},
		{"IPv6 literal with port", "imap://bob@[::1]:1143",
			Endpoint{Protocol: IMAP, TLS: TLSStartTLS, Host: "::1", Port: 1143, User: "bob"}, "[::1]:1143"},
		{"IPv6 literal default port", "imaps://bob@[2001:db8::1]",
			Endpoint{Protocol: IMAP, TLS: TLSImplicit, Host: "2001:db8::1", Port: 993, User: "bob"}, "[2001:db8::1]:993"},
		{"mailbox path", "imaps://alice@h/Archive/2020",
			Endpoint{Protocol: IMAP, TLS: TLSImplicit, Host: "h", Port: 993, User: "alice", Mailbox: "Archive/2020"}, "h:993"},
		{"encoded mailbox", "imaps://alice@h/Sent%20Items%23",
			Endpoint{Protocol: IMAP, TLS: TLSImplicit, Host: "h", Port: 993, User: "alice", Mailbox: "Sent Items#"}, "h:993"},
		{"mailbox with at sign after user", "imaps://alice@h/Lists/foo@bar",
			Endpoint{Protocol: IMAP, TLS: TLSImplicit, Host: "h", Port: 993, User: "alice", Mailbox: "Lists/foo@bar"}, "h:993"},
		{"encoded at sign in mailbox, no user", "imaps://h:993/Other Users/bob%40x",
			Endpoint{Protocol: IMAP, TLS: TLSImplicit, Host: "h", Port: 993, Mailbox: "Other Users/bob@x"}, "h:993"},
		{"trailing slash", "imaps://alice@h/",
			Endpoint{Protocol: IMAP, TLS: TLSImplicit, Host: "h", Port: 993, User: "alice"}, "h:993"},
		{"tls none", "imap://alice@127.0.0.1:1143?tls=none",
			Endpoint{Protocol: IMAP, TLS: TLSNone, Host: "127.0.0.1", Port: 1143, User: "alice"}, "127.0.0.1:1143"},
		{"auth plain and tls none", "pop3://alice@localhost:1110?tls=none&auth=plain",
			Endpoint{Protocol: POP3, TLS: TLSNone, Auth: AuthPlain, Host: "localhost", Port: 1110, User: "alice"}, "localhost:1110"},
		{"auth xoauth2", "imaps://alice@h?auth=xoauth2",
			Endpoint{Protocol: IMAP, TLS: TLSImplicit, Auth: AuthXOAuth2, Host: "h", Port: 993, User: "alice"}, "h:993"},
		{"auth oauthbearer", "pop3s://alice@h?auth=oauthbearer",
			Endpoint{Protocol: POP3, TLS: TLSImplicit, Auth: AuthOAuthBearer, Host: "h", Port: 995, User: "alice"}, "h:995"},
		{"upper-case scheme", "IMAPS://alice@h",
			Endpoint{Protocol: IMAP, TLS: TLSImplicit, Host: "h", Port: 993, User: "alice"}, "h:993"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseURL(tt.in)
			if err != nil {
				t.Fatalf("ParseURL(%q) error: %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseURL(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			if a := got.Addr(); a != tt.addr {
				t.Errorf("ParseURL(%q).Addr() = %q, want %q", tt.in, a, tt.addr)
			}
			again, err := ParseURL(got.String())
			if err != nil || again != got {
				t.Errorf("ParseURL(%q) after String() = %#v, %v; want %#v", got.String(), again, err, got)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr error  // checked with errors.Is when set
		wantSub string // the message must contain it
		secret  string // the message must not contain it
	}{
		{"password refused", "imaps://alice:hunter2@h", ErrPasswordInURL, "environment variable", "hunter2"},
		{"password with at sign", "imaps://alice:pa@ss123@h", ErrPasswordInURL, "file", "ss123"},
		{"password with slash", "imaps://alice:pa/ss123@h", ErrPasswordInURL, "", "ss123"},
		{"password with slash, numeric start", "imaps://alice:123/ss456@h", ErrPasswordInURL, "", "ss456"},
		{"password with question mark", "imaps://alice:pa?ss123@h", ErrPasswordInURL, "", "ss123"},
		{"password with hash", "imaps://alice:pa#ss123@h", ErrPasswordInURL, "", "ss123"},
		{"password with ampersand", "imaps://al?ice:x&secret9=1@h", ErrPasswordInURL, "", "secret9"},
		{"raw at sign in mailbox without user", "imaps://h:993/bob@x", ErrPasswordInURL, "%40", ""},
		{"empty password", "imaps://alice:@h", ErrPasswordInURL, "", ""},
		{"http scheme", "http://h", ErrUnsupportedScheme, `"http"`, ""},
		{"smtp scheme", "smtp://alice@h", ErrUnsupportedScheme, "pop3s, pop3, imaps or imap", ""},
		{"no scheme", "alice@h", nil, "scheme://", ""},
		{"CRLF raw", "imaps://alice@h/INBOX\r\nA1 LOGOUT", nil, "control character", ""},
		{"CRLF encoded in user", "imaps://alice%0D%0Aa1%20LOGOUT@h", nil, "control character", ""},
		{"NUL encoded in mailbox", "imaps://alice@h/IN%00BOX", nil, "control character", ""},
		{"NUL raw", "imaps://alice@h\x00", nil, "control character", ""},
		{"bad escape", "imaps://alice%zz@h", nil, "percent escape", ""},
		{"invalid UTF-8", "imaps://alice%ff@h", nil, "UTF-8", ""},
		{"port zero", "imaps://h:0", nil, "invalid port", ""},
		{"port too big", "imaps://h:65536", nil, "invalid port", ""},
		{"empty port", "imaps://h:", nil, "empty port", ""},
		{"missing host", "imaps://alice@", nil, "missing host", ""},
		{"empty user", "imaps://@h", nil, "empty user", ""},
		{"IPv6 without brackets", "imap://::1", nil, "brackets", ""},
		{"bad IPv6", "imap://[nothex]:143", nil, "IPv6", ""},
		{"IPv6 zone", "imap://[fe80::1%25eth0]:143", nil, "zone", ""},
		{"IPv4 in brackets", "imap://[127.0.0.1]:143", nil, "IPv6", ""},
		{"space in host", "imaps://my host", nil, "invalid character", ""},
		{"unicode host", "imaps://exämple.org", nil, "punycode", ""},
		{"POP3 with mailbox", "pop3s://alice@h/INBOX", nil, "POP3 has no mailboxes", ""},
		{"fragment", "imaps://alice@h/INBOX#x", nil, "fragment", ""},
		{"tls none with imaps", "imaps://alice@h?tls=none", nil, "imap://", ""},
		{"tls other value", "imap://alice@h?tls=required", nil, "only tls=none", ""},
		{"auth unknown", "imap://alice@h?auth=cram-md5", nil, "auth must be", ""},
		{"unknown parameter", "imap://alice@h?tsl=none", nil, "unknown query parameter", "tsl"},
		{"duplicate parameter", "imap://alice@h?tls=none&tls=none", nil, "twice", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep, err := ParseURL(tt.in)
			if err == nil {
				t.Fatalf("ParseURL(%q) = %#v, want an error", tt.in, ep)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("ParseURL(%q) error = %v, want errors.Is %v", tt.in, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantSub) {
				t.Errorf("ParseURL(%q) error = %q, want it to contain %q", tt.in, err, tt.wantSub)
			}
			if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
				t.Errorf("ParseURL(%q) error = %q echoes %q", tt.in, err, tt.secret)
			}
		})
	}
}

func TestEndpointString(t *testing.T) {
	tests := []struct {
		name string
		ep   Endpoint
		want string
	}{
		{"user with at and colon", Endpoint{Protocol: IMAP, TLS: TLSImplicit, Host: "h", Port: 993, User: "a:b@c"},
			"imaps://a%3Ab%40c@h:993"},
		{"IPv6 and mailbox", Endpoint{Protocol: IMAP, TLS: TLSStartTLS, Host: "::1", Port: 1143, User: "u", Mailbox: "Sent Items/100%"},
			"imap://u@[::1]:1143/Sent%20Items/100%25"},
		{"plaintext with auth", Endpoint{Protocol: POP3, TLS: TLSNone, Auth: AuthPlain, Host: "localhost", Port: 1110, User: "u"},
			"pop3://u@localhost:1110?tls=none&auth=plain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ep.String(); got != tt.want {
				t.Errorf("%#v.String() = %q, want %q", tt.ep, got, tt.want)
			}
		})
	}
}

// isAlnumSecret reports whether p is distinctive enough that finding it in an
// error message means it leaked rather than matched fixed help text.
func isAlnumSecret(p string) bool {
	if len(p) < 8 {
		return false
	}
	digit, letter := false, false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letter = true
		default:
			return false
		}
	}
	return digit && letter
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"pop3s://alice@pop.example", "imap://bob@[::1]:1143/INBOX?tls=none&auth=plain",
		"imaps://user%40example.com@h:993/Sent%20Items", "imaps://alice:hunter2@h", "imaps://a:b/c@d",
		"imap://h?tls=none", "pop3://[fe80::1%25x]:1", "imaps://h:/x", "imaps://h/%", "imaps://@",
	} {
		f.Add(s, "", "")
	}
	f.Add("", "alice", "s3cretPW")
	f.Add("", "a/b", "pa55word")
	f.Fuzz(func(t *testing.T, s, user, pass string) {
		if user != "" || pass != "" {
			s = "imaps://" + user + ":" + pass + "@" + s
		}
		ep, err := ParseURL(s)
		if isAlnumSecret(pass) && !strings.Contains(user, pass) && !strings.Contains(strings.TrimPrefix(s, "imaps://"+user+":"+pass), pass) {
			if err == nil && strings.Contains(ep.String(), pass) {
				t.Fatalf("ParseURL(%q) kept the password: %s", s, ep)
			}
			if err != nil && strings.Contains(err.Error(), pass) {
				t.Fatalf("ParseURL(%q) error echoes the password: %v", s, err)
			}
		}
		if err != nil {
			return
		}
		if ep.Port < 1 || ep.Port > 65535 {
			t.Fatalf("ParseURL(%q) port %d", s, ep.Port)
		}
		for _, v := range []string{ep.User, ep.Mailbox, ep.Host} {
			if strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("ParseURL(%q) = %#v holds a control character", s, ep)
			}
		}
		if _, _, err := net.SplitHostPort(ep.Addr()); err != nil {
			t.Fatalf("ParseURL(%q).Addr() = %q: %v", s, ep.Addr(), err)
		}
		again, err := ParseURL(ep.String())
		if err != nil || again != ep {
			t.Fatalf("ParseURL(%q) = %#v; its String %q parses to %#v, %v", s, ep, ep.String(), again, err)
		}
	})
}
