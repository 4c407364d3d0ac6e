package main

import (
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
		"--allow-plaintext", "--batch-messages", "3", "--dest-sessions", "1")
	// both returns the messages of Dest and of the folders it was renamed to.
	both := func(old ...string) [][]byte {
		var out [][]byte
		for _, mb := range append(old, "Dest") {
			out = append(out, imapBodies(t, e.dst, "u", dstPassword, mb)...)
		}
		return out
	}

	t.Run("mid-run", func(t *testing.T) {
		// The server's reply to an APPEND is held back a few batches into
		// the run (connection 1 is the appender, which waits for each
		// batch's reply before it sends the next); the folder is renamed
		// away meanwhile, between two commands.
		const stall = 3 * time.Second
		if err := proxy.SetPlan(faultproxy.Plan{Faults: []faultproxy.Fault{{Conn: 1, Kind: faultproxy.Stall,
			Dir: faultproxy.ServerToClient, After: 800, AtLineStart: true, Duration: stall}}}); err != nil {
			t.Fatal(err)
		}
		renamed := make(chan error, 1)
		go func() {
			deadline := time.Now().Add(time.Minute)
			for len(proxy.Events()) == 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond) // polling the proxy, not waiting for the run
			}
			_, err := e.dst.Doveadm("mailbox", "rename", "-u", "u", "Dest", "Dest-1")
			renamed <- err
		}()
		// An APPEND under way when the folder goes may fail in Dovecot
		// ([SERVERBUG], a transient error): a second attempt is allowed.
		r := runInProcess(t, passwords, append(args, "--attempts", "2")...)
		if err := <-renamed; err != nil {
			t.Fatalf("renaming the folder away: %v", err)
		}
		a := r.report.Accounts[0]
		if r.code != exitOK || a.Copied != len(served) {
			t.Fatalf("folder gone mid-run: exit %d, copied %d in %d attempts (error %q); want %d, %d\n%s",
				r.code, a.Copied, a.Attempts, a.Error, exitOK, len(served), r.stderr)
		}
		t.Logf("mid-run: %d attempts, %v", a.Attempts, proxy.Events())
		if !strings.Contains(r.stderr, "created mailbox after TRYCREATE") {
			t.Errorf("no TRYCREATE: the folder was not renamed while the run appended\n%s", r.stderr)
		}
		old, now := imapBodies(t, e.dst, "u", dstPassword, "Dest-1"), imapBodies(t, e.dst, "u", dstPassword, "Dest")
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
