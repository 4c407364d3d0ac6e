package account

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/oauthserver"
	"github.com/mailferry/mailferry/oauthtoken"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// TestGrantTokensRetried: both sides of an account log in to Dovecot with
// app-only tokens of one client-credentials grant, which Dovecot checks
// with the local authorization server. The token is fetched once for both
// sides (CheckTokens, before any connection). Each time the server stops
// accepting the cached token, which the client still believes good for an
// hour, the next session of every opener — the source (POP3 and IMAP),
// the destination, verify's and plan's reader and the IDLE watcher — has
// its login rejected, drops the token, fetches a fresh one and logs in.
// When the mail server refuses the grant's tokens altogether (the app has
// no access to the mailbox), opening fails with a *TokenRefusedError whose
// hint is Microsoft's mail-side settings, after exactly one fresh token.
func TestGrantTokensRetried(t *testing.T) {
	auth := oauthserver.Start(t, oauthserver.Options{AdvertisedLifetime: time.Hour})
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	srv := dovecot.Start(t, dovecot.Options{Name: "mf-agrant", CA: ca, Users: map[string]string{"alice@example.com": "unused"},
		OAuth2IntrospectionURL: auth.IntrospectionURL(), OAuth2UsernameFormat: "%d",
		// No growing penalty for this test's many refused logins (2, 4,
		// 8 s per failure from one IP otherwise).
		ExtraConfig: "auth_failure_delay = 0\n" + noAuthPenalty})
	const appSecret = "app-secret-0123456789"
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.secret"), []byte(appSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, url string
		proto     config.Protocol
		app       string // the client ID: DenyMail ends its tokens for good
	}{
		{"POP3 source", "pop3s://" + srv.POP3SAddr(), config.POP3, "app-pop3"},
		{"IMAP source", "imaps://" + srv.IMAPSAddr(), config.IMAP, "app-imap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth.AddClient(oauthserver.Client{ID: tc.app, Secret: appSecret, AppUser: "app@example.com"})
			oauth := fmt.Sprintf(`oauth2 = { grant = "client-credentials", token_url = %q, client_id = %q, client_secret_file = %q, scope = "https://outlook.office365.com/.default" }`,
				auth.TokenURL(), tc.app, filepath.Join(dir, "app.secret"))
			// provider = "microsoft365" with the test's servers and
			// endpoint: only the hints are Microsoft's.
			cfg := loadConfig(t, fmt.Sprintf(`[source]
url = %q
provider = "microsoft365"
tls_ca = %q
%s
[destination]
url = "imaps://%s"
provider = "microsoft365"
tls_ca = %q
%s
[[account]]
source_user = "alice@example.com"
`, tc.url, srv.CAFile(), oauth, srv.IMAPSAddr(), srv.CAFile(), oauth))
			var logs logBuffer
			accs, err := NewSet(Options{Logger: logs.logger()}).FromConfig(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			a := accs[0]
			ctx := t.Context()
			issued := auth.Issued()
			checks := a.CheckTokens(ctx)
			if len(checks) != 2 || checks[0].Side != "source" || checks[1].Side != "destination" {
				t.Fatalf("CheckTokens = %+v, want the source and the destination", checks)
			}
			for _, c := range checks {
				if c.Err != nil || c.Grant != oauthtoken.ClientCredentials || c.Login != "oauth2 client-credentials grant for "+tc.app {
					t.Errorf("CheckTokens: %+v, want a token of the client-credentials grant for %s", c, tc.app)
				}
			}
			if n := auth.Issued() - issued; n != 1 {
				t.Errorf("%d tokens issued for the two sides, want one shared", n)
			}

			openers := []struct {
				name string
				open func() (func(), error)
			}{
				{"source", func() (func(), error) {
					s, err := a.OpenSource(ctx)
					if err != nil {
						return nil, err
					}
					return func() { s.Close(false) }, nil
				}},
				{"destination", func() (func(), error) {
					d, err := a.OpenDestination(ctx)
					if err != nil {
						return nil, err
					}
					return func() { d.Close() }, nil
				}},
				{"reader", func() (func(), error) {
					r, err := a.OpenReader(ctx)
					if err != nil {
						return nil, err
					}
					return func() { r.Close() }, nil
				}},
			}
			if tc.proto == config.IMAP {
				openers = append(openers, struct {
					name string
					open func() (func(), error)
				}{"watcher", func() (func(), error) {
					w, err := a.Watch(ctx, 0)
					if err != nil {
						return nil, err
					}
					return func() { w.Close() }, nil
				}})
			}
			for _, o := range openers {
				auth.Expire() // the cached token stops working, unannounced
				issued := auth.Issued()
				rejections := logs.count("the server rejected the OAuth2 access token; getting a new one")
				closeIt, err := o.open()
				if err != nil {
					t.Errorf("%s after the token expired: %v, want a login with a fresh token", o.name, err)
					continue
				}
				closeIt()
				if n := auth.Issued() - issued; n != 1 {
					t.Errorf("%s: %d tokens fetched after the rejection, want 1", o.name, n)
				}
				if logs.count("the server rejected the OAuth2 access token; getting a new one") == rejections {
					t.Errorf("%s: the rejection was not logged", o.name)
				}
			}

			// The endpoint issues tokens the mail server refuses.
			auth.DenyMail(tc.app)
			for _, o := range []struct {
				name  string
				proto config.Protocol
				open  func() error
			}{
				{"source", tc.proto, func() error { _, err := a.OpenSource(ctx); return err }},
				{"reader", config.IMAP, func() error { _, err := a.OpenReader(ctx); return err }},
			} {
				issued := auth.Issued()
				err := o.open()
				var refused *TokenRefusedError
				if !errors.As(err, &refused) || refused.Provider != "microsoft365" || refused.Grant != oauthtoken.ClientCredentials ||
					refused.Protocol != o.proto || pipeline.ClassOf(err) != pipeline.ClassFatal {
					t.Fatalf("%s with tokens the server refuses: %v (class %v), want a fatal *TokenRefusedError", o.name, err, pipeline.ClassOf(err))
				}
				want := "-ImapEnabled"
				if o.proto == config.POP3 {
					want = "-PopEnabled"
				}
				if h := refused.Hint(); !strings.Contains(h, "New-ServicePrincipal") || !strings.Contains(h, want) {
					t.Errorf("%s: hint %q, want Exchange's service principal and %s", o.name, h, want)
				}
				if !strings.Contains(err.Error(), "with a token the oauth2 client-credentials grant obtained") || accessToken.MatchString(err.Error()) {
					t.Errorf("%s: %v, want the grant named and no token", o.name, err)
				}
				// The cached token was rejected, then exactly one fresh one.
				if n := auth.Issued() - issued; n != 1 {
					t.Errorf("%s: %d tokens fetched, want 1 (one retry)", o.name, n)
				}
			}
		})
	}
}

