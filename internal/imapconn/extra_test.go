package imapconn

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

// TestExtraRewrite: the extra items leave FETCH responses, with their
// values; everything else passes as it was, literals included.
func TestExtraRewrite(t *testing.T) {
	tests := []struct {
		name, in, want string
		got            []string
	}{
		{"gmail listing",
			"* 1 FETCH (UID 7 X-GM-MSGID 1700 X-GM-LABELS (\"\\\\Inbox\" Work) FLAGS (\\Seen) RFC822.SIZE 10)\r\n",
			"* 1 FETCH (UID 7 FLAGS (\\Seen) RFC822.SIZE 10)\r\n",
			[]string{"1 X-GM-MSGID 1700", "1 X-GM-LABELS (\"\\\\Inbox\" Work)"}},
		{"extra items first and last",
			"* 22 FETCH (X-GM-LABELS () UID 9 X-GM-MSGID 5)\r\n",
			"* 22 FETCH (UID 9)\r\n",
			[]string{"22 X-GM-LABELS ()", "22 X-GM-MSGID 5"}},
		{"a label as a literal",
			"* 3 FETCH (UID 1 X-GM-LABELS ({5}\r\na b c \"x)\") X-GM-MSGID 2)\r\n",
			"* 3 FETCH (UID 1)\r\n",
			[]string{"3 X-GM-LABELS ({5}\r\na b c \"x)\")", "3 X-GM-MSGID 2"}},
		{"a body is not touched",
			"* 4 FETCH (UID 2 BODY[] {14}\r\nX-GM-MSGID 1\r\n)\r\n",
			"* 4 FETCH (UID 2 BODY[] {14}\r\nX-GM-MSGID 1\r\n)\r\n",
			nil},
		{"not a FETCH", "* 5 EXISTS\r\n", "* 5 EXISTS\r\n", nil},
		{"a tagged reply", "A1 OK FETCH completed\r\n", "A1 OK FETCH completed\r\n", nil},
	}
	for _, tc := range tests {
		var got []string
		x := &extraConn{items: []string{"X-GM-MSGID", "X-GM-LABELS"}}
		x.got = func(seq uint32, item, value string) {
			got = append(got, strings.Join([]string{itoa(seq), item, value}, " "))
		}
		if out := string(x.rewrite([]byte(tc.in))); out != tc.want {
			t.Errorf("%s: rewrite(%q) = %q, want %q", tc.name, tc.in, out, tc.want)
		}
		if strings.Join(got, "|") != strings.Join(tc.got, "|") {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.got)
		}
	}
}

func itoa(n uint32) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		if n /= 10; n == 0 {
			return string(b)
		}
	}
}

// TestExtraConn: while on, a FETCH command gets the items and the replies
// lose them, across reads that cut responses anywhere; off, bytes pass
// untouched.
func TestExtraConn(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	x := newExtraConn(client)
	s := &Conn{extra: x}
	var vals []string
	stop := s.FetchExtra([]string{"X-GM-MSGID"}, func(seq uint32, item, value string) { vals = append(vals, value) })
	go func() {
		_, _ = x.Write([]byte("a1 UID FETCH 1:* (UID FLAGS)\r\n"))
	}()
	cmd := make([]byte, 64)
	n, _ := server.Read(cmd)
	if got := string(cmd[:n]); got != "a1 UID FETCH 1:* (UID FLAGS X-GM-MSGID)\r\n" {
		t.Errorf("command sent %q", got)
	}
	reply := "* 1 FETCH (UID 1 X-GM-MSGID 11 FLAGS ())\r\n* 2 FETCH (X-GM-MSGID 12 UID 2 FLAGS (\\Seen))\r\na1 OK done\r\n"
	go func() {
		for i := 0; i < len(reply); i += 7 {
			_, _ = server.Write([]byte(reply[i:min(i+7, len(reply))]))
		}
	}()
	var out bytes.Buffer
	buf := make([]byte, 5)
	for !strings.HasSuffix(out.String(), "a1 OK done\r\n") {
		n, err := x.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(buf[:n])
	}
	if want := "* 1 FETCH (UID 1 FLAGS ())\r\n* 2 FETCH (UID 2 FLAGS (\\Seen))\r\na1 OK done\r\n"; out.String() != want {
		t.Errorf("read %q, want %q", out.String(), want)
	}
	if strings.Join(vals, ",") != "11,12" {
		t.Errorf("values %q", vals)
	}
	stop()
	go func() { _, _ = server.Write([]byte("* 1 FETCH (X-GM-MSGID 3)\r\n")) }()
	n, err := x.Read(make([]byte, 64))
	if err != nil || n != len("* 1 FETCH (X-GM-MSGID 3)\r\n") {
		t.Errorf("off: read %d, %v", n, err)
	}
}

// FuzzExtraRewrite: rewrite never panics, and a response without the
// items comes back as it was.
func FuzzExtraRewrite(f *testing.F) {
	for _, s := range []string{"* 1 FETCH (UID 1 X-GM-MSGID 2)\r\n", "* 1 FETCH (BODY[] {3}\r\nabc)\r\n", "* 1 FETCH (X-GM-LABELS (\"a\\\"\" {1}\r\nx))\r\n", "* 1 FETCH ("} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		x := &extraConn{items: []string{"X-GM-MSGID", "X-GM-LABELS"}, got: func(uint32, string, string) {}}
		out := x.rewrite([]byte(in))
		if !strings.Contains(strings.ToUpper(in), "X-GM-") && string(out) != in {
			t.Errorf("rewrite(%q) = %q, want it unchanged", in, out)
		}
	})
}

// TestExtraWithItems: the extra items go into a FETCH's list of items,
// never into a modifier list after it (CHANGEDSINCE: a server answers BAD
// to an item there); other commands pass unchanged.
func TestExtraWithItems(t *testing.T) {
	x := &extraConn{items: []string{"EMAILID"}}
	for _, tc := range []struct{ in, want string }{
		{"A1 UID FETCH 1:5 (UID FLAGS)", "A1 UID FETCH 1:5 (UID FLAGS EMAILID)"},
		{"A2 UID FETCH 1:5 (UID FLAGS) (CHANGEDSINCE 7)", "A2 UID FETCH 1:5 (UID FLAGS EMAILID) (CHANGEDSINCE 7)"},
		{"A3 FETCH 1 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])", "A3 FETCH 1 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] EMAILID)"},
		{"A4 UID SEARCH RETURN (COUNT) UID 1:5", "A4 UID SEARCH RETURN (COUNT) UID 1:5"},
		{"A5 SELECT INBOX (CONDSTORE)", "A5 SELECT INBOX (CONDSTORE)"},
	} {
		if got := string(x.withItems([]byte(tc.in))); got != tc.want {
			t.Errorf("withItems(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
