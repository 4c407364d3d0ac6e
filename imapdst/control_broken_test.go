package imapdst

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/imapfake"
	"github.com/mailferry/mailferry/pipeline"
)

// TestControlReportsBye: a server that says BYE and hangs up while the
// control connection waits for a reply: the error carries the server's
// code and text, as a *ReplyError with status BYE (transient). go-imap
// drops the BYE; without imapbye the error said only that the
// connection closed.
func TestControlReportsBye(t *testing.T) {
	d, _ := dialFakeControl(t, append(controlLogin(""),
		imapfake.Expect("T2 EXAMINE INBOX\r\n"),
		imapfake.Send("* BYE [UNAVAILABLE] going down for maintenance\r\n"),
		imapfake.Close(),
	)...)
	_, err := d.ctl.examine(context.Background(), "INBOX")
	if err == nil {
		t.Fatal("examine after BYE: nil error")
	}
	var re *ReplyError
	if !errors.As(err, &re) || re.Status != "BYE" || re.Code != "UNAVAILABLE" || re.Text != "going down for maintenance" {
		t.Fatalf("examine after BYE = %v; want a *ReplyError BYE [UNAVAILABLE] going down for maintenance", err)
	}
	if !strings.Contains(err.Error(), "BYE [UNAVAILABLE] going down for maintenance") {
		t.Errorf("error %q does not show the server's reason", err)
	}
	if c := pipeline.ClassOf(err); c != pipeline.ClassTransient {
		t.Errorf("class %v, want transient", c)
	}
}

// TestControlLiteralCut: a FETCH reply whose literal ends early because
// the server hung up mid-body. The error says so, and the command is
// abandoned unread: go-imap beta.8 resumes its reader goroutine on the
// literal's read error, and draining the reply would read the same buffer
// at once (go test -race reports it).
func TestControlLiteralCut(t *testing.T) {
	body := "Message-ID: <a@example.test>\r\nSubject: cut\r\n\r\nthe body of the message\r\n"
	selectAndSearch := []imapfake.Step{
		imapfake.Expect("T2 EXAMINE INBOX\r\n"),
		imapfake.Send("* 1 EXISTS\r\n* OK [UIDVALIDITY 9] ok\r\nT2 OK [READ-ONLY] examined\r\n"),
	}
	tests := []struct {
		name   string
		script []imapfake.Step
		run    func(d *Destination) error
	}{
		{
			name: "Digest",
			script: append(selectAndSearch,
				imapfake.Expect("T3 SEARCH UID 7\r\n"),
				imapfake.Send("* SEARCH 1\r\nT3 OK searched\r\n"),
				imapfake.Expect("T4 FETCH 1 (UID BODY.PEEK[])\r\n"),
				imapfake.Send(fmt.Sprintf("* 1 FETCH (UID 7 BODY[] {%d}\r\n%s", len(body), body[:20])),
				imapfake.Close()),
			run: func(d *Destination) error {
				_, _, err := d.Digest(context.Background(), "INBOX", 7)
				return err
			},
		},
		{
			name: "SearchMessageID",
			script: append(selectAndSearch,
				imapfake.Expect("T3 SEARCH HEADER \"Message-ID\" \"<a@example.test>\"\r\n"),
				imapfake.Send("* SEARCH 1\r\nT3 OK searched\r\n"),
				imapfake.Expect("T4 FETCH 1 (UID BODY.PEEK[HEADER.FIELDS (\"Message-ID\")])\r\n"),
				imapfake.Send("* 1 FETCH (UID 7 BODY[HEADER.FIELDS (Message-ID)] {40}\r\nMessage-ID: <a@"),
				imapfake.Close()),
			run: func(d *Destination) error {
				_, err := d.SearchMessageID(context.Background(), "INBOX", "<a@example.test>")
				return err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := dialFakeControl(t, append(controlLogin(""), tt.script...)...)
			err := tt.run(d)
			if err == nil || !strings.Contains(err.Error(), "ended after") {
				t.Fatalf("%s with the body cut: %v; want an error saying the body ended early", tt.name, err)
			}
			if c := pipeline.ClassOf(err); c != pipeline.ClassTransient {
				t.Errorf("%s: class %v of %v, want transient", tt.name, c, err)
			}
			// The connection is broken and says so.
			if _, _, err2 := d.Digest(context.Background(), "INBOX", 7); err2 == nil {
				t.Errorf("Digest on the broken connection: nil error")
			}
		})
	}
}
