package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/faultproxy"
)

// TestFaultTryCreate: the destination folder disappears — renamed away
// with doveadm, which to mailferry is the same as deleted, while keeping
// what was stored so the test can count it.
//
// Mid-run, Dovecot answers the next APPEND with NO [TRYCREATE]: mailferry
// creates the folder and sends again; every message is stored exactly
// once, in the old folder (before the rename) or the new one. Between
// runs, the next run creates the folder and copies the new messages.
func TestFaultTryCreate(t *testing.T) {
	e := oneUserEnv(t, dovecot.Options{})
	served := seedUser(t, e, "u", userMessages("u", 30, 0))
	proxy := startProxy(t, e.dst.IMAPAddr())
	args := e.args("pop3s://u@"+e.src.POP3SAddr(), "imap://u@"+proxy.Addr()+"/Dest?tls=none",
		"--allow-plaintext", "--batch-messages", "3", "--dest-sessions", "1", "--create-folders")
	// both returns the messages of Dest and of the folders it was renamed to.
	both := func(old ...string) [][]byte {
		var out [][]byte
		for _, mb := range append(old, "Dest") {
			out = append(out, imapBodies(t, e.dst, "u", dstPassword, mb)...)
		}
		return out
	}

	t.Run("mid-run", func(t *testing.T) {
		// The folder is renamed while Dovecot is between two APPENDs: the
		// commands sent after the third batch or so are held on their way
		// to Dovecot (a stall that ends once the folder is renamed), and
		// the rename waits until Dovecot has answered every command it got.
		// Not during an APPEND: Dovecot 2.3 (maildir) may then answer "NO
		// Mailbox was deleted under us" to an APPEND whose messages it had
		// already moved into the folder, and its rollback, which unlinks
		// them under the old name, misses them in the renamed folder. A
		// real deletion takes them away with the folder, so sending them
		// again is right; after a rename they stay in Dest-1 next to the
		// copies sent again: a duplicate made by the harness, not by
		// mailferry.
		//
		// The stall is on every connection: which of the session's two
		// connections the proxy accepts first is a race, and only the
		// appender sends 2500 bytes.
		release := make(chan struct{})
		if err := proxy.SetPlan(faultproxy.Plan{Faults: []faultproxy.Fault{{Kind: faultproxy.Stall,
			Dir: faultproxy.ClientToServer, After: 2500, AtLineStart: true, Until: release}}}); err != nil {
			t.Fatal(err)
		}
		runDone := make(chan struct{})
		renamed := make(chan error, 1)
		go func() {
			defer close(release)
			renamed <- renameBetweenCommands(proxy, runDone, func() error {
				_, err := e.dst.Doveadm("mailbox", "rename", "-u", "u", "Dest", "Dest-1")
				return err
			})
		}()
		r := runInProcess(t, passwords, args...)
		close(runDone)
		if err := <-renamed; err != nil {
			t.Fatalf("renaming the folder away: %v\n%s", err, r.stderr)
		}
		a := r.report.Accounts[0]
		if r.code != exitOK || a.Copied != len(served) || a.Attempts != 1 {
			t.Fatalf("folder gone mid-run: exit %d, copied %d in %d attempts (error %q); want %d, %d in 1\n%s",
				r.code, a.Copied, a.Attempts, a.Error, exitOK, len(served), r.stderr)
		}
		if ev := proxy.Events(); len(ev) != 1 {
			t.Errorf("the stall fired %d times, want once (on the appender's connection): %v", len(ev), ev)
		}
		if !strings.Contains(r.stderr, "created mailbox after TRYCREATE") {
			t.Errorf("no TRYCREATE: the folder was not renamed while the run appended\n%s", r.stderr)
		}
		old, now := imapBodies(t, e.dst, "u", dstPassword, "Dest-1"), imapBodies(t, e.dst, "u", dstPassword, "Dest")
		t.Logf("mid-run: %d messages before the rename, %d after; %v", len(old), len(now), proxy.Events())
		if len(old) == 0 || len(now) == 0 {
			t.Errorf("%d messages before the rename and %d after; want some of each", len(old), len(now))
		}
		assertSameMultiset(t, served, both("Dest-1"))
	})

	t.Run("between runs", func(t *testing.T) {
		if err := proxy.SetPlan(faultproxy.Plan{}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.dst.Doveadm("mailbox", "rename", "-u", "u", "Dest", "Dest-2"); err != nil {
			t.Fatal(err)
		}
		more := userMessages("u", 36, 0)[30:]
		pop3Kind.seed(t, e.src, "u", more)
		all := popServed(t, e.src, "u")
		r := runInProcess(t, passwords, args...)
		a := r.report.Accounts[0]
		if r.code != exitOK || a.Copied != len(more) || a.AlreadyDone != len(served) {
			t.Fatalf("folder gone between runs: exit %d, copied %d, already done %d; want %d, %d, %d\n%s",
				r.code, a.Copied, a.AlreadyDone, exitOK, len(more), len(served), r.stderr)
		}
		assertSameMultiset(t, more, imapBodies(t, e.dst, "u", dstPassword, "Dest"))
		assertSameMultiset(t, all, both("Dest-1", "Dest-2"))
	})
}

// renameBetweenCommands waits for the proxy's one stall (a client→server
// stall that holds the commands sent after it), then until the server has
// answered every command it got on that connection, and runs rename: the
// server is then between two commands on it. The caller releases the stall
// when it returns. runDone closes when the run ends.
func renameBetweenCommands(proxy *faultproxy.Proxy, runDone <-chan struct{}, rename func() error) error {
	deadline := time.Now().Add(time.Minute)
	wait := func(what string, done func() (bool, error)) error {
		for {
			ok, err := done()
			if ok || err != nil {
				return err
			}
			select {
			case <-runDone:
				return fmt.Errorf("the run ended while waiting for %s", what)
			case <-time.After(10 * time.Millisecond): // polling the proxy, not waiting for the run
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no %s after a minute", what)
			}
		}
	}
	var conn int
	if err := wait("the stall", func() (bool, error) {
		ev := proxy.Events()
		if len(ev) > 0 {
			conn = ev[0].Conn
		}
		return len(ev) > 0, nil
	}); err != nil {
		return err
	}
	if err := wait("the server's answers", func() (bool, error) {
		n, ok := proxy.Unanswered(conn)
		if !ok {
			return false, fmt.Errorf("connection %d is gone or not IMAP", conn)
		}
		return n == 0, nil
	}); err != nil {
		return err
	}
	return rename()
}
