package imapdst

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/imapfake"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/spool"
)

// spooledMsg is body as the copy sends it: a spooled message, which
// writes itself whole (CopyTo) instead of being read through ReadAt.
func spooledMsg(t *testing.T, body string) pipeline.OutgoingMessage {
	t.Helper()
	w := spool.New(nil)
	w.Expect(int64(len(body)))
	if _, err := io.WriteString(w, body); err != nil {
		t.Fatal(err)
	}
	m, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return pipeline.OutgoingMessage{Body: m, Size: m.Size()}
}

// lyingBody copies itself as copied says, whatever its size.
type lyingBody struct {
	strings.Reader
	copied string
	err    error
}

func (l *lyingBody) CopyTo(w io.Writer) (int64, error) {
	n, err := io.WriteString(w, l.copied)
	if err == nil {
		err = l.err
	}
	return int64(n), err
}

// TestAppendBodiesThatCopyThemselves: bodies that write themselves whole
// (spool.Message.CopyTo) go out byte for byte, again when a refused
// MULTIAPPEND sends them one by one; a body that writes fewer bytes than
// announced, or fails, ends the connection with an error saying so
// instead of leaving the server waiting for the rest.
func TestAppendBodiesThatCopyThemselves(t *testing.T) {
	const caps = "MULTIAPPEND LITERAL+ UIDPLUS"
	t.Run("sent again one by one after a refusal", func(t *testing.T) {
		srv := imapfake.Start(t, append(login(caps),
			imapfake.Expect("A2 APPEND \"INBOX\" {3+}\r\naaa {3+}\r\nbbb\r\n"),
			imapfake.Send("A2 NO [CANNOT] one of them is bad\r\n"),
			imapfake.Expect("A3 APPEND \"INBOX\" {3+}\r\naaa\r\nA4 APPEND \"INBOX\" {3+}\r\nbbb\r\n"),
			imapfake.Send("A3 OK [APPENDUID 7 1] ok\r\nA4 OK [APPENDUID 7 2] ok\r\n"),
		)...)
		a := dialFake(t, testOptions(srv.Addr()))
		got, err := a.StartAppend(context.Background(), "INBOX", []pipeline.OutgoingMessage{spooledMsg(t, "aaa"), spooledMsg(t, "bbb")})()
		checkErr(t, "append", err, "")
		checkResults(t, got, []want{{validity: 7, uid: 1}, {validity: 7, uid: 2}})
	})
	for _, tc := range []struct {
		name string
		body *lyingBody
		want string
	}{
		{"fewer bytes than announced", &lyingBody{copied: "aa"}, "is 2 bytes, 3 announced"},
		{"more bytes than announced", &lyingBody{copied: "aaaa"}, "is 4 bytes, 3 announced"},
		{"the body fails", &lyingBody{copied: "a", err: errors.New("disk gone")}, "reading message body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := imapfake.Start(t, append(login(caps), imapfake.Drain())...)
			a := dialFake(t, testOptions(srv.Addr()))
			_, err := a.StartAppend(context.Background(), "INBOX", []pipeline.OutgoingMessage{{Body: tc.body, Size: 3}})()
			checkErr(t, "append", err, tc.want)
			if a.err == nil {
				t.Error("the connection is still in use after a body that does not match its literal")
			}
		})
	}
}
