package statuspage

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

const testToken = "tok-0123456789abcdef"

var t0 = time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)

// fixture is a ledger with one account in each state, and the config's
// view of them.
type fixture struct {
	ledger   *checkpoint.Ledger
	accounts []Account
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	l, err := checkpoint.Open(ctx, filepath.Join(t.TempDir(), "state.db"), &checkpoint.Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := &fixture{ledger: l}
	add := func(name, src string) string {
		key := "pop3://" + name + "@" + src + " -> imaps://" + name + "@new:993/INBOX"
		f.accounts = append(f.accounts, Account{Name: name, Key: key, SourceHost: src, DestHost: "new:993"})
		return key
	}
	entry := func(key, k string, st pipeline.State, size int64, reason string) pipeline.Entry {
		e := pipeline.Entry{Key: k, State: st, Size: size, Reason: reason, DestMailbox: "INBOX",
			DestUIDValidity: 9, DestUID: 1, Updated: t0}
		if st == pipeline.StateDone {
			e.Digest, e.DoneAt = strings.Repeat("ab", 32), t0
		}
		if st == pipeline.StateSkipped {
			e.ReasonClass = pipeline.ReasonTooBig
		}
		return e
	}
	run := func(key string, rec pipeline.RunRecord) {
		id, err := l.StartRun(ctx, accountOf(t, l, key), t0.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if rec.Result != "" {
			rec.Finished = t0.Add(-30 * time.Minute)
			if err := l.FinishRun(ctx, id, rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("never", "old-a:995")
	k := add("done", "old-a:995")
	must(t, put(l, k, entry(k, "u1", pipeline.StateDone, 100, ""), entry(k, "u2", pipeline.StateDone, 200, "")))
	run(k, pipeline.RunRecord{Result: "ok", Copied: 2})
	k = add("wrongpw", "old-b:995")
	run(k, pipeline.RunRecord{Result: "failed", Error: "connecting to the source: pop3src: PASS ***: -ERR [AUTH] Authentication failed.",
		ErrorClass: "login", Hint: "the server refused the login: check the user name and the password"})
	k = add("partial", "old-b:995")
	must(t, put(l, k,
		entry(k, "Archive\x007\x001", pipeline.StateDone, 50, ""),
		entry(k, "Archive\x007\x002", pipeline.StateSkipped, 9000, "too big: 9000 bytes, the limit is 5000"),
		entry(k, "INBOX\x008\x003", pipeline.StateFailed, 70, "NO [SERVERBUG] try later"),
	))
	run(k, pipeline.RunRecord{Result: "partial", Copied: 1, Skipped: 1, Failed: 1})
	k = add("paused", "old-a:995")
	must(t, l.SetPaused(ctx, k, true))
	k = add("crashed", "old-a:995")
	run(k, pipeline.RunRecord{}) // started, never finished
	return f
}

// accountOf resolves (creating it) the ledger account of key.
func accountOf(t testing.TB, l *checkpoint.Ledger, key string) pipeline.AccountID {
	t.Helper()
	res, err := l.ResolveAccount(context.Background(), checkpoint.AccountSpec{Endpoint: key})
	if err != nil {
		t.Fatal(err)
	}
	return res.Account
}

// put writes entries of the account key names, holding it meanwhile.
func put(l *checkpoint.Ledger, key string, entries ...pipeline.Entry) error {
	ctx := context.Background()
	res, err := l.ResolveAccount(ctx, checkpoint.AccountSpec{Endpoint: key})
	if err != nil {
		return err
	}
	h, err := l.Hold(ctx, res.Account)
	if err != nil {
		return err
	}
	defer h.Release(ctx)
	return l.Commit(ctx, res.Account, pipeline.Changes{Put: entries})
}

// retrySkipped tells whether the next run of the account key names tries
// its skipped messages again.
func retrySkipped(t testing.TB, l *checkpoint.Ledger, key string) bool {
	t.Helper()
	ctx := context.Background()
	id, ok, err := l.AccountOfKey(ctx, key)
	if err != nil || !ok {
		t.Fatalf("account %q: %v, %v", key, ok, err)
	}
	h, err := l.Hold(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(ctx)
	return h.RetrySkipped()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) server(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	opts.Ledger = LedgerOf(f.ledger)
	if opts.Accounts == nil {
		opts.Accounts = f.accounts
	}
	opts.Now = func() time.Time { return t0 }
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// do sends a request to the handler as a client on the loopback.
func do(t *testing.T, h http.Handler, method, target string, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Host = "127.0.0.1:8080"
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("the answer is not JSON (%v): %s", err, w.Body.String())
	}
	return v
}

func TestListAccounts(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, Options{}).Handler()
	w := do(t, h, "GET", "/api/accounts", "", nil)
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/accounts = %d %s", w.Code, w.Body)
	}
	list := decode[ListJSON](t, w)
	want := map[string]State{"never": Queued, "done": Done, "wrongpw": Failed, "partial": Partial, "paused": Paused, "crashed": Failed}
	if len(list.Accounts) != len(want) {
		t.Fatalf("%d accounts, want %d", len(list.Accounts), len(want))
	}
	for _, a := range list.Accounts {
		if a.State != want[a.Name] {
			t.Errorf("%s: state %q, want %q", a.Name, a.State, want[a.Name])
		}
	}
	byName := map[string]AccountJSON{}
	for _, a := range list.Accounts {
		byName[a.Name] = a
	}
	if d := byName["done"]; d.Messages.Done != 2 || d.Messages.Total != 2 || d.Bytes.Done != 300 || d.LastError != nil || d.LastRun == nil {
		t.Errorf("done: %+v", d)
	}
	e := byName["wrongpw"].LastError
	if e == nil || !strings.Contains(e.Text, "Authentication failed") || e.Class != "login" || !strings.Contains(e.Hint, "password") {
		t.Errorf("wrongpw: last error %+v, want the text, class login and the hint", e)
	}
	if p := byName["partial"]; p.Messages.Total != 3 || p.Messages.Skipped != 1 || p.Messages.Failed != 1 || p.Bytes.Total != 9120 {
		t.Errorf("partial: %+v", p)
	}
	if c := byName["crashed"]; c.LastError == nil || c.LastError.Text != stoppedText || c.RunningIn != nil {
		t.Errorf("crashed (a run never finished, nobody holds it): last error %+v, running in %+v; want it said that the run stopped, no process", c.LastError, c.RunningIn)
	}
	if list.Totals.Accounts != 6 || list.Totals.ByState[Failed] != 2 || list.Totals.Messages.Done != 3 {
		t.Errorf("totals %+v", list.Totals)
	}
	if fmt.Sprint(list.Hosts) != "[new:993 old-a:995 old-b:995]" || fmt.Sprint(list.Classes) != "[login]" {
		t.Errorf("filter values: hosts %v, classes %v", list.Hosts, list.Classes)
	}
	if list.Live || list.Actions {
		t.Errorf("live %v, actions %v; want neither", list.Live, list.Actions)
	}
}

// TestRunningAccountShowsWhere: an account whose last run has not
// finished is running while a process holds it, and the row says which
// (its pid, here this test's); once nobody holds it, the run was killed:
// the row says so instead of showing it running for ever.
func TestRunningAccountShowsWhere(t *testing.T) {
	f := newFixture(t)
	s := f.server(t, Options{})
	ctx := context.Background()
	key := f.accounts[5].Key // "crashed": a run started, never finished
	id, ok, err := f.ledger.AccountOfKey(ctx, key)
	if err != nil || !ok {
		t.Fatalf("account %q: %v, %v", key, ok, err)
	}
	get := func() AccountJSON {
		t.Helper()
		s.forget()
		for _, a := range decode[ListJSON](t, do(t, s.Handler(), "GET", "/api/accounts", "", nil)).Accounts {
			if a.Name == "crashed" {
				return a
			}
		}
		t.Fatal("no account crashed")
		return AccountJSON{}
	}
	h, err := f.ledger.Hold(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if a := get(); a.State != Running || a.RunningIn == nil || a.RunningIn.PID != os.Getpid() || a.RunningIn.Worker != "" || a.LastError != nil {
		t.Errorf("held by this process: state %q, running in %+v, last error %+v; want running, pid %d", a.State, a.RunningIn, a.LastError, os.Getpid())
	}
	d := decode[AccountJSON](t, do(t, s.Handler(), "GET", "/api/accounts/crashed", "", nil))
	if d.RunningIn == nil || d.RunningIn.PID != os.Getpid() {
		t.Errorf("the account's detail: running in %+v, want pid %d", d.RunningIn, os.Getpid())
	}
	h.Release(ctx)
	if a := get(); a.State != Failed || a.RunningIn != nil || a.LastError == nil || a.LastError.Text != stoppedText {
		t.Errorf("released: state %q, running in %+v, last error %+v; want failed, no process, %q", a.State, a.RunningIn, a.LastError, stoppedText)
	}
}

func TestListFiltersAndSorts(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, Options{}).Handler()
	tests := []struct {
		query string
		want  string
	}{
		{"state=failed,partial", "[crashed partial wrongpw]"},
		{"state=queued", "[never]"},
		{"host=old-b:995", "[partial wrongpw]"},
		{"class=login", "[wrongpw]"},
		{"sort=-name", "[wrongpw paused partial never done crashed]"},
		{"sort=state", "[wrongpw crashed partial paused never done]"},
		{"state=done&host=old-b:995", "[]"},
	}
	for _, tt := range tests {
		w := do(t, h, "GET", "/api/accounts?"+tt.query, "", nil)
		if w.Code != 200 {
			t.Errorf("?%s = %d %s", tt.query, w.Code, w.Body)
			continue
		}
		var names []string
		for _, a := range decode[ListJSON](t, w).Accounts {
			names = append(names, a.Name)
		}
		if got := fmt.Sprint(names); got != tt.want && !(tt.want == "[]" && names == nil) {
			t.Errorf("?%s = %s, want %s", tt.query, got, tt.want)
		}
	}
	for _, bad := range []string{"state=lost", "sort=size", "colour=red", "state=done,%00"} {
		if w := do(t, h, "GET", "/api/accounts?"+bad, "", nil); w.Code != 400 || !strings.Contains(w.Body.String(), "error") {
			t.Errorf("?%s = %d %s, want 400 with an error", bad, w.Code, w.Body)
		}
	}
}

func TestAccountDetail(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, Options{}).Handler()
	w := do(t, h, "GET", "/api/accounts/partial", "", nil)
	if w.Code != 200 {
		t.Fatalf("GET /api/accounts/partial = %d %s", w.Code, w.Body)
	}
	d := decode[DetailJSON](t, w)
	if d.Name != "partial" || d.State != Partial {
		t.Errorf("detail %s %s", d.Name, d.State)
	}
	if got := fmt.Sprintf("%+v", d.Folders); got != "[{Source:Archive Dest:INBOX Done:1 Skipped:1 Failed:0 Pending:0 Bytes:50} {Source:INBOX Dest:INBOX Done:0 Skipped:0 Failed:1 Pending:0 Bytes:0}]" {
		t.Errorf("folders %s", got)
	}
	if len(d.SkippedMessages) != 1 || d.SkippedMessages[0].SourceID != "2" || !strings.Contains(d.SkippedMessages[0].Reason, "too big") {
		t.Errorf("skipped %+v", d.SkippedMessages)
	}
	if len(d.FailedMessages) != 1 || d.FailedMessages[0].SourceFolder != "INBOX" || !strings.Contains(d.FailedMessages[0].Reason, "SERVERBUG") {
		t.Errorf("failed %+v", d.FailedMessages)
	}
	if len(d.Runs) != 1 || d.Runs[0].Result != "partial" || d.Runs[0].Finished == nil {
		t.Errorf("runs %+v", d.Runs)
	}
	for path, code := range map[string]int{
		"/api/accounts/nobody":       404,
		"/api/accounts/done?x=1":     400,
		"/api/accounts/done/extra":   404,
		"/api/nothing":               404,
		"/api/accounts/%2e%2e%2fetc": 404,
	} {
		if w := do(t, h, "GET", path, "", nil); w.Code != code {
			t.Errorf("GET %s = %d, want %d: %s", path, w.Code, code, w.Body)
		}
	}
	if w := do(t, h, "DELETE", "/api/accounts/done", "", nil); w.Code != 405 && w.Code != 404 {
		t.Errorf("DELETE /api/accounts/done = %d, want 405", w.Code)
	}
}

// Without a config the accounts are the ledger's, named by their keys,
// which hold slashes: the API takes them escaped.
func TestAccountsByKeyWithoutConfig(t *testing.T) {
	f := newFixture(t)
	s, err := New(Options{Addr: "127.0.0.1:0", Ledger: LedgerOf(f.ledger)})
	if err != nil {
		t.Fatal(err)
	}
	list := decode[ListJSON](t, do(t, s.Handler(), "GET", "/api/accounts", "", nil))
	if len(list.Accounts) != 5 { // "never" is not in the ledger
		t.Fatalf("%d accounts from the ledger, want 5", len(list.Accounts))
	}
	key := f.accounts[1].Key
	w := do(t, s.Handler(), "GET", "/api/accounts/"+url.PathEscape(key), "", nil)
	if w.Code != 200 || decode[DetailJSON](t, w).Name != key {
		t.Errorf("GET by escaped key = %d %s", w.Code, w.Body)
	}
}

func TestActionsNeedTheirSwitchAndTheToken(t *testing.T) {
	f := newFixture(t)
	off := f.server(t, Options{Token: secret.New(testToken)}).Handler()
	on := f.server(t, Options{Token: secret.New(testToken), Actions: true}).Handler()
	bearer := map[string]string{"Authorization": "Bearer " + testToken}
	tests := []struct {
		name string
		h    http.Handler
		hdr  map[string]string
		want int
	}{
		{"actions off, no token", off, nil, 403},
		{"actions off, with the token", off, bearer, 403},
		{"no token", on, nil, 401},
		{"wrong token", on, map[string]string{"Authorization": "Bearer " + testToken + "x"}, 401},
		{"not bearer", on, map[string]string{"Authorization": "Basic " + testToken}, 401},
		{"forged cookie", on, map[string]string{"Cookie": cookieName + "=" + strings.Repeat("0", 64), "Origin": "http://127.0.0.1:8080"}, 401},
	}
	for _, tt := range tests {
		for _, action := range []string{"retry", "pause", "resume"} {
			w := do(t, tt.h, "POST", "/api/accounts/partial/"+action, "", tt.hdr)
			if w.Code != tt.want {
				t.Errorf("%s: POST %s = %d, want %d: %s", tt.name, action, w.Code, tt.want, w.Body)
			}
		}
	}
	if retrySkipped(t, f.ledger, f.accounts[3].Key) {
		t.Error("a refused retry changed the ledger")
	}
	if c, _ := f.ledger.Control(context.Background(), f.accounts[3].Key); c.Paused {
		t.Error("a refused pause changed the ledger")
	}
}

func TestRetryPauseResume(t *testing.T) {
	f := newFixture(t)
	retried := ""
	h := f.server(t, Options{Token: secret.New(testToken), Actions: true, OnRetry: func(k string) { retried = k }}).Handler()
	bearer := map[string]string{"Authorization": "Bearer " + testToken}
	w := do(t, h, "POST", "/api/accounts/partial/retry", "", bearer)
	if w.Code != 200 {
		t.Fatalf("retry = %d %s", w.Code, w.Body)
	}
	res := decode[ActionJSON](t, w)
	if res.Retry == nil || *res.Retry != (RetryCounts{Skipped: 1, Failed: 1}) || res.Account.State != Queued || res.Account.RetryRequested == nil {
		t.Errorf("retry answer %+v (retry %+v)", res.Account, res.Retry)
	}
	if retried != f.accounts[3].Key {
		t.Errorf("OnRetry got %q", retried)
	}
	if !retrySkipped(t, f.ledger, f.accounts[3].Key) {
		t.Error("the skipped message is not made retryable in the ledger")
	}
	// The list says so at once (the cache is dropped).
	for _, a := range decode[ListJSON](t, do(t, h, "GET", "/api/accounts", "", nil)).Accounts {
		if a.Name == "partial" && a.State != Queued {
			t.Errorf("partial after the retry: %s, want queued", a.State)
		}
	}
	w = do(t, h, "POST", "/api/accounts/done/pause", "{}", bearer)
	if w.Code != 200 || decode[ActionJSON](t, w).Account.State != Paused {
		t.Fatalf("pause = %d %s", w.Code, w.Body)
	}
	if c, _ := f.ledger.Control(context.Background(), f.accounts[1].Key); !c.Paused {
		t.Error("pause did not reach the ledger")
	}
	w = do(t, h, "POST", "/api/accounts/done/resume", "", bearer)
	if w.Code != 200 || decode[ActionJSON](t, w).Account.State != Done {
		t.Fatalf("resume = %d %s", w.Code, w.Body)
	}
	for body, code := range map[string]int{`{"x":1}`: 400, "garbage": 400, strings.Repeat("a", 5000): 413} {
		if w := do(t, h, "POST", "/api/accounts/done/pause", body, bearer); w.Code != code {
			t.Errorf("pause with body %.10q = %d, want %d", body, w.Code, code)
		}
	}
	if w := do(t, h, "POST", "/api/accounts/nobody/retry", "", bearer); w.Code != 404 {
		t.Errorf("retry of an unknown account = %d, want 404", w.Code)
	}
}

// A browser logs in once and then acts with the session cookie, from the
// page's own origin only.
func TestSessionCookie(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, Options{Token: secret.New(testToken), Actions: true}).Handler()
	if w := do(t, h, "POST", "/api/session", `{"token":"nope-nope-nope-nope"}`, nil); w.Code != 401 {
		t.Errorf("log in with a wrong token = %d", w.Code)
	}
	for _, body := range []string{"", "{", `{"token":1}`, `{"token":"x","more":1}`, strings.Repeat("x", 9000)} {
		if w := do(t, h, "POST", "/api/session", body, nil); w.Code != 400 {
			t.Errorf("log in with %.12q = %d, want 400", body, w.Code)
		}
	}
	w := do(t, h, "POST", "/api/session", `{"token":"`+testToken+`"}`, nil)
	if w.Code != 200 {
		t.Fatalf("log in = %d %s", w.Code, w.Body)
	}
	c := w.Result().Cookies()
	if len(c) != 1 || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode || strings.Contains(c[0].Value, testToken) {
		t.Fatalf("session cookie %+v: want one, HttpOnly, SameSite=Strict, not the token itself", c)
	}
	cookie := cookieName + "=" + c[0].Value
	tests := []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"same origin (Sec-Fetch-Site)", map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "same-origin"}, 200},
		{"same origin (Origin)", map[string]string{"Cookie": cookie, "Origin": "http://127.0.0.1:8080"}, 200},
		{"another site", map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}, 403},
		{"another origin", map[string]string{"Cookie": cookie, "Origin": "http://evil.example"}, 403},
		{"no origin at all", map[string]string{"Cookie": cookie}, 403},
	}
	for _, tt := range tests {
		if w := do(t, h, "POST", "/api/accounts/done/pause", "", tt.hdr); w.Code != tt.want {
			t.Errorf("%s: pause = %d, want %d: %s", tt.name, w.Code, tt.want, w.Body)
		}
	}
	if list := decode[ListJSON](t, do(t, h, "GET", "/api/accounts", "", map[string]string{"Cookie": cookie})); list.NeedLogin || !list.Actions {
		t.Errorf("logged in: need_login %v, actions %v", list.NeedLogin, list.Actions)
	}
	if list := decode[ListJSON](t, do(t, h, "GET", "/api/accounts", "", nil)); !list.NeedLogin {
		t.Error("not logged in: need_login false")
	}
}

