// Package mailutils starts private GNU Mailutils 3.15 servers (Debian's
// mailutils-imap4d and mailutils-pop3d, unpacked by
// scripts/install-servers.sh into a private prefix) for interop tests:
// imap4d and pop3d in daemon mode, each with its own configuration file,
// users in a virtual-domain password file, mbox storage under the instance
// directory, a TLS certificate from a test CA, and IMAP (STARTTLS), IMAPS,
// POP3 (STLS) and POP3S listeners on free ports on 127.0.0.1.
//
// What Mailutils does that others do not (see docs/interop-servers.md):
//   - users without system accounts live in virtual domains: a passwd-style
//     file per domain (crypt passwords), and they log in as user@domain
//     (Login);
//   - mbox storage: the server adds X-IMAPbase, X-UID and Status (pop3d
//     also X-UIDL) to what it serves (AddedHeaders);
//   - it keeps no keywords (APPEND or STORE with one: BAD "Unrecognized
//     flag"), an APPEND without a date gets the internal date 1970-01-01,
//     and an APPEND date's zone offset is dropped (10:00 +0100 is stored
//     as 10:00 +0000);
//   - STATUS of an INBOX that was never opened: NO "Error opening
//     mailbox"; STATUS with an item it does not know (APPENDLIMIT, SIZE):
//     BAD "Invalid flag in list";
//   - run as root, the sessions keep root's uid, so the kit runs the
//     daemons as the mail owner with the "mail" group, which pop3d sets at
//     start ("error setting mail group" otherwise).
package mailutils

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/mailserver"
)

const (
	family   = "mailutils"
	imap4d   = "usr/sbin/imap4d"
	pop3d    = "usr/sbin/pop3d"
	imapPkg  = "mailutils-imap4d"
	domain   = "mf.test" // the virtual domain of every user
	inboxDir = "mail"
)

// DefaultStartTimeout bounds the wait for the listeners.
const DefaultStartTimeout = 15 * time.Second

// Options configure one instance.
type Options struct {
	// Users maps user name to password. Users log in as name@mf.test.
	Users map[string]string
	// NoInbox leaves new users without an INBOX file, like an account
	// that never received mail: STATUS INBOX then answers NO "Error
	// opening mailbox" and APPEND to INBOX NO [TRYCREATE] until a SELECT
	// creates it. Default: AddUser creates an empty INBOX, as the first
	// delivery would.
	NoInbox bool
	// CA signs the certificate. Default: a new CA.
	CA *dovecot.CA
	// StartTimeout bounds the wait for the listeners. Default:
	// DefaultStartTimeout.
	StartTimeout time.Duration
}

// Server is a running instance (imap4d and pop3d); its methods are safe
// for concurrent use.
type Server struct {
	dir   string
	inst  *mailserver.Install
	owner mailserver.Owner
	gid   int // the daemons' group: "mail" as root
	ca    *dovecot.CA
	ports []int // imap, imaps, pop3, pop3s
	inbox bool  // AddUser creates an empty INBOX
	procs []*mailserver.Process
	logs  []string

	mu    sync.Mutex // guards users and the domain file
	users map[string]string
}

var _ mailserver.IMAPServer = (*Server)(nil)
var _ mailserver.POP3Server = (*Server)(nil)
var _ mailserver.HeaderAdder = (*Server)(nil)

// Available reports whether the unpacked Mailutils and openssl (which
// hashes the passwords) are there; the error says what to install.
func Available() error {
	if _, err := mailserver.Find(family, imap4d, pop3d); err != nil {
		return err
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		return fmt.Errorf("mailutils: openssl not found (it hashes the users' passwords): %w", err)
	}
	return nil
}

var userName = regexp.MustCompile(`^[a-z0-9_-]+$`)

func checkUser(u, p string) error {
	if !userName.MatchString(u) {
		return fmt.Errorf("mailutils: user name %q: want lower-case letters, digits, '-' and '_'", u)
	}
	if p == "" || strings.ContainsAny(p, "\r\n\x00") {
		return fmt.Errorf("mailutils: password of %q is empty or has a line break or NUL", u)
	}
	return nil
}

