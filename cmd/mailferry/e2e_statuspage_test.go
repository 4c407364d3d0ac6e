package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/faultproxy"
	"github.com/mailferry/mailferry/notify"
	"github.com/mailferry/mailferry/statuspage"
)

const uiToken = "ui-token-0123456789abcdef"

// uiBatch is a batch of POP3 accounts on Dovecot, read through a proxy that
// slows the source down so that a run lasts long enough to be watched:
// good are copied, wrongpw has a wrong source password.
type uiBatch struct {
	src, dst  *dovecot.Server
	proxy     *faultproxy.Proxy
	dir       string
	cfgPath   string
	state     string
	tokenFile string
	good      []string
	wrongpw   string
	per       int
}

// startUIBatch starts the servers and writes the config; extra goes at
// its top. The wrong-password account comes second, so that it has
// failed while the accounts after it are still queued or running.
func startUIBatch(t *testing.T, per, bytesPerSecond int, extra string) *uiBatch {
	t.Helper()
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	b := &uiBatch{dir: t.TempDir(), good: []string{"user1", "user2", "user3", "user4"}, wrongpw: "wrongpw", per: per}
	users := map[string]string{}
	for _, u := range append(append([]string{}, b.good...), b.wrongpw) {
		users[u] = "Pw-" + u + "-9z"
	}
	b.src = dovecot.Start(t, dovecot.Options{Name: "mf-ui-src", CA: ca, Users: users})
	b.dst = dovecot.Start(t, dovecot.Options{Name: "mf-ui-dst", CA: ca, Users: users})
	base := time.Date(2022, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, u := range append(append([]string{}, b.good...), b.wrongpw) {
		for j, m := range simpleMessages(per) {
			if err := b.src.SeedMaildir(u, "INBOX", append([]byte("X-User: "+u+"\r\n"), m...), "", base.Add(time.Duration(j)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	plan := faultproxy.Plan{}
	if bytesPerSecond > 0 {
		plan.Faults = []faultproxy.Fault{{Kind: faultproxy.Slow, Dir: faultproxy.ServerToClient, After: 4096, BytesPerSecond: bytesPerSecond}}
	}
	if b.proxy, err = faultproxy.Start(b.src.POP3SAddr(), plan); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.proxy.Close() })
	b.tokenFile = filepath.Join(b.dir, "ui.token")
	if err := os.WriteFile(b.tokenFile, []byte(uiToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var accts strings.Builder
	order := []string{b.good[0], b.wrongpw, b.good[1], b.good[2], b.good[3]}
	for _, u := range order {
		pw := users[u]
		if u == b.wrongpw {
			pw = "not-the-password"
		}
		fmt.Fprintf(&accts, "\n[[account]]\nname = %q\nsource_user = %q\nsource_password = %q\ndest_user = %q\ndest_password = %q\n",
			u, u, pw, u, users[u])
	}
	b.state = filepath.Join(b.dir, "state.db")
	cfg := fmt.Sprintf(`%s
state = "state.db"
workers = 1
[source]
url = "pop3s://%s"
tls_ca = %q
[destination]
url = "imaps://%s"
tls_ca = %q
%s`, extra, b.proxy.Addr(), b.src.CAFile(), b.dst.IMAPSAddr(), b.src.CAFile(), accts.String())
	b.cfgPath = filepath.Join(b.dir, "migrate.toml")
	if err := os.WriteFile(b.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// background is mailferry running in-process in a goroutine.
type background struct {
	cancel         context.CancelFunc
	done           chan int
	stdout, stderr *syncBuffer
}

func startBackground(t *testing.T, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bg := &background{cancel: cancel, done: make(chan int, 1), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	go func() {
		bg.done <- run(ctx, args, &env{stdin: strings.NewReader(""), stdout: bg.stdout, stderr: bg.stderr, getenv: func(string) string { return "" }})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-bg.done:
		case <-time.After(time.Minute):
			t.Error("mailferry did not stop")
		}
	})
	return bg
}

// wait returns the exit status, failing the test after within.
func (bg *background) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case code := <-bg.done:
		bg.done <- code
		return code
	case <-time.After(within):
		t.Fatalf("mailferry still running after %v; stderr:\n%s", within, bg.stderr)
	}
	return -1
}

// waitServing waits until the page answers at addr.
func waitServing(t *testing.T, bg *background, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			return
		}
		select {
		case code := <-bg.done:
			bg.done <- code
			t.Fatalf("mailferry exited %d before serving the page:\n%s", code, bg.stderr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("the page at %s never answered:\n%s", addr, bg.stderr)
}

// apiDo calls the page's API, with the token when bearer is set.
func apiDo(t *testing.T, method, url string, bearer bool) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer {
		req.Header.Set("Authorization", "Bearer "+uiToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func listAccounts(t *testing.T, addr string) (statuspage.ListJSON, bool) {
	t.Helper()
	code, b := apiDo(t, "GET", "http://"+addr+"/api/accounts", false)
	var l statuspage.ListJSON
	if code != 200 || json.Unmarshal(b, &l) != nil {
		return l, false
	}
	return l, true
}

// webhookReceiver records the notifications it gets.
type webhookReceiver struct {
	mu     sync.Mutex
	events []notify.Event
	raw    []string
	srv    *httptest.Server
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	r := &webhookReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var ev notify.Event
		if err := json.Unmarshal(b, &ev); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		r.mu.Lock()
		r.events, r.raw = append(r.events, ev), append(r.raw, string(b))
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// TestE2EStatusPageAPI runs a real batch against Dovecot with the page on,
// notifications to a local webhook and a command, and watches it through
// the JSON API: accounts move from queued to running to done, the account
// with a wrong password fails with its reason and fix, a retry is refused
// without the token and works with it, the webhook and the command hear
// of the failure and of the end of the run, and the terminal summary is as
// without the page. Then, from the same checkpoint: the per-message report,
// status --serve, and a pause that a run honours.
func TestE2EStatusPageAPI(t *testing.T) {
	hook := newWebhookReceiver(t)
	extra := fmt.Sprintf("notify_webhook = %q\nnotify_command = \"cat >> events.jsonl; echo >> events.jsonl\"\nui_token_file = \"ui.token\"\nui_actions = true",
		hook.srv.URL+"/hook")
	b := startUIBatch(t, 60, 6000, extra)
	addr := freeAddr(t)
	start := time.Now()
	bg := startBackground(t, "run", "-c", b.cfgPath, "--ui-addr", addr, "--progress", "lines")
	waitServing(t, bg, addr)

	seen := map[string]map[statuspage.State]bool{}
	// Live while the run goes, false once it ended: the page stays up
	// while the notifications of the end are delivered (runExtras.close),
	// so the last list seen may come from after the end.
	sawLive, endedLive := false, false
	retried := false
	for {
		l, ok := listAccounts(t, addr)
		if !ok {
			break // the run ended and the page with it
		}
		if l.Live {
			sawLive = true
			endedLive = false
		} else if sawLive {
			endedLive = true
		}
		for _, a := range l.Accounts {
			if seen[a.Name] == nil {
				seen[a.Name] = map[statuspage.State]bool{}
			}
			seen[a.Name][a.State] = true
			if a.State == statuspage.Running && a.Messages.Total > 0 && (a.Messages.Total != b.per || a.Messages.Done > a.Messages.Total ||
				a.Bytes.Done > a.Bytes.Total) {
				t.Errorf("%s running: messages %+v, bytes %+v; want %d in all, done within the totals", a.Name, a.Messages, a.Bytes, b.per)
			}
			if a.Name == b.wrongpw && a.State == statuspage.Failed && !retried {
				checkFailedAccount(t, a)
				retryOverHTTP(t, addr, b)
				retried = true
			}
		}
		time.Sleep(150 * time.Millisecond)
	}
	code := bg.wait(t, 2*time.Minute)
	t.Logf("run took %v, exit %d", time.Since(start).Round(time.Millisecond), code)
	if code != exitPartial {
		t.Fatalf("run exit %d, want 3 (one account failed):\n%s", code, bg.stderr)
	}
	if !retried {
		t.Fatalf("the page never showed %s failed; states seen %v", b.wrongpw, seen)
	}
	if !sawLive {
		t.Error("the page during the run never said live = true")
	}
	t.Logf("the page said live = false after the run ended: %v (only when a poll fell between the end and the page's close)", endedLive)
	for _, u := range b.good[1:] {
		if !seen[u][statuspage.Queued] || !seen[u][statuspage.Running] {
			t.Errorf("%s: states seen %v, want queued and running", u, seen[u])
		}
	}
	for _, u := range b.good[:3] {
		if !seen[u][statuspage.Done] {
			t.Errorf("%s: states seen %v, want done before the run ended", u, seen[u])
		}
	}
	if !strings.Contains(bg.stderr.String(), "serving the status page") || !strings.Contains(bg.stderr.String(), "http://"+addr+"/") {
		t.Errorf("the log does not give the page's URL:\n%s", bg.stderr)
	}
	// The terminal summary is the same as without the page.
	if out := bg.stdout.String(); !strings.Contains(out, "copied 240 of 240 messages") || !strings.Contains(out, b.wrongpw) {
		t.Errorf("summary:\n%s", out)
	}

	// Notifications: the failure and the end of the run, by webhook and
	// by command, with no password in them.
	hook.mu.Lock()
	events, raw := hook.events, strings.Join(hook.raw, "\n")
	hook.mu.Unlock()
	var types []string
	for _, ev := range events {
		types = append(types, ev.Type)
		switch ev.Type {
		case notify.AccountFailed:
			if ev.Account.Name != b.wrongpw || !strings.Contains(ev.Account.Hint, "password") {
				t.Errorf("account_failed %+v", ev.Account)
			}
		case notify.BatchFinished:
			if ev.Batch.ExitCode != 3 || ev.Batch.Accounts != 5 || ev.Batch.AccountsFailed != 1 || ev.Batch.Copied != 240 ||
				len(ev.Batch.FailedAccounts) != 1 || ev.Batch.FailedAccounts[0] != b.wrongpw {
				t.Errorf("batch_finished %+v", ev.Batch)
			}
		}
	}
	if strings.Join(types, ",") != "account_failed,batch_finished" {
		t.Errorf("webhook got %v, want account_failed then batch_finished", types)
	}
	cmdOut, err := os.ReadFile(filepath.Join(b.dir, "events.jsonl"))
	if err != nil || strings.Count(strings.TrimSpace(string(cmdOut)), "\n") != 1 {
		t.Errorf("notify_command got %q (%v), want two events", cmdOut, err)
	}
	for _, secret := range []string{"Pw-user1-9z", "not-the-password", uiToken} {
		if strings.Contains(raw, secret) || strings.Contains(string(cmdOut), secret) {
			t.Errorf("a notification holds the secret %q", secret)
		}
	}

	checkReportCommand(t, b)
	checkServeAndPause(t, b)
}

// checkFailedAccount: the failed account says why, in plain words, and
// what to do.
func checkFailedAccount(t *testing.T, a statuspage.AccountJSON) {
	t.Helper()
	e := a.LastError
	if e == nil || !strings.Contains(e.Text, "ERR") || e.Class != "login" || !strings.Contains(e.Hint, "check the user name and the password") {
		t.Errorf("failed account's last error %+v, want the server's refusal, class login and the hint", e)
	}
}

// retryOverHTTP: without the token a retry is refused (401) and changes
// nothing; with it, the account is queued for the next run.
func retryOverHTTP(t *testing.T, addr string, b *uiBatch) {
	t.Helper()
	url := "http://" + addr + "/api/accounts/" + b.wrongpw + "/retry"
	if code, body := apiDo(t, "POST", url, false); code != 401 {
		t.Errorf("retry without the token = %d %s, want 401", code, body)
	}
	code, body := apiDo(t, "POST", url, true)
	var res statuspage.ActionJSON
	if code != 200 || json.Unmarshal(body, &res) != nil || res.Account.State != statuspage.Queued || res.Account.RetryRequested == nil {
		t.Errorf("retry with the token = %d %s, want 200 and the account queued", code, body)
	}
}

// checkReportCommand: mailferry report lists every message of the
// checkpoint, by account name, as CSV and as JSON.
func checkReportCommand(t *testing.T, b *uiBatch) {
	t.Helper()
	r := runInProcess(t, func(string) string { return "" }, "report", "-c", b.cfgPath, "--format", "csv")
	if r.code != exitOK {
		t.Fatalf("report exit %d: %s", r.code, r.stderr)
	}
	recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil || len(recs) != 1+4*b.per {
		t.Fatalf("CSV report: %d records (%v), want a header and %d rows", len(recs), err, 4*b.per)
	}
	perAccount := map[string]int{}
	for _, rec := range recs[1:] {
		perAccount[rec[0]]++
		if rec[8] != "copied" || rec[4] != "INBOX" || rec[6] == "" || rec[3] == "" {
			t.Fatalf("report row %q: want a copied message with its UIDL, destination folder and UID", rec)
		}
	}
	for _, u := range b.good {
		if perAccount[u] != b.per {
			t.Errorf("report: %d rows for %s, want %d", perAccount[u], u, b.per)
		}
	}
	out := filepath.Join(b.dir, "report.json")
	if r := runInProcess(t, func(string) string { return "" }, "report", "-c", b.cfgPath, "--format", "json", "--only", "user2", "-o", out); r.code != exitOK {
		t.Fatalf("report --format json exit %d: %s", r.code, r.stderr)
	}
	data, _ := os.ReadFile(out)
	var rows []map[string]any
	if err := json.Unmarshal(data, &rows); err != nil || len(rows) != b.per || rows[0]["account"] != "user2" {
		t.Errorf("JSON report of user2: %d rows (%v)", len(rows), err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("report file mode %v (%v), want 0600", fi.Mode(), err)
	}
}

// checkServeAndPause: status --serve shows the checkpoint as the run left
// it; a pause there is honoured by the next run, and a resume undoes it.
func checkServeAndPause(t *testing.T, b *uiBatch) {
	t.Helper()
	addr := freeAddr(t)
	bg := startBackground(t, "status", "-c", b.cfgPath, "--serve", "--ui-addr", addr)
	waitServing(t, bg, addr)
	l, ok := listAccounts(t, addr)
	if !ok || l.Live {
		t.Fatalf("status --serve: list %v, live %v", ok, l.Live)
	}
	for _, a := range l.Accounts {
		want := statuspage.Done
		if a.Name == b.wrongpw {
			want = statuspage.Queued // its retry was asked for
		}
		if a.State != want || (want == statuspage.Done && a.Messages.Done != b.per) {
			t.Errorf("status --serve: %s is %s with %d done, want %s", a.Name, a.State, a.Messages.Done, want)
		}
	}
	pause := "http://" + addr + "/api/accounts/user1/pause"
	if code, _ := apiDo(t, "POST", pause, true); code != 200 {
		t.Fatalf("pause = %d", code)
	}
	if code, _ := apiDo(t, "POST", "http://"+addr+"/api/accounts/user3/retry", true); code != 200 {
		t.Fatalf("retry of user3 = %d", code)
	}
	bg.cancel()
	if code := bg.wait(t, time.Minute); code != exitOK {
		t.Errorf("status --serve exit %d after SIGINT, want 0", code)
	}

	// --rerun-failed runs the failed account and the one whose retry was
	// asked for, nothing else.
	r := runInProcess(t, func(string) string { return "" }, "run", "-c", b.cfgPath, "--rerun-failed", "--json", "--progress", "none")
	var rerun []string
	for _, st := range r.report.Accounts {
		rerun = append(rerun, st.Account) // the config's account names
	}
	if strings.Join(rerun, ",") != "wrongpw,user3" || r.code != exitPartial {
		t.Errorf("run --rerun-failed ran %v (exit %d), want wrongpw and user3 (exit 3)", rerun, r.code)
	}

	// A paused account is no failure, as a daily quota's pause is not: the
	// report says it is paused, by whom and that it lasts until resumed.
	r = runInProcess(t, func(string) string { return "" }, "run", "-c", b.cfgPath, "--only", "user1,user2", "--json", "--progress", "none")
	if r.code != exitOK || len(r.report.Accounts) != 2 || r.report.Totals.AccountsPaused != 1 {
		t.Errorf("a run of user1 (paused) and user2: exit %d with %d accounts (%d paused), want 0 with 2 (1 paused)",
			r.code, len(r.report.Accounts), r.report.Totals.AccountsPaused)
	}
	for _, st := range r.report.Accounts {
		if paused := st.Account == "user1"; st.Paused != paused || paused && (st.Attempts != 0 ||
			st.PausedUntil != nil || !strings.Contains(st.PausedReason, "an operator paused it")) {
			t.Errorf("%s: paused %v (%q, until %v) after %d attempts", st.Account, st.Paused, st.PausedReason, st.PausedUntil, st.Attempts)
		}
	}
	text := runInProcess(t, func(string) string { return "" }, "run", "-c", b.cfgPath, "--only", "user1", "--progress", "none")
	if text.code != exitOK || !strings.Contains(text.stdout, "paused: an operator paused it") || !strings.Contains(text.stdout, "1 account paused") {
		t.Errorf("the summary of a run of a paused account: exit %d\n%s", text.code, text.stdout)
	}
	var st statusReport
	sr := runInProcess(t, func(string) string { return "" }, "status", "-c", b.cfgPath, "--only", "user1", "--json")
	if err := json.Unmarshal([]byte(sr.stdout), &st); err != nil || len(st.Accounts) != 1 || !st.Accounts[0].Paused ||
		st.Accounts[0].PausedUntil != nil || !strings.Contains(st.Accounts[0].PausedReason, "an operator paused it") {
		t.Errorf("status of the paused account: %v %+v\n%s", err, st.Accounts, sr.stderr)
	}
	l2, err := checkpoint.Open(context.Background(), b.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := l2.Accounts(context.Background())
	for _, k := range keys {
		if strings.Contains(k, "user1@") {
			if err := l2.SetPaused(context.Background(), k, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	l2.Close()
	if r := runInProcess(t, func(string) string { return "" }, "run", "-c", b.cfgPath, "--only", "user1", "--json", "--progress", "none"); r.code != exitOK {
		t.Errorf("after resuming: exit %d, want 0:\n%s", r.code, r.stdout)
	}
}

// TestE2EStatusPageBadInput: what the page refuses, with a clear message
// and the exit status that says so.
func TestE2EStatusPageBadInput(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	l, err := checkpoint.Open(context.Background(), state, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	foreign := filepath.Join(dir, "places.sqlite")
	db, err := sql.Open("sqlite", foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE moz_places (url TEXT); INSERT INTO moz_places VALUES ('https://example.org/')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	foreignBefore, _ := os.ReadFile(foreign)
	notDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("just some notes\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(uiToken+"\n"), 0o600)
	shortToken := filepath.Join(dir, "short")
	os.WriteFile(shortToken, []byte("abc\n"), 0o600)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"port in use", []string{"--state", state, "--serve", "--ui-addr", taken.Addr().String()}, exitUsage, "address already in use"},
		{"every interface without a token", []string{"--state", state, "--serve", "--ui-addr", "0.0.0.0:0"}, exitUsage, "not a loopback address"},
		{"actions without a token", []string{"--state", state, "--serve", "--ui-addr", "127.0.0.1:0", "--ui-actions"}, exitUsage, "needs --ui-token-file"},
		{"short token", []string{"--state", state, "--serve", "--ui-addr", "127.0.0.1:0", "--ui-token-file", shortToken}, exitUsage, "at least 16"},
		{"missing token file", []string{"--state", state, "--serve", "--ui-addr", "127.0.0.1:0", "--ui-token-file", filepath.Join(dir, "nope")}, exitUsage, "no such file"},
		{"no address", []string{"--state", state, "--serve"}, exitUsage, "--serve needs --ui-addr"},
		{"bad address", []string{"--state", state, "--serve", "--ui-addr", "localhost"}, exitUsage, "want host:port"},
		{"address without --serve", []string{"--state", state, "--ui-addr", "127.0.0.1:0"}, exitUsage, "with --serve"},
		{"no checkpoint", []string{"--state", filepath.Join(dir, "none.db"), "--serve", "--ui-addr", "127.0.0.1:0"}, exitFatal, "no checkpoint"},
		{"another program's database", []string{"--state", foreign, "--serve", "--ui-addr", "127.0.0.1:0"}, exitFatal, "not a mailferry checkpoint"},
		{"not a database", []string{"--state", notDB, "--serve", "--ui-addr", "127.0.0.1:0"}, exitFatal, "not a mailferry checkpoint"},
		{"report of not a database", nil, exitFatal, "not a mailferry checkpoint"},
		{"report format", nil, exitUsage, "want csv or json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"status"}, tt.args...)
			switch tt.name {
			case "report of not a database":
				args = []string{"report", "--state", notDB}
			case "report format":
				args = []string{"report", "--state", state, "--format", "xml"}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			code := run(ctx, args, &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }})
			if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", args, code, stderr.String(), tt.code, tt.want)
			}
			if strings.Contains(stderr.String(), uiToken) {
				t.Errorf("the token is in the output: %s", stderr.String())
			}
		})
	}
	// The other program's database is left as it was.
	if b, _ := os.ReadFile(foreign); !bytes.Equal(b, foreignBefore) {
		t.Error("opening another program's database changed it")
	}
}

// A run whose page cannot be served stops before touching any account.
func TestE2ERunPagePortInUse(t *testing.T) {
	p := startPair(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := filepath.Join(p.dir, "migrate.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("state = %q\n[source]\nurl = \"pop3s://%s\"\ntls_ca = %q\n[destination]\nurl = \"imaps://%s\"\ntls_ca = %q\n[[account]]\nsource_user = \"alice\"\ndest_user = \"alice\"\n"+
		"source_password = \""+srcPassword+"\"\ndest_password = \""+dstPassword+"\"\n",
		p.state, p.src.POP3SAddr(), p.src.CAFile(), p.dst.IMAPSAddr(), p.src.CAFile())), 0o600)
	r := runInProcess(t, p.getenv, "run", "-c", cfg, "--ui-addr", taken.Addr().String())
	if r.code != exitUsage || !strings.Contains(r.stderr, "address already in use") || strings.Contains(r.stderr, "Run 'mailferry run --help'") {
		t.Errorf("exit %d, stderr:\n%s\nstdout:\n%s\nwant exit 2 saying the address is in use", r.code, r.stderr, r.stdout)
	}
	if n, _ := p.dst.MailboxCount("alice", "INBOX"); n != 0 {
		t.Errorf("the destination got %d messages from a run that could not serve its page", n)
	}
}

// --only selects exactly the accounts named, wherever they are in the
// config (it used to select every account after the last one named).
func TestOnlySelectsExactlyThoseNamed(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "migrate.toml")
	var accts strings.Builder
	for _, n := range []string{"a", "b", "c", "d"} {
		fmt.Fprintf(&accts, "[[account]]\nname = %q\nsource_user = %q\nsource_password = \"x\"\ndest_user = %q\ndest_password = \"y\"\n", n, n, n)
	}
	os.WriteFile(cfg, []byte("state = \"state.db\"\n[source]\nurl = \"pop3s://127.0.0.1:1\"\n[destination]\nurl = \"imaps://127.0.0.1:2\"\n"+accts.String()), 0o600)
	for only, want := range map[string]string{"a": "a", "b,a": "a b", "b": "b", "c,a": "a c", "d": "d"} {
		var rep statusReport
		r := runInProcess(t, func(string) string { return "" }, "status", "-c", cfg, "--only", only, "--json")
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != exitOK {
			t.Fatalf("status --only %s: exit %d, %v\n%s", only, r.code, err, r.stderr)
		}
		var got []string
		for _, a := range rep.Accounts {
			got = append(got, a.Name)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("status --only %s lists %v, want %s", only, got, want)
		}
	}
	if r := runInProcess(t, func(string) string { return "" }, "status", "-c", cfg, "--only", "a,zz"); r.code != exitUsage || !strings.Contains(r.stderr, `"zz"`) {
		t.Errorf("status --only a,zz: exit %d, %s; want 2 naming zz", r.code, r.stderr)
	}
}

// The token from MAILFERRY_UI_TOKEN, from --ui-token-file and from
// MAILFERRY_UI_TOKEN_FILE: each lets a script act; a wrong one does not.
func TestStatusServeTokenSources(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	l, err := checkpoint.Open(context.Background(), state, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.ResolveAccount(context.Background(), checkpoint.AccountSpec{Endpoint: "acct-key"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.StartRun(context.Background(), res.Account, time.Now()); err != nil {
		t.Fatal(err)
	}
	l.Close()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(uiToken+"\nsecond line ignored\n"), 0o600)
	tests := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"MAILFERRY_UI_TOKEN", nil, map[string]string{"MAILFERRY_UI_TOKEN": uiToken}},
		{"--ui-token-file", []string{"--ui-token-file", tokenFile}, nil},
		{"MAILFERRY_UI_TOKEN_FILE", nil, map[string]string{"MAILFERRY_UI_TOKEN_FILE": tokenFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := freeAddr(t)
			args := append([]string{"status", "--state", state, "--serve", "--ui-addr", addr, "--ui-actions"}, tt.args...)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan int, 1)
			var stderr syncBuffer
			go func() {
				done <- run(ctx, args, &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &stderr, getenv: func(k string) string { return tt.env[k] }})
			}()
			bg := &background{cancel: cancel, done: done, stderr: &stderr}
			waitServing(t, bg, addr)
			url := "http://" + addr + "/api/accounts/acct-key/pause"
			if code, _ := apiDo(t, "POST", url, false); code != 401 {
				t.Errorf("pause without the token = %d, want 401", code)
			}
			if code, body := apiDo(t, "POST", url, true); code != 200 {
				t.Errorf("pause with the token = %d %s", code, body)
			}
			cancel()
			if code := bg.wait(t, 30*time.Second); code != exitOK {
				t.Errorf("exit %d", code)
			}
		})
	}
}

// In a service (--every), a retry asked for on the page polls the account
// at once instead of at the next interval.
func TestE2EServiceRetryPollsAtOnce(t *testing.T) {
	b := startUIBatch(t, 3, 0, "ui_token_file = \"ui.token\"\nui_actions = true")
	addr := freeAddr(t)
	bg := startBackground(t, "run", "-c", b.cfgPath, "--only", "user1", "--every", "1h", "--ui-addr", addr)
	waitServing(t, bg, addr)
	runsOf := func() int {
		code, body := apiDo(t, "GET", "http://"+addr+"/api/accounts/user1", false)
		var d statuspage.DetailJSON
		if code != 200 || json.Unmarshal(body, &d) != nil {
			return -1
		}
		return len(d.Runs)
	}
	deadline := time.Now().Add(time.Minute)
	for runsOf() < 1 || !strings.Contains(bg.stderr.String(), `msg=poll`) {
		if time.Now().After(deadline) {
			t.Fatalf("the first poll never ended:\n%s", bg.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := apiDo(t, "POST", "http://"+addr+"/api/accounts/user1/retry", true); code != 200 {
		t.Fatalf("retry = %d %s", code, body)
	}
	for runsOf() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no second poll after the retry (the interval is 1h):\n%s", bg.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	bg.cancel()
	if code := bg.wait(t, time.Minute); code != exitOK {
		t.Errorf("service exit %d after SIGINT", code)
	}
}
