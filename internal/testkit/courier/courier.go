// Package courier starts private Courier-IMAP 5.0 servers (Debian's
// courier-imap, courier-pop and courier-authlib, unpacked by
// scripts/install-servers.sh into a private prefix) for interop tests:
// authdaemond with a userdb of the instance's users, and couriertcpd
// listeners for IMAP (STARTTLS), IMAPS, POP3 (STLS) and POP3S on free
// ports on 127.0.0.1, with Maildir storage and a certificate from a test
// CA.
//
// Courier's paths are compiled in (/etc/courier/authdaemonrc,
// /etc/courier/userdb.dat, /run/courier/authdaemon/socket, /usr/bin/imapd,
// ...), so each instance runs in its own mount and PID namespace (unshare,
// root only): /usr is the unpacked tree laid over the system's (a
// read-only overlay), /etc/courier and /run/courier are the instance's own
// directories bound over empty stubs, and /etc/passwd and /etc/group gain
// the "courier" user the login programs look up. Nothing outside the instance
// directory changes, and when the namespace's first process dies the
// kernel ends every daemon in it (couriertcpd puts itself in a process
// group of its own, so a process-group kill would miss it).
//
// What Courier does that others do not (see docs/interop-servers.md):
// folders live under "INBOX." with "." as separator; it advertises neither
// MULTIAPPEND nor LITERAL+; STATUS answers only the items it knows and
// ignores the rest (APPENDLIMIT, SIZE) without an error.
package courier

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/mailserver"
)

const (
	family    = "courier"
	imapdBin  = "usr/bin/imapd"
	pop3dBin  = "usr/lib/courier/courier/courierpop3d"
	tcpdBin   = "usr/sbin/couriertcpd"
	authdBin  = "usr/lib/courier/courier-authlib/authdaemond"
	makedat   = "usr/lib/courier/courier-authlib/makedatprog"
	imapPkg   = "courier-imap"
	greetIMAP = "Courier-IMAP ready"
)

// DefaultStartTimeout bounds the wait for the listeners.
const DefaultStartTimeout = 15 * time.Second

// Options configure one instance.
type Options struct {
	// Users maps user name to password.
	Users map[string]string
	// CA signs the certificate. Default: a new CA.
	CA *dovecot.CA
	// StartTimeout bounds the wait for the listeners. Default:
	// DefaultStartTimeout.
	StartTimeout time.Duration
}

// Server is a running instance; its methods are safe for concurrent use.
type Server struct {
	dir   string
	inst  *mailserver.Install
	owner mailserver.Owner
	ca    *dovecot.CA
	ports []int // imap, imaps, pop3, pop3s
	proc  *mailserver.Process
	seq   atomic.Uint64

	mu    sync.Mutex // guards users and the userdb files
	users map[string]string
}

var _ mailserver.IMAPServer = (*Server)(nil)
var _ mailserver.POP3Server = (*Server)(nil)

// Available reports whether the unpacked Courier, root (for the mount
// namespace), unshare and openssl (which hashes passwords) are there.
func Available() error {
	if _, err := mailserver.Find(family, imapdBin, pop3dBin, tcpdBin, authdBin, makedat); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("courier: the kit runs Courier in a mount namespace, which needs root")
	}
	for _, tool := range []string{"unshare", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("courier: %s not found: %w", tool, err)
		}
	}
	return nil
}

var userName = regexp.MustCompile(`^[a-z0-9_-]+$`)

func checkUser(u, p string) error {
	if !userName.MatchString(u) {
		return fmt.Errorf("courier: user name %q: want lower-case letters, digits, '-' and '_'", u)
	}
	if p == "" || strings.ContainsAny(p, "\r\n\x00") {
		return fmt.Errorf("courier: password of %q is empty or has a line break or NUL", u)
	}
	return nil
}

// StartInstance writes the configuration into dir (created, mode 0755),
// starts the daemons in their namespace and waits until every listener
// greets. ctx bounds only the start. The caller must call Stop and owns
// dir.
func StartInstance(ctx context.Context, dir string, opts Options) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	inst, err := mailserver.Find(family, imapdBin, pop3dBin, tcpdBin, authdBin, makedat)
	if err != nil {
		return nil, err
	}
	for u, p := range opts.Users {
		if err := checkUser(u, p); err != nil {
			return nil, err
		}
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("courier: resolving %s: %w", dir, err)
	}
	owner, err := mailserver.MailOwner()
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, inst: inst, owner: owner, ca: opts.CA, users: make(map[string]string)}
	if err := s.prepare(); err != nil {
		return nil, err
	}
	for u, p := range opts.Users {
		s.users[u] = p
		if err := s.makeMaildir(u); err != nil {
			return nil, err
		}
	}
	if err := s.writeUserdb(); err != nil {
		return nil, err
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
		if attempt < 3 && strings.Contains(s.LogTail(40), "Address already in use") {
			continue // another process took a port between choosing and binding
		}
		return nil, err
	}
}

