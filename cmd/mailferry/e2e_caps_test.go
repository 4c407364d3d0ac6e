package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/faultproxy"
	"github.com/mailferry/mailferry/secret"
)

// TestE2EPerUserCap: four accounts consolidated into one destination user,
// run by four workers with two destination sessions each, never hold more
// than max_connections_per_user = 3 connections of that user (counted at a
// proxy in front of the destination); without the cap the same run holds
// more, so the count would see a breach. Both copies are exact.
func TestE2EPerUserCap(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{}
	for i := 1; i <= 4; i++ {
		users[fmt.Sprintf("u%d", i)] = "pw"
	}
	src := dovecot.Start(t, dovecot.Options{Name: "mf-capsrc", CA: ca, Users: users})
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-capdst", CA: ca, Users: map[string]string{"shared": "dpw"}})
	proxy := startProxy(t, dst.IMAPSAddr())
	served := map[string][][]byte{}
	for u := range users {
		msgs := simpleMessages(60)
		for i := range msgs {
			msgs[i] = append([]byte("X-Owner: "+u+"\r\n"), msgs[i]...)
		}
		for i, m := range msgs {
			if err := src.SeedMaildir(u, "INBOX", m, "", time.Date(2020, 1, 1, 0, i, 0, 0, time.UTC)); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range msgs {
			served[u] = append(served[u], crlf(m))
		}
	}
	config := func(root, extra string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "state = %q\nworkers = 4\ncreate_folders = true\n[source]\nurl = \"pop3s://%s\"\ntls_ca = %q\n[destination]\nurl = \"imaps://%s\"\ntls_ca = %q\nsessions = 2\nbatch_messages = 5\n%s\n",
			filepath.Join(t.TempDir(), "state.db"), src.POP3SAddr(), src.CAFile(), proxy.Addr(), src.CAFile(), extra)
		for i := 1; i <= 4; i++ {
			fmt.Fprintf(&b, "[[account]]\nsource_user = \"u%d\"\nsource_password = \"pw\"\ndest_user = \"shared\"\ndest_password = \"dpw\"\ndest_folder = \"%s/u%d\"\n", i, root, i)
		}
		path := filepath.Join(t.TempDir(), "migrate.toml")
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name, root, extra string
		capped            bool
	}{
		{"max_connections_per_user = 3", "Capped", "max_connections_per_user = 3", true},
		{"no cap", "Free", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := proxy.SetPlan(faultproxy.Plan{}); err != nil {
				t.Fatal(err)
			}
			r := runInProcess(t, func(string) string { return "" }, "run", "-c", config(tc.root, tc.extra), "--json", "--progress", "none")
			if r.code != exitOK || r.report.Totals.Copied != 240 {
				t.Fatalf("exit %d, copied %d\n%s", r.code, r.report.Totals.Copied, r.stderr)
			}
			proxy.WaitIdle(10 * time.Second)
			peak := proxy.MaxOpen(20 * time.Millisecond)
			t.Logf("%s: at most %d connections of the destination user at once (%d in all)", tc.name, peak, proxy.Conns())
			if tc.capped && peak > 3 {
				t.Errorf("%d connections of one user at once, want at most 3", peak)
			}
			if !tc.capped && peak <= 3 {
				t.Errorf("without a cap the run held only %d connections at once: the count cannot tell", peak)
			}
			for u, want := range served {
				assertSameMultiset(t, want, destBodies(destMessagesOf(t, dst, "shared", "dpw", tc.root+"/"+u)))
			}
		})
	}
}

