// Package cyrus starts private Cyrus IMAP 3.6 servers (Debian's
// cyrus-imapd and cyrus-pop3d, unpacked by scripts/install-servers.sh into
// a private prefix) for interop tests: each with its own imapd.conf and
// cyrus.conf, configuration and spool directories, SASL password database,
// TLS certificate from a test CA, and IMAP (STARTTLS), IMAPS, POP3 (STLS)
// and POP3S listeners on free ports on 127.0.0.1.
//
// What Cyrus needs that Dovecot does not (see docs/interop-servers.md):
//   - master does not pass its -C to the processes it starts, so every
//     command in cyrus.conf names the instance's imapd.conf itself, or it
//     reads /etc/imapd.conf and dies;
//   - users live in a sasldb (saslpasswd2 from sasl2-bin) under the SASL
//     realm Cyrus passes, which is its servername: the kit sets servername
//     to the instance name and creates users with -u servername;
//   - a user has no INBOX until an admin creates user.NAME (user/NAME with
//     the "/" separator); the kit logs in as its own admin to do that;
//   - Cyrus logs only to syslog, which a container does not have: the
//     kit's log holds master's stderr only.
package cyrus

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/mailserver"
)

// Paths inside the unpacked tree.
const (
	family     = "cyrus"
	binDir     = "usr/lib/cyrus/bin"
	masterBin  = binDir + "/master"
	imapdBin   = binDir + "/imapd"
	pop3dBin   = binDir + "/pop3d"
	ctlBin     = binDir + "/ctl_cyrusdb"
	saslpasswd = "usr/sbin/saslpasswd2"
)

// DefaultStartTimeout bounds the wait for the listeners.
const DefaultStartTimeout = 20 * time.Second

// adminUser is the kit's own Cyrus admin, who creates users' INBOXes.
const adminUser = "mfadmin"

// Options configure one instance.
type Options struct {
	// Name labels the instance; it is Cyrus's servername (in the greeting)
	// and the SASL realm of its users. Default: "mf-" + the directory's
	// base name.
	Name string
	// Users maps user name to password. Names are lower-case letters,
	// digits, '-' and '_' (Cyrus maps '.' in user names).
	Users map[string]string
	// Separator "." (default) is Cyrus's classic namespace: personal
	// folders under "INBOX." with "." as separator (altnamespace: no,
	// unixhierarchysep: no). "/" is Cyrus 3's default: folders beside
	// INBOX, "/" as separator (altnamespace: yes, unixhierarchysep: yes).
	Separator string
	// CA signs the instance's certificate. Default: a new CA.
	CA *dovecot.CA
	// ExtraConfig is appended to imapd.conf ("option: value" lines).
	ExtraConfig string
	// StartTimeout bounds the wait for the listeners. Default:
	// DefaultStartTimeout.
	StartTimeout time.Duration
}

// Server is a running Cyrus instance; its methods are safe for concurrent
// use.
type Server struct {
	dir, name, sep string
	inst           *mailserver.Install
	owner          mailserver.Owner
	ca             *dovecot.CA
	ports          []int // imap, imaps, pop3, pop3s
	adminPass      string
	proc           *mailserver.Process
	logPath        string

	mu    sync.Mutex // serializes sasldb writes; guards users
	users map[string]string
}

var _ mailserver.IMAPServer = (*Server)(nil)
var _ mailserver.POP3Server = (*Server)(nil)

// Available reports whether the unpacked Cyrus is there; the error names
// the install script.
func Available() error {
	_, err := mailserver.Find(family, masterBin, imapdBin, pop3dBin, ctlBin, saslpasswd)
	return err
}

var userName = regexp.MustCompile(`^[a-z0-9_-]+$`)