func TestNewRefusesExposedPages(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name    string
		opts    Options
		wantErr error
	}{
		{"every interface without a token", Options{Addr: ":8080"}, ErrTokenRequired},
		{"an outside address without a token", Options{Addr: "192.0.2.10:8080"}, ErrTokenRequired},
		{"IPv6 any without a token", Options{Addr: "[::]:8080"}, ErrTokenRequired},
		{"actions without a token", Options{Addr: "127.0.0.1:8080", Actions: true}, ErrTokenRequired},
		{"no port", Options{Addr: "127.0.0.1"}, ErrBadAddr},
		{"bad port", Options{Addr: "127.0.0.1:http"}, ErrBadAddr},
		{"port out of range", Options{Addr: "127.0.0.1:70000"}, ErrBadAddr},
		{"empty", Options{Addr: ""}, ErrBadAddr},
		{"short token", Options{Addr: "127.0.0.1:8080", Token: secret.New("short")}, nil},
	}
	for _, tt := range tests {
		tt.opts.Ledger = LedgerOf(f.ledger)
		_, err := New(tt.opts)
		if err == nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: New = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
	for _, ok := range []Options{{Addr: "8080"}, {Addr: "localhost:0"}, {Addr: "[::1]:0"}, {Addr: "127.0.0.2:0"},
		{Addr: "0.0.0.0:0", Token: secret.New(testToken)}} {
		ok.Ledger = LedgerOf(f.ledger)
		if _, err := New(ok); err != nil {
			t.Errorf("New(%q) = %v", ok.Addr, err)
		}
	}
	if a, _ := NormalizeAddr("8080"); a != "127.0.0.1:8080" {
		t.Errorf("NormalizeAddr(8080) = %q", a)
	}
}

