package pop3src

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/mailferry/mailferry/secret"
)

// ErrNoAPOP is returned by Client.Apop when the server's greeting carries
// no timestamp, so it does not offer APOP (RFC 1939 §7).
var ErrNoAPOP = errors.New("pop3src: the server's greeting has no APOP timestamp")

// apopTimestamp returns the timestamp of a greeting's text (RFC 1939 §7:
// "a msg-id as in RFC 822", such as "<1896.697170952@dbc.mtview.ca.us>"),
// "" when it has none.
func apopTimestamp(greeting string) string {
	start := strings.IndexByte(greeting, '<')
	if start < 0 {
		return ""
	}
	end := strings.IndexByte(greeting[start:], '>')
	if end < 0 {
		return ""
	}
	ts := greeting[start : start+end+1]
	if !strings.Contains(ts, "@") || strings.ContainsAny(ts, " \t\r\n") {
		return ""
	}
	return ts
}

// OffersAPOP reports whether the greeting carries an APOP timestamp.
func (c *Client) OffersAPOP() bool { return apopTimestamp(c.greeting) != "" }

// Apop authenticates with APOP (RFC 1939 §7): the user name and the MD5
// digest of the greeting's timestamp followed by the password, so the
// password itself is never sent. MD5 is weak, and the digest lets an
// eavesdropper try passwords offline, so APOP is held to the same rule as
// PASS: only over TLS, or with AllowPlaintext. The digest appears in no
// trace or error.
func (c *Client) Apop(ctx context.Context, user string, password secret.Value) error {
	if err := c.checkPlaintext("APOP"); err != nil {
		return err
	}
	if err := checkArg("user name", user); err != nil {
		return err
	}
	if strings.ContainsAny(user, " \t") {
		return errors.New("pop3src: APOP: the user name contains white space")
	}
	ts := apopTimestamp(c.greeting)
	if ts == "" {
		return ErrNoAPOP
	}
	sum := md5.Sum([]byte(ts + password.Reveal()))
	shown := "APOP " + user + " ***"
	return c.do(ctx, shown, func() error {
		if err := c.send("APOP "+user+" "+hex.EncodeToString(sum[:]), shown); err != nil {
			return err
		}
		_, err := c.readStatus(shown)
		return err
	})
}

// UTF8 enters UTF-8 mode (RFC 6856 §2). A server that offers it may
// otherwise serve a message with raw UTF-8 in its header in another form:
// Courier's pop3d 1.0.16 replaces it, on every RETR, by a notice "Cannot
// display Unicode content" with a fresh MIME boundary. mailferry moves
// bytes, whatever their encoding, so it asks for the message as it is.
func (c *Client) UTF8(ctx context.Context) error {
	_, err := c.simple(ctx, "UTF8")
	return err
}

// utf8 sends UTF8 once, when caps (a CAPA before or after login) offer it.
// A refusal only costs the messages the server would alter: it is logged.
func (s *Source) utf8(ctx context.Context, caps Capabilities) error {
	if s.utf8Mode || !caps.Has("UTF8") {
		return nil
	}
	s.utf8Mode = true
	err := s.c.UTF8(ctx)
	var re *ResponseError
	if errors.As(err, &re) {
		s.log.Warn("the server offers UTF8 and refused it; messages with UTF-8 headers may be served altered", "reply", re.reply())
		return nil
	}
	return err
}
