package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// logoutProxy forwards connections from 127.0.0.1 to a plaintext IMAP or
// POP3 server and holds each client's LOGOUT or QUIT for hold before it
// passes it on: a distant server, whose goodbye is a round trip away. It
// notes when each connection opened, when its logout arrived and when the
// server's reply to it went back.
type logoutProxy struct {
	ln       net.Listener
	upstream string
	hold     time.Duration
	wg       sync.WaitGroup

	mu    sync.Mutex
	conns []*loggingOut
}

// loggingOut is what logoutProxy notes of one connection.
type loggingOut struct {
	opened   time.Time
	logout   time.Time // zero: no LOGOUT or QUIT seen
	answered time.Time // zero: no reply to it passed on
}

func startLogoutProxy(t *testing.T, upstream string, hold time.Duration) *logoutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &logoutProxy{ln: ln, upstream: upstream, hold: hold}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *logoutProxy) Addr() string { return p.ln.Addr().String() }

func (p *logoutProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		c := &loggingOut{opened: time.Now()}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(client, c)
		}()
	}
}

func (p *logoutProxy) serve(client net.Conn, c *loggingOut) {
	defer client.Close()
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 {
				p.mu.Lock()
				if !c.logout.IsZero() && c.answered.IsZero() {
					c.answered = time.Now()
				}
				p.mu.Unlock()
				if _, werr := client.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				client.Close()
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			// The goodbye is the last thing a client sends, and it waits
			// for the reply: it ends what the client wrote.
			if tail := bytes.ToUpper(buf[:n]); bytes.HasSuffix(tail, []byte(" LOGOUT\r\n")) || bytes.Equal(tail, []byte("QUIT\r\n")) {
				p.mu.Lock()
				c.logout = time.Now()
				p.mu.Unlock()
				time.Sleep(p.hold)
			}
			if _, werr := server.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	server.Close()
	<-done
}

// openedWhileHeld is how many connections opened while the logout of
// another was held or waiting for its reply.
func (p *logoutProxy) openedWhileHeld() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.conns {
		for _, o := range p.conns {
			if !o.logout.IsZero() && c.opened.After(o.logout) && (o.answered.IsZero() || c.opened.Before(o.answered)) {
				n++
				break
			}
		}
	}
	return n
}

// unanswered is how many connections sent a logout whose reply has not
// come back (yet).
func (p *logoutProxy) unanswered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.conns {
		if !c.logout.IsZero() && c.answered.IsZero() {
			n++
		}
	}
	return n
}

// TestE2EBatchLogoutsBehind: in a batch, a worker takes its next account
// while the sessions of the one it finished log out (servers that hold
// every LOGOUT and QUIT reply 300 ms, as a distant one does): with one
// worker, the next account's connections open while the last one's
// logouts are held (closed in line, never). The run still waits for
// every logout before it reports, the destination's max_connections
// holds while sessions close, and the copies are exact.
func TestE2EBatchLogoutsBehind(t *testing.T) {
	const hold = 300 * time.Millisecond
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{}
	for i := 1; i <= 6; i++ {
		users[fmt.Sprintf("u%d", i)] = fmt.Sprintf("pw-%d", i)
	}
	src := dovecot.Start(t, dovecot.Options{Name: "mf-lbsrc", CA: ca, Users: users})
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-lbdst", CA: ca, Users: users})
	served := map[string][][]byte{}
	for u := range users {
		for i, m := range simpleMessages(20) {
			m = append([]byte("X-Owner: "+u+"\r\n"), m...)
			if err := src.SeedMaildir(u, "INBOX", m, "", time.Date(2020, 1, 1, 0, i, 0, 0, time.UTC)); err != nil {
				t.Fatal(err)
			}
			served[u] = append(served[u], crlf(m))
		}
	}
	for _, tc := range []struct {
		name     string
		pop3     bool // else IMAP
		accounts int
		workers  int
		extra    string // in [destination]
		capped   bool
	}{
		{"IMAP to IMAP, one worker", false, 3, 1, "", false},
		{"POP3 to IMAP, max_connections = 2", true, 6, 3, "max_connections = 2", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scheme, upstream, mailbox, destFolder := "imap", src.IMAPAddr(), "INBOX", ""
			if tc.pop3 {
				scheme, upstream, mailbox = "pop3", src.POP3Addr(), "FromPOP"
				destFolder = "dest_folder = \"FromPOP\"\n"
			}
			srcProxy := startLogoutProxy(t, upstream, hold)
			dstProxy := startLogoutProxy(t, dst.IMAPAddr(), hold)
			// Counted in front of the held destination: its connections
			// end when the client's close reaches it.
			counter := startProxy(t, dstProxy.Addr())
			var b strings.Builder
			fmt.Fprintf(&b, "state = %q\nworkers = %d\ncreate_folders = true\n[source]\nurl = \"%s://%s?tls=none\"\nallow_plaintext = true\n"+
				"[destination]\nurl = \"imap://%s?tls=none\"\nallow_plaintext = true\nsessions = 1\n%s\n",
				filepath.Join(t.TempDir(), "state.db"), tc.workers, scheme, srcProxy.Addr(), counter.Addr(), tc.extra)
			for i := 1; i <= tc.accounts; i++ {
				u := fmt.Sprintf("u%d", i)
				fmt.Fprintf(&b, "[[account]]\nsource_user = %q\nsource_password = %q\ndest_user = %q\ndest_password = %q\n%s",
					u, users[u], u, users[u], destFolder)
			}
			cfg := filepath.Join(t.TempDir(), "migrate.toml")
			if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			r := runInProcess(t, func(string) string { return "" }, "run", "-c", cfg, "--json", "--progress", "none")
			// Before anything else: the run waited for every logout.
			if n := srcProxy.unanswered() + dstProxy.unanswered(); n != 0 {
				t.Errorf("the run ended with %d logouts unanswered; it must wait for them", n)
			}
			if r.code != exitOK || r.report.Totals.Copied != 20*tc.accounts {
				t.Fatalf("exit %d, copied %d\n%s", r.code, r.report.Totals.Copied, lastLines(r.stderr, 30))
			}
			during := srcProxy.openedWhileHeld() + dstProxy.openedWhileHeld()
			t.Logf("%d connections opened while another's logout was held", during)
			if tc.workers == 1 && during == 0 {
				t.Errorf("with one worker, no connection opened while a logout was held: the worker waited for each account's logouts")
			}
			counter.WaitIdle(10 * time.Second)
			peak := counter.MaxOpen(20 * time.Millisecond)
			t.Logf("the destination saw at most %d connections at once", peak)
			if tc.capped && peak > 2 {
				t.Errorf("the destination saw %d connections at once, max_connections = 2", peak)
			}
			for i := 1; i <= tc.accounts; i++ {
				u := fmt.Sprintf("u%d", i)
				assertSameMultiset(t, served[u], destBodies(destMessagesOf(t, dst, u, users[u], mailbox)))
			}
		})
	}
}
