package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/pipeline"
)

// TestStatusManyProblems: with more than manyProblems accounts holding
// skipped or failed entries, status reads those of every account at once
// (Ledger.Problems) and lists each account's own, sorted by key, in JSON
// and text, as it does reading them account by account.
func TestStatusManyProblems(t *testing.T) {
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "s.db")
	l, err := checkpoint.Open(ctx, state, nil)
	if err != nil {
		t.Fatal(err)
	}
	const accounts = manyProblems + 6
	want := map[string][2][]statusMessage{} // by ledger key: skipped, failed
	for i := range accounts + 1 {
		user := fmt.Sprintf("user%04d", i)
		spec := checkpoint.AccountSpec{Endpoint: "pop3://" + user + "@pop.example:995 -> imap://" + user + "@imap.example:993/INBOX",
			SourceProto: "pop3", SourceUser: user, DestUser: user, DestFolder: "INBOX", KeyScheme: "pop3"}
		res, err := l.ResolveAccount(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		put := []pipeline.Entry{{Key: "d", State: pipeline.StateDone, Size: 10}}
		var w [2][]statusMessage
		if i < accounts { // the last account has none
			for _, k := range []string{"s2", "s1"}[:1+i%2] {
				reason := fmt.Sprintf("too big %d", i)
				put = append(put, pipeline.Entry{Key: k, State: pipeline.StateSkipped, Reason: reason})
				w[0] = append([]statusMessage{{Key: k, Reason: reason}}, w[0]...)
			}
			if i%3 == 0 {
				put = append(put, pipeline.Entry{Key: "f", State: pipeline.StateFailed, Reason: "refused " + user})
				w[1] = []statusMessage{{Key: "f", Reason: "refused " + user}}
			}
		}
		h, err := l.Hold(ctx, res.Account)
		if err != nil {
			t.Fatal(err)
		}
		err = l.Commit(ctx, res.Account, pipeline.Changes{Put: put})
		h.Release(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want[spec.Endpoint] = w
	}
	l.Close()

	r := runCmd(t, runStatus, func(string) string { return "" }, "--state", state, "--json")
	var rep statusReport
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &rep) != nil || len(rep.Accounts) != accounts+1 {
		t.Fatalf("status --json: exit %d, want %d accounts\n%s", r.code, accounts+1, r.stderr)
	}
	for _, a := range rep.Accounts {
		w := want[a.Account]
		if fmt.Sprint(a.SkippedMessages) != fmt.Sprint(append([]statusMessage{}, w[0]...)) ||
			fmt.Sprint(a.FailedMessages) != fmt.Sprint(append([]statusMessage{}, w[1]...)) {
			t.Errorf("%s: skipped %v, failed %v; want %v and %v", a.Account, a.SkippedMessages, a.FailedMessages, w[0], w[1])
		}
	}
	r = runCmd(t, runStatus, func(string) string { return "" }, "--state", state)
	for _, line := range []string{"  skipped s1: too big 1\n  skipped s2: too big 1\n", "  failed f: refused user0003\n"} {
		if !strings.Contains(r.stdout, line) {
			t.Errorf("status lacks %q:\n%s", line, r.stdout)
		}
	}
}
