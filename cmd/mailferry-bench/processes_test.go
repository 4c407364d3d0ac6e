package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// TestServerProcesses starts Dovecot with each -server-processes mode's
// configuration and logs in three times, one after the other, over IMAP
// and over POP3: with fork every login gets a new mail process, with
// reuse they share one (Dovecot's log names it: mpid=).
func TestServerProcesses(t *testing.T) {
	dovecot.Require(t)
	for _, tc := range []struct {
		mode      string
		processes int // distinct mail processes of three logins
	}{
		{mode: "fork", processes: 3},
		{mode: "reuse", processes: 1},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			srv := dovecot.Start(t, dovecot.Options{Users: map[string]string{"u": "pw"}, ExtraConfig: processConfig(tc.mode)})
			for range 3 {
				session(t, srv.IMAPAddr(), "a1 LOGIN u pw", "a2 LOGOUT")
				session(t, srv.POP3Addr(), "USER u", "PASS pw", "QUIT")
			}
			for _, proto := range []string{"imap", "pop3"} {
				if got := mailProcesses(t, srv.LogPath(), proto, 3); got != tc.processes {
					t.Errorf("%s: three logins were served by %d mail processes, want %d", proto, got, tc.processes)
				}
			}
		})
	}
}

// session sends lines to addr one by one, each after the server's
// greeting or reply, and reads until the server closes the connection.
func session(t *testing.T, addr string, lines ...string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatalf("%s: greeting: %v", addr, err)
	}
	for _, l := range lines {
		if _, err := fmt.Fprintf(c, "%s\r\n", l); err != nil {
			t.Fatal(err)
		}
		for {
			reply, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: after %q: %v", addr, strings.Fields(l)[0], err)
			}
			if !strings.HasPrefix(reply, "* ") { // IMAP's untagged lines come before the tagged reply
				if f := strings.Fields(reply); strings.HasPrefix(reply, "-ERR") || len(f) > 1 && (f[1] == "NO" || f[1] == "BAD") {
					t.Fatalf("%s: %q refused: %s", addr, strings.Fields(l)[0], reply)
				}
				break
			}
		}
	}
}

var mpidRE = regexp.MustCompile(`mpid=(\d+)`)

// mailProcesses waits for want logins of proto in Dovecot's log and counts
// the distinct mail processes that served them.
func mailProcesses(t *testing.T, logPath, proto string, want int) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		pids := map[string]bool{}
		logins := 0
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.Contains(l, proto+"-login: Info: Login:") {
				continue
			}
			logins++
			if m := mpidRE.FindStringSubmatch(l); m != nil {
				pids[m[1]] = true
			}
		}
		if logins >= want || time.Now().After(deadline) {
			if logins != want {
				t.Fatalf("%d %s logins in the log, want %d", logins, proto, want)
			}
			return len(pids)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestServerProcessesFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" when refused
	}{
		{args: nil, want: "fork"},
		{args: []string{"-server-processes", "reuse"}, want: "reuse"},
		{args: []string{"-server-processes", "fork"}, want: "fork"},
		{args: []string{"-server-processes", "prefork"}},
	} {
		c, err := parseFlags(tc.args, io.Discard)
		if (err == nil) != (tc.want != "") || err == nil && c.serverProcesses != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.args, c.serverProcesses, err, tc.want)
		}
	}
	if processConfig("fork") != "" {
		t.Errorf("fork adds to dovecot.conf: %q", processConfig("fork"))
	}
}
