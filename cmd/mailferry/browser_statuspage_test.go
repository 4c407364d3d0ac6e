package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailferry/mailferry/statuspage"
)

// findChromium returns Debian's Chromium (scripts/test.sh installs it).
// Without one the browser test is skipped, except under CI=true, where a
// missing browser is a failure.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("MAILFERRY_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium found (apt-get install chromium; scripts/test.sh does): the browser test must run under CI")
	}
	t.Skip("no Chromium found (apt-get install chromium, or set MAILFERRY_CHROMIUM)")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile, closed when
// the test ends.
func newBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// Start the browser now, so that its start-up is not counted as the
	// page's.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium %s: %v", path, err)
	}
	return ctx
}

// screenshotDir is where the test saves its screenshots:
// $MAILFERRY_SCREENSHOTS when set, else the test's temp directory.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("MAILFERRY_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}

// rowStates reads the state of each account row as the page shows it.
func rowStates(t *testing.T, ctx context.Context) map[string]string {
	t.Helper()
	m, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](
		`Object.fromEntries([...document.querySelectorAll('#accounts tbody tr')].map(r => [r.dataset.account, r.dataset.state]))`))
	if err != nil {
		t.Fatalf("reading the account rows: %v", err)
	}
	return m
}

// waitJS waits until expr is true in the page, failing after within.
// click clicks the element sel selects. The page re-renders its tables on
// every poll, so the node found may be replaced before the click reaches
// it ("Could not find node with given id"); a person would click again,
// and so does click, on the node now there. Every button the test clicks
// is idempotent (retry, pause, resume, a row).
func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	var err error
	for range 10 {
		if _, err = chromedp.Run(ctx, chromedp.Click(chromedp.CSS(sel))); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("clicking %s: %v", sel, err)
}

// setUIAddr writes addr in place of the UI_ADDR placeholder of the
// config file at path.
func setUIAddr(t *testing.T, path, addr string) {
	t.Helper()
	cfg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(cfg, []byte("UI_ADDR")) {
		t.Fatalf("%s has no UI_ADDR to replace", path)
	}
	if err := os.WriteFile(path, bytes.ReplaceAll(cfg, []byte("UI_ADDR"), []byte(addr)), 0o600); err != nil {
		t.Fatal(err)
	}
}

