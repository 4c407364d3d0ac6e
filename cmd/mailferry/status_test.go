package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/account"
	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/pipeline"
)

// TestE2EStatusSkipped: after a run that skips a too-big message, status
// shows it with its reason, in text and JSON.
func TestE2EStatusSkipped(t *testing.T) {
	p := startPair(t)
	msgs := simpleMessages(3)
	msgs = append(msgs, []byte("Message-ID: <big@example.test>\r\nSubject: big\r\n\r\n"+strings.Repeat("y", 5000)+"\r\n"))
	seed(t, p, msgs)
	r := runInProcess(t, p.getenv, p.copyArgs("--max-message-size", "2000")...)
	if r.code != exitPartial {
		t.Fatalf("copy with a too-big message: exit %d, want %d\n%s", r.code, exitPartial, r.stderr)
	}

	r = runCmd(t, runStatus, p.getenv, "--state", p.state, "--json")
	if r.code != exitOK {
		t.Fatalf("status --json: exit %d\n%s", r.code, r.stderr)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status --json does not parse: %v\n%s", err, r.stdout)
	}
	if len(rep.Accounts) != 1 {
		t.Fatalf("%d accounts, want 1:\n%s", len(rep.Accounts), r.stdout)
	}
	a := rep.Accounts[0]
	if a.Done != 3 || a.Skipped != 1 || a.Pending != 0 || a.Failed != 0 || a.Bytes <= 0 {
		t.Errorf("done %d, skipped %d, pending %d, failed %d, bytes %d; want 3, 1, 0, 0, > 0", a.Done, a.Skipped, a.Pending, a.Failed, a.Bytes)
	}
	if len(a.SkippedMessages) != 1 || !strings.Contains(a.SkippedMessages[0].Reason, "too big") {
		t.Errorf("skipped messages %+v, want one too big", a.SkippedMessages)
	}
	if a.LastRun == nil || a.LastRun.Result != "partial" || a.LastRun.Finished == nil || a.LastRun.Skipped != 1 {
		t.Errorf("last run %+v, want a finished partial run with 1 skipped", a.LastRun)
	}

	r = runCmd(t, runStatus, p.getenv, "--state", p.state)
	if r.code != exitOK {
		t.Fatalf("status: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"SKIPPED", "skipped " + a.SkippedMessages[0].Key + ": too big", "result partial"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status text lacks %q:\n%s", want, r.stdout)
		}
	}
	t.Logf("status output:\n%s", r.stdout)

	// The cutover map lists every copied message with its UIDL and UID.
	mapFile := filepath.Join(p.dir, "map.csv")
	r = runCmd(t, runStatus, p.getenv, "--state", p.state, "--export-map", mapFile)
	if r.code != exitOK {
		t.Fatalf("status --export-map: exit %d\n%s", r.code, r.stderr)
	}
	b, err := os.ReadFile(mapFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if lines[0] != "account,source_key,uidl,dest_mailbox,dest_uidvalidity,dest_uid" || len(lines) != 1+a.Done {
		t.Fatalf("map has %d lines (header %q), want a header and %d rows:\n%s", len(lines), lines[0], a.Done, b)
	}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if f[2] == "" || f[2] != f[1] || f[3] != "INBOX" || f[4] == "0" || f[5] == "0" {
			t.Errorf("map row %q: want the UIDL twice, INBOX, a UIDVALIDITY and a UID", l)
		}
	}
}

// TestStatusNoCheckpoint: without a checkpoint, status fails (or with -c
// lists the accounts as never run) and creates no file.
func TestStatusNoCheckpoint(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "none.db")
	r := runCmd(t, runStatus, func(string) string { return "" }, "--state", state)
	if r.code != exitFatal || !strings.Contains(r.stderr, "no checkpoint") {
		t.Errorf("status without a checkpoint: exit %d, want %d and a message\n%s", r.code, exitFatal, r.stderr)
	}
	cfg := filepath.Join(dir, "m.toml")
	os.WriteFile(cfg, []byte(`state = "none.db"
[source]
url = "pop3s://pop.example"
[destination]
url = "imaps://imap.example"
[[account]]
source_user = "alice"
source_password_env = "X_PW"
dest_password_env = "X_PW"
`), 0o600)
	r = runCmd(t, runStatus, func(string) string { return "" }, "-c", cfg, "--json")
	if r.code != exitOK {
		t.Fatalf("status -c: exit %d\n%s", r.code, r.stderr)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Accounts) != 1 || !rep.Accounts[0].NeverRun || rep.Accounts[0].Name != "alice" {
		t.Errorf("accounts %+v, want alice, never run", rep.Accounts)
	}
	for _, p := range []string{state, filepath.Join(dir, "none.db")} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("status created %s (%v)", p, err)
		}
	}
}

