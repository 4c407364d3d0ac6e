package imapdst

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/internal/testkit/imapfake"
	"github.com/mailferry/mailferry/pipeline"
)

// dialFakeControlShared is dialFakeControl with the account's Shared, so
// that several sessions see what one learnt.
func dialFakeControlShared(t *testing.T, sh *Shared, steps ...imapfake.Step) (*Destination, *imapfake.Server) {
	t.Helper()
	srv := imapfake.Start(t, steps...)
	opts := testOptions(srv.Addr())
	opts.Shared = sh
	ctl, err := dialControl(context.Background(), opts.withDefaults())
	if err != nil {
		t.Fatalf("dialControl: %v", err)
	}
	t.Cleanup(func() { _ = ctl.conn.Abort() })
	return &Destination{ctl: ctl}, srv
}

// noop ends a transcript: the NOOP is the next command the script
// expects, so nothing else was sent before it.
func noop(t *testing.T, d *Destination, srv *imapfake.Server) {
	t.Helper()
	if err := d.ctl.c.Noop().Wait(); err != nil {
		t.Fatalf("NOOP: %v", err)
	}
	if err := srv.Wait(); err != nil {
		t.Errorf("script: %v", err)
	}
}

// TestStatusAppendLimitRefused: Cyrus 3.6 advertises APPENDLIMIT and
// answers STATUS … (APPENDLIMIT) with BAD. The copy goes on: STATUS again
// without the item, the server-wide limit applies, one log line says what
// was given up, and the next session of the account (same Shared) does
// not ask again.
func TestStatusAppendLimitRefused(t *testing.T) {
	var logs bytes.Buffer
	var notes []string
	sh := NewShared(imapconn.NewQuirks(slog.New(slog.NewTextHandler(&logs, nil)), func(n string) { notes = append(notes, n) }))
	caps := "APPENDLIMIT=4294967295"
	d, srv := dialFakeControlShared(t, sh, append(controlLogin(caps),
		imapfake.Expect("T2 LIST \"\" INBOX\r\n"),
		imapfake.Send("* LIST () \".\" INBOX\r\nT2 OK done\r\n"),
		imapfake.ExpectLineWords("T3 STATUS INBOX (", "UIDNEXT", "UIDVALIDITY", "APPENDLIMIT"),
		imapfake.Send("T3 BAD Invalid Status attributes appendlimit\r\n"),
		imapfake.ExpectLineWords("T4 STATUS INBOX (", "UIDNEXT", "UIDVALIDITY"),
		imapfake.Send("* STATUS INBOX (UIDNEXT 5 UIDVALIDITY 77)\r\nT4 OK done\r\n"),
		imapfake.Expect("T5 NOOP\r\n"), imapfake.Send("T5 OK done\r\n"),
	)...)
	st, err := d.EnsureMailbox(context.Background(), "INBOX")
	want := pipeline.MailboxStatus{Name: "INBOX", UIDValidity: 77, UIDNext: 5, AppendLimit: 4294967295}
	if err != nil || st != want {
		t.Fatalf("EnsureMailbox = %+v, %v; want %+v", st, err, want)
	}
	noop(t, d, srv)

	d2, srv2 := dialFakeControlShared(t, sh, append(controlLogin(caps),
		imapfake.Expect("T2 LIST \"\" INBOX\r\n"),
		imapfake.Send("* LIST () \".\" INBOX\r\nT2 OK done\r\n"),
		imapfake.ExpectLineWords("T3 STATUS INBOX (", "UIDNEXT", "UIDVALIDITY"),
		imapfake.Send("* STATUS INBOX (UIDNEXT 6 UIDVALIDITY 77)\r\nT3 OK done\r\n"),
		imapfake.Expect("T4 NOOP\r\n"), imapfake.Send("T4 OK done\r\n"),
	)...)
	if st, err := d2.EnsureMailbox(context.Background(), "INBOX"); err != nil || st.UIDNext != 6 {
		t.Fatalf("second session: EnsureMailbox = %+v, %v", st, err)
	}
	noop(t, d2, srv2)
	if n := strings.Count(logs.String(), "refused an optional feature"); n != 1 || !strings.Contains(logs.String(), "STATUS APPENDLIMIT") {
		t.Errorf("want one log line naming STATUS APPENDLIMIT, got %d:\n%s", n, logs.String())
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "Invalid Status attributes") {
		t.Errorf("notes = %q, want one with the server's reply", notes)
	}
}