func waitJS(t *testing.T, ctx context.Context, what, expr string, within time.Duration) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	if _, err := chromedp.Run(wctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

func jsText(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return s
}

// TestE2EStatusPageBrowser loads the status page in headless Chromium
// during a real `mailferry run` against Dovecot with five accounts, one of
// them with a wrong password. The page shows the accounts move from
// queued to done, the failed account with its reason and fix; the retry
// button is refused before logging in with the token and works after; the
// detail view lists an account's folders and runs. After the run,
// `status --serve` shows the final state on the same address, and an
// account paused there shows who paused it until it is resumed. Screenshots
// go to $MAILFERRY_SCREENSHOTS (else a temp dir); docs/status-page.png is
// the "overview" one.
func TestE2EStatusPageBrowser(t *testing.T) {
	chrome := findChromium(t)
	shots := screenshotDir(t)
	// The address is chosen once the batch's servers listen, so that none
	// of them takes the port between the choice and mailferry's listen;
	// it goes into the config file's ui_addr, whose test this also is.
	b := startUIBatch(t, 80, 6000, `ui_token_file = "ui.token"`+"\nui_addr = \"UI_ADDR\"")
	addr := freeAddr(t)
	setUIAddr(t, b.cfgPath, addr)
	url := "http://" + addr + "/"
	timings := map[string]time.Duration{}
	t0 := time.Now()
	ctx := newBrowser(t, chrome)
	timings["browser start"] = time.Since(t0)

	t1 := time.Now()
	bg := startBackground(t, "run", "-c", b.cfgPath, "--ui-actions", "--progress", "none")
	waitServing(t, bg, addr)
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(`tr[data-account="user1"]`)); err != nil {
		t.Fatalf("loading %s: %v", url, err)
	}
	timings["page loaded"] = time.Since(t1)

	// Watch the rows until the wrong password has failed while later
	// accounts still wait: then the page shows every kind of state.
	seen := map[string]map[string]bool{}
	watch := func() map[string]string {
		st := rowStates(t, ctx)
		for name, s := range st {
			if seen[name] == nil {
				seen[name] = map[string]bool{}
			}
			seen[name][s] = true
		}
		return st
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := watch()
		if st[b.wrongpw] == "failed" && st["user1"] == "done" && st["user4"] == "queued" && (st["user2"] == "running" || st["user3"] == "running") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed user1 done, wrongpw failed, one running and user4 queued; last %v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	timings["failed account shown"] = time.Since(t1)
	// A running row says where it runs: this process (the run is in it).
	waitJS(t, ctx, "a running row naming its process", fmt.Sprintf(`[...document.querySelectorAll('tr[data-state="running"] .running-in')].some(e => e.textContent === "pid %d")`, os.Getpid()), 10*time.Second)
	waitJS(t, ctx, "the chart", `document.querySelectorAll('#chart rect').length > 0`, 10*time.Second)
	screenshot(t, ctx, shots, "overview")

	// The failed account says why and what to do.
	errText := jsText(t, ctx, `document.querySelector('tr[data-account="wrongpw"] .error-text').textContent`)
	hintText := jsText(t, ctx, `document.querySelector('tr[data-account="wrongpw"] .hint').textContent`)
	if !strings.Contains(errText, "Authentication failed") || !strings.Contains(hintText, "check the user name and the password") {
		t.Errorf("failed row: error %q, hint %q", errText, hintText)
	}

	// Retry without the token: refused, and the page says to log in.
	retry := `button[data-action="retry"][data-account="wrongpw"]`
	click(t, ctx, retry)
	waitJS(t, ctx, "the refusal", `document.getElementById('message').textContent.includes('Log in with the token')`, 10*time.Second)
	if l, _ := listAccounts(t, addr); retryAsked(l, b.wrongpw) {
		t.Error("a retry without the token was recorded")
	}
	screenshot(t, ctx, shots, "retry-refused")

	// Log in, retry: the account is queued for the next run.
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("token"), uiToken), chromedp.Click(chromedp.CSS(`#login button[type="submit"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the log-in", `document.getElementById('message').textContent === 'Logged in.'`, 10*time.Second)
	click(t, ctx, retry)
	waitJS(t, ctx, "the retry", `document.querySelector('tr[data-account="wrongpw"]').dataset.state === 'queued'`, 10*time.Second)
	if msg := jsText(t, ctx, `document.getElementById('message').textContent`); !strings.Contains(msg, "the next run tries wrongpw again") {
		t.Errorf("message after the retry: %q", msg)
	}
	if l, _ := listAccounts(t, addr); !retryAsked(l, b.wrongpw) {
		t.Error("the retry is not recorded")
	}
	timings["retry done"] = time.Since(t1)

	// The detail view of a copied account.
	click(t, ctx, `tr[data-account="user1"]`)
	waitJS(t, ctx, "the detail view", `document.getElementById('detail').dataset.account === 'user1' && document.querySelectorAll('#d-folders tbody tr').length === 1 && document.querySelectorAll('#d-runs tbody tr').length === 1`, 10*time.Second)
	if f := jsText(t, ctx, `document.querySelector('#d-folders tbody tr').textContent`); !strings.Contains(f, "(POP3)") || !strings.Contains(f, "80") {
		t.Errorf("user1's folder row %q, want POP3 with 80 copied", f)
	}
	screenshot(t, ctx, shots, "detail")

	// Keep watching until the run ends (its page goes with it).
	for {
		select {
		case code := <-bg.done:
			bg.done <- code // for wait below
		default:
			watch()
			time.Sleep(200 * time.Millisecond)
			continue
		}
		break
	}
	code := bg.wait(t, time.Minute)
	timings["run"] = time.Since(t1)
	if code != exitPartial {
		t.Errorf("run exit %d, want 3", code)
	}
	for _, u := range []string{"user2", "user3", "user4"} {
		if !seen[u]["queued"] || !seen[u]["running"] {
			t.Errorf("%s: the page showed %v, want queued and running", u, seen[u])
		}
	}
	if !seen["user1"]["done"] || !seen["user2"]["done"] {
		t.Errorf("done not shown during the run: user1 %v, user2 %v", seen["user1"], seen["user2"])
	}

	// The same address served by status --serve: the final states.
	t2 := time.Now()
	srv := startBackground(t, "status", "-c", b.cfgPath, "--serve", "--ui-actions")
	waitServing(t, srv, addr)
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the final states", `(() => { const r = [...document.querySelectorAll('#accounts tbody tr')];
		return r.length === 5 && r.every(x => x.dataset.state === (x.dataset.account === 'wrongpw' ? 'queued' : 'done')) })()`, 20*time.Second)
	if mode := jsText(t, ctx, `document.getElementById('mode').textContent`); mode != "from the ledger" {
		t.Errorf("mode %q, want 'from the ledger'", mode)
	}
	screenshot(t, ctx, shots, "after-run")

	// An operator's pause: the row says who paused it and offers resume,
	// which undoes it. (The session cookie of the run's page still holds:
	// it is made from the token, not from the process.)
	waitJS(t, ctx, "the actions", `document.getElementById('login').hidden &&
		document.querySelector('button[data-action="pause"][data-account="user1"]') !== null`, 10*time.Second)
	click(t, ctx, `button[data-action="pause"][data-account="user1"]`)
	waitJS(t, ctx, "the pause", `(() => { const r = document.querySelector('tr[data-account="user1"]');
		return r.dataset.state === 'paused' && r.querySelector('.pause-text') !== null &&
			r.querySelector('.pause-text').textContent.startsWith('paused: an operator paused it') &&
			r.querySelector('button[data-action="resume"]') !== null })()`, 10*time.Second)
	screenshot(t, ctx, shots, "paused")
	click(t, ctx, `button[data-action="resume"][data-account="user1"]`)
	waitJS(t, ctx, "the resume", `(() => { const r = document.querySelector('tr[data-account="user1"]');
		return r.dataset.state === 'done' && r.querySelector('.pause-text') === null })()`, 10*time.Second)
	timings["status --serve"] = time.Since(t2)
	for _, k := range []string{"browser start", "page loaded", "failed account shown", "retry done", "run", "status --serve"} {
		t.Logf("timing: %-22s %v", k, timings[k].Round(time.Millisecond))
	}
}

func retryAsked(l statuspage.ListJSON, name string) bool {
	for _, a := range l.Accounts {
		if a.Name == name {
			return a.RetryRequested != nil
		}
	}
	return false
}
