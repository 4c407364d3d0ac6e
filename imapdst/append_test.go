package imapdst

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/imapfake"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

const testDate = "02-Jan-2006 15:04:05 +0000"

var testTime = time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)

func msg(body string, flags ...string) pipeline.OutgoingMessage {
	return pipeline.OutgoingMessage{Body: strings.NewReader(body), Size: int64(len(body)), Flags: flags}
}

func datedMsg(body string, flags ...string) pipeline.OutgoingMessage {
	m := msg(body, flags...)
	m.InternalDate = testTime
	return m
}

// login is the script of a plain-text session up to the authenticated state.
func login(caps string) []imapfake.Step {
	return []imapfake.Step{
		imapfake.Send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake ready\r\n"),
		imapfake.Expect("A1 LOGIN \"alice\" \"s3cret\"\r\n"),
		imapfake.Send("A1 OK [CAPABILITY IMAP4rev1 " + caps + "] logged in\r\n"),
	}
}

func testOptions(addr string) Options {
	return Options{
		Addr:           addr,
		TLS:            TLSNone,
		AllowPlaintext: true,
		User:           "alice",
		Password:       secret.New("s3cret"),
		IdleTimeout:    5 * time.Second,
	}
}

// dialFake dials the fake server with an appender; it fails the test on error.
func dialFake(t *testing.T, opts Options) *Appender {
	t.Helper()
	a, err := DialAppender(context.Background(), opts)
	if err != nil {
		t.Fatalf("DialAppender: %v", err)
	}
	t.Cleanup(func() { _ = a.ic.Close() })
	return a
}

// want is the expected outcome for one message.
type want struct {
	validity, uid uint32
	class         pipeline.Class
	failed        bool // Err != nil, of class
	code          string
	dropped       []string // DroppedFlags
}

func checkResults(t *testing.T, got []pipeline.AppendResult, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("got %d results %+v, want %d", len(got), got, len(wants))
	}
	for i, w := range wants {
		g := got[i]
		if w.failed {
			if g.Err == nil {
				t.Errorf("result %d: Err = nil, want a %v error", i, w.class)
				continue
			}
			if c := pipeline.ClassOf(g.Err); c != w.class {
				t.Errorf("result %d: class of %v = %v, want %v", i, g.Err, c, w.class)
			}
			var re *ReplyError
			if w.code != "" && (!errors.As(g.Err, &re) || re.Code != w.code) {
				t.Errorf("result %d: Err = %v, want code %s", i, g.Err, w.code)
			}
			continue
		}
		if g.Err != nil || g.UIDValidity != w.validity || g.UID != w.uid || !slices.Equal(g.DroppedFlags, w.dropped) {
			t.Errorf("result %d = %+v, want UIDValidity %d UID %d, dropped flags %q", i, g, w.validity, w.uid, w.dropped)
		}
	}
}