// TestStatusRefusedFirstContact: GNU Mailutils answers STATUS of an INBOX
// that never received mail with NO; EXAMINE gives the UIDs (and creates
// the mbox). When EXAMINE is refused too the status is unknown, and that
// is no error: the APPENDs go ahead.
func TestStatusRefusedFirstContact(t *testing.T) {
	t.Run("EXAMINE gives the UIDs", func(t *testing.T) {
		d, srv := dialFakeControl(t, append(controlLogin(""),
			imapfake.Expect("T2 LIST \"\" INBOX\r\n"),
			imapfake.Send("T2 OK done\r\n"), // an mbox server lists no INBOX file
			imapfake.ExpectLineWords("T3 STATUS INBOX (", "UIDNEXT", "UIDVALIDITY"),
			imapfake.Send("T3 NO STATUS Error opening mailbox\r\n"),
			imapfake.Expect("T4 EXAMINE INBOX\r\n"),
			imapfake.Send("* 0 EXISTS\r\n* OK [UIDVALIDITY 1796525730] ok\r\n* OK [UIDNEXT 1] ok\r\nT4 OK [READ-ONLY] EXAMINE Completed\r\n"),
			imapfake.Expect("T5 NOOP\r\n"), imapfake.Send("T5 OK done\r\n"),
		)...)
		st, err := d.EnsureMailbox(context.Background(), "INBOX")
		if want := (pipeline.MailboxStatus{Name: "INBOX", UIDValidity: 1796525730, UIDNext: 1}); err != nil || st != want {
			t.Fatalf("EnsureMailbox = %+v, %v; want %+v (and no CREATE INBOX)", st, err, want)
		}
		noop(t, d, srv)
	})
	t.Run("neither STATUS nor EXAMINE", func(t *testing.T) {
		d, srv := dialFakeControl(t, append(controlLogin(""),
			imapfake.Expect("T2 LIST \"\" INBOX\r\n"),
			imapfake.Send("* LIST () \"/\" INBOX\r\nT2 OK done\r\n"),
			imapfake.ExpectLineWords("T3 STATUS INBOX (", "UIDNEXT", "UIDVALIDITY"),
			imapfake.Send("T3 NO not now\r\n"),
			imapfake.Expect("T4 EXAMINE INBOX\r\n"),
			imapfake.Send("T4 NO not now either\r\n"),
			imapfake.Expect("T5 NOOP\r\n"), imapfake.Send("T5 OK done\r\n"),
		)...)
		st, err := d.EnsureMailbox(context.Background(), "INBOX")
		if want := (pipeline.MailboxStatus{Name: "INBOX"}); err != nil || st != want {
			t.Fatalf("EnsureMailbox = %+v, %v; want %+v", st, err, want)
		}
		noop(t, d, srv)
	})
}

