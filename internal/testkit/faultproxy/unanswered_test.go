package faultproxy

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// puppet is an upstream that writes greeting, then hands each line it
// reads to lines and writes what the test sends on replies.
func puppet(t *testing.T, greeting string) (addr string, lines <-chan string, replies chan<- string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got, send := make(chan string, 16), make(chan string, 16)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, greeting)
		go func() {
			for s := range send {
				io.WriteString(c, s)
			}
		}()
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			got <- line
		}
	}()
	return ln.Addr().String(), got, send
}

// TestUnanswered: the proxy counts the IMAP commands it forwarded that the
// server has not completed: a literal's lines are part of their command or
// response, untagged and continuation lines complete nothing, and a
// command held by a client→server stall is not forwarded, so not counted.
func TestUnanswered(t *testing.T) {
	const (
		greeting = "* OK ready\r\n"
		noop     = "a1 NOOP\r\n"
		appendC  = "a2 APPEND INBOX {12+}\r\na3 OK fake\r\n\r\n" // the literal looks like a completion
		held     = "a3 NOOP\r\n"
	)
	addr, lines, replies := puppet(t, greeting)
	release := make(chan struct{})
	p := startProxy(t, addr, Fault{Kind: Stall, Dir: ClientToServer, After: int64(len(noop) + len(appendC)),
		AtLineStart: true, Until: release})
	c := dial(t, p.Addr())
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || line != greeting {
		t.Fatalf("greeting %q, %v", line, err)
	}
	want := func(n int, what string) {
		t.Helper()
		waitFor(t, 5*time.Second, what, func() bool {
			got, ok := p.Unanswered(1)
			return ok && got == n
		})
	}
	want(0, "no command yet, yet some unanswered")
	io.WriteString(c, noop+appendC)
	for _, w := range []string{noop, "a2 APPEND INBOX {12+}\r\n", "a3 OK fake\r\n", "\r\n"} {
		if got := <-lines; got != w {
			t.Fatalf("upstream read %q, want %q", got, w)
		}
	}
	want(2, "a NOOP and an APPEND forwarded, a line of its literal is no command")

	replies <- "* 3 EXISTS\r\n+ go on\r\na1 OK done\r\n"
	want(1, "a1 completed, untagged and continuation lines complete nothing")
	replies <- "* 1 FETCH (BODY[] {12}\r\na2 OK fake\r\n)\r\n"
	want(1, "a line inside a literal from the server completed a command")
	replies <- "a2 OK done\r\n"
	want(0, "every command completed")

	// Held by the stall: not forwarded, not counted.
	io.WriteString(c, held)
	waitFor(t, 5*time.Second, "the stall did not fire", func() bool { return len(p.Events()) == 1 })
	select {
	case got := <-lines:
		t.Fatalf("upstream read %q during the stall", got)
	case <-time.After(100 * time.Millisecond):
	}
	want(0, "a held command counted")
	close(release)
	if got := <-lines; got != held {
		t.Fatalf("after the release upstream read %q, want %q", got, held)
	}
	want(1, "the released command not counted")

	if _, ok := p.Unanswered(2); ok {
		t.Error("Unanswered answers for a connection that does not exist")
	}
	if err := p.SetPlan(Plan{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Unanswered(1); ok {
		t.Error("after SetPlan, Unanswered(1) answers for the connection of the plan before")
	}
}

// TestUnansweredOnlyIMAP: a POP3 session has no tagged commands to count.
func TestUnansweredOnlyIMAP(t *testing.T) {
	addr, lines, _ := puppet(t, "+OK ready\r\n")
	p := startProxy(t, addr)
	c := dial(t, p.Addr())
	io.WriteString(c, "STAT\r\n")
	<-lines
	if n, ok := p.Unanswered(1); ok {
		t.Errorf("Unanswered on a POP3 session: %d, true; want false", n)
	}
}