func TestAppendTranscript(t *testing.T) {
	big := strings.Repeat("x", 5000)
	tests := []struct {
		name     string
		caps     string
		mailbox  string
		opts     func(*Options)
		msgs     []pipeline.OutgoingMessage
		script   []imapfake.Step
		want     []want
		wantErr  string // substring of the error; "" for none
		errClass pipeline.Class
		// errStatus and errCode, when errStatus is set, are what the
		// *ReplyError found with errors.As must say.
		errStatus, errCode string
	}{
		{
			name: "LITERAL+ single with flags and date",
			caps: "LITERAL+ UIDPLUS",
			msgs: []pipeline.OutgoingMessage{datedMsg("Hello World!", `\Seen`)},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" (\\Seen) \"" + testDate + "\" {12+}\r\nHello World!\r\n"),
				imapfake.Send("A2 OK [APPENDUID 7 42] done\r\n"),
			},
			want: []want{{validity: 7, uid: 42}},
		},
		{
			name: "synchronising literal waits for continuation",
			caps: "UIDPLUS",
			msgs: []pipeline.OutgoingMessage{msg("Hello World!", `\Seen`, `\Recent`, "$Label1")},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" (\\Seen $Label1) {12}\r\n"),
				imapfake.Send("+ go ahead\r\n"),
				imapfake.Expect("Hello World!\r\n"),
				imapfake.Send("A2 OK [APPENDUID 7 43] done\r\n"),
			},
			want: []want{{validity: 7, uid: 43}},
		},
		{
			name: "LITERAL- allows non-synchronising up to 4096 bytes",
			caps: "LITERAL-",
			msgs: []pipeline.OutgoingMessage{msg("short"), msg(big)},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" {5+}\r\nshort\r\nA3 APPEND \"INBOX\" {5000}\r\n"),
				imapfake.Send("A2 OK no uidplus\r\n+ ok\r\n"),
				imapfake.Expect(big + "\r\n"),
				imapfake.Send("A3 OK done\r\n"),
			},
			want: []want{{}, {}},
		},
		{
			name: "LITERAL+ large message is non-synchronising",
			caps: "LITERAL+",
			msgs: []pipeline.OutgoingMessage{msg(big)},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" {5000+}\r\n" + big + "\r\n"),
				imapfake.Send("A2 OK done\r\n"),
			},
			want: []want{{}},
		},
		{
			name: "pipelined APPENDs without MULTIAPPEND",
			caps: "LITERAL+ UIDPLUS",
			msgs: []pipeline.OutgoingMessage{msg("one"), msg("two"), msg("three")},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" {3+}\r\none\r\nA3 APPEND \"INBOX\" {3+}\r\ntwo\r\nA4 APPEND \"INBOX\" {5+}\r\nthree\r\n"),
				imapfake.Send("A2 OK [APPENDUID 7 1] a\r\n* 1 EXISTS\r\n* 1 RECENT\r\nA3 OK [APPENDUID 7 2] b\r\nA4 OK [APPENDUID 7 3] c\r\n"),
			},
			want: []want{{validity: 7, uid: 1}, {validity: 7, uid: 2}, {validity: 7, uid: 3}},
		},
		{
			// RFC 3501 §7.1: resp-text has no literals. Taking the "{5}"
			// for one swallowed A3's reply, and Append waited for its idle
			// timeout.
			name: "a refusal ending in {n} does not swallow the next reply",
			caps: "LITERAL+ UIDPLUS",
			msgs: []pipeline.OutgoingMessage{msg("one"), msg("two")},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" {3+}\r\none\r\nA3 APPEND \"INBOX\" {3+}\r\ntwo\r\n"),
				imapfake.Send("A2 NO [TOOBIG] larger than {5}\r\nA3 OK [APPENDUID 7 2] b\r\n"),
			},
			want: []want{{failed: true, class: pipeline.ClassPerMessage, code: "TOOBIG"}, {validity: 7, uid: 2}},
		},
		{
			name: "MULTIAPPEND with uid-set APPENDUID",
			caps: "MULTIAPPEND LITERAL+ UIDPLUS",
			msgs: []pipeline.OutgoingMessage{datedMsg("hello", `\Seen`), msg("world", `\Flagged`), msg("foo")},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" (\\Seen) \"" + testDate + "\" {5+}\r\nhello (\\Flagged) {5+}\r\nworld {3+}\r\nfoo\r\n"),
				imapfake.Send("A2 OK [APPENDUID 7 10:11,13] done\r\n"),
			},
			want: []want{{validity: 7, uid: 10}, {validity: 7, uid: 11}, {validity: 7, uid: 13}},
		},
		{
			name: "MULTIAPPEND batches bounded by count and bytes",
			caps: "MULTIAPPEND LITERAL+ UIDPLUS",
			opts: func(o *Options) { o.MaxBatchMessages = 2; o.MaxBatchBytes = 8 },
			msgs: []pipeline.OutgoingMessage{msg("aaa"), msg("bbbb"), msg("this one is too big"), msg("c"), msg("d"), msg("e")},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" {3+}\r\naaa {4+}\r\nbbbb\r\n"),
				imapfake.Send("A2 OK [APPENDUID 7 1:2] ok\r\n"),
				imapfake.Expect("A3 APPEND \"INBOX\" {19+}\r\nthis one is too big\r\n"),
				imapfake.Send("A3 OK [APPENDUID 7 3] ok\r\n"),
				imapfake.Expect("A4 APPEND \"INBOX\" {1+}\r\nc {1+}\r\nd\r\n"),
				imapfake.Send("A4 OK [APPENDUID 7 4:5] ok\r\n"),
				imapfake.Expect("A5 APPEND \"INBOX\" {1+}\r\ne\r\n"),
				imapfake.Send("A5 OK [APPENDUID 7 6] ok\r\n"),
			},
			want: []want{{7, 1, 0, false, "", nil}, {7, 2, 0, false, "", nil}, {7, 3, 0, false, "", nil}, {7, 4, 0, false, "", nil}, {7, 5, 0, false, "", nil}, {7, 6, 0, false, "", nil}},
		},
		{
			name: "NO TOOBIG before continuation keeps the connection in step",
			caps: "UIDPLUS",
			msgs: []pipeline.OutgoingMessage{msg("Hello World!"), msg("hello")},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" {12}\r\n"),
				imapfake.Send("A2 NO [TOOBIG] message too big\r\n"),
				imapfake.Expect("A3 APPEND \"INBOX\" {5}\r\n"),
				imapfake.Send("+ \r\n"),
				imapfake.Expect("hello\r\n"),
				imapfake.Send("A3 OK [APPENDUID 7 5] stored\r\n"),
			},
			want: []want{{failed: true, class: pipeline.ClassPerMessage, code: "TOOBIG"}, {validity: 7, uid: 5}},
		},
		{
			name: "refused MULTIAPPEND is retried one by one",
			caps: "MULTIAPPEND LITERAL+ UIDPLUS",
			msgs: []pipeline.OutgoingMessage{msg("one"), msg("bad"), msg("three")},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" {3+}\r\none {3+}\r\nbad {5+}\r\nthree\r\n"),
				imapfake.Send("A2 NO message 2 is invalid\r\n"),
				imapfake.Expect("A3 APPEND \"INBOX\" {3+}\r\none\r\nA4 APPEND \"INBOX\" {3+}\r\nbad\r\nA5 APPEND \"INBOX\" {5+}\r\nthree\r\n"),
				imapfake.Send("A3 OK [APPENDUID 7 1] ok\r\nA4 NO invalid message\r\nA5 OK [APPENDUID 7 2] ok\r\n"),
			},
			want: []want{{validity: 7, uid: 1}, {failed: true, class: pipeline.ClassPerMessage}, {validity: 7, uid: 2}},
		},
		{
			name:    "TRYCREATE creates the mailbox and sends again",
			caps:    "LITERAL+",
			mailbox: "Archive/2019",
			msgs:    []pipeline.OutgoingMessage{msg("hello")},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"Archive/2019\" {5+}\r\nhello\r\n"),
				imapfake.Send("A2 NO [TRYCREATE] no such mailbox\r\n"),
				imapfake.Expect("A3 CREATE \"Archive/2019\"\r\n"),
				imapfake.Send("A3 OK created\r\n"),
				imapfake.Expect("A4 APPEND \"Archive/2019\" {5+}\r\nhello\r\n"),
				imapfake.Send("A4 OK stored\r\n"),
			},
			want: []want{{}},
		},
		{
			name:    "mailbox deleted under an APPEND under way: created and sent again",
			caps:    "LITERAL+",
			mailbox: "Archive",
			msgs:    []pipeline.OutgoingMessage{msg("hello")},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"Archive\" {5+}\r\nhello\r\n"),
				imapfake.Send("A2 NO Mailbox was deleted under us\r\n"),
				imapfake.Expect("A3 CREATE \"Archive\"\r\n"),
				imapfake.Send("A3 OK created\r\n"),
				imapfake.Expect("A4 APPEND \"Archive\" {5+}\r\nhello\r\n"),
				imapfake.Send("A4 OK stored\r\n"),
			},
			want: []want{{}},
		},
		{
			name: "BAD to a flag list before the literal: sent again without keywords",
			caps: "UIDPLUS",
			msgs: []pipeline.OutgoingMessage{msg("hello", `\Seen`, "$Odd")},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" (\\Seen $Odd) {5}\r\n"),
				imapfake.Send("A2 BAD Error in IMAP command APPEND: Invalid keyword\r\n"),
				imapfake.Expect("A3 APPEND \"INBOX\" (\\Seen) {5}\r\n"),
				imapfake.Send("+ go ahead\r\n"),
				imapfake.Expect("hello\r\n"),
				imapfake.Send("A3 OK [APPENDUID 7 3] stored\r\n"),
			},
			want: []want{{validity: 7, uid: 3, dropped: []string{"$Odd"}}},
		},
		{
			// Dovecot 2.3 with mail_max_keyword_length = 50 (its default).
			name: "keyword too long: the long ones dropped first, then all",
			caps: "LITERAL+ UIDPLUS",
			msgs: []pipeline.OutgoingMessage{msg("hello", `\Seen`, "short", "KKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKK"), msg("two", "fine")},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" (\\Seen short KKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKK) {5+}\r\nhello\r\nA3 APPEND \"INBOX\" (fine) {3+}\r\ntwo\r\n"),
				imapfake.Send("A2 NO [CANNOT] Keyword length too long\r\n"),
				imapfake.Expect("A4 APPEND \"INBOX\" (\\Seen short) {5+}\r\nhello\r\n"),
				imapfake.Send("A3 OK [APPENDUID 7 1] ok\r\nA4 NO [CANNOT] Keyword length too long\r\n"),
				imapfake.Expect("A5 APPEND \"INBOX\" (\\Seen) {5+}\r\nhello\r\n"),
				imapfake.Send("A5 OK [APPENDUID 7 2] ok\r\n"),
			},
			want: []want{{validity: 7, uid: 2, dropped: []string{"short", "KKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKK"}}, {validity: 7, uid: 1}},
		},
		{
			name: "flag refusal of a message without keywords is per message",
			caps: "LITERAL+",
			msgs: []pipeline.OutgoingMessage{msg("hello", `\Seen`)},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" (\\Seen) {5+}\r\nhello\r\n"),
				imapfake.Send("A2 NO [CANNOT] Invalid flag\r\n"),
			},
			want: []want{{failed: true, class: pipeline.ClassPerMessage, code: "CANNOT"}},
		},
		{
			name: "BYE mid-batch reports only confirmed messages",
			caps: "LITERAL+ UIDPLUS",
			msgs: []pipeline.OutgoingMessage{msg("one"), msg("two"), msg("three")},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" {3+}\r\none\r\nA3 APPEND \"INBOX\" {3+}\r\ntwo\r\nA4 APPEND \"INBOX\" {5+}\r\nthree\r\n"),
				imapfake.Send("A2 OK [APPENDUID 7 1] ok\r\n* BYE [UNAVAILABLE] shutting down for maintenance\r\n"),
				imapfake.Close(),
			},
			want:      []want{{validity: 7, uid: 1}},
			wantErr:   "shutting down for maintenance",
			errClass:  pipeline.ClassTransient,
			errStatus: "BYE", errCode: "UNAVAILABLE",
		},
		{
			// The server reads the announcement, says BYE and closes with
			// the literal unread: the write fails (connection reset), and
			// the error must still give the server's reason.
			name: "BYE while a literal is being written keeps its reason",
			caps: "LITERAL+ UIDPLUS",
			msgs: []pipeline.OutgoingMessage{msg(strings.Repeat("x", 8<<20))},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" {8388608+}\r\n"),
				imapfake.Send("* BYE [UNAVAILABLE] going down\r\n"),
				imapfake.Close(),
			},
			want:      []want{},
			wantErr:   "BYE [UNAVAILABLE] going down",
			errClass:  pipeline.ClassTransient,
			errStatus: "BYE", errCode: "UNAVAILABLE",
		},
		{
			name: "BYE without a code while pipelining keeps its reason",
			caps: "UIDPLUS LITERAL+",
			opts: func(o *Options) { o.MaxInFlight = 2 },
			msgs: []pipeline.OutgoingMessage{msg("one"), msg(strings.Repeat("y", 8<<20))},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" {3+}\r\none\r\nA3 APPEND \"INBOX\" {8388608+}\r\n"),
				imapfake.Send("* BYE Server shutting down\r\n"),
				imapfake.Close(),
			},
			want:      []want{},
			wantErr:   "BYE Server shutting down",
			errClass:  pipeline.ClassTransient,
			errStatus: "BYE",
		},
		{
			name: "OVERQUOTA is fatal and stops sending",
			caps: "LITERAL+ UIDPLUS",
			opts: func(o *Options) { o.MaxInFlight = 2 },
			msgs: []pipeline.OutgoingMessage{msg("one"), msg("two"), msg("three"), msg("four")},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" {3+}\r\none\r\nA3 APPEND \"INBOX\" {3+}\r\ntwo\r\n"),
				imapfake.Send("A2 OK [APPENDUID 7 1] ok\r\n"),
				imapfake.Expect("A4 APPEND \"INBOX\" {5+}\r\nthree\r\n"),
				imapfake.Send("A3 NO [OVERQUOTA] quota exceeded\r\nA4 NO [OVERQUOTA] quota exceeded\r\n"),
			},
			want: []want{{validity: 7, uid: 1},
				{failed: true, class: pipeline.ClassFatal, code: "OVERQUOTA"},
				{failed: true, class: pipeline.ClassFatal, code: "OVERQUOTA"}},
			wantErr:  "OVERQUOTA",
			errClass: pipeline.ClassFatal,
		},
		{
			name: "UNAVAILABLE is transient and has no result",
			caps: "LITERAL+",
			msgs: []pipeline.OutgoingMessage{msg("one")},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" {3+}\r\none\r\n"),
				imapfake.Send("A2 NO [UNAVAILABLE] try later\r\n"),
			},
			want:     []want{},
			wantErr:  "UNAVAILABLE",
			errClass: pipeline.ClassTransient,
		},
		{
			name: "invalid flag and APPENDLIMIT are refused without sending",
			caps: "LITERAL+ APPENDLIMIT=10",
			msgs: []pipeline.OutgoingMessage{msg("ok", "bad flag"), msg("ok"), msg("far too large")},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" {2+}\r\nok\r\n"),
				imapfake.Send("A2 OK stored\r\n"),
			},
			want: []want{{failed: true, class: pipeline.ClassPerMessage}, {}, {failed: true, class: pipeline.ClassPerMessage}},
		},
		{
			name: "BAD after a single APPEND's literal: sent again without keywords",
			caps: "UIDPLUS",
			msgs: []pipeline.OutgoingMessage{msg("one", "$x")},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" ($x) {3}\r\n"),
				imapfake.Send("+ \r\n"),
				imapfake.Expect("one\r\n"),
				imapfake.Send("* OK [ALERT] disk almost full\r\nA2 BAD invalid flag\r\n"),
				imapfake.Expect("A3 APPEND \"INBOX\" {3}\r\n"),
				imapfake.Send("+ \r\n"),
				imapfake.Expect("one\r\n"),
				imapfake.Send("A3 OK [APPENDUID 7 9] ok\r\n"),
			},
			want: []want{{validity: 7, uid: 9, dropped: []string{"$x"}}},
		},
		{
			name: "BAD on a single APPEND without keywords is per message",
			caps: "UIDPLUS",
			msgs: []pipeline.OutgoingMessage{msg("one", `\Seen`)},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" (\\Seen) {3}\r\n"),
				imapfake.Send("+ \r\n"),
				imapfake.Expect("one\r\n"),
				imapfake.Send("A2 BAD invalid message\r\n"),
			},
			want: []want{{failed: true, class: pipeline.ClassPerMessage}},
		},
		{
			name: "BAD to a non-synchronising APPEND drops the connection",
			caps: "LITERAL+",
			msgs: []pipeline.OutgoingMessage{msg("one"), msg("two")},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" {3+}\r\none\r\nA3 APPEND \"INBOX\" {3+}\r\ntwo\r\n"),
				imapfake.Send("A2 BAD Error in IMAP command APPEND\r\n"),
				imapfake.Drain(),
			},
			want:     []want{{failed: true, class: pipeline.ClassPerMessage}},
			wantErr:  "non-synchronising",
			errClass: pipeline.ClassTransient,
		},
		{
			name: "unknown system flag is refused without sending",
			caps: "LITERAL+",
			msgs: []pipeline.OutgoingMessage{msg("one", `\Bogus`), msg("two", `\Answered`, `\Draft`, `\Deleted`)},
			script: []imapfake.Step{
				imapfake.Expect("A2 APPEND \"INBOX\" (\\Answered \\Draft \\Deleted) {3+}\r\ntwo\r\n"),
				imapfake.Send("A2 OK stored\r\n"),
			},
			want: []want{{failed: true, class: pipeline.ClassPerMessage}, {}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := imapfake.Start(t, append(login(tc.caps), tc.script...)...)
			opts := testOptions(srv.Addr())
			if tc.opts != nil {
				tc.opts(&opts)
			}
			a := dialFake(t, opts)
			mailbox := tc.mailbox
			if mailbox == "" {
				mailbox = "INBOX"
			}
			got, err := a.Append(context.Background(), mailbox, tc.msgs)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Append: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Append error = %v, want one containing %q", err, tc.wantErr)
			case tc.wantErr != "" && pipeline.ClassOf(err) != tc.errClass:
				t.Errorf("class of %v = %v, want %v", err, pipeline.ClassOf(err), tc.errClass)
			}
			var re *ReplyError
			if tc.errStatus != "" && (!errors.As(err, &re) || re.Status != tc.errStatus || re.Code != tc.errCode) {
				t.Errorf("Append error = %v, want a *ReplyError with status %s and code %q", err, tc.errStatus, tc.errCode)
			}
			checkResults(t, got, tc.want)
			if err := srv.Wait(); err != nil {
				t.Errorf("script: %v", err)
			}
		})
	}
}

