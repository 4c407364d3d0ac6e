package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/checkpoint"
)

// TestQueueCommandSQLite: `mailferry queue` on a SQLite checkpoint pauses,
// resumes and retries accounts by name, --failed and --all (the ledger's
// controls, as the status page's); add and drain, which need the fleet's
// queue, and bad command lines exit 2 saying why, touching nothing.
func TestQueueCommandSQLite(t *testing.T) {
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "state.db")
	l, err := checkpoint.Open(ctx, state, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := l.ResolveAccount(ctx, checkpoint.AccountSpec{Name: u, Endpoint: "pop3://" + u + "@pop.example:995 -> imap://" + u + "@imap.example:993/INBOX",
			SourceProto: "pop3", SourceUser: u, DestUser: u, DestFolder: "INBOX", KeyScheme: "pop3"}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	noEnv := func(string) string { return "" }
	control := func(name string) checkpoint.Control {
		t.Helper()
		l, err := checkpoint.Open(ctx, state, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		c, err := l.Control(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		args   []string
		code   int
		output string
		check  func() bool
	}{
		{[]string{"pause", "alice", "--reason", "legal hold"}, exitOK, "alice: paused",
			func() bool {
				c := control("alice")
				return c.Paused && c.Reason == "legal hold" && !control("bob").Paused
			}},
		{[]string{"pause", "alice"}, exitOK, "no account changed", nil},
		{[]string{"resume", "--all"}, exitOK, "alice: resumed", func() bool { return !control("alice").Paused }},
		{[]string{"retry", "--all", "--skipped"}, exitOK, "bob: to be retried", func() bool { return !control("bob").RetryRequested.IsZero() }},
		{[]string{"retry", "--failed"}, exitOK, "no account changed", nil},
		{[]string{"pause", "carol"}, exitUsage, "no account named", nil},
		{[]string{"add"}, exitUsage, "needs -c FILE", nil},
		{[]string{"drain", "host:1"}, exitUsage, "needs a PostgreSQL checkpoint", nil},
		{[]string{"pause"}, exitUsage, "name the accounts", nil},
		{[]string{"resume", "alice", "--skipped"}, exitUsage, "--skipped is for queue retry", nil},
		{[]string{"frobnicate"}, exitUsage, "unknown action", nil},
		{nil, exitUsage, "want an action", nil},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runInProcess(t, noEnv, append(append([]string{"queue"}, tc.args...), "--state", state)...)
			if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.output) {
				t.Fatalf("exit %d, want %d with %q\n%s%s", r.code, tc.code, tc.output, r.stdout, r.stderr)
			}
			if tc.check != nil && !tc.check() {
				t.Errorf("the checkpoint does not show the change")
			}
		})
	}
}
