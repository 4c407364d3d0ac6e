package main

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/faultproxy"
)

// pop3LoginOffsets measures, on a plaintext POP3 session with s, how many
// bytes the server sends before the first CAPA line (greeting and CAPA's
// +OK) and before the reply to PASS (greeting, CAPA, USER's reply): where
// a proxy injects a capability and a login refusal. mailferry's session
// runs the same commands in the same order (CAPA, then USER and PASS, as
// Dovecot offers USER).
func pop3LoginOffsets(t *testing.T, addr, user string) (capaLines, passReply int64) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	var n int64
	line := func() string {
		t.Helper()
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading from the POP3 server: %v", err)
		}
		n += int64(len(l))
		return l
	}
	line() // greeting
	if _, err := c.Write([]byte("CAPA\r\n")); err != nil {
		t.Fatal(err)
	}
	if l := line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("CAPA: %q", l)
	}
	capaLines = n
	for line() != ".\r\n" {
	}
	if _, err := c.Write([]byte("USER " + user + "\r\nQUIT\r\n")); err != nil {
		t.Fatal(err)
	}
	if l := line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("USER: %q", l)
	}
	return capaLines, n
}

// TestFaultPOP3LoginDelay: a POP3 server that announces LOGIN-DELAY 3 in
// CAPA (RFC 2449 §6.5) and then refuses the login with -ERR [LOGIN-DELAY]
// (§8.1.1): mailferry waits the 3 s the server asked for, not its own 2 s
// backoff, logs in again and copies everything once. When every login is
// refused the attempts run out and the report says why and what to do.
//
// Dovecot sends neither, so a proxy in front of Dovecot's POP3 injects
// both: the capability line into CAPA's reply, the refusal in place of
// PASS's reply (the connection is then cut, as the server would).
func TestFaultPOP3LoginDelay(t *testing.T) {
	e := oneUserEnv(t, dovecot.Options{})
	served := seedUser(t, e, "u", userMessages("u", 6, 0))
	capaAt, passAt := pop3LoginOffsets(t, e.src.POP3Addr(), "u")
	proxy := startProxy(t, e.src.POP3Addr())
	args := e.args("pop3://u@"+proxy.Addr()+"?tls=none", "imaps://u@"+e.dst.IMAPSAddr(), "--allow-plaintext")
	const delay = 3 * time.Second // longer than the Runner's first backoff (2 s)
	refuse := func(conn int) []faultproxy.Fault {
		return []faultproxy.Fault{
			{Conn: conn, Kind: faultproxy.Inject, After: capaAt, AtLineStart: true, Line: []byte("LOGIN-DELAY 3\r\n")},
			{Conn: conn, Kind: faultproxy.Inject, After: passAt, AtLineStart: true,
				Line: []byte("-ERR [LOGIN-DELAY] only one login every 3 seconds\r\n")},
			{Conn: conn, Kind: faultproxy.Cut, After: passAt, AtLineStart: true},
		}
	}

	t.Run("refused once", func(t *testing.T) {
		if err := proxy.SetPlan(faultproxy.Plan{Faults: refuse(1)}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		r := runInProcess(t, passwords, append(args, "--attempts", "3")...)
		took := time.Since(start)
		a := r.report.Accounts[0]
		if r.code != exitOK || a.Attempts != 2 || a.Copied != len(served) {
			t.Fatalf("LOGIN-DELAY once: exit %d after %d attempts, copied %d (error %q); want %d after 2, %d\n%s",
				r.code, a.Attempts, a.Copied, a.Error, exitOK, len(served), r.stderr)
		}
		if n := len(proxy.Events()); n != 3 {
			t.Errorf("%d faults fired (%v), want the capability, the refusal and the cut", n, proxy.Events())
		}
		if took < delay || !strings.Contains(r.stderr, "retry_in="+delay.String()) {
			t.Errorf("the run took %v and logged no retry_in=%v: the server's LOGIN-DELAY was not honoured\n%s", took, delay, r.stderr)
		}
		assertSameMultiset(t, served, imapBodies(t, e.dst, "u", dstPassword, "INBOX"))
	})

	t.Run("refused every time", func(t *testing.T) {
		if err := proxy.SetPlan(faultproxy.Plan{Faults: refuse(0)}); err != nil {
			t.Fatal(err)
		}
		more := append(userMessages("u", 9, 0)[6:], []byte("Message-ID: <late@example.test>\r\n\r\nlate\r\n"))
		pop3Kind.seed(t, e.src, "u", more)
		r := runInProcess(t, passwords, append(args, "--attempts", "2")...)
		a := r.report.Accounts[0]
		if r.code != exitFatal || a.Attempts != 2 || a.ErrorClass != "transient" || !strings.Contains(a.Error, "LOGIN-DELAY") {
			t.Fatalf("LOGIN-DELAY every time: exit %d, %d attempts, class %q, error %q; want %d, 2, transient, LOGIN-DELAY\n%s",
				r.code, a.Attempts, a.ErrorClass, a.Error, exitFatal, r.stderr)
		}
		for _, w := range []string{"this soon after the last one", delay.String(), "run again later"} {
			if !strings.Contains(a.Hint, w) {
				t.Errorf("hint %q does not say %q", a.Hint, w)
			}
		}
		if proxy.Conns() != 2 {
			t.Errorf("the source saw %d connections, want one per attempt (2)", proxy.Conns())
		}
		// Nothing new was copied, nothing twice.
		assertSameMultiset(t, served, imapBodies(t, e.dst, "u", dstPassword, "INBOX"))
	})
}