// Beyond loopback, reading needs the token too; the page itself loads
// (it holds no data) and asks for it.
func TestReadingNeedsTokenBeyondLoopback(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, Options{Addr: "0.0.0.0:8080", Token: secret.New(testToken)}).Handler()
	for _, path := range []string{"/api/accounts", "/api/accounts/done", "/api/report?format=csv"} {
		req := httptest.NewRequest("GET", path, nil)
		req.Host = "mail-migration.example:8080"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 401 || strings.Contains(w.Body.String(), "done") && path != "/api/accounts/done" {
			t.Errorf("GET %s without the token = %d %s, want 401", path, w.Code, w.Body)
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		w = httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			t.Errorf("GET %s with the token = %d", path, w.Code)
		}
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.Host = "mail-migration.example:8080"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "<title>mailferry status</title>") {
		t.Errorf("GET / = %d", w.Code)
	}
}

// On loopback, a request for a host name that is not loopback is refused
// (DNS rebinding).
func TestLoopbackChecksHost(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, Options{}).Handler()
	for host, want := range map[string]int{"127.0.0.1:8080": 200, "localhost:8080": 200, "[::1]:8080": 200,
		"localhost": 200, "evil.example:8080": 421, "evil.example": 421, "127.0.0.1.evil.example:8080": 421} {
		req := httptest.NewRequest("GET", "/api/accounts", nil)
		req.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != want {
			t.Errorf("Host %q: %d, want %d", host, w.Code, want)
		}
	}
}