func (s *Server) path(elem ...string) string {
	return filepath.Join(append([]string{s.dir}, elem...)...)
}

func (s *Server) prepare() error {
	if err := mailserver.CheckTraversable(filepath.Dir(s.dir)); err != nil {
		return err
	}
	for _, sub := range []string{"", "etc", "run/authdaemon", "stub/etc/courier", "stub/run/courier", "mail", "log"} {
		if err := os.MkdirAll(s.path(sub), 0o755); err != nil {
			return fmt.Errorf("courier: creating %s: %w", sub, err)
		}
	}
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return fmt.Errorf("courier: making %s traversable: %w", s.dir, err)
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
	// DEBUG_LOGIN stays 0: at 2 authdaemond logs passwords.
	authdaemonrc := "authmodulelist=\"authuserdb\"\ndaemons=5\nauthdaemonvar=/run/courier/authdaemon\nDEBUG_LOGIN=0\nDEFAULTOPTIONS=\"\"\n"
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"ca.pem", s.ca.CertPEM(), 0o644},
		{"etc/cert.pem", append(key, cert...), 0o600}, // couriertls wants key and certificate in one file
		{"etc/authdaemonrc", []byte(authdaemonrc), 0o644},
	} {
		if err := os.WriteFile(s.path(f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("courier: writing %s: %w", f.name, err)
		}
	}
	// For STARTTLS and STLS the login programs run couriertls as the
	// "courier" user (see stubAccounts), who must read the key.
	if err := os.Chown(s.path("etc/cert.pem"), s.owner.UID, s.owner.GID); err != nil {
		return fmt.Errorf("courier: giving the key to %s: %w", s.owner.Name, err)
	}
	if err := s.stubAccounts(); err != nil {
		return err
	}
	return s.owner.ChownTree(s.path("mail"))
}

// stubAccounts writes the namespace's /etc/passwd and /etc/group: the
// system's, plus a "courier" user and group (the mail owner's ids) when
// the system has none. imaplogin and courierpop3login look the user up to
// start couriertls for STARTTLS and STLS, and answer "Error starting
// couriertls" without it.
func (s *Server) stubAccounts() error {
	for _, f := range []struct {
		name, line string
	}{
		{"passwd", fmt.Sprintf("courier:x:%d:%d:Courier mail server:/nonexistent:/usr/sbin/nologin\n", s.owner.UID, s.owner.GID)},
		{"group", fmt.Sprintf("courier:x:%d:\n", s.owner.GID)},
	} {
		data, err := os.ReadFile(filepath.Join("/etc", f.name))
		if err != nil {
			return fmt.Errorf("courier: reading /etc/%s: %w", f.name, err)
		}
		if !bytes.HasPrefix(data, []byte("courier:")) && !bytes.Contains(data, []byte("\ncourier:")) {
			if len(data) > 0 && data[len(data)-1] != '\n' {
				data = append(data, '\n')
			}
			data = append(data, f.line...)
		}
		if err := os.WriteFile(s.path("stub", "etc", f.name), data, 0o644); err != nil {
			return fmt.Errorf("courier: writing the namespace's /etc/%s: %w", f.name, err)
		}
	}
	return nil
}

func (s *Server) makeMaildir(user string) error {
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(s.path("mail", user, "Maildir", sub), 0o700); err != nil {
			return fmt.Errorf("courier: creating the Maildir of %s: %w", user, err)
		}
	}
	return s.owner.ChownTree(s.path("mail", user))
}

// writeUserdb rebuilds userdb.dat and userdbshadow.dat (GDBM, what
// makeuserdb builds from /etc/courier/userdb) with makedatprog, which
// replaces each file atomically. Passwords are SHA-512 crypt hashes.
// Called with s.mu held or before start.
func (s *Server) writeUserdb() error {
	names := make([]string, 0, len(s.users))
	for u := range s.users {
		names = append(names, u)
	}
	sort.Strings(names)
	var db, shadow bytes.Buffer
	for _, u := range names {
		h, err := hashPassword(s.users[u])
		if err != nil {
			return err
		}
		home := s.path("mail", u)
		fmt.Fprintf(&db, "%s\tuid=%d|gid=%d|home=%s|mail=%s\n", u, s.owner.UID, s.owner.GID, home, filepath.Join(home, "Maildir"))
		fmt.Fprintf(&shadow, "%s\tsystempw=%s\n", u, h)
	}
	for _, f := range []struct {
		name string
		data *bytes.Buffer
	}{{"userdb", &db}, {"userdbshadow", &shadow}} {
		f.data.WriteString(".\n") // makedatprog's end of input
		cmd := exec.Command(s.inst.Path(makedat), "-", s.path("etc", f.name+".tmp"), s.path("etc", f.name+".dat"))
		cmd.Env = s.inst.Env()
		cmd.Stdin = f.data
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("courier: building %s.dat: %w: %s", f.name, err, bytes.TrimSpace(out))
		}
	}
	return nil
}

