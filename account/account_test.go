package account

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// TestConnectionCaps: the caps are per effective server, the smallest
// that any account using the server gives, as a source or a destination.
func TestConnectionCaps(t *testing.T) {
	tests := []struct {
		name     string
		accounts string
		want     map[string]int
	}{
		{name: "the section's cap",
			accounts: "[[account]]\nsource_user = \"a\"\n",
			want:     map[string]int{"imap.new.example:993": 10}},
		{name: "an account on another server has its own cap",
			accounts: "[[account]]\nsource_user = \"a\"\n[[account]]\nsource_user = \"b\"\n[account.destination]\nurl = \"imaps://mx2.new.example\"\nmax_connections = 3\n",
			want:     map[string]int{"imap.new.example:993": 10, "mx2.new.example:993": 3}},
		{name: "the smallest cap of one server wins",
			accounts: "[[account]]\nsource_user = \"a\"\n[[account]]\nsource_user = \"b\"\ndestination.max_connections = 4\nsource.max_connections = 1\n",
			want:     map[string]int{"pop.old.example:995": 1, "imap.new.example:993": 4}},
		{name: "an account that lifts the cap does not lift it for the others",
			accounts: "[[account]]\nsource_user = \"a\"\n[[account]]\nsource_user = \"b\"\ndestination.max_connections = 0\n",
			want:     map[string]int{"imap.new.example:993": 10}},
		{name: "one server as source and destination: the smaller cap",
			accounts: "[[account]]\nsource_user = \"a\"\n[[account]]\nsource_user = \"b\"\n[account.source]\nurl = \"imaps://imap.new.example\"\nmax_connections = 6\n",
			want:     map[string]int{"imap.new.example:993": 6}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadConfig(t, "[source]\nurl = \"pop3s://pop.old.example\"\nmaster_user = \"m\"\nmaster_password_env = \"M\"\n"+
				"[destination]\nurl = \"imaps://imap.new.example\"\nmax_connections = 10\nmaster_user = \"m\"\nmaster_password_env = \"M\"\n"+tc.accounts)
			if got := connectionCaps(cfg); !maps.Equal(got, tc.want) {
				t.Errorf("connectionCaps = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLoginForms: an account logs in as its user, or through its server's
// master user in the form the server asks for.
func TestLoginForms(t *testing.T) {
	tests := []struct {
		name                string
		master              string
		wantUser, wantAuthz string
	}{
		{"own password", "", "alice", ""},
		{"master user with SASL PLAIN", "master_user = \"admin\"\n", "admin", "alice"},
		{"explicit sasl", "master_user = \"admin\"\nmaster_login = \"sasl\"\n", "admin", "alice"},
		{"Dovecot's separator form", "master_user = \"admin\"\nmaster_login = \"separator\"\n", "alice*admin", ""},
		{"another separator", "master_user = \"admin\"\nmaster_login = \"separator\"\nmaster_separator = \"%\"\n", "alice%admin", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			master := tc.master
			if master != "" {
				master += "master_password = \"m\"\n"
			}
			cfg := loadConfig(t, "[source]\nurl = \"pop3s://pop.old.example\"\n"+master+
				"[destination]\nurl = \"imaps://imap.new.example\"\n"+
				"[[account]]\nsource_user = \"alice\"\nsource_password = \"a\"\ndest_password = \"d\"\n")
			accs, err := NewSet(Options{}).FromConfig(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := accs[0].src; d.user != tc.wantUser || d.authzID != tc.wantAuthz {
				t.Errorf("source login = %q, %q; want %q, %q", d.user, d.authzID, tc.wantUser, tc.wantAuthz)
			}
		})
	}
}

// TestFromURLs: the ledger key, the destination mailbox and the checks of
// an account given by URLs.
func TestFromURLs(t *testing.T) {
	ep := func(s string) config.Endpoint {
		t.Helper()
		e, err := config.ParseURL(s)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	login := Login{Password: secret.New("pw")}
	tests := []struct {
		name          string
		u             URLs
		wantKey       string
		wantMailbox   string
		wantRoot      string
		wantMapFolder bool
		wantName      string // the URLs as given, schemes and all
		wantErr       string
	}{
		{name: "POP3 to the default INBOX", u: URLs{Source: ep("pop3s://alice@pop.old"), Dest: ep("imaps://alice@imap.new")},
			wantKey: "pop3://alice@pop.old:995 -> imap://alice@imap.new:993/INBOX", wantMailbox: "INBOX",
			wantName: "pop3s://alice@pop.old:995 -> imaps://alice@imap.new:993"},
		{name: "POP3 to a folder", u: URLs{Source: ep("pop3://alice@pop.old"), Dest: ep("imaps://alice@imap.new/Old/Mail")},
			wantKey: "pop3://alice@pop.old:110 -> imap://alice@imap.new:993/Old/Mail", wantMailbox: "Old/Mail",
			wantName: "pop3://alice@pop.old:110 -> imaps://alice@imap.new:993/Old/Mail"},
		{name: "IMAP folders under a root", u: URLs{Source: ep("imaps://alice@imap.old"), Dest: ep("imaps://alice@imap.new/Old")},
			wantKey: "imap://alice@imap.old:993 -> imap://alice@imap.new:993/Old", wantMailbox: "Old", wantRoot: "Old", wantMapFolder: true,
			wantName: "imaps://alice@imap.old:993 -> imaps://alice@imap.new:993/Old"},
		{name: "IMAP folders at the top", u: URLs{Source: ep("imaps://alice@imap.old"), Dest: ep("imaps://alice@imap.new")},
			wantKey: "imap://alice@imap.old:993 -> imap://alice@imap.new:993/", wantMailbox: "INBOX", wantMapFolder: true,
			wantName: "imaps://alice@imap.old:993 -> imaps://alice@imap.new:993"},
		{name: "no user", u: URLs{Source: ep("pop3s://pop.old"), Dest: ep("imaps://alice@imap.new")}, wantErr: "need a user name"},
		{name: "a POP3 destination", u: URLs{Source: ep("pop3s://alice@pop.old"), Dest: ep("pop3s://alice@pop.new")},
			wantErr: "must be an imaps:// or imap:// URL"},
		{name: "X-UIDL from IMAP", u: URLs{Source: ep("imaps://alice@imap.old"), Dest: ep("imaps://alice@imap.new"), XUIDL: true},
			wantErr: "needs a POP3 source"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.u.SourceLogin, tc.u.DestLogin = login, login
			a, err := NewSet(Options{}).FromURLs(tc.u)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("FromURLs = %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Options.Name != tc.wantKey || a.Name != tc.wantName || a.Options.Label != tc.wantName || a.Options.Mailbox != tc.wantMailbox ||
				a.Folders.Root != tc.wantRoot || (a.Options.MapFolders != nil) != tc.wantMapFolder {
				t.Errorf("key %q, name %q (label %q), mailbox %q, root %q, folder mapping %v; want %q, %q, %q, %q, %v",
					a.Options.Name, a.Name, a.Options.Label, a.Options.Mailbox, a.Folders.Root, a.Options.MapFolders != nil,
					tc.wantKey, tc.wantName, tc.wantMailbox, tc.wantRoot, tc.wantMapFolder)
			}
			// The ledger names it by its key: no config name, no id.
			if sp := a.LedgerSpec(); sp.Endpoint != tc.wantKey || sp.Name != "" || sp.ID != "" || sp.KeyScheme != tc.u.Source.Protocol.String() {
				t.Errorf("LedgerSpec = %+v", sp)
			}
			if got := a.Options.KeyFolder != nil; got != tc.wantMapFolder {
				t.Errorf("KeyFolder set %v, want %v (IMAP sources only)", got, tc.wantMapFolder)
			}
		})
	}
}

// TestFromConfigSelect: --only picks accounts in the config's order and
// names an account the config lacks; every key is the one status shows.
func TestFromConfigSelect(t *testing.T) {
	cfg := loadConfig(t, "[source]\nurl = \"pop3s://pop.old.example\"\n[destination]\nurl = \"imaps://imap.new.example\"\n"+
		"[[account]]\nsource_user = \"a\"\nsource_password = \"x\"\ndest_password = \"y\"\n"+
		"[[account]]\nsource_user = \"b\"\nsource_password = \"x\"\ndest_password = \"y\"\n"+
		"[[account]]\nsource_user = \"c\"\nsource_password = \"x\"\ndest_password = \"y\"\n")
	s := NewSet(Options{})
	accs, err := s.FromConfig(cfg, []string{"c", "a"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range accs {
		names = append(names, a.Name)
		ca := &cfg.Accounts[map[string]int{"a": 0, "c": 2}[a.Name]]
		key, err := KeyOf(cfg, ca)
		if err != nil || key != a.Options.Name {
			t.Errorf("KeyOf(%s) = %q, %v; want %q", a.Name, key, err, a.Options.Name)
		}
		// status (SpecOf, from the config alone) and the run
		// (LedgerSpec) name the account alike.
		sp, err := SpecOf(cfg, ca)
		if err != nil || fmt.Sprint(sp) != fmt.Sprint(a.LedgerSpec()) || sp.Name != a.Name {
			t.Errorf("SpecOf(%s) = %+v, %v; want %+v", a.Name, sp, err, a.LedgerSpec())
		}
	}
	if strings.Join(names, ",") != "a,c" {
		t.Errorf("--only c,a gave %v, want a, c", names)
	}
	if _, err := s.FromConfig(cfg, []string{"a", "zed"}); err == nil || !strings.Contains(err.Error(), `"zed"`) {
		t.Errorf("an unknown account: %v, want an error naming it", err)
	}
}

// TestSpoolBuffersShared: the accounts of a Set spool into one
// spool.Buffers, also across FromConfig calls (a fleet worker's reloads),
// so that an account of a batch reuses the buffers of those before it.
func TestSpoolBuffersShared(t *testing.T) {
	cfg := loadConfig(t, "[source]\nurl = \"pop3s://pop.old.example\"\n[destination]\nurl = \"imaps://imap.new.example\"\n"+
		"[[account]]\nsource_user = \"a\"\nsource_password = \"x\"\ndest_password = \"y\"\n"+
		"[[account]]\nsource_user = \"b\"\nsource_password = \"x\"\ndest_password = \"y\"\n")
	s := NewSet(Options{})
	accs, err := s.FromConfig(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.FromConfig(cfg, []string{"b"})
	if err != nil {
		t.Fatal(err)
	}
	first := accs[0].Options.Spool.Buffers
	if first == nil {
		t.Fatal("account a has no spool buffers")
	}
	for _, a := range append(accs[1:], again...) {
		if a.Options.Spool.Buffers != first {
			t.Errorf("account %s spools into other buffers than account a", a.Name)
		}
	}
}

// TestSelect: --only selects exactly the accounts named, wherever they
// are in the config, in the config's order (it used to select every
// account after the first one named once all names were found).
func TestSelect(t *testing.T) {
	var doc strings.Builder
	doc.WriteString("[source]\nurl = \"pop3s://pop.old.example\"\n[destination]\nurl = \"imaps://imap.new.example\"\n")
	for _, n := range []string{"a", "b", "c", "d"} {
		fmt.Fprintf(&doc, "[[account]]\nname = %q\nsource_user = %q\nsource_password = \"x\"\ndest_password = \"y\"\n", n, n)
	}
	cfg := loadConfig(t, doc.String())
	tests := []struct {
		only []string
		want string
	}{
		{nil, "a b c d"},
		{[]string{"a"}, "a"},
		{[]string{"b", "a"}, "a b"},
		{[]string{"b"}, "b"},
		{[]string{"c", "a"}, "a c"},
		{[]string{"d"}, "d"},
		{[]string{"a", "a"}, "a"},
	}
	for _, tt := range tests {
		accs, err := Select(cfg, tt.only)
		if err != nil {
			t.Errorf("Select(%v): %v", tt.only, err)
			continue
		}
		var got []string
		for _, a := range accs {
			got = append(got, a.Name)
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("Select(%v) = %v, want %s", tt.only, got, tt.want)
		}
	}
	if _, err := Select(cfg, []string{"a", "zz"}); err == nil || !strings.Contains(err.Error(), `"zz"`) {
		t.Errorf("Select(a, zz): %v, want an error naming zz", err)
	}
}

// TestSecretFailsOnlyItsAccount: assembling runs no password command; an
// account whose command fails fails when it connects, with a fatal
// *SecretError that names the key and never the secret, while an
// account whose secret works goes on. A master password is read once for
// every account that uses it.
func TestSecretFailsOnlyItsAccount(t *testing.T) {
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	cfg := loadConfig(t, fmt.Sprintf(`[source]
url = "pop3s://127.0.0.1:1"
master_user = "admin"
master_password_command = "echo run >> %s; echo master-Secret"
[destination]
url = "imaps://127.0.0.1:1"
[[account]]
source_user = "good"
dest_password = "x"
[[account]]
source_user = "bad"
dest_password_command = "echo oops >&2; exit 3"
[[account]]
source_user = "third"
dest_password = "x"
`, ran))
	accs, err := NewSet(Options{}).FromConfig(cfg, nil)
	if err != nil {
		t.Fatalf("FromConfig: %v (a secret must not fail the assembly)", err)
	}
	if _, err := os.Stat(ran); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("assembling ran the master password command")
	}
	ctx := context.Background()
	for _, a := range accs {
		if _, err := a.OpenSource(ctx); err == nil || strings.Contains(err.Error(), "master-Secret") {
			t.Errorf("%s: OpenSource = %v, want a connection error without the password", a.Name, err)
		}
		_, err := a.OpenDestination(ctx)
		var se *SecretError
		switch a.Name {
		case "bad":
			if !errors.As(err, &se) || pipeline.ClassOf(err) != pipeline.ClassFatal || !strings.Contains(err.Error(), "dest_password_command") ||
				!strings.Contains(err.Error(), "oops") || !strings.Contains(err.Error(), `account "bad"`) {
				t.Errorf("bad: OpenDestination = %v (class %v), want a fatal *SecretError naming the account, the key and the command's stderr", err, pipeline.ClassOf(err))
			}
		default:
			// Port 1 refuses: the secrets were read, the dial failed.
			if err == nil || errors.As(err, &se) {
				t.Errorf("%s: OpenDestination = %v, want a connection error", a.Name, err)
			}
		}
		if err != nil && strings.Contains(err.Error(), "master-Secret") {
			t.Errorf("%s: the error shows the password: %v", a.Name, err)
		}
	}
	b, _ := os.ReadFile(ran)
	if n := strings.Count(string(b), "run"); n != 1 {
		t.Errorf("the master password command ran %d times for three accounts, want 1", n)
	}
}

// TestInsecureWarnsOncePerServer: certificates not verified draw one
// warning per server, whatever turned verification off and however many
// accounts use the server; servers that verify draw none.
func TestInsecureWarnsOncePerServer(t *testing.T) {
	doc := "[source]\nurl = \"pop3s://pop.old.example\"\n%s[destination]\nurl = \"imaps://imap.new.example\"\n" +
		"[[account]]\nsource_user = \"a\"\nsource_password = \"x\"\ndest_password = \"y\"\n" +
		"[[account]]\nsource_user = \"b\"\nsource_password = \"x\"\ndest_password = \"y\"\n" +
		"[[account]]\nsource_user = \"c\"\nsource_password = \"x\"\ndest_password = \"y\"\n[account.destination]\nurl = \"imaps://mx2.new.example\"\n"
	tests := []struct {
		name      string
		sourceKey string
		flag      bool
		want      map[string]int // warnings per server
	}{
		{"the flag", "", true, map[string]int{"pop.old.example:995": 1, "imap.new.example:993": 1, "mx2.new.example:993": 1}},
		{"the source's key", "insecure_skip_verify = true\n", false, map[string]int{"pop.old.example:995": 1}},
		{"neither", "", false, map[string]int{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log logBuffer
			cfg := loadConfig(t, fmt.Sprintf(doc, tc.sourceKey))
			if _, err := NewSet(Options{Logger: log.logger(), InsecureSkipVerify: tc.flag}).FromConfig(cfg, nil); err != nil {
				t.Fatal(err)
			}
			total := 0
			for server, n := range tc.want {
				if got := log.count("server=" + server); got != n {
					t.Errorf("%d warnings for %s, want %d:\n%s", got, server, n, log.String())
				}
				total += n
			}
			if got := log.count("not verified"); got != total {
				t.Errorf("%d warnings in all, want %d:\n%s", got, total, log.String())
			}
		})
	}
}

// TestNamedFolders: the folders a user names explicitly, which must exist
// (source) or be allowed to be created (destination): the URLs' paths and
// --folder names without wildcards; INBOX and folders under it need no
// permission.
func TestNamedFolders(t *testing.T) {
	ep := func(s string) config.Endpoint {
		e, err := config.ParseURL(s)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	login := Login{Password: secret.New("pw")}
	tests := []struct {
		name       string
		u          URLs
		wantSource string
		wantDest   string
	}{
		{"POP3 to INBOX", URLs{Source: ep("pop3s://a@old"), Dest: ep("imaps://a@new")}, "", ""},
		{"POP3 to inbox", URLs{Source: ep("pop3s://a@old"), Dest: ep("imaps://a@new/inbox")}, "", ""},
		{"POP3 to a folder", URLs{Source: ep("pop3s://a@old"), Dest: ep("imaps://a@new/INBX")}, "", "INBX(DEST's folder)"},
		{"IMAP folder and patterns", URLs{Source: ep("imaps://a@old/Projekts"), Dest: ep("imaps://a@new"),
			Folders: config.Folders{Include: []string{"Sent", "Archive/*", "Work/%", "Lists?"}}},
			"Projekts(SOURCE's folder) Sent(--folder)", ""},
		{"IMAP under a root", URLs{Source: ep("imaps://a@old"), Dest: ep("imaps://a@new/Old")}, "", "Old(DEST's folder)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.u.SourceLogin, tc.u.DestLogin = login, login
			a, err := NewSet(Options{}).FromURLs(tc.u)
			if err != nil {
				t.Fatal(err)
			}
			var src []string
			for _, n := range a.named.source {
				src = append(src, n.name+"("+n.from+")")
			}
			dst := ""
			if a.named.dest.name != "" {
				dst = a.named.dest.name + "(" + a.named.dest.from + ")"
			}
			if strings.Join(src, " ") != tc.wantSource || dst != tc.wantDest {
				t.Errorf("named source %q, destination %q; want %q, %q", src, dst, tc.wantSource, tc.wantDest)
			}
		})
	}
}

func TestFolderErrorMessage(t *testing.T) {
	tests := []struct {
		err  *FolderError
		want string
	}{
		{&FolderError{Side: "source", Folder: "Projekts", From: "--folder", Closest: []string{"Projects"}, Existing: []string{"INBOX", "Projects"}},
			`source folder "Projekts" (--folder) does not exist; did you mean "Projects"?`},
		{&FolderError{Side: "source", Folder: "Quarterly", From: "--folder", Existing: []string{"INBOX", "Sent"}},
			`source folder "Quarterly" (--folder) does not exist; the source has INBOX, Sent`},
		{&FolderError{Side: "destination", Folder: "Old/2019", From: "dest_folder", Top: "Old", Closest: []string{"Olds"}},
			`destination folder "Old/2019" (dest_folder) does not exist, nor does its top-level folder "Old"; a copy creates a new top-level folder only with --create-folders (create_folders = true in a config); did you mean "Olds"?`},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q\nwant      %q", got, tc.want)
		}
		if pipeline.ClassOf(tc.err) != pipeline.ClassFatal {
			t.Errorf("%v is not fatal for the engine", tc.err)
		}
	}
}

// TestCAFileOnlyForTLS: --tls-ca adds to the system roots of a side that
// uses TLS; a side without TLS verifies no certificate, so its CA file is
// only checked (a bad one still fails) and the system roots, whose parsing
// was 2% of a 300 MB copy's CPU time, are not loaded.
func TestCAFileOnlyForTLS(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(good, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		src, dst  string
		caFile    string
		wantRoots [2]bool // source, destination: RootCAs set
		wantErr   string
	}{
		{name: "both sides without TLS", src: "imap://alice@imap.old?tls=none", dst: "imap://alice@imap.new?tls=none", caFile: good},
		{name: "TLS on the destination only", src: "imap://alice@imap.old?tls=none", dst: "imaps://alice@imap.new", caFile: good,
			wantRoots: [2]bool{false, true}},
		{name: "STARTTLS and implicit TLS", src: "imap://alice@imap.old", dst: "imaps://alice@imap.new", caFile: good,
			wantRoots: [2]bool{true, true}},
		{name: "a bad CA file fails without TLS too", src: "imap://alice@imap.old?tls=none", dst: "imap://alice@imap.new?tls=none",
			caFile: bad, wantErr: "holds no PEM certificate"},
		{name: "a missing CA file fails without TLS too", src: "pop3://alice@pop.old?tls=none", dst: "imap://alice@imap.new?tls=none",
			caFile: filepath.Join(dir, "missing.pem"), wantErr: "reading CA file"},
		{name: "a bad CA file fails with TLS", src: "pop3s://alice@pop.old", dst: "imaps://alice@imap.new",
			caFile: bad, wantErr: "holds no PEM certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := passwordURLs(t, tc.src, tc.dst)
			a, err := NewSet(Options{TLSCA: tc.caFile, AllowPlaintext: true}).FromURLs(u)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("FromURLs = %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, d := range []*side{a.src, a.dst} {
				if got := d.tls.RootCAs != nil; got != tc.wantRoots[i] {
					t.Errorf("side %d: RootCAs set %v, want %v", i, got, tc.wantRoots[i])
				}
			}
			// Where TLS is on, the pool verifies the CA's certificates.
			if tc.wantRoots[1] {
				certPEM, _, err := ca.IssueServerCert("imap.new")
				if err != nil {
					t.Fatal(err)
				}
				block, _ := pem.Decode(certPEM)
				cert, err := x509.ParseCertificate(block.Bytes)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := cert.Verify(x509.VerifyOptions{Roots: a.dst.tls.RootCAs, DNSName: "imap.new"}); err != nil {
					t.Errorf("the destination's roots do not verify the CA's certificate: %v", err)
				}
			}
		})
	}
}

// passwordURLs is the account of the URLs src and dst with passwords.
func passwordURLs(tb testing.TB, src, dst string) URLs {
	tb.Helper()
	var u URLs
	var err error
	if u.Source, err = config.ParseURL(src); err != nil {
		tb.Fatal(err)
	}
	if u.Dest, err = config.ParseURL(dst); err != nil {
		tb.Fatal(err)
	}
	u.SourceLogin, u.DestLogin = Login{Password: secret.New("pw")}, Login{Password: secret.New("pw")}
	return u
}

// TestCAFileReadOncePerSet: a Set reads its CA file once, for sides with
// TLS (caPool) and without (checkCAFile): the accounts of a batch after the
// first do not read it again, so a file gone meanwhile does not fail them.
// Another Set (another command) reads it anew.
func TestCAFileReadOncePerSet(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, src, dst string }{
		{"without TLS", "imap://alice@imap.old?tls=none", "imap://alice@imap.new?tls=none"},
		{"with TLS", "imaps://alice@imap.old", "imaps://alice@imap.new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caFile := filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(caFile, ca.CertPEM(), 0o600); err != nil {
				t.Fatal(err)
			}
			u := passwordURLs(t, tc.src, tc.dst)
			set := NewSet(Options{TLSCA: caFile, AllowPlaintext: true})
			if _, err := set.FromURLs(u); err != nil {
				t.Fatalf("first account: %v", err)
			}
			if err := os.Remove(caFile); err != nil {
				t.Fatal(err)
			}
			if _, err := set.FromURLs(u); err != nil {
				t.Errorf("second account of the same Set: %v, want the file read once", err)
			}
			if _, err := NewSet(Options{TLSCA: caFile, AllowPlaintext: true}).FromURLs(u); err == nil || !strings.Contains(err.Error(), "reading CA file") {
				t.Errorf("a new Set = %v, want the missing file reported", err)
			}
		})
	}
}

// BenchmarkCAFile: what --tls-ca costs an account's assembly, with TLS
// (the system roots with the file added, per side) and without (the file
// checked only).
func BenchmarkCAFile(b *testing.B) {
	ca, err := dovecot.NewCA()
	if err != nil {
		b.Fatal(err)
	}
	caFile := filepath.Join(b.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o600); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, src, dst string }{
		{"tls", "imaps://alice@imap.old", "imaps://alice@imap.new"},
		{"plain", "imap://alice@imap.old?tls=none", "imap://alice@imap.new?tls=none"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			u := passwordURLs(b, bc.src, bc.dst)
			b.ReportAllocs()
			for b.Loop() {
				// A new Set per run, as the command makes one.
				if _, err := NewSet(Options{TLSCA: caFile, AllowPlaintext: true}).FromURLs(u); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