// TestE2ERefusedConnectionLowersCap: a destination that allows a user 3
// IMAP connections (Dovecot's mail_max_userip_connections) refuses the 4th
// of a copy with four destination sessions; the refusal lowers the user's
// cap instead of failing the account, and the copy finishes exact. The
// logins are spaced out at a proxy so that Dovecot has counted each
// connection before the next one logs in.
func TestE2ERefusedConnectionLowersCap(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{dir: t.TempDir()}
	p.src = dovecot.Start(t, dovecot.Options{Name: "mf-rfsrc", CA: ca, Users: map[string]string{"alice": srcPassword}})
	p.dst = dovecot.Start(t, dovecot.Options{Name: "mf-rfdst", CA: ca, Users: map[string]string{"alice": dstPassword},
		ExtraConfig: "protocol imap {\n  mail_max_userip_connections = 3\n}\n"})
	p.state = filepath.Join(p.dir, "state.db")
	seed(t, p, simpleMessages(300))
	served := sourceServed(t, p)
	proxy := startProxy(t, p.dst.IMAPSAddr())
	var plan faultproxy.Plan
	for i := 2; i <= 12; i++ { // a Stall of 0 would be endless: connection 1 goes at once
		plan.Faults = append(plan.Faults, faultproxy.Fault{Conn: i, Kind: faultproxy.Stall, Dir: faultproxy.ClientToServer,
			Duration: time.Duration(i-1) * 400 * time.Millisecond})
	}
	if err := proxy.SetPlan(plan); err != nil {
		t.Fatal(err)
	}
	r := runInProcess(t, p.getenv, "copy", p.srcURL(), "imaps://alice@"+proxy.Addr(), "--tls-ca", p.src.CAFile(),
		"--state", p.state, "--json", "--progress", "none", "--dest-sessions", "4", "--batch-messages", "10")
	if r.code != exitOK || r.report.Totals.Copied != 300 {
		t.Fatalf("exit %d, copied %d\n%s", r.code, r.report.Totals.Copied, r.stderr)
	}
	if !strings.Contains(r.stderr, "lowering the per-user cap") || !strings.Contains(r.stderr, "max_connections_per_user=") {
		t.Errorf("no refusal lowered the cap:\n%s", r.stderr)
	}
	if !strings.Contains(p.dst.LogTail(200), "Maximum number of connections from user+IP exceeded") {
		t.Errorf("the destination refused nothing: the test did not test")
	}
	assertSameMultiset(t, served, destBodies(destMessages(t, p, "INBOX")))
}

// TestE2ERefusedFirstSessionIsRetried: when the user's connections are
// held by another client, the server refuses even the attempt's first
// destination session; that lowers the cap and is retried, not a failed
// account (a refused login is fatal otherwise). Once the other client lets
// go, the copy finishes exact.
func TestE2ERefusedFirstSessionIsRetried(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{dir: t.TempDir()}
	p.src = dovecot.Start(t, dovecot.Options{Name: "mf-r1src", CA: ca, Users: map[string]string{"alice": srcPassword}})
	p.dst = dovecot.Start(t, dovecot.Options{Name: "mf-r1dst", CA: ca, Users: map[string]string{"alice": dstPassword},
		ExtraConfig: "protocol imap {\n  mail_max_userip_connections = 3\n}\n"})
	p.state = filepath.Join(p.dir, "state.db")
	seed(t, p, simpleMessages(50))
	served := sourceServed(t, p)
	// Another client holds all three of alice's connections.
	var held []*imapdst.Appender
	for range 3 {
		a, err := imapdst.DialAppender(context.Background(), imapdst.Options{Addr: p.dst.IMAPSAddr(), User: "alice",
			Password: secret.New(dstPassword), TLSConfig: p.dst.TLSConfig()})
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, a)
	}
	release := func() {
		for _, a := range held {
			a.Close()
		}
	}
	defer release()
	time.Sleep(time.Second) // Dovecot counts them once registered
	var stdout, stderr lockedBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(context.Background(), []string{"copy", p.srcURL(), p.dstURL(), "--tls-ca", p.src.CAFile(),
			"--state", p.state, "--json", "--progress", "none", "--dest-sessions", "1", "--retry-backoff", "3s"},
			&env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: p.getenv})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "lowering the per-user cap") {
		select {
		case code := <-exited:
			t.Fatalf("the copy ended (exit %d) before a refusal lowered the cap:\n%s", code, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refusal within 30 s:\n%s", stderr.String())
		}
	}
	release() // the other client lets go before the retry
	var code int
	select {
	case code = <-exited:
	case <-time.After(2 * time.Minute):
		t.Fatal("the copy did not end")
	}
	var rep report
	if err := json.Unmarshal([]byte(stdout.String()), &rep); err != nil || code != exitOK || rep.Totals.Copied != 50 {
		t.Fatalf("exit %d, copied %d (%v)\n%s", code, rep.Totals.Copied, err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "account attempt failed, retrying") {
		t.Errorf("the refused attempt was not retried:\n%s", stderr.String())
	}
	assertSameMultiset(t, served, destBodies(destMessages(t, p, "INBOX")))
}