// TestFoldersOptionalRefused: NAMESPACE and LIST … RETURN (…) answered BAD
// although advertised: Folders goes on with a plain LIST and no prefix,
// and the next call asks for neither.
func TestFoldersOptionalRefused(t *testing.T) {
	list := "* LIST () \".\" INBOX\r\n* LIST () \".\" INBOX.Sent\r\n"
	d, srv := dialFakeControl(t, append(controlLogin("NAMESPACE LIST-EXTENDED SPECIAL-USE"),
		imapfake.Expect("T2 NAMESPACE\r\n"),
		imapfake.Send("T2 BAD Invalid command\r\n"),
		imapfake.Expect("T3 LIST \"\" \"*\" RETURN (SUBSCRIBED SPECIAL-USE)\r\n"),
		imapfake.Send("T3 BAD LIST Invalid arguments\r\n"),
		imapfake.Expect("T4 LIST \"\" \"*\"\r\n"),
		imapfake.Send(list+"T4 OK done\r\n"),
		imapfake.Expect("T5 LIST \"\" \"*\"\r\n"),
		imapfake.Send(list+"T5 OK done\r\n"),
		imapfake.Expect("T6 NOOP\r\n"), imapfake.Send("T6 OK done\r\n"),
	)...)
	for range 2 {
		fl, err := d.Folders(context.Background())
		if err != nil {
			t.Fatalf("Folders: %v", err)
		}
		if fl.Delim != '.' || fl.Prefix != "" || len(fl.Folders) != 2 {
			t.Errorf("Folders = %+v, want 2 folders, '.' and no prefix", fl)
		}
	}
	noop(t, d, srv)
}

// TestCreateAlreadyExistsText: a CREATE refused with words that say the
// mailbox exists, without [ALREADYEXISTS] (GNU Mailutils: "BAD CREATE
// Already exist", for a name differing only in case), counts as created.
func TestCreateAlreadyExistsText(t *testing.T) {
	d, srv := dialFakeControl(t, append(controlLogin(""),
		imapfake.Expect("T2 CREATE \"Archive\"\r\n"),
		imapfake.Send("T2 BAD CREATE Already exist\r\n"),
		imapfake.Expect("T3 NOOP\r\n"), imapfake.Send("T3 OK done\r\n"),
	)...)
	if err := d.ctl.create(context.Background(), "Archive", ""); err != nil {
		t.Fatalf("create = %v, want nil", err)
	}
	noop(t, d, srv)
}

// TestExpungeRefused: a server that advertises UIDPLUS and answers UID
// EXPUNGE with BAD gets its \Deleted flags taken off again, Expunge says
// ErrCannotExpunge, and the next call sends nothing.
func TestExpungeRefused(t *testing.T) {
	d, srv := dialFakeControl(t, append(controlLogin("UIDPLUS"),
		imapfake.Expect("T2 SELECT INBOX\r\n"),
		imapfake.Send("* OK [UIDVALIDITY 9] ok\r\nT2 OK [READ-WRITE] selected\r\n"),
		imapfake.Expect("T3 UID STORE 4 +FLAGS.SILENT (\\Deleted)\r\n"), imapfake.Send("T3 OK done\r\n"),
		imapfake.Expect("T4 UID EXPUNGE 4\r\n"), imapfake.Send("T4 BAD Invalid command\r\n"),
		imapfake.Expect("T5 UID STORE 4 -FLAGS.SILENT (\\Deleted)\r\n"), imapfake.Send("T5 OK done\r\n"),
		imapfake.Expect("T6 EXAMINE INBOX\r\n"), imapfake.Send("T6 OK [READ-ONLY] done\r\n"),
		imapfake.Expect("T7 NOOP\r\n"), imapfake.Send("T7 OK done\r\n"),
	)...)
	for range 2 {
		err := d.Expunge(context.Background(), "INBOX", 9, []uint32{4})
		if !errors.Is(err, pipeline.ErrCannotExpunge) {
			t.Fatalf("Expunge = %v, want ErrCannotExpunge", err)
		}
	}
	noop(t, d, srv)
}

// TestAppendTryCreateInText: GNU Mailutils puts [TRYCREATE] after the
// command name ("NO APPEND [TRYCREATE] failed"); the appender still
// creates the mailbox and sends again.
func TestAppendTryCreateInText(t *testing.T) {
	srv := imapfake.Start(t, append(login("LITERAL+"),
		imapfake.Expect("A2 APPEND \"Archive\" {3+}\r\naaa\r\n"),
		imapfake.Send("A2 NO APPEND [TRYCREATE] failed\r\n"),
		imapfake.Expect("A3 CREATE \"Archive\"\r\n"),
		imapfake.Send("A3 OK CREATE Completed\r\n"),
		imapfake.Expect("A4 APPEND \"Archive\" {3+}\r\naaa\r\n"),
		imapfake.Send("A4 OK APPEND Completed\r\n"),
	)...)
	a := dialFake(t, testOptions(srv.Addr()))
	res, err := a.Append(context.Background(), "Archive", []pipeline.OutgoingMessage{msg("aaa")})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	checkResults(t, res, []want{{}})
	_ = a.ic.Close()
	if err := srv.Wait(); err != nil {
		t.Errorf("script: %v", err)
	}
}

