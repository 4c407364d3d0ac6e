package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/imapsrc"
	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
	"github.com/mailferry/mailferry/verify"
)

// TestByeEveryIMAPClient: Dovecot ends a logged-in session with a BYE
// (doveadm kick: "* BYE Server shutting down.") between two commands.
// The next command of every go-imap client (IMAP source, the
// destination's control connection, verify) fails saying what the server
// said, as a transient error, with STARTTLS as with implicit TLS. go-imap
// drops the BYE; before internal/imapconn watched the connection it reads
// above TLS, the control connection lost it with STARTTLS and verify
// always.
func TestByeEveryIMAPClient(t *testing.T) {
	srv := dovecot.Start(t, dovecot.Options{Users: map[string]string{"alice": dstPassword}})
	pw := secret.New(dstPassword)
	// Each client opens a session, and returns a command to run on it and
	// the session's close.
	clients := map[string]func(ctx context.Context, addr string, mode imapdst.TLSMode) (run func() error, closeFn func(), err error){
		"IMAP source": func(ctx context.Context, addr string, mode imapdst.TLSMode) (func() error, func(), error) {
			s, err := imapsrc.Open(ctx, imapsrc.Options{Addr: addr, TLS: mode, TLSConfig: srv.TLSConfig(), User: "alice", Password: pw})
			if err != nil {
				return nil, nil, err
			}
			run := func() error { _, err := s.Folders(ctx); return err }
			return run, func() { _ = s.Close(false) }, nil
		},
		"IMAP destination": func(ctx context.Context, addr string, mode imapdst.TLSMode) (func() error, func(), error) {
			d, err := imapdst.Dial(ctx, imapdst.Options{Addr: addr, TLS: mode, TLSConfig: srv.TLSConfig(), User: "alice", Password: pw})
			if err != nil {
				return nil, nil, err
			}
			run := func() error { _, err := d.Folders(ctx); return err }
			return run, func() { _ = d.Close() }, nil
		},
		"verify": func(ctx context.Context, addr string, mode imapdst.TLSMode) (func() error, func(), error) {
			s, err := verify.DialIMAP(ctx, verify.IMAPOptions{Addr: addr, TLS: mode, TLSConfig: srv.TLSConfig(), User: "alice", Password: pw})
			if err != nil {
				return nil, nil, err
			}
			run := func() error { _, err := s.Status(ctx, "INBOX"); return err }
			return run, func() { _ = s.Close() }, nil
		},
	}
	for _, m := range []struct {
		name string
		addr string
		mode imapdst.TLSMode
	}{
		{"STARTTLS", srv.IMAPAddr(), imapdst.TLSStartTLS},
		{"implicit TLS", srv.IMAPSAddr(), imapdst.TLSImplicit},
	} {
		for name, open := range clients {
			t.Run(m.name+"/"+name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				defer cancel()
				run, closeFn, err := open(ctx, m.addr, m.mode)
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				defer closeFn()
				if err := run(); err != nil {
					t.Fatalf("first command: %v", err)
				}
				kickAndWait(t, srv, "alice")
				err = run()
				if err == nil {
					t.Fatal("command after the server's BYE: nil error")
				}
				if !strings.Contains(err.Error(), "BYE Server shutting down.") {
					t.Errorf("error %q does not say what the server said (BYE Server shutting down.)", err)
				}
				if c := pipeline.ClassOf(err); c != pipeline.ClassTransient {
					t.Errorf("class %v of %v, want transient", c, err)
				}
			})
		}
	}
}

// kickAndWait ends user's sessions on srv (doveadm kick: Dovecot sends
// "* BYE Server shutting down." and closes) and waits until Dovecot lists
// none (doveadm who), so that the BYE was sent before the caller's next
// command.
func kickAndWait(t *testing.T, srv *dovecot.Server, user string) {
	t.Helper()
	connected := func() bool {
		out, err := srv.Doveadm("who", "-1", user)
		if err != nil {
			t.Fatalf("doveadm who: %v", err)
		}
		return strings.Contains(string(out), user)
	}
	if !connected() {
		t.Fatalf("doveadm who does not list %s before the kick", user)
	}
	if out, err := srv.Doveadm("kick", user); err != nil {
		t.Fatalf("doveadm kick: %v\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for connected() {
		if time.Now().After(deadline) {
			t.Fatalf("%s still connected 10 s after the kick", user)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