func TestReportDownload(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, Options{}).Handler()
	w := do(t, h, "GET", "/api/report?format=csv", "", nil)
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/csv") ||
		!strings.Contains(w.Header().Get("Content-Disposition"), "attachment") {
		t.Fatalf("CSV report = %d %v", w.Code, w.Header())
	}
	recs, err := csv.NewReader(w.Body).ReadAll()
	if err != nil || len(recs) != 1+5 {
		t.Fatalf("CSV report: %d records, %v; want a header and 5 rows", len(recs), err)
	}
	if recs[1][0] != "done" || recs[1][8] != "copied" {
		t.Errorf("first row %q", recs[1])
	}
	w = do(t, h, "GET", "/api/report?format=json&account=partial", "", nil)
	var rows []map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &rows); err != nil || len(rows) != 3 || rows[0]["account"] != "partial" {
		t.Errorf("JSON report of one account: %v, %v", rows, err)
	}
	for q, code := range map[string]int{"format=xml": 400, "account=nobody": 404, "x=1": 400} {
		if w := do(t, h, "GET", "/api/report?"+q, "", nil); w.Code != code {
			t.Errorf("report ?%s = %d, want %d", q, w.Code, code)
		}
	}
}

func TestLiveRun(t *testing.T) {
	f := newFixture(t)
	now := t0
	live := NewLive(func() time.Time { return now })
	s := f.server(t, Options{Live: live})
	s.now = func() time.Time { return now }
	done, never := f.accounts[1].Key, f.accounts[0].Key
	live.Queue([]string{never, done})
	list := decode[ListJSON](t, do(t, s.Handler(), "GET", "/api/accounts", "", nil))
	if !list.Live {
		t.Error("live = false during a run")
	}
	live.AccountStarted(never, 10, 1000)
	for range 4 {
		now = now.Add(time.Second)
		live.MessageDone(never, pipeline.OutcomeCopied, 100)
	}
	s.forget()
	list = decode[ListJSON](t, do(t, s.Handler(), "GET", "/api/accounts", "", nil))
	var a AccountJSON
	for _, x := range list.Accounts {
		if x.Name == "never" {
			a = x
		}
	}
	if a.State != Running || a.Rate == nil || a.Rate.MessagesPerSecond != 1 || a.ETASeconds == nil || *a.ETASeconds != 6 ||
		a.Messages.Done != 4 || a.Messages.Total != 10 || a.Bytes.Done != 400 || a.Bytes.Total != 1000 {
		t.Errorf("running account %+v (rate %+v, eta %v)", a, a.Rate, a.ETASeconds)
	}
	// An account with copies from an earlier run: the run's counts add
	// to what the ledger had when it started, whatever the ledger says
	// since (it commits a batch with the next one).
	live.AccountStarted(done, 5, 500)
	live.MessageDone(done, pipeline.OutcomeCopied, 100)
	live.MessageDone(done, pipeline.OutcomeFound, 100)
	live.MessageDone(done, pipeline.OutcomeSkipped, 100)
	for _, x := range decode[ListJSON](t, do(t, s.Handler(), "GET", "/api/accounts", "", nil)).Accounts {
		if x.Name == "done" && (x.Messages.Done != 4 || x.Messages.Total != 7 || x.Bytes.Done != 500 || x.Bytes.Total != 800) {
			t.Errorf("running account with earlier copies: messages %+v, bytes %+v; want 4 of 7, 500 of 800 bytes", x.Messages, x.Bytes)
		}
	}
	live.AccountFinished(done, &pipeline.Stats{})
	if list.Totals.Rate == nil || list.Totals.ByState[Running] != 1 { // "crashed" does not: nobody holds it
		t.Errorf("totals %+v", list.Totals)
	}
	n := 0
	for _, smp := range list.Throughput.Samples {
		n += smp.Messages
	}
	if n != 4 || list.Throughput.StepSeconds != 5 {
		t.Errorf("throughput %+v, want 4 messages in 5 s steps", list.Throughput)
	}
	live.AccountFinished(never, &pipeline.Stats{})
	live.End()
	if list := decode[ListJSON](t, do(t, s.Handler(), "GET", "/api/accounts", "", nil)); list.Live {
		t.Error("live = true after the run ended")
	}
}

