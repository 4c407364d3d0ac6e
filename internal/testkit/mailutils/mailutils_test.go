package mailutils

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/testkit/mailserver"
)

func TestSmoke(t *testing.T) {
	begin := time.Now()
	s := Start(t, Options{Users: map[string]string{"alice": "alice-pw", "bob": "bob-pw"}})
	t.Logf("%s started in %v at %+v", s.Info(), time.Since(begin).Round(time.Millisecond), s.Endpoints())
	if s.Info().Version == "" {
		t.Errorf("no package version recorded")
	}
	mailserver.SmokeIMAP(t, s, "alice", "alice-pw")
	mailserver.SmokePOP3(t, s, "bob", "bob-pw")
	if err := s.AddUser(context.Background(), "carol", "carol-pw"); err != nil {
		t.Fatal(err)
	}
	mailserver.SmokePOP3(t, s, "carol", "carol-pw")
}

func TestMboxEntry(t *testing.T) {
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct{ name, in, want string }{
		{"crlf", "A: 1\r\n\r\nbody\r\n", "From MAILER-DAEMON Tue Jan  2 03:04:05 2024\nA: 1\n\nbody\n\n"},
		{"no final newline", "A: 1\n\nbody", "From MAILER-DAEMON Tue Jan  2 03:04:05 2024\nA: 1\n\nbody\n\n"},
		{"from quoting", "A: 1\n\nFrom me\n>From you\nFromage\n", "From MAILER-DAEMON Tue Jan  2 03:04:05 2024\nA: 1\n\n>From me\n>>From you\nFromage\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(mboxEntry([]byte(tt.in), at)); got != tt.want {
				t.Errorf("mboxEntry(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestNoInbox pins the first-contact behaviour Options.NoInbox offers: an
// account that never received mail has an INBOX that STATUS cannot open
// and APPEND answers with TRYCREATE, until a SELECT creates it.
func TestNoInbox(t *testing.T) {
	s := Start(t, Options{NoInbox: true, Users: map[string]string{"alice": "pw"}})
	ctx := context.Background()
	c, err := mailserver.Account{Addr: s.IMAPAddr(), User: s.Login("alice"), Password: "pw"}.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait(); err == nil {
		t.Errorf("STATUS INBOX of a fresh account succeeded, want NO")
	}
	msg := mailserver.SmokeMessage("first contact")
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	cmd.Write(msg)
	cmd.Close()
	// Mailutils puts the code after the command name, where RFC 3501
	// §7.1 does not allow it: go-imap leaves it in the text.
	var ierr *imap.Error
	if _, err := cmd.Wait(); !errors.As(err, &ierr) || ierr.Code != "" || ierr.Text != "APPEND [TRYCREATE] failed" {
		t.Errorf("APPEND to the INBOX of a fresh account: %#v, want NO with the text \"APPEND [TRYCREATE] failed\"", err)
	}
	if _, err := cmd.Wait(); !mailserver.IsTryCreate(err) {
		t.Errorf("IsTryCreate(%v) = false", err)
	}
	// The kit's Append gets past it with a SELECT.
	if err := s.Append(ctx, "alice", "INBOX", msg, nil, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Messages(ctx, "alice", "INBOX")
	if err != nil || len(got) != 1 {
		t.Fatalf("Messages = %d messages, %v; want 1", len(got), err)
	}
}