// TestGrantConfigErrors: a grant's files are read when the account is
// assembled, so a missing key file is a configuration error naming the
// side, before any connection; logins alike share one token source.
func TestGrantConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := loadConfig(t, fmt.Sprintf(`[source]
url = "pop3s://127.0.0.1:1"
[destination]
url = "imaps://127.0.0.1:1"
oauth2 = { grant = "service-account", key_file = %q, scope = "https://mail.google.com/" }
[[account]]
source_user = "alice"
source_password = "pw"
dest_user = "alice@example.com"
`, filepath.Join(dir, "missing.json")))
	_, err := NewSet(Options{}).FromConfig(cfg, nil)
	if err == nil || !strings.Contains(err.Error(), `account "alice": destination: oauth2 key_file`) {
		t.Errorf("FromConfig with a missing key file: %v, want an error naming the account, the side and key_file", err)
	}

	// Two accounts of one client-credentials app share a token source;
	// a URL account's flag login is a grant too.
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kv := map[string]string{"grant": "client-credentials", "token_url": "http://127.0.0.1:1/token", "client_id": "app",
		"client_secret_file": secretFile, "scope": "https://outlook.office365.com/.default"}
	srvFlag, err := config.OAuth2Flag("--dest-oauth2", "imaps://a%40example.com@127.0.0.1:1", kv)
	if err != nil {
		t.Fatal(err)
	}
	set := NewSet(Options{})
	var sources []*oauthtoken.Source
	for _, user := range []string{"a@example.com", "b@example.com"} {
		src, _ := config.ParseURL("pop3s://u@127.0.0.1:1")
		dst, _ := config.ParseURL("imaps://" + strings.ReplaceAll(user, "@", "%40") + "@127.0.0.1:1")
		acc, err := set.FromURLs(URLs{Source: src, Dest: dst, SourceLogin: Login{Password: secret.New("pw")},
			DestLogin: Login{OAuth2: srvFlag, What: "--dest-oauth2"}})
		if err != nil {
			t.Fatalf("FromURLs with --dest-oauth2: %v", err)
		}
		if acc.dst.grant == nil || acc.dst.auth.Mechanism() != "XOAUTH2" || acc.src.grant != nil {
			t.Fatalf("the destination logs in with %v, grant %v; want XOAUTH2 with the flag's grant and a password at the source", acc.dst.auth, acc.dst.grant)
		}
		sources = append(sources, acc.dst.grant.src)
	}
	if sources[0] != sources[1] {
		t.Error("two accounts of one app got token sources of their own, want one shared")
	}
}

// noAuthPenalty turns Dovecot's authentication penalty off: after a failed
// login from an IP, its next login waits 2, 4, 8 and up to 15 s.
const noAuthPenalty = "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n"

// accessToken matches the access tokens oauthserver issues.
var accessToken = regexp.MustCompile(`\bat-[0-9a-f]{48}\b`)