// TestStatusReadsAccountsOnce: status of many accounts reads the ledger's
// accounts once, not once per account: it read every account's row and
// counts for each account listed, which took minutes at 10,000 accounts
// (issue 18). Measured by allocations (each row read allocates its
// strings), never by time: four times the accounts may cost at most about
// four times as many allocations, with and without a config.
func TestStatusReadsAccountsOnce(t *testing.T) {
	ledgerOf := func(t *testing.T, n int) (state, cfgPath string) {
		dir := t.TempDir()
		var csv strings.Builder
		csv.WriteString("source_user,source_password_env,dest_password_env\n")
		for i := range n {
			fmt.Fprintf(&csv, "user%04d,X_PW,X_PW\n", i)
		}
		if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte(csv.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		cfgPath = filepath.Join(dir, "m.toml")
		if err := os.WriteFile(cfgPath, []byte(`state = "s.db"
accounts_file = "users.csv"
[source]
url = "pop3s://pop.example"
[destination]
url = "imaps://imap.example"
`), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := config.Load(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		state = filepath.Join(dir, "s.db")
		ctx := context.Background()
		l, err := checkpoint.Open(ctx, state, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		for _, a := range cfg.Accounts {
			spec, err := account.SpecOf(cfg, &a)
			if err != nil {
				t.Fatal(err)
			}
			res, err := l.ResolveAccount(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			h, err := l.Hold(ctx, res.Account)
			if err != nil {
				t.Fatal(err)
			}
			err = l.Commit(ctx, res.Account, pipeline.Changes{Put: []pipeline.Entry{{Key: "k1", State: pipeline.StateDone, Size: 10}}})
			h.Release(ctx)
			if err != nil {
				t.Fatal(err)
			}
			run, err := l.StartRun(ctx, res.Account, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if err := l.FinishRun(ctx, run, pipeline.RunRecord{Result: "ok", Copied: 1}); err != nil {
				t.Fatal(err)
			}
		}
		return state, cfgPath
	}
	const small, large = 100, 400
	smallState, smallCfg := ledgerOf(t, small)
	largeState, largeCfg := ledgerOf(t, large)
	for _, tc := range []struct {
		name         string
		small, large []string
	}{
		{"every account of the ledger", []string{"--state", smallState, "--json"}, []string{"--state", largeState, "--json"}},
		{"the accounts of a config", []string{"-c", smallCfg, "--json"}, []string{"-c", largeCfg, "--json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			allocs := func(n int, args []string) float64 {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				r := runCmd(t, runStatus, func(string) string { return "" }, args...)
				runtime.ReadMemStats(&after)
				var rep statusReport
				if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &rep) != nil || len(rep.Accounts) != n {
					t.Fatalf("status %q: exit %d, want %d accounts\n%s", args, r.code, n, r.stderr)
				}
				for _, a := range rep.Accounts {
					if a.Done != 1 || a.LastRun == nil || a.LastRun.Result != "ok" {
						t.Fatalf("status %q: account %+v, want 1 done and an ok run", args, a)
					}
				}
				return float64(after.Mallocs - before.Mallocs)
			}
			allocs(small, tc.small) // warm up: the first run initializes packages
			a, b := allocs(small, tc.small), allocs(large, tc.large)
			t.Logf("%.0f allocations for %d accounts, %.0f for %d", a, small, b, large)
			if b > 1.5*float64(large)/float64(small)*a {
				t.Errorf("status of %d accounts made %.0f allocations, %.1f × those of %d accounts (%.0f): not linear in the accounts",
					large, b, b/a, small, a)
			}
		})
	}
}

// TestStatusUnfinishedRun: a last run that has not finished is shown as
// running in this process while the account is held, and as stopped
// (killed) once nobody holds it, in text and JSON.
func TestStatusUnfinishedRun(t *testing.T) {
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "s.db")
	l, err := checkpoint.Open(ctx, state, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	res, err := l.ResolveAccount(ctx, checkpoint.AccountSpec{Endpoint: "pop3://alice@pop.example:995 -> imap://alice@imap.example:993/INBOX", SourceProto: "pop3", SourceUser: "alice", DestUser: "alice", DestFolder: "INBOX"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.StartRun(ctx, res.Account, time.Now()); err != nil {
		t.Fatal(err)
	}
	status := func() (string, statusReport) {
		t.Helper()
		r := runCmd(t, runStatus, os.Getenv, "--state", state)
		if r.code != exitOK {
			t.Fatalf("status: exit %d\n%s", r.code, r.stderr)
		}
		j := runCmd(t, runStatus, os.Getenv, "--state", state, "--json")
		if j.code != exitOK {
			t.Fatalf("status --json: exit %d\n%s", j.code, j.stderr)
		}
		var rep statusReport
		if err := json.Unmarshal([]byte(j.stdout), &rep); err != nil || len(rep.Accounts) != 1 || rep.Accounts[0].LastRun == nil {
			t.Fatalf("status --json: %v, want one account with a last run:\n%s", err, j.stdout)
		}
		return r.stdout, rep
	}

	text, rep := status()
	if want := "not finished: stopped"; !strings.Contains(text, want) {
		t.Errorf("status of an unheld unfinished run lacks %q:\n%s", want, text)
	}
	if in := rep.Accounts[0].LastRun.RunningIn; in != nil {
		t.Errorf("running_in of an unheld unfinished run: %+v, want none", in)
	}

	h, err := l.Hold(ctx, res.Account)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(ctx)
	text, rep = status()
	if want := fmt.Sprintf("not finished: running now in pid %d", os.Getpid()); !strings.Contains(text, want) {
		t.Errorf("status of a held unfinished run lacks %q:\n%s", want, text)
	}
	if in := rep.Accounts[0].LastRun.RunningIn; in == nil || in.PID != os.Getpid() {
		t.Errorf("running_in of a held unfinished run: %+v, want pid %d", in, os.Getpid())
	}
}