func TestAppendAfterConnectionLoss(t *testing.T) {
	srv := imapfake.Start(t, append(login("LITERAL+"),
		imapfake.Expect("A2 APPEND \"INBOX\" {3+}\r\none\r\n"),
		imapfake.Close())...)
	a := dialFake(t, testOptions(srv.Addr()))
	got, err := a.Append(context.Background(), "INBOX", []pipeline.OutgoingMessage{msg("one")})
	if err == nil || len(got) != 0 {
		t.Fatalf("Append = %v, %v; want no results and an error", got, err)
	}
	if pipeline.ClassOf(err) != pipeline.ClassTransient {
		t.Errorf("class of %v = %v, want transient", err, pipeline.ClassOf(err))
	}
	if _, err2 := a.Append(context.Background(), "INBOX", []pipeline.OutgoingMessage{msg("two")}); err2 == nil {
		t.Error("Append on a failed connection succeeded")
	}
	if a.Err() == nil {
		t.Error("Err() = nil after connection loss")
	}
}

func TestAppendAlertIsLogged(t *testing.T) {
	srv := imapfake.Start(t, append(login("LITERAL+"),
		imapfake.Expect("A2 APPEND \"INBOX\" {3+}\r\none\r\n"),
		imapfake.Send("* OK [ALERT] mailbox almost full\r\n* NO [OVERQUOTA] warning: 95% used\r\nA2 OK done\r\n"))...)
	var logs bytes.Buffer
	opts := testOptions(srv.Addr())
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	a := dialFake(t, opts)
	if _, err := a.Append(context.Background(), "INBOX", []pipeline.OutgoingMessage{msg("one")}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	for _, s := range []string{"mailbox almost full", "95% used"} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("log %q does not mention %q", logs.String(), s)
		}
	}
}

