package imapdst

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"testing"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/internal/testkit/imapfake"
	"github.com/mailferry/mailferry/pipeline"
)

// examined is a server's reply to EXAMINE tag of a mailbox of n messages
// with UIDVALIDITY 7 and UIDNEXT 5.
func examined(tag, n string) string {
	return "* " + n + " EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 5] ok\r\n" + tag + " OK [READ-ONLY] examined\r\n"
}

// TestCommandsAhead: a session about to append (ahead) sends the commands
// the next steps need with those before them, and every reply, refusal
// included, ends as it did when each command waited for the one before:
// the flags probe (SELECT and UNSELECT) records PERMANENTFLAGS only when
// SELECT succeeded, a reply to a command the step would not have sent is
// set aside, and PermanentFlags asks its own way when the probe learnt
// nothing.
func TestCommandsAhead(t *testing.T) {
	ctx := context.Background()
	permanent := func(t *testing.T, d *Destination, mailbox string, want []string) {
		t.Helper()
		if got, err := d.PermanentFlags(ctx, mailbox); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("PermanentFlags(%s) = %q, %v; want %q", mailbox, got, err, want)
		}
	}
	headers := func(t *testing.T, d *Destination, mailbox string, wantUV uint32) {
		t.Helper()
		if uv, hs, err := d.ctl.listHeaders(ctx, mailbox, true); err != nil || uv != wantUV || len(hs) != 0 {
			t.Errorf("listHeaders(%s) = %d, %v, %v; want %d, none, nil", mailbox, uv, hs, err, wantUV)
		}
	}
	ensure := func(t *testing.T, d *Destination, mailbox string, want pipeline.MailboxStatus) {
		t.Helper()
		if st, err := d.ctl.ensureMailbox(ctx, mailbox, "", true); err != nil || st != want {
			t.Errorf("ensureMailbox(%s) = %+v, %v; want %+v", mailbox, st, err, want)
		}
	}
	inbox := pipeline.MailboxStatus{Name: "INBOX", UIDValidity: 7, UIDNext: 5}
	tests := []struct {
		name   string
		caps   string
		listed bool // the folder listing showed INBOX
		script []imapfake.Step
		run    func(t *testing.T, d *Destination)
		// unselectRefused: UNSELECT is given up for the server.
		unselectRefused bool
		noop            string // the NOOP's tag: nothing else was sent
	}{
		{
			name: "first run: LIST, SELECT, UNSELECT and EXAMINE in one go, then nothing", caps: "UNSELECT",
			script: []imapfake.Step{
				imapfake.Expect("T2 LIST \"\" INBOX\r\nT3 SELECT INBOX\r\nT4 UNSELECT\r\nT5 EXAMINE INBOX\r\n"),
				imapfake.Send("* LIST () \"/\" INBOX\r\nT2 OK done\r\n* OK [PERMANENTFLAGS (\\Seen \\*)] ok\r\nT3 OK [READ-WRITE] selected\r\nT4 OK done\r\n" +
					examined("T5", "0")),
			},
			run: func(t *testing.T, d *Destination) {
				headers(t, d, "INBOX", 7)
				ensure(t, d, "INBOX", inbox) // from the EXAMINE
				permanent(t, d, "INBOX", []string{`\Seen`, `\*`})
			},
			noop: "T6",
		},
		{
			name: "listed: SELECT, UNSELECT and EXAMINE in one go", caps: "UNSELECT", listed: true,
			script: []imapfake.Step{
				imapfake.Expect("T2 SELECT INBOX\r\nT3 UNSELECT\r\nT4 EXAMINE INBOX\r\n"),
				imapfake.Send("* OK [PERMANENTFLAGS (\\Seen)] ok\r\nT2 OK [READ-WRITE] selected\r\nT3 OK done\r\n" + examined("T4", "0")),
			},
			run: func(t *testing.T, d *Destination) {
				headers(t, d, "INBOX", 7)
				permanent(t, d, "INBOX", []string{`\Seen`})
			},
			noop: "T5",
		},
		{
			name: "SELECT refused: nothing learnt, PermanentFlags asks again", caps: "UNSELECT",
			script: []imapfake.Step{
				imapfake.Expect("T2 LIST \"\" INBOX\r\nT3 SELECT INBOX\r\nT4 UNSELECT\r\nT5 EXAMINE INBOX\r\n"),
				imapfake.Send("* LIST () \"/\" INBOX\r\nT2 OK done\r\nT3 NO Error opening mailbox\r\nT4 BAD no mailbox selected\r\n" + examined("T5", "0")),
				imapfake.Expect("T6 SELECT INBOX\r\nT7 UNSELECT\r\n"),
				imapfake.Send("* OK [PERMANENTFLAGS (\\Seen)] ok\r\nT6 OK [READ-WRITE] selected\r\nT7 OK done\r\n"),
			},
			run: func(t *testing.T, d *Destination) {
				headers(t, d, "INBOX", 7)
				permanent(t, d, "INBOX", []string{`\Seen`})
			},
			noop: "T8",
		},
		{
			name: "UNSELECT not offered: LIST and EXAMINE in one go, no SELECT", caps: "",
			script: []imapfake.Step{
				imapfake.Expect("T2 LIST \"\" INBOX\r\nT3 EXAMINE INBOX\r\n"),
				imapfake.Send("* LIST () \"/\" INBOX\r\nT2 OK done\r\n" + examined("T3", "0")),
				imapfake.Expect("T4 SELECT INBOX\r\n"),
				imapfake.Send("* OK [PERMANENTFLAGS (\\Seen)] ok\r\nT4 OK [READ-WRITE] selected\r\n"),
				imapfake.Expect("T5 EXAMINE INBOX\r\n"),
				imapfake.Send("T5 OK [READ-ONLY] examined\r\n"),
			},
			run: func(t *testing.T, d *Destination) {
				headers(t, d, "INBOX", 7)
				permanent(t, d, "INBOX", []string{`\Seen`})
			},
			noop: "T6",
		},
		{
			name: "UNSELECT refused after SELECT: given up, the mailbox left by EXAMINE", caps: "UNSELECT",
			script: []imapfake.Step{
				imapfake.Expect("T2 LIST \"\" INBOX\r\nT3 SELECT INBOX\r\nT4 UNSELECT\r\nT5 EXAMINE INBOX\r\n"),
				imapfake.Send("* LIST () \"/\" INBOX\r\nT2 OK done\r\n* OK [PERMANENTFLAGS (\\Seen)] ok\r\nT3 OK [READ-WRITE] selected\r\nT4 BAD unknown command\r\n" +
					examined("T5", "0")),
				imapfake.Expect("T6 EXAMINE INBOX\r\n"),
				imapfake.Send(examined("T6", "0")),
			},
			run: func(t *testing.T, d *Destination) {
				headers(t, d, "INBOX", 7)
				permanent(t, d, "INBOX", []string{`\Seen`})
			},
			unselectRefused: true,
			noop:            "T7",
		},
		{
			name: "EXAMINE refused of a mailbox LIST shows: its error, as without ahead", caps: "UNSELECT",
			script: []imapfake.Step{
				imapfake.Expect("T2 LIST \"\" INBOX\r\nT3 SELECT INBOX\r\nT4 UNSELECT\r\nT5 EXAMINE INBOX\r\n"),
				imapfake.Send("* LIST () \"/\" INBOX\r\nT2 OK done\r\n* OK [PERMANENTFLAGS (\\Seen)] ok\r\nT3 OK [READ-WRITE] selected\r\nT4 OK done\r\n" +
					"T5 NO [SERVERBUGS] cannot examine\r\n"),
			},
			run: func(t *testing.T, d *Destination) {
				_, _, err := d.ctl.listHeaders(ctx, "INBOX", true)
				var re *ReplyError
				if !errors.As(err, &re) || re.Command != "EXAMINE" || re.Status != "NO" || re.Code != "SERVERBUGS" {
					t.Errorf("listHeaders = %v; want the EXAMINE's NO [SERVERBUGS] as a *ReplyError", err)
				}
				permanent(t, d, "INBOX", []string{`\Seen`}) // SELECT succeeded
			},
			noop: "T6",
		},
		{
			name: "a new mailbox: replies to what LIST makes moot set aside, APPENDLIMIT kept", caps: "UNSELECT APPENDLIMIT",
			script: []imapfake.Step{
				imapfake.Expect("T2 LIST \"\" \"Archive\"\r\nT3 SELECT \"Archive\"\r\nT4 UNSELECT\r\nT5 EXAMINE \"Archive\"\r\n"),
				imapfake.Send("T2 OK done\r\nT3 NO [NONEXISTENT] no such mailbox\r\nT4 BAD no mailbox selected\r\nT5 NO [NONEXISTENT] no such mailbox\r\n"),
				imapfake.Expect("T6 LIST \"\" \"Archive\"\r\n"),
				imapfake.ExpectLineWords("T7 STATUS \"Archive\" (", "UIDNEXT", "UIDVALIDITY", "APPENDLIMIT"),
				imapfake.Expect("T8 SELECT \"Archive\"\r\nT9 UNSELECT\r\n"),
				imapfake.Send("T6 OK done\r\nT7 NO [NONEXISTENT] no such mailbox\r\nT8 NO [NONEXISTENT] no such mailbox\r\nT9 BAD no mailbox selected\r\n"),
				// The personal namespace's separator (no NAMESPACE), then CREATE.
				imapfake.Expect("T10 LIST \"\" \"\"\r\n"),
				imapfake.Send("* LIST (\\Noselect) \"/\" \"\"\r\nT10 OK done\r\n"),
				imapfake.Expect("T11 CREATE \"Archive\"\r\n"),
				imapfake.Send("T11 OK created\r\n"),
				imapfake.ExpectLineWords("T12 STATUS \"Archive\" (", "UIDNEXT", "UIDVALIDITY", "APPENDLIMIT"),
				imapfake.Expect("T13 SELECT \"Archive\"\r\nT14 UNSELECT\r\n"),
				imapfake.Send("* STATUS \"Archive\" (UIDNEXT 1 UIDVALIDITY 9 APPENDLIMIT 1000)\r\nT12 OK done\r\n" +
					"* OK [PERMANENTFLAGS (\\Seen \\*)] ok\r\nT13 OK [READ-WRITE] selected\r\nT14 OK done\r\n"),
			},
			run: func(t *testing.T, d *Destination) {
				headers(t, d, "Archive", 0)
				ensure(t, d, "Archive", pipeline.MailboxStatus{Name: "Archive", UIDValidity: 9, UIDNext: 1, AppendLimit: 1000})
				permanent(t, d, "Archive", []string{`\Seen`, `\*`})
				if got := d.CreatedMailboxes(); !reflect.DeepEqual(got, []string{"Archive"}) {
					t.Errorf("CreatedMailboxes = %q", got)
				}
			},
			noop: "T15",
		},
		{
			name: "re-run: STATUS, SELECT and UNSELECT of a listed mailbox in one go", caps: "UNSELECT", listed: true,
			script: []imapfake.Step{
				imapfake.ExpectLineWords("T2 STATUS INBOX (", "UIDNEXT", "UIDVALIDITY"),
				imapfake.Expect("T3 SELECT INBOX\r\nT4 UNSELECT\r\n"),
				imapfake.Send("* STATUS INBOX (UIDNEXT 5 UIDVALIDITY 7)\r\nT2 OK done\r\n* OK [PERMANENTFLAGS (\\Seen)] ok\r\nT3 OK [READ-WRITE] selected\r\nT4 OK done\r\n"),
			},
			run: func(t *testing.T, d *Destination) {
				ensure(t, d, "INBOX", inbox)
				permanent(t, d, "INBOX", []string{`\Seen`})
			},
			noop: "T5",
		},
		{
			name: "re-run: LIST, STATUS, SELECT and UNSELECT in one go", caps: "UNSELECT",
			script: []imapfake.Step{
				imapfake.Expect("T2 LIST \"\" INBOX\r\n"),
				imapfake.ExpectLineWords("T3 STATUS INBOX (", "UIDNEXT", "UIDVALIDITY"),
				imapfake.Expect("T4 SELECT INBOX\r\nT5 UNSELECT\r\n"),
				imapfake.Send("* LIST () \"/\" INBOX\r\nT2 OK done\r\n* STATUS INBOX (UIDNEXT 5 UIDVALIDITY 7)\r\nT3 OK done\r\n" +
					"* OK [PERMANENTFLAGS (\\Seen)] ok\r\nT4 OK [READ-WRITE] selected\r\nT5 OK done\r\n"),
			},
			run: func(t *testing.T, d *Destination) {
				ensure(t, d, "INBOX", inbox)
				permanent(t, d, "INBOX", []string{`\Seen`})
			},
			noop: "T6",
		},
		{
			name: "re-run: STATUS refused of a listed mailbox: listed again, as without ahead", caps: "UNSELECT", listed: true,
			script: []imapfake.Step{
				imapfake.ExpectLineWords("T2 STATUS INBOX (", "UIDNEXT", "UIDVALIDITY"),
				imapfake.Expect("T3 SELECT INBOX\r\nT4 UNSELECT\r\n"),
				imapfake.Send("T2 NO Error opening mailbox\r\nT3 NO Error opening mailbox\r\nT4 BAD no mailbox selected\r\n"),
				imapfake.Expect("T5 LIST \"\" INBOX\r\n"),
				imapfake.ExpectLineWords("T6 STATUS INBOX (", "UIDNEXT", "UIDVALIDITY"),
				imapfake.Expect("T7 SELECT INBOX\r\nT8 UNSELECT\r\n"),
				imapfake.Send("T5 OK done\r\nT6 NO Error opening mailbox\r\nT7 NO Error opening mailbox\r\nT8 BAD no mailbox selected\r\n"),
				// INBOX is not created: STATUS refused, EXAMINE tells.
				imapfake.Expect("T9 EXAMINE INBOX\r\n"),
				imapfake.Send(examined("T9", "0")),
				imapfake.Expect("T10 SELECT INBOX\r\nT11 UNSELECT\r\n"),
				imapfake.Send("* OK [PERMANENTFLAGS (\\Seen)] ok\r\nT10 OK [READ-WRITE] selected\r\nT11 OK done\r\n"),
			},
			run: func(t *testing.T, d *Destination) {
				ensure(t, d, "INBOX", inbox)
				permanent(t, d, "INBOX", []string{`\Seen`})
			},
			noop: "T12",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			sh := NewShared(imapconn.NewQuirks(slog.New(slog.NewTextHandler(&logs, nil)), nil))
			if tt.listed {
				sh.noteListed("INBOX")
			}
			d, srv := dialFakeControlShared(t, sh, append(append(controlLogin(tt.caps), tt.script...),
				imapfake.Expect(tt.noop+" NOOP\r\n"), imapfake.Send(tt.noop+" OK done\r\n"))...)
			tt.run(t, d)
			noop(t, d, srv)
			if got := sh.Quirks.Refused(imapconn.FeatureUnselect); got != tt.unselectRefused {
				t.Errorf("UNSELECT refused = %v, want %v; log:\n%s", got, tt.unselectRefused, logs.String())
			}
			if sh.Quirks.Refused(imapconn.FeatureStatusAppendLimit) {
				t.Errorf("STATUS APPENDLIMIT given up; log:\n%s", logs.String())
			}
		})
	}
}
