package imapdst

import (
	"context"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/imapfake"
	"github.com/mailferry/mailferry/pipeline"
)

// TestStartAppendPipelines: a second batch goes out before the first one's
// completion is read (the fake answers only after reading both commands),
// and refusals of the first are dealt with while the second is in flight.
func TestStartAppendPipelines(t *testing.T) {
	const caps = "MULTIAPPEND LITERAL+ UIDPLUS"
	first := "A2 APPEND \"INBOX\" {3+}\r\naaa {3+}\r\nbbb\r\n"
	second := "A3 APPEND \"INBOX\" {3+}\r\nccc {3+}\r\nddd\r\n"
	tests := []struct {
		name         string
		script       []imapfake.Step
		want1, want2 []want
		err1, err2   string // substrings of the errors; "" for none
	}{
		{
			name: "both stored",
			script: []imapfake.Step{
				imapfake.Expect(first + second),
				imapfake.Send("A2 OK [APPENDUID 7 1:2] ok\r\nA3 OK [APPENDUID 7 3:4] ok\r\n"),
			},
			want1: []want{{validity: 7, uid: 1}, {validity: 7, uid: 2}},
			want2: []want{{validity: 7, uid: 3}, {validity: 7, uid: 4}},
		},
		{
			name: "first refused is sent again one by one after the second",
			script: []imapfake.Step{
				imapfake.Expect(first + second),
				imapfake.Send("A2 NO [CANNOT] one of them is bad\r\n"),
				imapfake.Expect("A4 APPEND \"INBOX\" {3+}\r\naaa\r\nA5 APPEND \"INBOX\" {3+}\r\nbbb\r\n"),
				imapfake.Send("A3 OK [APPENDUID 7 1:2] ok\r\nA4 OK [APPENDUID 7 3] ok\r\nA5 NO [CANNOT] bad message\r\n"),
			},
			want1: []want{{validity: 7, uid: 3}, {failed: true, class: pipeline.ClassPerMessage, code: "CANNOT"}},
			want2: []want{{validity: 7, uid: 1}, {validity: 7, uid: 2}},
		},
		{
			name: "TRYCREATE for both creates once and sends each again",
			script: []imapfake.Step{
				imapfake.Expect(first + second),
				imapfake.Send("A2 NO [TRYCREATE] no such mailbox\r\nA3 NO [TRYCREATE] no such mailbox\r\n"),
				// INBOX is never CREATEd (RFC 3501 §6.3.3): EXAMINE opens
				// it, which creates it on mbox servers (GNU Mailutils).
				imapfake.Expect("A4 EXAMINE \"INBOX\"\r\n"),
				imapfake.Send("* 0 EXISTS\r\nA4 OK [READ-ONLY] examined\r\n"),
				imapfake.Expect("A5 APPEND \"INBOX\" {3+}\r\naaa {3+}\r\nbbb\r\n"),
				imapfake.Send("A5 OK [APPENDUID 7 1:2] ok\r\n"),
				imapfake.Expect("A6 EXAMINE \"INBOX\"\r\n"),
				imapfake.Send("A6 NO cannot\r\n"),
				imapfake.Expect("A7 APPEND \"INBOX\" {3+}\r\nccc {3+}\r\nddd\r\n"),
				imapfake.Send("A7 OK [APPENDUID 7 3:4] ok\r\n"),
			},
			want1: []want{{validity: 7, uid: 1}, {validity: 7, uid: 2}},
			want2: []want{{validity: 7, uid: 3}, {validity: 7, uid: 4}},
		},
		{
			name: "BYE with both in flight leaves both unknown",
			script: []imapfake.Step{
				imapfake.Expect(first + second),
				imapfake.Send("* BYE shutting down\r\n"),
				imapfake.Close(),
			},
			err1: "BYE",
			err2: "BYE",
		},
		{
			name: "first over quota, second stored",
			script: []imapfake.Step{
				imapfake.Expect(first + second),
				imapfake.Send("A2 NO [OVERQUOTA] quota exceeded\r\nA3 OK [APPENDUID 7 1:2] ok\r\n"),
			},
			err1:  "OVERQUOTA",
			want2: []want{{validity: 7, uid: 1}, {validity: 7, uid: 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := imapfake.Start(t, append(login(caps), tt.script...)...)
			a := dialFake(t, testOptions(srv.Addr()))
			ctx := context.Background()
			wait1 := a.StartAppend(ctx, "INBOX", []pipeline.OutgoingMessage{msg("aaa"), msg("bbb")})
			wait2 := a.StartAppend(ctx, "INBOX", []pipeline.OutgoingMessage{msg("ccc"), msg("ddd")})
			got1, err1 := wait1()
			got2, err2 := wait2()
			checkErr(t, "first", err1, tt.err1)
			checkErr(t, "second", err2, tt.err2)
			checkResults(t, got1, tt.want1)
			checkResults(t, got2, tt.want2)
			if a.inflight != 0 {
				t.Errorf("inflight = %d after both waits, want 0", a.inflight)
			}
		})
	}
}

func checkErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s wait: %v, want no error", what, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%s wait: %v, want an error with %q", what, err, want)
	}
}

// TestStartAppendSingleCompletesAtOnce: what cannot be pipelined (one
// message) is done before StartAppend returns, so wait reads nothing.
func TestStartAppendSingleCompletesAtOnce(t *testing.T) {
	srv := imapfake.Start(t, append(login("MULTIAPPEND LITERAL+ UIDPLUS"),
		imapfake.Expect("A2 APPEND \"INBOX\" {3+}\r\naaa\r\n"),
		imapfake.Send("A2 OK [APPENDUID 7 1] ok\r\n"),
		imapfake.Close(),
	)...)
	a := dialFake(t, testOptions(srv.Addr()))
	wait := a.StartAppend(context.Background(), "INBOX", []pipeline.OutgoingMessage{msg("aaa")})
	if err := srv.Wait(); err != nil {
		t.Fatalf("script: %v", err)
	}
	got, err := wait()
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	checkResults(t, got, []want{{validity: 7, uid: 1}})
}