// TestPauses: the page shows every pause as "paused", with who paused the
// account, why and until when: an operator's (until resumed), a daily
// quota's that a run ended with (until its time, then queued again), and
// a timetable's that a run in this process waits out.
func TestPauses(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := t0
	add := func(name string, until time.Time) string {
		key := "pop3://" + name + "@old-c:995 -> imaps://" + name + "@new:993/INBOX"
		f.accounts = append(f.accounts, Account{Name: name, Key: key, SourceHost: "old-c:995", DestHost: "new:993"})
		id, err := f.ledger.StartRun(ctx, accountOf(t, f.ledger, key), t0.Add(-time.Hour))
		must(t, err)
		must(t, f.ledger.FinishRun(ctx, id, pipeline.RunRecord{Finished: t0.Add(-time.Minute), Result: "paused", Copied: 4,
			Error: pipeline.PausedRecord(until, "daily quota of 1 MB written reached")}))
		return key
	}
	add("quota", t0.Add(2*time.Hour))
	add("quota-over", t0.Add(-30*time.Second))
	live := NewLive(func() time.Time { return now })
	s := f.server(t, Options{Live: live})
	timetable := f.accounts[1].Key // "done"
	live.Queue([]string{timetable})
	live.AccountStarted(timetable, 3, 300)
	live.AccountPaused(timetable, &pipeline.PausedError{Until: t0.Add(time.Hour), Reason: "a timetable pauses bwlimit_write", Wait: true})

	get := func() map[string]AccountJSON {
		s.forget()
		out := map[string]AccountJSON{}
		for _, a := range decode[ListJSON](t, do(t, s.Handler(), "GET", "/api/accounts", "", nil)).Accounts {
			out[a.Name] = a
		}
		return out
	}
	until := func(p *PauseJSON) string {
		if p.Until == nil {
			return "resumed"
		}
		return p.Until.UTC().Format(time.RFC3339)
	}
	byName := get()
	tests := []struct {
		name, by, until, reason string
	}{
		{"paused", PausedByOperator, "resumed", "an operator paused it"},
		{"quota", PausedByTraffic, "2026-04-01T12:00:00Z", "daily quota of 1 MB written reached"},
		{"done", PausedByTraffic, "2026-04-01T11:00:00Z", "a timetable pauses bwlimit_write"},
	}
	for _, tt := range tests {
		a := byName[tt.name]
		if a.State != Paused || a.Pause == nil || a.Pause.By != tt.by || until(a.Pause) != tt.until || !strings.Contains(a.Pause.Reason, tt.reason) {
			t.Errorf("%s: state %s, pause %+v; want paused by %s until %s (%q)", tt.name, a.State, a.Pause, tt.by, tt.until, tt.reason)
			continue
		}
		if a.LastError != nil {
			t.Errorf("%s: a pause shown as the last error %+v", tt.name, a.LastError)
		}
	}
	// A quota's time passed: the next run goes on.
	if a := byName["quota-over"]; a.State != Queued || a.Pause != nil || a.LastError != nil {
		t.Errorf("quota-over: state %s, pause %+v, error %+v; want queued", a.State, a.Pause, a.LastError)
	}
	for _, a := range byName {
		if a.State != Paused && a.Pause != nil {
			t.Errorf("%s: %s with a pause %+v", a.Name, a.State, a.Pause)
		}
	}
	if got := len(decode[ListJSON](t, do(t, s.Handler(), "GET", "/api/accounts?state=paused", "", nil)).Accounts); got != 3 {
		t.Errorf("?state=paused lists %d accounts, want 3", got)
	}
	// The timetable's pause ends: the run goes on with the account.
	live.AccountStarted(timetable, 3, 300)
	if a := get()["done"]; a.State != Running || a.Pause != nil {
		t.Errorf("after the pause: %s, pause %+v; want running", a.State, a.Pause)
	}
	// The quota's time passes.
	now = t0.Add(3 * time.Hour)
	s.now = func() time.Time { return now }
	if a := get()["quota"]; a.State != Queued || a.Pause != nil {
		t.Errorf("quota after its time: %s, pause %+v; want queued", a.State, a.Pause)
	}
}