// TestNameRefused sorts CREATE refusals: the name, or the account.
func TestNameRefused(t *testing.T) {
	tests := []struct {
		e    ReplyError
		want bool
	}{
		{ReplyError{Command: "CREATE", Status: "NO", Text: "Invalid mailbox name"}, true},
		{ReplyError{Command: "CREATE", Status: "NO", Text: "CREATE Cannot create mailbox"}, true},
		{ReplyError{Command: "CREATE", Status: "BAD", Text: "Invalid arguments"}, true},
		{ReplyError{Command: "CREATE", Status: "NO", Code: "CANNOT", Text: "bad name"}, true},
		{ReplyError{Command: "CREATE", Status: "NO", Code: "NOPERM", Text: "no"}, false},
		{ReplyError{Command: "CREATE", Status: "NO", Code: "OVERQUOTA", Text: "no"}, false},
		{ReplyError{Command: "CREATE", Status: "BYE", Text: "bye"}, false},
		{ReplyError{Command: "APPEND", Status: "NO", Text: "no"}, false},
	}
	for _, tt := range tests {
		if got := tt.e.NameRefused(); got != tt.want {
			t.Errorf("%v: NameRefused() = %v, want %v", &tt.e, got, tt.want)
		}
	}
}

// TestMultiAppendRefused: a server that advertises MULTIAPPEND and answers
// BAD to it, then takes each message alone: MULTIAPPEND is given up for
// the server, and the next Append sends single APPENDs at once.
func TestMultiAppendRefused(t *testing.T) {
	srv := imapfake.Start(t, append(login("MULTIAPPEND"),
		imapfake.Expect("A2 APPEND \"INBOX\" {3}\r\n"),
		imapfake.Send("A2 BAD MULTIAPPEND is not understood\r\n"),
		imapfake.Expect("A3 APPEND \"INBOX\" {3}\r\n"),
		imapfake.Send("+ go\r\n"),
		imapfake.Expect("aaa\r\nA4 APPEND \"INBOX\" {3}\r\n"),
		imapfake.Send("A3 OK done\r\n+ go\r\n"),
		imapfake.Expect("bbb\r\n"),
		imapfake.Send("A4 OK done\r\n"),
		imapfake.Expect("A5 APPEND \"INBOX\" {3}\r\n"),
		imapfake.Send("+ go\r\n"),
		imapfake.Expect("ccc\r\nA6 APPEND \"INBOX\" {3}\r\n"),
		imapfake.Send("A5 OK done\r\n+ go\r\n"),
		imapfake.Expect("ddd\r\n"),
		imapfake.Send("A6 OK done\r\n"),
	)...)
	opts := testOptions(srv.Addr())
	opts.Shared = NewShared(imapconn.NewQuirks(nil, nil))
	a := dialFake(t, opts)
	for _, bodies := range [][2]string{{"aaa", "bbb"}, {"ccc", "ddd"}} {
		res, err := a.Append(context.Background(), "INBOX", []pipeline.OutgoingMessage{msg(bodies[0]), msg(bodies[1])})
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		checkResults(t, res, []want{{}, {}})
	}
	if a.Capabilities().MultiAppend || !opts.Shared.Quirks.Refused(imapconn.FeatureMultiAppend) {
		t.Errorf("MULTIAPPEND not given up: %q", opts.Shared.Quirks.List())
	}
	_ = a.ic.Close()
	if err := srv.Wait(); err != nil {
		t.Errorf("script: %v", err)
	}
}
