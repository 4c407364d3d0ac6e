package main

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// TestFaultLateAppendIsRemoved is the duplicate the soak test found: a run
// gives up on a MULTIAPPEND whose bytes are on their way but not yet at the
// server (a congested link); the next run reconciles, finds nothing and
// sends the messages again; then the first APPEND reaches Dovecot, which
// stores it. The next run must find that late copy next to the copy the
// ledger names and remove it, leaving every message exactly once.
func TestFaultLateAppendIsRemoved(t *testing.T) {
	e := oneUserEnv(t, dovecot.Options{})
	served := seedUser(t, e, "u", userMessages("u", 12, 0))
	// The held bytes go on once the second run is done: the order of the
	// race, enforced rather than hoped for from a time (a loaded machine
	// could run the second run after they landed, and it would find them).
	release := make(chan struct{})
	line := startLateLine(t, e.dst.IMAPAddr(), []byte(" APPEND "), release)
	args := e.args("pop3s://u@"+e.src.POP3SAddr(), "imap://u@"+line.addr()+"/INBOX?tls=none",
		"--allow-plaintext", "--batch-messages", "4", "--dest-sessions", "1")

	// 1: the first APPEND is held on the line; mailferry gives up on it.
	r := runInProcess(t, passwords, append(args, "--attempts", "1", "--idle-timeout", "1s")...)
	if r.code == exitOK {
		t.Fatalf("first run: exit 0; the held APPEND should have timed out\n%s", r.stderr)
	}
	// 2: at once, as the soak's next run or a cron job would.
	r = runInProcess(t, passwords, args...)
	a2 := r.report.Accounts[0]
	if r.code != exitOK || a2.Resent == 0 {
		t.Fatalf("second run: exit %d, resent %d (error %q); want 0 and the held messages resent\n%s",
			r.code, a2.Resent, a2.Error, r.stderr)
	}
	// The held bytes reach Dovecot: the race has happened.
	close(release)
	select {
	case <-line.delivered:
	case <-time.After(time.Minute):
		t.Fatal("the held APPEND was never delivered")
	}
	landed := len(imapBodies(t, e.dst, "u", dstPassword, "INBOX"))
	t.Logf("second run resent %d; %d on the destination after the late APPEND", a2.Resent, landed)
	if landed <= len(served) {
		t.Fatal("the late APPEND stored nothing: the test did not reproduce the race")
	}

	// 3: the late copies go; the ledger's copies stay.
	r = runInProcess(t, passwords, args...)
	a3 := r.report.Accounts[0]
	if r.code != exitOK || a3.Copied != 0 || a3.LateCopiesRemoved != landed-len(served) {
		t.Fatalf("third run: exit %d, copied %d, late copies removed %d; want 0, 0, %d\n%s",
			r.code, a3.Copied, a3.LateCopiesRemoved, landed-len(served), r.stderr)
	}
	assertSameMultiset(t, served, imapBodies(t, e.dst, "u", dstPassword, "INBOX"))
	r = runInProcess(t, passwords, args...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 0 || a.LateCopiesRemoved != 0 || a.AlreadyDone != len(served) {
		t.Fatalf("fourth run: exit %d, copied %d, removed %d, already done %d; want 0, 0, 0, %d",
			r.code, a.Copied, a.LateCopiesRemoved, a.AlreadyDone, len(served))
	}
	assertSameMultiset(t, served, imapBodies(t, e.dst, "u", dstPassword, "INBOX"))
}

// lateLine is a TCP relay that models a congested link: on the first
// connection whose client sends trigger, the client's bytes from the
// trigger on are held until release closes and only then delivered to the
// server, even when the client has given up and closed or reset the
// connection meanwhile (the bytes were already on the wire). Replies pass
// at once. Later connections pass untouched.
type lateLine struct {
	ln        net.Listener
	upstream  string
	trigger   []byte
	release   <-chan struct{}
	closed    chan struct{} // closed at cleanup: held bytes are dropped
	mu        sync.Mutex
	triggered bool
	// delivered is closed once the server has read the held bytes and
	// closed the connection: it has answered them, so what they store is
	// stored.
	delivered chan struct{}
	wg        sync.WaitGroup
}

func startLateLine(t *testing.T, upstream string, trigger []byte, release <-chan struct{}) *lateLine {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &lateLine{ln: ln, upstream: upstream, trigger: trigger, release: release,
		closed: make(chan struct{}), delivered: make(chan struct{})}
	l.wg.Add(1)
	go l.accept()
	t.Cleanup(func() { close(l.closed); ln.Close(); l.wg.Wait() })
	return l
}

func (l *lateLine) addr() string { return l.ln.Addr().String() }

func (l *lateLine) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.relay(c) }()
	}
}

func (l *lateLine) relay(client net.Conn) {
	defer client.Close()
	up, err := net.Dial("tcp", l.upstream)
	if err != nil {
		return
	}
	defer up.Close()
	go func() { _, _ = io.Copy(client, up) }()
	var pending []byte // client bytes not yet forwarded, held once triggered
	held := false
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		pending = append(pending, buf[:n]...)
		if !held {
			l.mu.Lock()
			if i := bytes.Index(pending, l.trigger); i >= 0 && !l.triggered {
				// Up to the start of the triggering line goes through.
				if j := bytes.LastIndexByte(pending[:i], '\n'); j >= 0 {
					if _, werr := up.Write(pending[:j+1]); werr != nil {
						l.mu.Unlock()
						return
					}
					pending = pending[j+1:]
				}
				l.triggered, held = true, true
			}
			l.mu.Unlock()
		}
		if !held && len(pending) > 0 {
			if _, werr := up.Write(pending); werr != nil {
				return
			}
			pending = pending[:0]
		}
		if err != nil {
			break
		}
	}
	if !held {
		return
	}
	// The client is gone; what it sent is still on the wire.
	select {
	case <-l.release:
	case <-l.closed:
		return
	}
	_, _ = up.Write(pending)
	// Let the server read it all before the close (a close with unread
	// data would reset the connection on the server's side first); it
	// answers, then closes too.
	_ = up.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, up)
	close(l.delivered)
}
