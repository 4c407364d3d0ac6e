package providerfake

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func msg(id, body string) []byte {
	return []byte("From: a@example.org\r\nMessage-ID: <" + id + "@example.org>\r\nSubject: " + id + "\r\n\r\n" + body + "\r\n")
}

func dial(t *testing.T, s *Server) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("alice", "pw").Wait(); err != nil {
		t.Fatalf("LOGIN: %v", err)
	}
	return c
}

// raw sends commands on a connection of its own and returns everything the
// server answered to each, for what go-imap cannot ask (X-GM-EXT-1).
func raw(t *testing.T, s *Server, cmds ...string) []string {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, cmd := range append([]string{"LOGIN alice pw"}, cmds...) {
		tag := fmt.Sprintf("t%d", i)
		fmt.Fprintf(c, "%s %s\r\n", tag, cmd)
		var b strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v (so far %q)", cmd, err, b.String())
			}
			b.WriteString(line)
			if strings.HasPrefix(line, tag+" ") {
				break
			}
		}
		if i > 0 {
			out = append(out, b.String())
		}
	}
	return out
}

// TestGmailLabels: one message per label set, shown in each label's folder
// and in All Mail (not Trash's), with X-GM-MSGID and X-GM-LABELS.
func TestGmailLabels(t *testing.T) {
	s := Start(t, Gmail())
	s.AddUser("alice", "pw")
	s.Add("alice", "INBOX", Message{Body: msg("a", "in inbox and work"), Labels: []string{`\Inbox`, "Work", `\Important`}})
	s.Add("alice", "INBOX", Message{Body: msg("b", "archived"), Labels: []string{}})
	s.Add("alice", "INBOX", Message{Body: msg("c", "trashed"), Labels: []string{`\Trash`}})
	s.Add("alice", "INBOX", Message{Body: msg("d", "sent, starred"), Labels: []string{`\Sent`}, Flags: []string{`\Flagged`}})
	for _, tc := range []struct {
		folder string
		n      int
	}{{"INBOX", 1}, {"Work", 1}, {"[Gmail]/All Mail", 3}, {"[Gmail]/Trash", 1}, {"[Gmail]/Starred", 1}, {"[Gmail]/Sent Mail", 1}, {"[Gmail]/Important", 1}} {
		if got := len(s.Messages("alice", tc.folder)); got != tc.n {
			t.Errorf("%s holds %d messages, want %d", tc.folder, got, tc.n)
		}
	}
	c := dial(t, s)
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string][]imap.MailboxAttr{}
	for _, l := range list {
		attrs[l.Mailbox] = l.Attrs
	}
	if !slices.Contains(attrs["[Gmail]/All Mail"], imap.MailboxAttrAll) || !slices.Contains(attrs["[Gmail]"], imap.MailboxAttrNoSelect) {
		t.Errorf("LIST attributes = %v", attrs)
	}
	got := raw(t, s, `EXAMINE "[Gmail]/All Mail"`, "UID FETCH 1:* (X-GM-MSGID X-GM-LABELS FLAGS)", "UID SEARCH X-GM-MSGID 1700000000000000001")
	if !strings.Contains(got[1], `X-GM-LABELS ("\\Inbox" "Work" "\\Important")`) || !strings.Contains(got[1], `X-GM-LABELS ()`) ||
		!strings.Contains(got[1], `X-GM-LABELS ("\\Sent" "\\Starred")`) || !strings.Contains(got[1], "X-GM-MSGID 1700000000000000001") {
		t.Errorf("FETCH X-GM-*:\n%s", got[1])
	}
	if !strings.Contains(got[2], "* SEARCH 1\r\n") {
		t.Errorf("SEARCH X-GM-MSGID:\n%s", got[2])
	}
}

// TestAppendDuplicate: Gmail answers OK to an APPEND of a message the
// account holds, stores nothing, and names the one there; with
// DuplicatesDropped it names none.
func TestAppendDuplicate(t *testing.T) {
	for _, tc := range []struct {
		d    Duplicates
		want string
	}{{DuplicatesDroppedUID, "[APPENDUID 1001 1]"}, {DuplicatesDropped, "OK APPEND completed."}} {
		o := Gmail()
		o.Duplicates = tc.d
		s := Start(t, o)
		s.AddUser("alice", "pw")
		body := msg("x", "once")
		s.Add("alice", "INBOX", Message{Body: body})
		got := raw(t, s, fmt.Sprintf("APPEND INBOX (\\Seen) {%d+}\r\n%s", len(body), body))
		if !strings.Contains(got[0], tc.want) {
			t.Errorf("APPEND of a duplicate answered %q, want %q", got[0], tc.want)
		}
		if n := len(s.Messages("alice", "INBOX")); n != 1 {
			t.Errorf("INBOX holds %d messages, want 1", n)
		}
	}
}

// TestMicrosoft365: names without case, folders of items that are not
// mail (listed, no APPEND, nor under them), \Flagged dropped
// at APPEND but kept by STORE, BYE after 10 errors.
func TestMicrosoft365(t *testing.T) {
	s := Start(t, Microsoft365())
	s.AddUser("alice", "pw")
	s.CreateFolder("alice", "Work", "")
	body := msg("f", "flagged")
	got := raw(t, s, `SELECT work`, `CREATE "WORK"`, `CREATE Calendar`,
		fmt.Sprintf("APPEND Work (\\Flagged \\Seen) {%d+}\r\n%s", len(body), body), `UID STORE 1 +FLAGS.SILENT (\Flagged)`)
	if !strings.Contains(got[0], "OK [READ-WRITE]") || !strings.Contains(got[1], "NO [ALREADYEXISTS]") || !strings.Contains(got[2], "NO [ALREADYEXISTS]") {
		t.Errorf("SELECT/CREATE: %q", got[:3])
	}
	m := s.Messages("alice", "Work")
	if len(m) != 1 || !slices.Equal(m[0].Flags, []string{`\Seen`, `\Flagged`}) {
		t.Errorf("Work holds %+v", m)
	}
	if !slices.Contains(s.Folders("alice"), "Calendar") {
		t.Error("Calendar is not listed, as Exchange lists it")
	}
	got = raw(t, s, fmt.Sprintf("APPEND calendar {%d+}\r\n%s", len(body), body), `CREATE "Calendar/Work"`,
		fmt.Sprintf("APPEND Calendar/Work {%d+}\r\n%s", len(body), body))
	if !strings.Contains(got[0], "NO APPEND failed") || !strings.Contains(got[1], "OK") || !strings.Contains(got[2], "NO APPEND failed") {
		t.Errorf("APPEND into a folder of items that are not mail, and one under it: %q", got)
	}
	var cmds []string
	for range 10 {
		cmds = append(cmds, "SELECT nosuch")
	}
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "a LOGIN alice pw\r\n")
	for i, cmd := range cmds {
		fmt.Fprintf(c, "e%d %s\r\n", i, cmd)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var all strings.Builder
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		all.WriteString(line)
		if err != nil {
			break
		}
	}
	if !strings.Contains(all.String(), "e9 NO") || !strings.HasSuffix(all.String(), "* BYE Connection closed. 14\r\n") {
		t.Errorf("after 10 errors:\n%s", all.String())
	}
}