func TestAppendCancelled(t *testing.T) {
	srv := imapfake.Start(t, append(login("UIDPLUS"),
		imapfake.Expect("A2 APPEND \"INBOX\" {3}\r\n"),
		imapfake.Drain())...) // never answers
	a := dialFake(t, testOptions(srv.Addr()))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := a.Append(ctx, "INBOX", []pipeline.OutgoingMessage{msg("one")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append = %v, want context.DeadlineExceeded", err)
	}
}

func TestAppendRejectsBadMailbox(t *testing.T) {
	srv := imapfake.Start(t, login("LITERAL+")...)
	a := dialFake(t, testOptions(srv.Addr()))
	_, err := a.Append(context.Background(), "IN\r\nBOX", []pipeline.OutgoingMessage{msg("x")})
	if !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Append = %v, want ErrInvalidArgument", err)
	}
}

func TestTraceRedacts(t *testing.T) {
	srv := imapfake.Start(t, append(login("LITERAL+"),
		imapfake.Expect("A2 APPEND \"INBOX\" {11+}\r\nsecret body\r\n"),
		imapfake.Send("A2 OK done\r\n"))...)
	var trace bytes.Buffer
	opts := testOptions(srv.Addr())
	opts.Trace = &trace
	a := dialFake(t, opts)
	if _, err := a.Append(context.Background(), "INBOX", []pipeline.OutgoingMessage{msg("secret body")}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	got := trace.String()
	for _, bad := range []string{"s3cret", "secret body"} {
		if strings.Contains(got, bad) {
			t.Errorf("trace contains %q:\n%s", bad, got)
		}
	}
	for _, good := range []string{"append C: A1 LOGIN *** ***", "append C: [11 bytes]", "append S: A2 OK done"} {
		if !strings.Contains(got, good) {
			t.Errorf("trace lacks %q:\n%s", good, got)
		}
	}
}