func TestStartPortInUse(t *testing.T) {
	f := newFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := f.server(t, Options{Addr: ln.Addr().String()})
	err = s.Start()
	if err == nil {
		s.Close()
		t.Fatal("Start on a port in use = nil error")
	}
	if !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("Start = %v, want it to say the address is in use", err)
	}
	// And on a free port it serves the page.
	s = f.server(t, Options{Addr: "127.0.0.1:0"})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := http.Get(s.URL() + "api/accounts")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET %s = %d", s.URL(), resp.StatusCode)
	}
}

// The page is self-contained: no file names another host (no CDN).
func TestAssetsAreSelfContained(t *testing.T) {
	h := newFixture(t).server(t, Options{}).Handler()
	w := do(t, h, "GET", "/", "", nil)
	if w.Code != 200 || !strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("GET / = %d, CSP %q", w.Code, w.Header().Get("Content-Security-Policy"))
	}
	urlRE := regexp.MustCompile(`[a-z]+://[^\s"')]+`)
	err := fs.WalkDir(webFS, "web", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := webFS.ReadFile(path)
		for _, u := range urlRE.FindAllString(string(b), -1) {
			if u != "http://www.w3.org/2000/svg" {
				t.Errorf("%s names another host: %s", path, u)
			}
		}
		if w := do(t, h, "GET", "/"+strings.TrimPrefix(path, "web/"), "", nil); w.Code != 200 && path != "web/index.html" {
			t.Errorf("GET %s = %d", path, w.Code)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzAPI sends whatever a browser or a script might to the handler: any
// method, path, query and body. Nothing may panic or answer 5xx.
func FuzzAPI(f *testing.F) {
	for _, seed := range []struct{ method, target, body string }{
		{"GET", "/api/accounts?state=done&sort=-name", ""},
		{"GET", "/api/accounts/partial", ""},
		{"POST", "/api/accounts/partial/retry", "{}"},
		{"POST", "/api/session", `{"token":"x"}`},
		{"GET", "/api/report?format=json&account=done", ""},
		{"GET", "/api/accounts?state=%ff,,queued&host=&class=", ""},
		{"PUT", "/api/accounts/x%2fy/pause", "\x00"},
	} {
		f.Add(seed.method, seed.target, seed.body)
	}
	fx := newFixture(f)
	s, err := New(Options{Addr: "127.0.0.1:0", Ledger: LedgerOf(fx.ledger), Accounts: fx.accounts,
		Token: secret.New(testToken), Actions: true})
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, method, target, body string) {
		req, err := http.NewRequest(method, "http://127.0.0.1:8080"+target, bytes.NewReader([]byte(body)))
		if err != nil || !strings.HasPrefix(target, "/") {
			return // not a request a server could receive
		}
		req.Host = "127.0.0.1:8080"
		req.Header.Set("Authorization", "Bearer "+testToken)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Errorf("%s %q %q = %d %s", method, target, body, w.Code, w.Body)
		}
		_, _ = io.Copy(io.Discard, w.Body)
	})
}