func hashPassword(password string) (string, error) {
	cmd := exec.Command("openssl", "passwd", "-6", "-stdin")
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("courier: hashing a password with openssl passwd: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// startScript runs as PID 1 of the instance's namespaces.
var startScript = template.Must(template.New("start.sh").Parse(`# Generated by mailferry's internal/testkit/courier; runs in its own
# mount and PID namespace (unshare), so the mounts and daemons end with it.
# As PID 1 the shell ignores signals it has no trap for: on TERM it kills
# every other process of the namespace.
trap 'kill -KILL -1 2>/dev/null; exit 0' TERM INT
set -e
mount -t overlay overlay -o lowerdir={{.Root}}/usr:/usr /usr
mount -t overlay overlay -o lowerdir={{.Dir}}/stub/etc:/etc /etc
mount --bind {{.Dir}}/etc /etc/courier
mount -t overlay overlay -o lowerdir={{.Dir}}/stub/run:/run /run
mount --bind {{.Dir}}/run /run/courier
set -a
/usr/lib/courier/courier-authlib/authdaemond 2>>{{.Dir}}/log/authdaemond.log &
COURIERTLS=/usr/bin/couriertls
TLS_CERTFILE={{.Dir}}/etc/cert.pem
TLS_VERIFYPEER=NONE
IMAP_CAPABILITY="IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE"
IMAP_CAPABILITY_TLS="$IMAP_CAPABILITY AUTH=PLAIN"
IMAP_KEYWORDS=1
IMAP_ACL=1
IMAP_STARTTLS=YES
IMAP_USELOCKS=1
IMAP_MAILBOX_SANITY_CHECK=1
IMAP_TRASHFOLDERNAME=Trash
IMAP_UMASK=022
POP3AUTH="PLAIN LOGIN"
POP3AUTH_TLS="PLAIN LOGIN"
POP3_STARTTLS=YES
MAILDIRPATH=Maildir
tcpd="/usr/sbin/couriertcpd -address=127.0.0.1 -maxprocs=200 -maxperip=200 -nodnslookup -noidentlookup"
$tcpd {{index .Ports 0}} /usr/lib/courier/courier/imaplogin /usr/bin/imapd Maildir 2>>{{.Dir}}/log/imapd.log &
IMAP_TLS=1 $tcpd {{index .Ports 1}} /usr/bin/couriertls -server -tcpd /usr/lib/courier/courier/imaplogin /usr/bin/imapd Maildir 2>>{{.Dir}}/log/imapd.log &
$tcpd {{index .Ports 2}} /usr/lib/courier/courier/courierpop3login /usr/lib/courier/courier/courierpop3d Maildir 2>>{{.Dir}}/log/pop3d.log &
POP3_TLS=1 $tcpd {{index .Ports 3}} /usr/bin/couriertls -server -tcpd /usr/lib/courier/courier/courierpop3login /usr/lib/courier/courier/courierpop3d Maildir 2>>{{.Dir}}/log/pop3d.log &
wait
`))

func (s *Server) launch(ctx context.Context, timeout time.Duration) error {
	var err error
	if s.ports, err = mailserver.FreePorts(4); err != nil {
		return err
	}
	var b bytes.Buffer
	if err := startScript.Execute(&b, map[string]any{"Root": s.inst.Root, "Dir": s.dir, "Ports": s.ports}); err != nil {
		return fmt.Errorf("courier: rendering start.sh: %w", err)
	}
	script := s.path("start.sh")
	if err := os.WriteFile(script, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("courier: writing %s: %w", script, err)
	}
	// --kill-child: when unshare dies (Stop's SIGTERM, or the test
	// process's death through Pdeathsig), the namespace's PID 1 gets
	// SIGKILL and the kernel ends the rest.
	cmd := exec.Command("unshare", "--mount", "--pid", "--fork", "--kill-child=SIGKILL",
		"--propagation", "private", "/bin/sh", script)
	cmd.Env = append(os.Environ(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	cmd.Dir = s.dir
	s.proc, err = mailserver.StartProcess("courier "+s.dir, cmd, s.path("log", "start.log"))
	if err != nil {
		return err
	}
	tlsCfg := s.TLSConfig()
	if err := mailserver.WaitReady(ctx, "courier "+s.dir, s.proc, timeout,
		mailserver.Probe{Addr: s.IMAPAddr(), Prefix: "* OK", Contains: greetIMAP},
		mailserver.Probe{Addr: s.IMAPSAddr(), TLS: tlsCfg, Prefix: "* OK", Contains: greetIMAP},
		mailserver.Probe{Addr: s.POP3Addr(), Prefix: "+OK"},
		mailserver.Probe{Addr: s.POP3SAddr(), TLS: tlsCfg, Prefix: "+OK"},
	); err != nil {
		s.proc.Kill()
		return fmt.Errorf("%w\n%s", err, s.LogTail(20))
	}
	return nil
}

// AddUser adds user (or changes the password) and creates the Maildir.
func (s *Server) AddUser(_ context.Context, user, password string) error {
	if err := checkUser(user, password); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.makeMaildir(user); err != nil {
		return err
	}
	old, had := s.users[user]
	s.users[user] = password
	if err := s.writeUserdb(); err != nil {
		if had {
			s.users[user] = old
		} else {
			delete(s.users, user)
		}
		return err
	}
	return nil
}

// Login is user: Courier users log in with their plain names.
func (s *Server) Login(user string) string { return user }

func (s *Server) account(user string) (mailserver.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.users[user]
	if !ok {
		return mailserver.Account{}, fmt.Errorf("courier: no user %q (AddUser first)", user)
	}
	return mailserver.Account{Addr: s.IMAPAddr(), User: user, Password: p}, nil
}

// Append stores msg in user's mailbox (its full IMAP name, e.g.
// "INBOX.Archive") over IMAP, creating it when needed.
func (s *Server) Append(ctx context.Context, user, mailbox string, msg []byte, flags []string, internalDate time.Time) error {
	a, err := s.account(user)
	if err != nil {
		return err
	}
	return a.Append(ctx, mailbox, msg, flags, internalDate)
}

// Deliver writes msg into user's Maildir/new, as a delivery agent would:
// with LF line ends, which Courier's Maildir keeps (its POP3 server turns
// every LF into CRLF, so a stored CRLF would be served as CR CR LF).
func (s *Server) Deliver(_ context.Context, user string, msg []byte) error {
	if _, err := s.account(user); err != nil {
		return err
	}
	msg = bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
	name := fmt.Sprintf("%d.M%dP%dQ%d.mailferry", time.Now().Unix(), time.Now().Nanosecond()/1000, os.Getpid(), s.seq.Add(1))
	tmp := s.path("mail", user, "Maildir", "tmp", name)
	if err := os.WriteFile(tmp, msg, 0o600); err != nil {
		return fmt.Errorf("courier: delivering to %s: %w", user, err)
	}
	if err := os.Chown(tmp, s.owner.UID, s.owner.GID); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("courier: delivering to %s: %w", user, err)
	}
	if err := os.Rename(tmp, s.path("mail", user, "Maildir", "new", name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("courier: delivering to %s: %w", user, err)
	}
	return nil
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

// Stop ends the namespace and with it every daemon.
func (s *Server) Stop() error {
	if err := s.proc.Stop(); err != nil {
		return fmt.Errorf("%w\n%s", err, s.LogTail(20))
	}
	return nil
}

// Info names the server: "Courier-IMAP" and the courier-imap package
// version.
func (s *Server) Info() mailserver.Info {
	return mailserver.Info{Name: "Courier-IMAP", Version: s.inst.Versions[imapPkg]}
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

// Separator is ".".
func (s *Server) Separator() string { return "." }

// Prefix is "INBOX.": Courier's folders are INBOX's children.
func (s *Server) Prefix() string { return "INBOX." }

// CAFile is the PEM file of the CA that signed the certificate.
func (s *Server) CAFile() string { return s.path("ca.pem") }

// TLSConfig trusts the instance's CA, for 127.0.0.1.
func (s *Server) TLSConfig() *tls.Config { return s.ca.TLSConfig("127.0.0.1") }

// Dir is the instance directory.
func (s *Server) Dir() string { return s.dir }

// LogTail returns the last n lines of the daemons' logs.
func (s *Server) LogTail(n int) string {
	return mailserver.LogTail(n, s.path("log", "start.log"), s.path("log", "authdaemond.log"),
		s.path("log", "imapd.log"), s.path("log", "pop3d.log"))
}
