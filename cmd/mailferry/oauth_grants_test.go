package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/oauthserver"
	"github.com/mailferry/mailferry/preflight"
)

const (
	gmailScope = "https://mail.google.com/"
	m365Scope  = "https://outlook.office365.com/.default"
	appSecret  = "app-secret-value-0123456789"
)

// noAuthPenalty turns Dovecot's authentication penalty off, so that the
// tests' refused logins do not make later ones from 127.0.0.1 wait 2, 4, 8
// and up to 15 s.
const noAuthPenalty = "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n"

// tokenText matches the access and refresh tokens oauthserver issues.
var tokenText = regexp.MustCompile(`\b(at|rt|dc)-[0-9a-f]{48}\b`)

// noSecrets fails the test when output shows a token or the client secret.
func noSecrets(t *testing.T, what string, outputs ...string) {
	t.Helper()
	for _, o := range outputs {
		if tokenText.MatchString(o) || strings.Contains(o, appSecret) {
			t.Errorf("%s: a token or the client secret appears in the output:\n%s", what, o)
		}
	}
}

// clientCert writes a self-signed certificate and its key for client
// assertions, returning the certificate's PEM.
func clientCert(t *testing.T, certFile, keyFile string) []byte {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "mailferry migration"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	mustWrite(t, certFile, certPEM, 0o600)
	mustWrite(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return certPEM
}

func mustWrite(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// grantsSetup is a POP3 source with users u1..u5 and an IMAP destination
// whose oauth2 passdb asks a local authorization server about each token
// (username_format = %d: an application's app-only token is good for every
// mailbox of example.com, as Exchange accepts one for the mailboxes the app
// was granted).
type grantsSetup struct {
	src, dst   *dovecot.Server
	auth       *oauthserver.Server
	dir, state string
	saClientID string
}

func startGrants(t *testing.T, opts oauthserver.Options) *grantsSetup {
	t.Helper()
	g := &grantsSetup{dir: t.TempDir()}
	g.auth = oauthserver.Start(t, opts)
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	srcUsers := map[string]string{}
	for i := 1; i <= 5; i++ {
		srcUsers[fmt.Sprintf("u%d", i)] = srcPassword
	}
	g.src = dovecot.Start(t, dovecot.Options{Name: "mf-gsrc", CA: ca, Users: srcUsers})
	dstUsers := map[string]string{}
	for _, u := range []string{"sa", "cc", "cert", "rt", "dev"} {
		dstUsers[u+"@example.com"] = "unused-" + u
	}
	g.dst = dovecot.Start(t, dovecot.Options{Name: "mf-gdst", CA: ca, Users: dstUsers,
		OAuth2IntrospectionURL: g.auth.IntrospectionURL(), OAuth2UsernameFormat: "%d", ExtraConfig: "auth_failure_delay = 0\n" + noAuthPenalty})
	g.state = filepath.Join(g.dir, "state.db")

	key, clientID := g.auth.AddServiceAccount("ferry@mailferry-test.iam.gserviceaccount.com")
	g.saClientID = clientID
	mustWrite(t, filepath.Join(g.dir, "sa.json"), key, 0o600)
	g.auth.Delegate(clientID, gmailScope)
	g.auth.AddUser("sa@example.com")
	g.auth.AddClient(oauthserver.Client{ID: "app", Secret: appSecret, AppUser: "app@example.com"})
	certPEM := clientCert(t, filepath.Join(g.dir, "app.pem"), filepath.Join(g.dir, "app.key"))
	g.auth.AddClient(oauthserver.Client{ID: "app-cert", CertPEM: certPEM, AppUser: "app@example.com"})
	g.auth.AddClient(oauthserver.Client{ID: "desktop"})
	mustWrite(t, filepath.Join(g.dir, "app.secret"), []byte(appSecret+"\n"), 0o600)
	mustWrite(t, filepath.Join(g.dir, "tokens", "rt@example.com.token"),
		[]byte(g.auth.RefreshToken("desktop", "rt@example.com", "imap")+"\n"), 0o600)
	return g
}

func (g *grantsSetup) seed(t *testing.T, user string, msgs [][]byte) {
	t.Helper()
	base := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, m := range msgs {
		if err := g.src.SeedMaildir(user, "INBOX", m, "", base.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
}

// config writes a config with one account per grant: the destination's
// oauth2 table is the service account's, the others override it.
func (g *grantsSetup) config(t *testing.T) string {
	t.Helper()
	tok, dev := g.auth.TokenURL(), g.auth.DeviceAuthURL()
	cfg := fmt.Sprintf(`state = %[1]q
workers = 2
[source]
url = "pop3s://%[2]s"
tls_ca = %[3]q
[destination]
url = "imaps://%[4]s"
tls_ca = %[3]q
oauth2 = { grant = "service-account", key_file = "sa.json", scope = %[5]q }

[[account]]
name = "sa"
source_user = "u1"
source_password_command = "echo %[6]s"
dest_user = "sa@example.com"

[[account]]
name = "cc"
source_user = "u2"
source_password_command = "echo %[6]s"
dest_user = "cc@example.com"
destination.oauth2 = { grant = "client-credentials", token_url = %[7]q, client_id = "app", client_secret_file = "app.secret", scope = %[8]q }

[[account]]
name = "cert"
source_user = "u3"
source_password_command = "echo %[6]s"
dest_user = "cert@example.com"
destination.oauth2 = { grant = "client-credentials", token_url = %[7]q, client_id = "app-cert", certificate_file = "app.pem", private_key_file = "app.key", scope = %[8]q }

[[account]]
name = "rt"
source_user = "u4"
source_password_command = "echo %[6]s"
dest_user = "rt@example.com"
destination.oauth2 = { grant = "refresh-token", token_url = %[7]q, client_id = "desktop", token_file = "tokens/{user}.token", scope = "imap" }

[[account]]
name = "dev"
source_user = "u5"
source_password_command = "echo %[6]s"
dest_user = "dev@example.com"
destination.oauth2 = { grant = "device", token_url = %[7]q, device_auth_url = %[9]q, client_id = "desktop", token_file = "tokens/{user}.token", scope = "imap offline_access" }
`, g.state, g.src.POP3SAddr(), g.src.CAFile(), g.dst.IMAPSAddr(), gmailScope, srcPassword, tok, m365Scope, dev)
	path := filepath.Join(g.dir, "migrate.toml")
	mustWrite(t, path, []byte(cfg), 0o600)
	return path
}

// TestE2EOAuth2Grants runs `mailferry login` for the device-grant account
// and then `mailferry run` with one account per grant (service account,
// client secret, client certificate, refresh token, device), each logging
// in to real Dovecot with tokens it obtained from the local authorization
// server, which Dovecot asks about each token. Then the service account's
// delegation is revoked: that account fails with a message naming the
// grant and what to check, the others go on, and the run exits 3; a copy
// of that account alone exits 1.
func TestE2EOAuth2Grants(t *testing.T) {
	g := startGrants(t, oauthserver.Options{})
	for i := 1; i <= 5; i++ {
		g.seed(t, fmt.Sprintf("u%d", i), simpleMessages(3))
	}
	path := g.config(t)
	noEnv := func(string) string { return "" }

	// Before login, the device account is a configuration error.
	if r := runInProcess(t, noEnv, "run", "-c", path, "--json", "--progress", "none"); r.code != exitUsage ||
		!strings.Contains(r.stderr, "run 'mailferry login' for this account first") {
		t.Fatalf("run before login: exit %d, want %d naming mailferry login\n%s", r.code, exitUsage, r.stderr)
	}
	g.auth.Device("dev@example.com", "authorization_pending")
	r := runInProcess(t, noEnv, "login", "-c", path)
	if r.code != exitOK || !strings.Contains(r.stdout, "dev destination: signed in, refresh token in "+filepath.Join(g.dir, "tokens", "dev@example.com.token")) ||
		!strings.Contains(r.stderr, g.auth.URL()+"/devicelogin") {
		t.Fatalf("login: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	noSecrets(t, "login", r.stdout, r.stderr)
	if r := runInProcess(t, noEnv, "login", "-c", path); r.code != exitOK || !strings.Contains(r.stdout, "dev destination: already signed in") {
		t.Errorf("second login: exit %d, stdout %q", r.code, r.stdout)
	}

	r = runInProcess(t, noEnv, "run", "-c", path, "--json", "--progress", "none")
	if r.code != exitOK || r.report.Totals.Copied != 15 {
		t.Fatalf("run: exit %d, copied %d, want 0 and 15\n%s", r.code, r.report.Totals.Copied, r.stderr)
	}
	for _, u := range []string{"sa", "cc", "cert", "rt", "dev"} {
		if n, err := g.dst.MailboxCount(u+"@example.com", "INBOX"); err != nil || n != 3 {
			t.Errorf("%s@example.com holds %d messages (%v), want 3", u, n, err)
		}
	}
	noSecrets(t, "run", r.stdout, r.stderr)
	// The two client-credentials accounts of one application share nothing
	// but the endpoint; each grant asked for at least one token.
	for _, gt := range []string{"urn:ietf:params:oauth:grant-type:jwt-bearer", "client_credentials", "refresh_token"} {
		if g.auth.Requests(gt) == 0 {
			t.Errorf("no %s token request", gt)
		}
	}

	// The admin removes the domain-wide delegation.
	g.auth.Revoke(g.saClientID)
	for i := 1; i <= 5; i++ {
		g.seed(t, fmt.Sprintf("u%d", i), [][]byte{[]byte(fmt.Sprintf("Subject: after revocation %d\r\n\r\nx\r\n", i))})
	}
	r = runInProcess(t, noEnv, "run", "-c", path, "--json", "--progress", "none")
	if r.code != exitPartial || r.report.Totals.Copied != 4 {
		t.Fatalf("run after revocation: exit %d, copied %d; want %d and 4\n%s", r.code, r.report.Totals.Copied, exitPartial, r.stderr)
	}
	var failed []string
	for _, a := range r.report.Accounts {
		if a.Error != "" {
			failed = append(failed, a.Error)
			if a.Attempts != 1 || !strings.Contains(a.Error, "oauth2 service-account grant for sa@example.com") ||
				!strings.Contains(a.Error, "unauthorized_client") || !strings.Contains(a.Error, "Manage Domain Wide Delegation, the service account's client ID "+g.saClientID) {
				t.Errorf("failed account: %d attempts, error %q; want one attempt and the grant, the subject and the delegation to check", a.Attempts, a.Error)
			}
		}
	}
	if len(failed) != 1 {
		t.Errorf("%d accounts failed, want 1 (the service account's): %q", len(failed), failed)
	}
	noSecrets(t, "run after revocation", r.stdout, r.stderr)

	// The same account alone with copy: a failed login is exit 1.
	copyArgs := []string{"copy", "pop3s://u1@" + g.src.POP3SAddr(), "imaps://sa%40example.com@" + g.dst.IMAPSAddr(),
		"--tls-ca", g.src.CAFile(), "--state", g.state, "--progress", "none", "--attempts", "1",
		"--dest-oauth2", "grant=service-account,key_file=" + filepath.Join(g.dir, "sa.json") + ",scope=" + gmailScope}
	env := func(k string) string { return map[string]string{"MAILFERRY_SOURCE_PASSWORD": srcPassword}[k] }
	r = runInProcess(t, env, copyArgs...)
	if r.code != exitFatal || !strings.Contains(r.stdout+r.stderr, "oauth2 service-account grant for sa@example.com") {
		t.Errorf("copy after revocation: exit %d, want %d naming the grant\n%s\n%s", r.code, exitFatal, r.stdout, r.stderr)
	}
	noSecrets(t, "copy after revocation", r.stdout, r.stderr)
}

// TestE2EOAuth2BadGrants: a missing, malformed or wrong kind of key file is
// a configuration error (exit 2, nothing touched); a key the provider no
// longer accepts and an unreachable token endpoint are failed logins (exit
// 1), each with a message that says what to check.
func TestE2EOAuth2BadGrants(t *testing.T) {
	g := startGrants(t, oauthserver.Options{})
	g.seed(t, "u1", simpleMessages(2))
	deleted, _ := g.auth.AddServiceAccount("old@mailferry-test.iam.gserviceaccount.com")
	g.auth.DeleteServiceAccountKey("old@mailferry-test.iam.gserviceaccount.com")
	mustWrite(t, filepath.Join(g.dir, "deleted.json"), deleted, 0o600)
	mustWrite(t, filepath.Join(g.dir, "malformed.json"), []byte(`{"type": "service_account", "private_key": "-----BEGIN`), 0o600)
	mustWrite(t, filepath.Join(g.dir, "user.json"), []byte(`{"type": "authorized_user", "client_id": "x", "refresh_token": "y"}`), 0o600)
	env := func(k string) string { return map[string]string{"MAILFERRY_SOURCE_PASSWORD": srcPassword}[k] }
	tests := []struct {
		name  string
		oauth string
		code  int
		want  []string
	}{
		{"missing key file", "grant=service-account,key_file=" + filepath.Join(g.dir, "nope.json") + ",scope=" + gmailScope, exitUsage, []string{"oauth2 key_file", "no such file"}},
		{"malformed JSON key", "grant=service-account,key_file=" + filepath.Join(g.dir, "malformed.json") + ",scope=" + gmailScope, exitUsage, []string{"not a JSON key file: invalid JSON"}},
		{"a user's credentials instead of a key", "grant=service-account,key_file=" + filepath.Join(g.dir, "user.json") + ",scope=" + gmailScope, exitUsage, []string{"domain-wide delegation needs a service account's JSON key"}},
		{"unknown key in the flag", "grant=service-account,keyfile=x", exitUsage, []string{`--dest-oauth2: unknown key "keyfile" (did you mean "key_file"?)`}},
		{"deleted key", "grant=service-account,key_file=" + filepath.Join(g.dir, "deleted.json") + ",scope=" + gmailScope, exitFatal,
			[]string{"oauth2 service-account grant for sa@example.com", "Invalid JWT Signature.", "create a new JSON key"}},
		{"unreachable token endpoint", "grant=client-credentials,token_url=http://127.0.0.1:1/token,client_id=app,client_secret_file=" + filepath.Join(g.dir, "app.secret") + ",scope=" + m365Scope,
			exitFatal, []string{"oauth2 client-credentials grant for app: http://127.0.0.1:1/token could not be reached", "reachable"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runInProcess(t, env, "copy", "pop3s://u1@"+g.src.POP3SAddr(), "imaps://sa%40example.com@"+g.dst.IMAPSAddr(),
				"--tls-ca", g.src.CAFile(), "--state", g.state, "--progress", "none", "--attempts", "1", "--dest-oauth2", tc.oauth)
			out := r.stdout + r.stderr
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if r.code != tc.code {
				t.Errorf("exit %d, want %d", r.code, tc.code)
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
			noSecrets(t, tc.name, out)
		})
	}
	// A grant and a password for one side: which one was meant?
	r := runInProcess(t, env, "copy", "pop3s://u1@"+g.src.POP3SAddr(), "imaps://sa%40example.com@"+g.dst.IMAPSAddr(),
		"--tls-ca", g.src.CAFile(), "--state", g.state, "--progress", "none",
		"--dest-oauth2", "grant=service-account,key_file="+filepath.Join(g.dir, "sa.json")+",scope="+gmailScope,
		"--dest-password-file", filepath.Join(g.dir, "app.secret"))
	if r.code != exitUsage || !strings.Contains(r.stderr, "--dest-oauth2 and --dest-password-file or --dest-password-command exclude each other") {
		t.Errorf("--dest-oauth2 with --dest-password-file: exit %d, want %d naming both\n%s", r.code, exitUsage, r.stderr)
	}
	if n, _ := g.dst.MailboxCount("sa@example.com", "INBOX"); n != 0 {
		t.Errorf("the destination got %d messages from failed logins", n)
	}
}

// TestE2EOAuth2TokenExpiresMidRun: the server stops accepting the
// destination's token in the middle of a copy while the client still
// believes it good for an hour (as after an early revocation of one token,
// or a clock the client does not share), and the sessions are ended, as
// hosted providers end sessions whose token expired. The reconnecting
// sessions' logins are rejected once, the token is dropped, a new one is
// fetched, and the copy finishes with every message exactly once.
func TestE2EOAuth2TokenExpiresMidRun(t *testing.T) {
	g := startGrants(t, oauthserver.Options{AdvertisedLifetime: time.Hour})
	const n = 1500
	g.seed(t, "u1", simpleMessages(n))
	done := make(chan struct{})
	cut := make(chan int, 1)
	go func() {
		defer close(cut)
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if c, _ := g.dst.MailboxCount("sa@example.com", "INBOX"); c >= 100 {
				g.auth.Expire()
				_, _ = g.dst.Doveadm("kick", "sa@example.com")
				cut <- c
				return
			}
		}
	}()
	env := func(k string) string { return map[string]string{"MAILFERRY_SOURCE_PASSWORD": srcPassword}[k] }
	r := runInProcess(t, env, "copy", "pop3s://u1@"+g.src.POP3SAddr(), "imaps://sa%40example.com@"+g.dst.IMAPSAddr(),
		"--tls-ca", g.src.CAFile(), "--state", g.state, "--progress", "none", "--json", "--batch-messages", "10",
		"--retry-backoff", "50ms", "--dest-oauth2", "grant=service-account,key_file="+filepath.Join(g.dir, "sa.json")+",scope="+gmailScope)
	close(done)
	at, cutMidRun := <-cut
	if !cutMidRun || at >= n {
		t.Skipf("the copy finished before the token could be ended mid-run (at %d of %d)", at, n)
	}
	if r.code != exitOK || r.report.Totals.Copied != n {
		t.Fatalf("copy: exit %d, copied %d; want 0 and %d\n%s", r.code, r.report.Totals.Copied, n, r.stderr)
	}
	if c, err := g.dst.MailboxCount("sa@example.com", "INBOX"); err != nil || c != n {
		t.Fatalf("destination holds %d (%v), want exactly %d", c, err, n)
	}
	if g.auth.Issued() < 2 || !strings.Contains(r.stderr, "the server rejected the OAuth2 access token; getting a new one") {
		t.Errorf("%d tokens issued; want a second one after the rejection, logged\n%s", g.auth.Issued(), r.stderr)
	}
	noSecrets(t, "copy", r.stdout, r.stderr)
}

// TestE2EOAuth2PlanChecksTokens: plan obtains every account's token before
// it connects to anything. Three accounts log in to the destination with
// app-only tokens of three Microsoft 365 app registrations (provider =
// "microsoft365" with the test's servers and endpoint): one is in order,
// one app is disabled in the tenant (the endpoint refuses the grant), and
// one has tokens the mail server refuses (its service principal has no
// access to the mailbox). plan reports the disabled app's refusal with the
// grant and the setting to check, and does not connect to that destination
// (the source is still inspected); the refused tokens are reported with
// Exchange's settings to check; the good account is OK; exit 3. A run then
// copies the good account, and gives the refused account the same advice
// as its hint, and so does verify's report.
func TestE2EOAuth2PlanChecksTokens(t *testing.T) {
	g := startGrants(t, oauthserver.Options{})
	for i := 1; i <= 3; i++ {
		g.seed(t, fmt.Sprintf("u%d", i), simpleMessages(2))
	}
	g.auth.AddClient(oauthserver.Client{ID: "app-off", Secret: appSecret, AppUser: "app@example.com", Disabled: true})
	g.auth.AddClient(oauthserver.Client{ID: "app-denied", Secret: appSecret, AppUser: "app@example.com"})
	g.auth.DenyMail("app-denied")
	cfg := fmt.Sprintf(`state = %[1]q
[source]
url = "pop3s://%[2]s"
tls_ca = %[3]q
[destination]
url = "imaps://%[4]s"
tls_ca = %[3]q
provider = "microsoft365"
oauth2 = { grant = "client-credentials", token_url = %[5]q, client_id = "app", client_secret_file = "app.secret", scope = %[6]q }

[[account]]
name = "ok"
source_user = "u1"
source_password_command = "echo %[7]s"
dest_user = "cc@example.com"

[[account]]
name = "off"
source_user = "u2"
source_password_command = "echo %[7]s"
dest_user = "cert@example.com"
destination.oauth2 = { client_id = "app-off" }

[[account]]
name = "denied"
source_user = "u3"
source_password_command = "echo %[7]s"
dest_user = "rt@example.com"
destination.oauth2 = { client_id = "app-denied" }
`, g.state, g.src.POP3SAddr(), g.src.CAFile(), g.dst.IMAPSAddr(), g.auth.TokenURL(), m365Scope, srcPassword)
	path := filepath.Join(g.dir, "migrate.toml")
	mustWrite(t, path, []byte(cfg), 0o600)
	noEnv := func(string) string { return "" }

	r := runInProcess(t, noEnv, "plan", "-c", path, "--json")
	noSecrets(t, "plan", r.stdout, r.stderr)
	var rep struct {
		Accounts []preflight.Result `json:"accounts"`
		ExitCode int                `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != exitPartial || len(rep.Accounts) != 3 {
		t.Fatalf("plan: exit %d (%v), want %d with 3 accounts\n%s\n%s", r.code, err, exitPartial, r.stdout, r.stderr)
	}
	byName := map[string]preflight.Result{}
	for _, a := range rep.Accounts {
		byName[a.Account] = a
	}
	problems := func(a preflight.Result) string { return strings.Join(a.Problems, "\n") }
	if a := byName["ok"]; !a.OK || len(a.OAuth2) != 1 || !a.OAuth2[0].OK || a.OAuth2[0].Side != "destination" ||
		a.OAuth2[0].Login != "oauth2 client-credentials grant for app" || a.DestCaps == nil || a.ToMove != 2 {
		t.Errorf("account ok: %+v, want OK with a token of app and the destination inspected", a)
	}
	off := byName["off"]
	if off.OK || len(off.OAuth2) != 1 || off.OAuth2[0].OK ||
		!strings.Contains(off.OAuth2[0].Error, "oauth2 client-credentials grant for app-off") ||
		!strings.Contains(off.OAuth2[0].Error, "AADSTS7000112") || !strings.Contains(off.OAuth2[0].Error, "Enabled for users to sign in") {
		t.Errorf("account off: oauth2 %+v, want no token, naming the grant, Entra's code and the setting", off.OAuth2)
	}
	if !strings.Contains(problems(off), "destination: no OAuth2 token: oauth2 client-credentials grant for app-off") {
		t.Errorf("account off: problems %q, want the missing token", off.Problems)
	}
	if off.DestCaps != nil || strings.Contains(problems(off), g.dst.IMAPSAddr()) {
		t.Errorf("account off: the destination was connected to without a token (capabilities %v, problems %q)", off.DestCaps, off.Problems)
	}
	if off.SourceCaps == nil || off.ToMove != 2 {
		t.Errorf("account off: source capabilities %v, %d to move; want the source inspected", off.SourceCaps, off.ToMove)
	}
	denied := byName["denied"]
	if denied.OK || len(denied.OAuth2) != 1 || !denied.OAuth2[0].OK {
		t.Errorf("account denied: oauth2 %+v, want a token obtained", denied.OAuth2)
	}
	for _, w := range []string{"with a token the oauth2 client-credentials grant obtained", "check: Microsoft issued the token",
		"New-ServicePrincipal", "Add-MailboxPermission", "-ImapEnabled $true"} {
		if !strings.Contains(problems(denied), w) {
			t.Errorf("account denied: problems %q lack %q", denied.Problems, w)
		}
	}

	// The text report shows each side's token.
	r = runInProcess(t, noEnv, "plan", "-c", path, "--only", "ok,off")
	for _, w := range []string{"oauth2:        destination: oauth2 client-credentials grant for app: token obtained",
		"oauth2:        destination: oauth2 client-credentials grant for app-off: NO TOKEN (see PROBLEM)",
		"PROBLEM:       destination: no OAuth2 token"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("plan's text report lacks %q:\n%s", w, r.stdout)
		}
	}
	noSecrets(t, "plan text", r.stdout, r.stderr)

	// The run: the good account is copied; the refused tokens get
	// Exchange's settings as the hint, after one fresh token.
	issued := g.auth.Issued()
	r = runInProcess(t, noEnv, "run", "-c", path, "--json", "--progress", "none", "--attempts", "1")
	noSecrets(t, "run", r.stdout, r.stderr)
	if r.code != exitPartial || r.report.Totals.Copied != 2 {
		t.Fatalf("run: exit %d, copied %d; want %d and 2\n%s", r.code, r.report.Totals.Copied, exitPartial, r.stderr)
	}
	var hint string
	for _, a := range r.report.Accounts {
		if strings.Contains(a.LedgerKey, "://rt@example.com@") {
			hint = a.Hint
			if !strings.Contains(a.Error, "server rejected the OAuth2 token") {
				t.Errorf("account denied: error %q, want the server's rejection", a.Error)
			}
		}
	}
	if !strings.Contains(hint, "New-ServicePrincipal") || !strings.Contains(hint, "-ImapEnabled $true") || strings.Contains(hint, "password") {
		t.Errorf("account denied: hint %q, want Exchange's settings, not the password advice", hint)
	}
	if g.auth.Issued()-issued < 3 { // ok, denied, and denied's fresh one
		t.Errorf("%d tokens issued during the run, want the denied account's retried with a fresh one", g.auth.Issued()-issued)
	}

	// verify's report gives the refused account the same advice.
	issued = g.auth.Issued()
	r = runInProcess(t, noEnv, "verify", "-c", path, "--only", "denied")
	noSecrets(t, "verify", r.stdout, r.stderr)
	if r.code != exitFatal || !strings.Contains(r.stdout, "ERROR: connecting to the destination") ||
		!strings.Contains(r.stdout, "hint: "+hint) {
		t.Errorf("verify: exit %d, want %d and the refusal with Exchange's settings as the hint (%q):\n%s%s",
			r.code, exitFatal, hint, r.stdout, r.stderr)
	}
	if g.auth.Issued()-issued < 2 { // denied's, and its fresh one
		t.Errorf("%d tokens issued during verify, want the refused one retried with a fresh one", g.auth.Issued()-issued)
	}
}