// StartInstance writes the configuration into dir (created, mode 0755),
// starts imap4d and pop3d as child processes and waits until every
// listener greets. ctx bounds only the start. The caller must call Stop
// and owns dir.
func StartInstance(ctx context.Context, dir string, opts Options) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	inst, err := mailserver.Find(family, imap4d, pop3d)
	if err != nil {
		return nil, err
	}
	for u, p := range opts.Users {
		if err := checkUser(u, p); err != nil {
			return nil, err
		}
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("mailutils: resolving %s: %w", dir, err)
	}
	owner, err := mailserver.MailOwner()
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, inst: inst, owner: owner, gid: owner.GID, ca: opts.CA,
		inbox: !opts.NoInbox, users: make(map[string]string)}
	if os.Geteuid() == 0 {
		// pop3d sets the "mail" group at start; only root or a member may.
		if g, err := user.LookupGroup("mail"); err == nil {
			s.gid, _ = strconv.Atoi(g.Gid)
		}
	}
	if err := s.prepare(); err != nil {
		return nil, err
	}
	for u, p := range opts.Users {
		if err := s.addUser(u, p); err != nil {
			return nil, err
		}
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	for attempt := 1; ; attempt++ {
		err = s.launch(ctx, timeout)
		if err == nil {
			return s, nil
		}
		if attempt < 3 && strings.Contains(s.LogTail(40), "in use") {
			continue // another process took a port between choosing and binding
		}
		return nil, err
	}
}

func (s *Server) prepare() error {
	if os.Geteuid() == 0 {
		if err := mailserver.CheckTraversable(filepath.Dir(s.dir)); err != nil {
			return err
		}
	}
	for _, sub := range []string{"", "domains", inboxDir, "log", "run"} {
		if err := os.MkdirAll(filepath.Join(s.dir, sub), 0o755); err != nil {
			return fmt.Errorf("mailutils: creating %s: %w", sub, err)
		}
	}
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return fmt.Errorf("mailutils: making %s traversable: %w", s.dir, err)
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
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"ca.pem", s.ca.CertPEM(), 0o644},
		{"cert.pem", cert, 0o644},
		{"key.pem", key, 0o600},
		{filepath.Join("domains", domain), nil, 0o600},
	} {
		if err := os.WriteFile(filepath.Join(s.dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("mailutils: writing %s: %w", f.name, err)
		}
	}
	return s.chown(s.dir)
}

// chown gives path (recursively) to the user and group the daemons run as.
func (s *Server) chown(path string) error {
	o := s.owner
	o.GID = s.gid
	return o.ChownTree(path)
}

var confTemplate = template.Must(template.New("conf").Parse(`# Generated by mailferry's internal/testkit/mailutils.
logging { syslog false; };
auth { authentication generic; authorization virtdomain; };
virtdomain { passwd-dir "{{.Dir}}/domains"; };
mailbox { mailbox-type mbox; };
tls-file-checks { key-file none; cert-file none; ca-file none; };
tls { ssl-certificate-file "{{.Dir}}/cert.pem"; ssl-key-file "{{.Dir}}/key.pem"; };
tcp-wrappers { enable no; };
mode daemon;
foreground true;
max-children 200;
pidfile "{{.Dir}}/run/{{.Prog}}.pid";
server 127.0.0.1:{{.Plain}} { tls-mode stls; };
server 127.0.0.1:{{.TLS}} { tls-mode connection; };
`))