// StartInstance writes the configuration into dir (created, mode 0755),
// starts master in the foreground as a child process, creates the users
// and waits until every listener greets. ctx bounds only the start. The
// caller must call Stop and owns dir.
func StartInstance(ctx context.Context, dir string, opts Options) (*Server, error) {
	inst, err := mailserver.Find(family, masterBin, imapdBin, pop3dBin, ctlBin, saslpasswd)
	if err != nil {
		return nil, err
	}
	switch opts.Separator {
	case "":
		opts.Separator = "."
	case ".", "/":
	default:
		return nil, fmt.Errorf("cyrus: separator %q not supported (want \".\" or \"/\")", opts.Separator)
	}
	for u, p := range opts.Users {
		if err := checkUser(u, p); err != nil {
			return nil, err
		}
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("cyrus: resolving %s: %w", dir, err)
	}
	owner, err := mailserver.MailOwner()
	if err != nil {
		return nil, err
	}
	s := &Server{
		dir: dir, name: opts.Name, sep: opts.Separator, inst: inst, owner: owner, ca: opts.CA,
		logPath: filepath.Join(dir, "log", "master.log"), users: make(map[string]string),
	}
	if s.name == "" {
		s.name = "mf-" + filepath.Base(dir)
	}
	if strings.ContainsAny(s.name, " \t\r\n\"/") {
		return nil, fmt.Errorf("cyrus: instance name %q contains spaces, quotes or slashes", s.name)
	}
	if s.adminPass, err = randomPassword(); err != nil {
		return nil, err
	}
	if err := s.prepare(opts); err != nil {
		return nil, err
	}
	if err := s.saslSet(adminUser, s.adminPass); err != nil {
		return nil, err
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	for attempt := 1; ; attempt++ {
		err = s.launch(ctx, opts, timeout)
		if err == nil {
			break
		}
		if attempt < 3 && strings.Contains(s.LogTail(40), "Address already in use") {
			continue // another process took a port between choosing and binding
		}
		return nil, err
	}
	for u, p := range opts.Users {
		if err := s.AddUser(ctx, u, p); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return s, nil
}

func checkUser(u, p string) error {
	if !userName.MatchString(u) || u == adminUser {
		return fmt.Errorf("cyrus: user name %q: want lower-case letters, digits, '-' and '_' (and not %q)", u, adminUser)
	}
	if p == "" || strings.ContainsAny(p, "\r\n\x00") {
		return fmt.Errorf("cyrus: password of %q is empty or has a line break or NUL", u)
	}
	return nil
}

func randomPassword() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("cyrus: generating the admin password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// prepare creates the directory tree, certificate and configuration that
// does not depend on the ports.
func (s *Server) prepare(opts Options) error {
	if os.Geteuid() == 0 {
		if err := mailserver.CheckTraversable(filepath.Dir(s.dir)); err != nil {
			return err
		}
	}
	for _, sub := range []string{"", "conf", "spool", "log", "run"} {
		if err := os.MkdirAll(filepath.Join(s.dir, sub), 0o755); err != nil {
			return fmt.Errorf("cyrus: creating %s: %w", sub, err)
		}
	}
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return fmt.Errorf("cyrus: making %s traversable: %w", s.dir, err)
	}
	if s.ca == nil {
		ca, err := dovecot.NewCA()
		if err != nil {
			return err
		}
		s.ca = ca
	}
	cert, key, err := s.ca.IssueServerCert("127.0.0.1", "localhost", "::1")
	if err != nil {
		return err
	}
	var conf bytes.Buffer
	if err := imapdConf.Execute(&conf, map[string]any{
		"Dir": s.dir, "Name": s.name, "Owner": s.owner, "Admin": adminUser,
		"Classic": s.sep == ".", "Extra": opts.ExtraConfig,
	}); err != nil {
		return fmt.Errorf("cyrus: rendering imapd.conf: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"ca.pem", s.ca.CertPEM(), 0o644},
		{"cert.pem", cert, 0o644},
		{"key.pem", key, 0o600},
		{"imapd.conf", conf.Bytes(), 0o644},
	} {
		if err := os.WriteFile(filepath.Join(s.dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("cyrus: writing %s: %w", f.name, err)
		}
	}
	return s.owner.ChownTree(s.dir)
}

var imapdConf = template.Must(template.New("imapd.conf").Parse(`# Generated by mailferry's internal/testkit/cyrus.
configdirectory: {{.Dir}}/conf
partition-default: {{.Dir}}/spool
servername: {{.Name}}
syslog_prefix: {{.Name}}
cyrus_user: {{.Owner.Name}}
cyrus_group: {{.Owner.Group}}
admins: {{.Admin}}
{{- if .Classic}}
altnamespace: no
unixhierarchysep: no
{{- else}}
altnamespace: yes
unixhierarchysep: yes
{{- end}}
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {{.Dir}}/sasldb2
sasl_mech_list: PLAIN LOGIN
allowplaintext: yes
tls_server_cert: {{.Dir}}/cert.pem
tls_server_key: {{.Dir}}/key.pem
lmtpsocket: {{.Dir}}/run/lmtp
idlesocket: {{.Dir}}/run/idle
notifysocket: {{.Dir}}/run/notify
{{- if .Extra}}
# Options.ExtraConfig
{{.Extra}}
{{- end}}
`))

var cyrusConf = template.Must(template.New("cyrus.conf").Parse(`# Generated by mailferry's internal/testkit/cyrus.
# master does not pass -C on: every command names the instance's imapd.conf.
START {
  recover cmd="{{.Bin}}/ctl_cyrusdb -C {{.Conf}} -r"
}
SERVICES {
  imap  cmd="{{.Bin}}/imapd -C {{.Conf}}" listen="127.0.0.1:{{index .Ports 0}}" prefork=0
  imaps cmd="{{.Bin}}/imapd -C {{.Conf}} -s" listen="127.0.0.1:{{index .Ports 1}}" prefork=0
  pop3  cmd="{{.Bin}}/pop3d -C {{.Conf}}" listen="127.0.0.1:{{index .Ports 2}}" prefork=0
  pop3s cmd="{{.Bin}}/pop3d -C {{.Conf}} -s" listen="127.0.0.1:{{index .Ports 3}}" prefork=0
}
EVENTS {
  checkpoint cmd="{{.Bin}}/ctl_cyrusdb -C {{.Conf}} -c" period=30
}
`))

// launch picks ports, writes cyrus.conf and starts master.
func (s *Server) launch(ctx context.Context, opts Options, timeout time.Duration) error {
	var err error
	if s.ports, err = mailserver.FreePorts(4); err != nil {
		return err
	}
	conf := filepath.Join(s.dir, "imapd.conf")
	var b bytes.Buffer
	if err := cyrusConf.Execute(&b, map[string]any{"Bin": s.inst.Path(binDir), "Conf": conf, "Ports": s.ports}); err != nil {
		return fmt.Errorf("cyrus: rendering cyrus.conf: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "cyrus.conf"), b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("cyrus: writing cyrus.conf: %w", err)
	}
	// -D keeps master in the foreground with its stderr on ours.
	cmd := exec.Command(s.inst.Path(masterBin), "-C", conf, "-M", filepath.Join(s.dir, "cyrus.conf"),
		"-p", filepath.Join(s.dir, "run", "master.pid"), "-D")
	cmd.Env = s.inst.Env()
	cmd.Dir = s.dir
	s.proc, err = mailserver.StartProcess("cyrus "+s.name, cmd, s.logPath)
	if err != nil {
		return err
	}
	tlsCfg := s.TLSConfig()
	greeting := s.name + " Cyrus"
	if err := mailserver.WaitReady(ctx, "cyrus "+s.name, s.proc, timeout,
		mailserver.Probe{Addr: s.IMAPAddr(), Prefix: "* OK", Contains: greeting},
		mailserver.Probe{Addr: s.IMAPSAddr(), TLS: tlsCfg, Prefix: "* OK", Contains: greeting},
		mailserver.Probe{Addr: s.POP3Addr(), Prefix: "+OK", Contains: greeting},
		mailserver.Probe{Addr: s.POP3SAddr(), TLS: tlsCfg, Prefix: "+OK", Contains: greeting},
	); err != nil {
		s.proc.Kill()
		return fmt.Errorf("%w\n%s", err, s.LogTail(20))
	}
	return nil
}

// saslSet creates or updates a user in the instance's sasldb, in the realm
// Cyrus asks for (its servername).
func (s *Server) saslSet(user, password string) error {
	db := filepath.Join(s.dir, "sasldb2")
	cmd := exec.Command(s.inst.Path(saslpasswd), "-p", "-c", "-f", db, "-u", s.name, user)
	cmd.Env = s.inst.Env()
	cmd.Stdin = strings.NewReader(password) // -p: read it without a prompt
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cyrus: saslpasswd2 for %s: %w: %s", user, err, bytes.TrimSpace(out))
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(db, s.owner.UID, s.owner.GID); err != nil {
			return fmt.Errorf("cyrus: giving %s to %s: %w", db, s.owner.Name, err)
		}
	}
	return nil
}

// AddUser creates user in the sasldb and, as the kit's admin, the user's
// INBOX. Adding an existing user changes the password.
func (s *Server) AddUser(ctx context.Context, user, password string) error {
	if err := checkUser(user, password); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.saslSet(user, password); err != nil {
		return err
	}
	if _, ok := s.users[user]; !ok {
		admin := mailserver.Account{Addr: s.IMAPAddr(), User: adminUser, Password: s.adminPass}
		c, err := admin.Dial(ctx)
		if err != nil {
			return fmt.Errorf("cyrus: creating the INBOX of %s: %w", user, err)
		}
		defer c.Close()
		// An admin names users' mailboxes "user" + separator + name in
		// both namespaces.
		if err := c.Create("user"+s.sep+user, nil).Wait(); err != nil && !strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("cyrus: creating the INBOX of %s: %w", user, err)
		}
		logout(c)
	}
	s.users[user] = password
	return nil
}

// Login is user: Cyrus users log in with their plain names.
func (s *Server) Login(user string) string { return user }

func logout(c *imapclient.Client) { _ = c.Logout().Wait() }

func (s *Server) account(user string) (mailserver.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.users[user]
	if !ok {
		return mailserver.Account{}, fmt.Errorf("cyrus: no user %q on %s (AddUser first)", user, s.name)
	}
	return mailserver.Account{Addr: s.IMAPAddr(), User: user, Password: p}, nil
}

// Append stores msg in user's mailbox (its full IMAP name, e.g.
// "INBOX.Archive" with the "." separator), creating it when needed, with
// flags and internal date, over IMAP as the user.
func (s *Server) Append(ctx context.Context, user, mailbox string, msg []byte, flags []string, internalDate time.Time) error {
	a, err := s.account(user)
	if err != nil {
		return err
	}
	return a.Append(ctx, mailbox, msg, flags, internalDate)
}

// Deliver puts msg into user's INBOX, which POP3 serves.
func (s *Server) Deliver(ctx context.Context, user string, msg []byte) error {
	return s.Append(ctx, user, "INBOX", msg, nil, time.Time{})
}

// Messages returns what user's mailbox holds, read over IMAP.
func (s *Server) Messages(ctx context.Context, user, mailbox string) ([]mailserver.Message, error) {
	a, err := s.account(user)
	if err != nil {
		return nil, err
	}
	return a.Messages(ctx, mailbox)
}

// Mailboxes lists user's mailboxes.
func (s *Server) Mailboxes(ctx context.Context, user string) ([]mailserver.Mailbox, error) {
	a, err := s.account(user)
	if err != nil {
		return nil, err
	}
	return a.Mailboxes(ctx)
}

// Stop terminates master, which terminates its children, and waits.
func (s *Server) Stop() error {
	if err := s.proc.Stop(); err != nil {
		return fmt.Errorf("%w\n%s", err, s.LogTail(20))
	}
	return nil
}

// Info names the server: "Cyrus IMAP" and the cyrus-imapd package version.
func (s *Server) Info() mailserver.Info {
	return mailserver.Info{Name: "Cyrus IMAP", Version: s.inst.Versions["cyrus-imapd"]}
}

// Endpoints lists the listeners: all four, with STARTTLS and STLS.
func (s *Server) Endpoints() mailserver.Endpoints {
	return mailserver.Endpoints{
		IMAP: s.IMAPAddr(), IMAPStartTLS: true, IMAPS: s.IMAPSAddr(),
		POP3: s.POP3Addr(), POP3STLS: true, POP3S: s.POP3SAddr(),
	}
}

func (s *Server) IMAPAddr() string  { return mailserver.Addr(s.ports[0]) }
func (s *Server) IMAPSAddr() string { return mailserver.Addr(s.ports[1]) }
func (s *Server) POP3Addr() string  { return mailserver.Addr(s.ports[2]) }
func (s *Server) POP3SAddr() string { return mailserver.Addr(s.ports[3]) }

// Separator is the personal namespace's hierarchy separator.
func (s *Server) Separator() string { return s.sep }

// Prefix is the personal namespace's prefix: "INBOX." in the classic
// namespace, "" in the alternate one.
func (s *Server) Prefix() string {
	if s.sep == "." {
		return "INBOX."
	}
	return ""
}

// CAFile is the PEM file of the CA that signed the certificate.
func (s *Server) CAFile() string { return filepath.Join(s.dir, "ca.pem") }

// CA returns the CA that signed the certificate.
func (s *Server) CA() *dovecot.CA { return s.ca }

// TLSConfig trusts the instance's CA, for 127.0.0.1.
func (s *Server) TLSConfig() *tls.Config { return s.ca.TLSConfig("127.0.0.1") }

// Name is the instance name (servername).
func (s *Server) Name() string { return s.name }

// Dir is the instance directory.
func (s *Server) Dir() string { return s.dir }

// LogTail returns the last n lines of master's output.
func (s *Server) LogTail(n int) string { return mailserver.LogTail(n, s.logPath) }