// launch picks ports and starts imap4d and pop3d as the mail owner.
func (s *Server) launch(ctx context.Context, timeout time.Duration) error {
	var err error
	if s.ports, err = mailserver.FreePorts(4); err != nil {
		return err
	}
	s.procs, s.logs = nil, nil
	for i, prog := range []string{"imap4d", "pop3d"} {
		var b bytes.Buffer
		if err := confTemplate.Execute(&b, map[string]any{
			"Dir": s.dir, "Prog": prog, "Plain": s.ports[2*i], "TLS": s.ports[2*i+1],
		}); err != nil {
			return fmt.Errorf("mailutils: rendering %s.conf: %w", prog, err)
		}
		conf := filepath.Join(s.dir, prog+".conf")
		if err := os.WriteFile(conf, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("mailutils: writing %s: %w", conf, err)
		}
		cmd := exec.Command(s.inst.Path("usr/sbin/"+prog), "--config-file="+conf)
		cmd.Env = s.inst.Env()
		cmd.Dir = s.dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.credential()}
		logPath := filepath.Join(s.dir, "log", prog+".log")
		s.logs = append(s.logs, logPath)
		proc, err := mailserver.StartProcess("mailutils "+prog, cmd, logPath)
		if err != nil {
			s.kill()
			return err
		}
		s.procs = append(s.procs, proc)
	}
	tlsCfg := s.TLSConfig()
	if err := mailserver.WaitReady(ctx, "mailutils "+s.dir, s.procs[0], timeout,
		mailserver.Probe{Addr: s.IMAPAddr(), Prefix: "* OK", Contains: "IMAP4rev1"},
		mailserver.Probe{Addr: s.IMAPSAddr(), TLS: tlsCfg, Prefix: "* OK", Contains: "IMAP4rev1"},
	); err != nil {
		s.kill()
		return fmt.Errorf("%w\n%s", err, s.LogTail(20))
	}
	if err := mailserver.WaitReady(ctx, "mailutils "+s.dir, s.procs[1], timeout,
		mailserver.Probe{Addr: s.POP3Addr(), Prefix: "+OK", Contains: "POP3"},
		mailserver.Probe{Addr: s.POP3SAddr(), TLS: tlsCfg, Prefix: "+OK", Contains: "POP3"},
	); err != nil {
		s.kill()
		return fmt.Errorf("%w\n%s", err, s.LogTail(20))
	}
	return nil
}

func (s *Server) kill() {
	for _, p := range s.procs {
		p.Kill()
	}
}

// credential is what the daemons run as: run as root, Mailutils' sessions
// would keep uid 0 and write root-owned mailboxes.
func (s *Server) credential() *syscall.Credential {
	if os.Geteuid() != 0 {
		return nil
	}
	return &syscall.Credential{Uid: uint32(s.owner.UID), Gid: uint32(s.gid)}
}

// hashPassword returns a SHA-512 crypt hash, which Mailutils' generic
// authentication checks with crypt(3).
func hashPassword(password string) (string, error) {
	cmd := exec.Command("openssl", "passwd", "-6", "-stdin")
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("mailutils: hashing a password with openssl passwd: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// addUser writes the domain file with user added and creates the home.
func (s *Server) addUser(user, password string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[user] = password
	home := filepath.Join(s.dir, inboxDir, user)
	if err := os.MkdirAll(home, 0o755); err != nil {
		return fmt.Errorf("mailutils: creating %s: %w", home, err)
	}
	if s.inbox {
		f, err := os.OpenFile(filepath.Join(home, "INBOX"), os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("mailutils: creating the INBOX of %s: %w", user, err)
		}
		f.Close()
	}
	if err := s.chown(home); err != nil {
		return err
	}
	names := make([]string, 0, len(s.users))
	for u := range s.users {
		names = append(names, u)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, u := range names {
		h, err := hashPassword(s.users[u])
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s:%s:%d:%d::%s:/bin/false\n", u, h, s.owner.UID, s.gid, filepath.Join(s.dir, inboxDir, u))
	}
	path := filepath.Join(s.dir, "domains", domain)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("mailutils: writing %s: %w", tmp, err)
	}
	if err := s.chown(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("mailutils: replacing %s: %w", path, err)
	}
	return nil
}

// AddUser adds user to the virtual domain (or changes the password).
// The INBOX comes into being on first use.
func (s *Server) AddUser(_ context.Context, user, password string) error {
	if err := checkUser(user, password); err != nil {
		return err
	}
	return s.addUser(user, password)
}

// Login is user@mf.test: virtual-domain users log in with the domain.
func (s *Server) Login(user string) string { return user + "@" + domain }

func (s *Server) account(user string) (mailserver.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.users[user]
	if !ok {
		return mailserver.Account{}, fmt.Errorf("mailutils: no user %q (AddUser first)", user)
	}
	return mailserver.Account{Addr: s.IMAPAddr(), User: s.Login(user), Password: p}, nil
}

// Append stores msg in user's mailbox over IMAP, creating the mailbox when
// needed. Mailutils refuses keywords in flags, and stores internalDate's
// wall clock as UTC.
func (s *Server) Append(ctx context.Context, user, mailbox string, msg []byte, flags []string, internalDate time.Time) error {
	a, err := s.account(user)
	if err != nil {
		return err
	}
	return a.Append(ctx, mailbox, msg, flags, internalDate)
}

// Deliver appends msg to user's INBOX mbox file directly, as a local
// delivery agent would: a "From " separator line, LF line ends, body lines
// that start with "From " (after any '>') quoted with one more '>', and an
// empty line after it. It takes Mailutils' dot-lock (INBOX.lock).
func (s *Server) Deliver(_ context.Context, user string, msg []byte) error {
	if _, err := s.account(user); err != nil {
		return err
	}
	path := filepath.Join(s.dir, inboxDir, user, "INBOX")
	lock := path + ".lock"
	var lf *os.File
	var err error
	for i := 0; ; i++ {
		lf, err = os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil || i == 100 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("mailutils: locking %s: %w", path, err)
	}
	lf.Close()
	defer os.Remove(lock)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("mailutils: opening %s: %w", path, err)
	}
	if _, err := f.Write(mboxEntry(msg, time.Now())); err != nil {
		f.Close()
		return fmt.Errorf("mailutils: delivering to %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("mailutils: delivering to %s: %w", path, err)
	}
	return s.chown(path)
}

var fromLine = regexp.MustCompile(`^>*From `)

// mboxEntry formats msg as one mbox message (mboxrd quoting).
func mboxEntry(msg []byte, at time.Time) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From MAILER-DAEMON %s\n", at.UTC().Format("Mon Jan _2 15:04:05 2006"))
	text := strings.ReplaceAll(string(msg), "\r\n", "\n")
	text = strings.TrimSuffix(text, "\n")
	for _, line := range strings.Split(text, "\n") {
		if fromLine.MatchString(line) {
			b.WriteByte('>')
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// Messages returns what user's mailbox holds, read over IMAP (with the
// headers Mailutils adds; see AddedHeaders).
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

// AddedHeaders are the fields Mailutils' mbox code adds to what it serves.
func (s *Server) AddedHeaders() []string {
	return []string{"X-IMAPbase", "X-UID", "Status", "X-Status", "X-UIDL"}
}

// Stop terminates both daemons and waits.
func (s *Server) Stop() error {
	var errs []string
	for _, p := range s.procs {
		if err := p.Stop(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if errs != nil {
		return fmt.Errorf("mailutils: %s\n%s", strings.Join(errs, "; "), s.LogTail(20))
	}
	return nil
}

// Info names the server: "GNU Mailutils" and the mailutils-imap4d package
// version.
func (s *Server) Info() mailserver.Info {
	return mailserver.Info{Name: "GNU Mailutils", Version: s.inst.Versions[imapPkg]}
}

// Endpoints lists the four listeners, with STARTTLS and STLS.
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

// Separator is "/", the personal namespace's separator.
func (s *Server) Separator() string { return "/" }

// Prefix is "": folders live beside INBOX.
func (s *Server) Prefix() string { return "" }

// CAFile is the PEM file of the CA that signed the certificate.
func (s *Server) CAFile() string { return filepath.Join(s.dir, "ca.pem") }

// TLSConfig trusts the instance's CA, for 127.0.0.1.
func (s *Server) TLSConfig() *tls.Config { return s.ca.TLSConfig("127.0.0.1") }

// Dir is the instance directory.
func (s *Server) Dir() string { return s.dir }

// LogTail returns the last n lines of both daemons' logs.
func (s *Server) LogTail(n int) string { return mailserver.LogTail(n, s.logs...) }
