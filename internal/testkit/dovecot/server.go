// Package dovecot starts private Dovecot 2.3 instances for tests, demos and
// benchmarks: each with its own configuration, base and state directories,
// log file, passwd-file users, Maildir storage and TLS certificate (signed by
// a CA the caller may share between instances), listening on free ports on
// 127.0.0.1 for IMAP (STARTTLS), IMAPS (RFC 8314 implicit TLS), POP3 (STLS,
// RFC 2595) and POP3S.
//
// Tests call Require and Start; tools call StartInstance and Stop. Seeding
// and inspection go through doveadm (Deliver, CreateMailbox, MailboxCount)
// or write Maildir files directly (SeedMaildir) to control flags and
// INTERNALDATE. The configuration is configTemplate's.
package dovecot

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Default paths of the Debian packages dovecot-imapd and dovecot-pop3d; the
// binaries are looked up in PATH when these do not exist.
const (
	dovecotPath = "/usr/sbin/dovecot"
	doveadmPath = "/usr/bin/doveadm"
)

// DefaultStartTimeout bounds how long StartInstance waits for the listeners
// to answer when Options.StartTimeout is zero.
const DefaultStartTimeout = 15 * time.Second

// stopTimeout is how long Stop waits after SIGTERM before sending SIGKILL.
const stopTimeout = 10 * time.Second

// portAttempts is how often StartInstance picks new ports when another
// process took one of them between choosing and binding.
const portAttempts = 3

// Options configure one instance. The zero value is a valid instance with no
// users, "/" as hierarchy separator and plaintext authentication allowed.
type Options struct {
	// Name is Dovecot's instance_name and appears in the login greeting.
	// Default: "mf-" followed by the base name of the directory.
	Name string
	// Users maps user name to password (stored as {PLAIN} in a passwd-file).
	Users map[string]string
	// Separator is the hierarchy separator of the INBOX namespace: "/"
	// (default) or ".".
	Separator string
	// SSLRequired sets ssl = required and disable_plaintext_auth = yes, so
	// authentication without TLS is refused (LOGINDISABLED over IMAP).
	SSLRequired bool
	// QuotaBytes, when positive, enables the quota plugin (and imap_quota)
	// with a per-user storage limit of that many bytes.
	QuotaBytes int64
	// UserFields holds extra passwd-file fields per user (space-separated
	// key=value), e.g. "userdb_quota_rule=*:storage=2K" for one user's own
	// quota limit (with QuotaBytes set, which turns the plugin on).
	UserFields map[string]string
	// MasterUser and MasterPassword, when MasterUser is set, add a master
	// passdb: log in as "user*master" with the master password, or with SASL
	// PLAIN authzid=user.
	MasterUser     string
	MasterPassword string
	// OAuth2IntrospectionURL, when set, adds an oauth2 passdb (before the
	// passwd-file) for the XOAUTH2 and OAUTHBEARER mechanisms: Dovecot
	// POSTs each bearer token to this URL (introspection_mode = post) and
	// accepts it when the JSON reply has "active": "true"; its "username"
	// names the user. Use an http:// URL on 127.0.0.1 (an httptest server).
	OAuth2IntrospectionURL string
	// OAuth2UsernameFormat, when set, is the oauth2 passdb's
	// username_format, with which Dovecot compares the login's user and
	// the introspected username: "%d" accepts a token for any user of the
	// introspected user's domain, as Exchange accepts an application's
	// app-only token for the mailboxes it was granted. Default: Dovecot's
	// (the whole user name, lower-cased).
	OAuth2UsernameFormat string
	// CertPEM and KeyPEM, when set, are the instance's certificate and key
	// (PEM) instead of one CA issues for 127.0.0.1, ::1 and localhost: tests
	// of certificate problems pass one for another host name, or an expired
	// one (CA.IssueCert).
	CertPEM, KeyPEM []byte
	// CA signs the instance's certificate for 127.0.0.1 and localhost. Share
	// one CA between instances so one CAFile trusts them all. Default: a new
	// CA per instance.
	CA *CA
	// IMAPCapability overrides imap_capability (e.g. "+XFOO" adds, a list
	// without "+" replaces the capabilities Dovecot advertises after login).
	// Default: Dovecot's own list (IMAP4rev1, LITERAL+, MULTIAPPEND, UIDPLUS,
	// SPECIAL-USE, ...).
	IMAPCapability string
	// ExtraConfig is appended verbatim to dovecot.conf.
	ExtraConfig string
	// StartTimeout bounds the wait for the listeners. Default:
	// DefaultStartTimeout.
	StartTimeout time.Duration
}

type ports struct {
	IMAP, IMAPS, POP3, POP3S int
}

// Server is a running Dovecot instance. Its methods are safe for concurrent
// use.
type Server struct {
	dir      string
	conf     string
	logPath  string
	errPath  string
	caFile   string
	name     string
	greeting string
	ca       *CA
	ports    ports
	// imapProxy and pop3Proxy front the plain listeners with SSLRequired.
	imapProxy, pop3Proxy *remoteProxy
	uid, gid             int
	sep                  string
	ownCert              bool // Options.CertPEM was given

	proc    *os.Process
	exited  chan struct{} // closed when the master process has exited
	waitErr error         // set before exited is closed

	stopOnce sync.Once
	stopErr  error

	seq atomic.Uint64

	mu    sync.Mutex
	paths map[[2]string]string // (user, mailbox) -> Maildir directory
}

// Available reports whether the dovecot and doveadm binaries are installed
// and runnable. The error says what is missing and how to install it.
func Available() error {
	dc, err := binary(dovecotPath, "dovecot")
	if err != nil {
		return err
	}
	if _, err := binary(doveadmPath, "doveadm"); err != nil {
		return err
	}
	out, err := exec.Command(dc, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("dovecot: running %s --version: %v: %s", dc, err, bytes.TrimSpace(out))
	}
	return nil
}

func binary(path, name string) (string, error) {
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("dovecot: %s not found at %s nor in PATH (install the Debian packages dovecot-imapd and dovecot-pop3d)", name, path)
	}
	return p, nil
}

// StartInstance writes a configuration into dir (created if needed, made
// mode 0755 because Dovecot's unprivileged processes must reach it), starts
// Dovecot in the foreground as a child process and waits until all four
// listeners greet. ctx bounds only the start. The caller owns dir and must
// call Stop; StartInstance does not remove dir.
//
// Running as root, mail belongs to nobody:nogroup and every parent of dir
// must be searchable by others. Running as another user, Dovecot's processes
// and mail run as that user.
func StartInstance(ctx context.Context, dir string, opts Options) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if err := validate(&opts); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("dovecot: resolving %s: %w", dir, err)
	}
	s := &Server{
		dir:     dir,
		conf:    filepath.Join(dir, "dovecot.conf"),
		logPath: filepath.Join(dir, "log", "dovecot.log"),
		errPath: filepath.Join(dir, "log", "stderr.log"),
		caFile:  filepath.Join(dir, "ca.pem"),
		name:    opts.Name,
		ca:      opts.CA,
		sep:     opts.Separator,
		paths:   make(map[[2]string]string),
		ownCert: opts.CertPEM != nil && opts.KeyPEM != nil,
	}
	if s.name == "" {
		s.name = "mf-" + filepath.Base(dir)
	}
	s.greeting = "Dovecot ready: " + s.name + "."
	nonRoot, runUser, runGroup, err := s.identity()
	if err != nil {
		return nil, err
	}
	if err := s.prepareDir(opts); err != nil {
		return nil, err
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	for attempt := 1; ; attempt++ {
		if s.ports, err = freePorts(); err != nil {
			return nil, err
		}
		conf, err := renderConfig(configData{
			Name:           s.name,
			Greeting:       s.greeting,
			Dir:            dir,
			Ports:          s.ports,
			SSL:            map[bool]string{false: "yes", true: "required"}[opts.SSLRequired],
			DisablePlain:   map[bool]string{false: "no", true: "yes"}[opts.SSLRequired],
			Separator:      s.sep,
			UID:            s.uid,
			GID:            s.gid,
			NonRoot:        nonRoot,
			RunUser:        runUser,
			RunGroup:       runGroup,
			Master:         opts.MasterUser != "",
			OAuth2:         opts.OAuth2IntrospectionURL != "",
			QuotaBytes:     opts.QuotaBytes,
			IMAPCapability: opts.IMAPCapability,
			HAProxy:        opts.SSLRequired,
			Extra:          opts.ExtraConfig,
		})
		if err != nil {
			return nil, err
		}
		if opts.OAuth2IntrospectionURL != "" {
			if err := writeOAuth2Conf(dir, opts.OAuth2IntrospectionURL, opts.OAuth2UsernameFormat); err != nil {
				return nil, err
			}
		}
		if err := os.WriteFile(s.conf, conf, 0o644); err != nil {
			return nil, fmt.Errorf("dovecot: writing %s: %w", s.conf, err)
		}
		if opts.SSLRequired {
			if err := s.startProxies(); err != nil {
				return nil, err
			}
		}
		err = s.launch(ctx, timeout)
		if err == nil {
			return s, nil
		}
		s.closeProxies()
		if attempt < portAttempts && strings.Contains(s.logTail(40), "Address already in use") {
			continue // another process took a port between freePorts and bind
		}
		return nil, err
	}
}

func validate(opts *Options) error {
	switch opts.Separator {
	case "":
		opts.Separator = "/"
	case "/", ".":
	default:
		return fmt.Errorf("dovecot: separator %q not supported (want \"/\" or \".\")", opts.Separator)
	}
	if strings.ContainsAny(opts.Name, " \t\r\n\"") {
		return fmt.Errorf("dovecot: instance name %q contains spaces or quotes", opts.Name)
	}
	check := func(what, s string) error {
		if s == "" || strings.ContainsAny(s, ":\r\n\x00") || (what == "user name" && strings.ContainsAny(s, " \t*%")) {
			return fmt.Errorf("dovecot: %s %q is empty or contains characters a passwd-file cannot hold", what, s)
		}
		return nil
	}
	for u, p := range opts.Users {
		if err := check("user name", u); err != nil {
			return err
		}
		if err := check("password", p); err != nil {
			return fmt.Errorf("%w (user %q)", err, u)
		}
	}
	for u, f := range opts.UserFields {
		if _, ok := opts.Users[u]; !ok || strings.ContainsAny(f, "\r\n\x00") {
			return fmt.Errorf("dovecot: extra fields for %q: no such user, or a line break in them", u)
		}
	}
	if opts.MasterUser != "" {
		if err := check("user name", opts.MasterUser); err != nil {
			return err
		}
		if err := check("password", opts.MasterPassword); err != nil {
			return fmt.Errorf("%w (master user %q)", err, opts.MasterUser)
		}
	}
	if strings.ContainsAny(opts.IMAPCapability, "\r\n") {
		return fmt.Errorf("dovecot: imap capability %q contains a line break", opts.IMAPCapability)
	}
	return nil
}

// identity decides which uid/gid owns the mail: nobody:nogroup as root
// (Dovecot refuses to run mail processes as root), else the current user,
// who then also runs Dovecot's internal and login processes (the settings
// of Dovecot's rootless mode).
func (s *Server) identity() (nonRoot bool, runUser, runGroup string, err error) {
	if os.Geteuid() != 0 {
		s.uid, s.gid = os.Geteuid(), os.Getegid()
		u, err := user.LookupId(strconv.Itoa(s.uid))
		if err != nil {
			return false, "", "", fmt.Errorf("dovecot: looking up the current user: %w", err)
		}
		g, err := user.LookupGroupId(strconv.Itoa(s.gid))
		if err != nil {
			return false, "", "", fmt.Errorf("dovecot: looking up the current group: %w", err)
		}
		return true, u.Username, g.Name, nil
	}
	s.uid, s.gid = 65534, 65534
	if u, err := user.Lookup("nobody"); err == nil {
		s.uid, _ = strconv.Atoi(u.Uid)
		s.gid, _ = strconv.Atoi(u.Gid)
	}
	if g, err := user.LookupGroup("nogroup"); err == nil {
		s.gid, _ = strconv.Atoi(g.Gid)
	}
	return false, "", "", nil
}

// prepareDir creates the directory tree, certificates and passwd files.
func (s *Server) prepareDir(opts Options) error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("dovecot: creating %s: %w", s.dir, err)
	}
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return fmt.Errorf("dovecot: making %s traversable: %w", s.dir, err)
	}
	if os.Geteuid() == 0 {
		if err := checkTraversable(filepath.Dir(s.dir)); err != nil {
			return err
		}
	}
	for _, sub := range []string{"run", "state", "log", "mail"} {
		if err := os.MkdirAll(filepath.Join(s.dir, sub), 0o755); err != nil {
			return fmt.Errorf("dovecot: creating %s: %w", sub, err)
		}
	}
	if s.ca == nil {
		ca, err := NewCA()
		if err != nil {
			return err
		}
		s.ca = ca
	}
	certPEM, keyPEM := opts.CertPEM, opts.KeyPEM
	if certPEM == nil || keyPEM == nil {
		var err error
		if certPEM, keyPEM, err = s.ca.IssueServerCert("127.0.0.1", "localhost", "::1"); err != nil {
			return err
		}
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"ca.pem", s.ca.CertPEM(), 0o644},
		{"cert.pem", certPEM, 0o644},
		{"key.pem", keyPEM, 0o600}, // read by the config process, which runs as root
		{"passwd", passwdFile(opts.Users, opts.UserFields), 0o644},
	}
	if opts.MasterUser != "" {
		files = append(files, struct {
			name string
			data []byte
			mode os.FileMode
		}{"master-users", passwdFile(map[string]string{opts.MasterUser: opts.MasterPassword}, nil), 0o644})
	}
	for _, f := range files {
		p := filepath.Join(s.dir, f.name)
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return fmt.Errorf("dovecot: writing %s: %w", p, err)
		}
	}
	mail := filepath.Join(s.dir, "mail")
	if err := os.Chown(mail, s.uid, s.gid); err != nil {
		return fmt.Errorf("dovecot: giving %s to uid %d: %w", mail, s.uid, err)
	}
	for u := range opts.Users {
		if _, err := s.mkdirOwned(filepath.Join(mail, u)); err != nil {
			return err
		}
	}
	return nil
}

func passwdFile(users, extra map[string]string) []byte {
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, u := range names {
		fmt.Fprintf(&b, "%s:{PLAIN}%s::::::%s\n", u, users[u], extra[u])
	}
	return b.Bytes()
}

// checkTraversable reports the first directory from dir up to / that other
// users cannot search: Dovecot's auth and mail processes would fail with
// "Temporary authentication failure" ("missing +x perm" in the log).
func checkTraversable(dir string) error {
	for {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("dovecot: checking %s: %w", dir, err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("dovecot: directory %s (mode %v) is not searchable by other users, so Dovecot's unprivileged processes cannot reach the instance below it; chmod o+x it or use a directory under %s", dir, fi.Mode().Perm(), os.TempDir())
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
}

// mkdirOwned creates dir and any missing parents below s.dir/mail, owned by
// the mail uid/gid with mode 0700, and returns dir.
func (s *Server) mkdirOwned(dir string) (string, error) {
	mail := filepath.Join(s.dir, "mail")
	rel, err := filepath.Rel(mail, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("dovecot: %s is outside %s", dir, mail)
	}
	p := mail
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		if err := os.Mkdir(p, 0o700); err != nil {
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return "", fmt.Errorf("dovecot: creating %s: %w", p, err)
		}
		if err := os.Chown(p, s.uid, s.gid); err != nil {
			return "", fmt.Errorf("dovecot: giving %s to uid %d: %w", p, s.uid, err)
		}
	}
	return dir, nil
}

func freePorts() (ports, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var nums [4]int
	for i := range nums {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return ports{}, fmt.Errorf("dovecot: choosing a free port: %w", err)
		}
		lns = append(lns, ln)
		nums[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports{IMAP: nums[0], IMAPS: nums[1], POP3: nums[2], POP3S: nums[3]}, nil
}

// launch starts the master process in the foreground (-F) so that it is our
// child, and waits until every listener greets with this instance's greeting.
func (s *Server) launch(ctx context.Context, timeout time.Duration) error {
	bin, err := binary(dovecotPath, "dovecot")
	if err != nil {
		return err
	}
	stderr, err := os.OpenFile(s.errPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("dovecot: opening %s: %w", s.errPath, err)
	}
	defer stderr.Close()
	cmd := exec.Command(bin, "-F", "-c", s.conf)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dovecot: starting %s -c %s: %w", bin, s.conf, err)
	}
	s.proc = cmd.Process
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx, timeout); err != nil {
		s.kill()
		return fmt.Errorf("%w\n%s", err, s.logTail(20))
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	checks := []struct {
		addr   string
		tls    bool
		prefix string
	}{
		{s.IMAPAddr(), false, "* OK"},
		{s.IMAPSAddr(), true, "* OK"},
		{s.POP3Addr(), false, "+OK"},
		{s.POP3SAddr(), true, "+OK"},
	}
	for _, c := range checks {
		var lastErr error
		for {
			line, err := s.greet(ctx, c.addr, c.tls)
			if err == nil {
				if !strings.HasPrefix(line, c.prefix) || !strings.Contains(line, s.greeting) {
					return fmt.Errorf("dovecot: %s answered %q, not instance %s: another server holds the port", c.addr, line, s.name)
				}
				break
			}
			lastErr = err
			select {
			case <-s.exited:
				return fmt.Errorf("dovecot: instance %s (%s) exited during startup: %v", s.name, s.conf, s.waitErr)
			case <-ctx.Done():
				return fmt.Errorf("dovecot: instance %s not ready on %s after %v: %v", s.name, c.addr, timeout, lastErr)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// greet connects to addr and returns the server's first line.
func (s *Server) greet(ctx context.Context, addr string, useTLS bool) (string, error) {
	d := &net.Dialer{Timeout: time.Second}
	var conn net.Conn
	var err error
	if useTLS {
		cfg := s.TLSConfig()
		if s.ownCert {
			// A certificate given in Options may be wrong on purpose
			// (another host, expired): only readiness is probed here.
			cfg.InsecureSkipVerify = true
		}
		conn, err = (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("reading greeting from %s: %w", addr, err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (s *Server) startProxies() error {
	var err error
	if s.imapProxy, err = newRemoteProxy(addr(s.ports.IMAP)); err != nil {
		return err
	}
	if s.pop3Proxy, err = newRemoteProxy(addr(s.ports.POP3)); err != nil {
		s.closeProxies()
		return err
	}
	return nil
}

func (s *Server) closeProxies() {
	for _, p := range []**remoteProxy{&s.imapProxy, &s.pop3Proxy} {
		if *p != nil {
			(*p).close()
			*p = nil
		}
	}
}

// Stop terminates the instance (SIGTERM, then SIGKILL after 10s) and waits
// for the master to exit. It returns an error if Dovecot had already exited
// on its own (a crash; the error carries the log tail) or would not die.
// Stop is idempotent; it leaves the directory in place.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		defer s.closeProxies()
		select {
		case <-s.exited:
			s.stopErr = fmt.Errorf("dovecot: instance %s had exited before Stop: %v\n%s", s.name, s.waitErr, s.logTail(20))
			return
		default:
		}
		if err := s.proc.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			s.stopErr = fmt.Errorf("dovecot: stopping instance %s: %w", s.name, err)
		}
		select {
		case <-s.exited:
			return
		case <-time.After(stopTimeout):
		}
		s.kill()
		s.stopErr = fmt.Errorf("dovecot: instance %s ignored SIGTERM for %v and was killed\n%s", s.name, stopTimeout, s.logTail(20))
	})
	return s.stopErr
}

// kill sends SIGKILL to the master's process group (the master and every
// child it forked) and waits for the master to exit.
func (s *Server) kill() {
	_ = syscall.Kill(-s.proc.Pid, syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
	}
}

// logTail returns the last n lines of Dovecot's log and of its stderr, for
// error messages.
func (s *Server) logTail(n int) string {
	var b strings.Builder
	for _, p := range []string{s.logPath, s.errPath} {
		data, err := os.ReadFile(p)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "--- last %d lines of %s ---\n%s\n", len(lines), p, strings.Join(lines, "\n"))
	}
	if b.Len() == 0 {
		return "(dovecot wrote no log at " + s.logPath + ")"
	}
	return b.String()
}

// LogTail returns the last n lines of the instance's log files, labelled, for
// test failure messages.
func (s *Server) LogTail(n int) string { return s.logTail(n) }

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// IMAPAddr is the plain IMAP listener (STARTTLS available), "127.0.0.1:port".
// With Options.SSLRequired it is a local forwarder that makes Dovecot see the
// client as remote, so that plaintext authentication is refused.
func (s *Server) IMAPAddr() string {
	if s.imapProxy != nil {
		return s.imapProxy.addr()
	}
	return addr(s.ports.IMAP)
}

// IMAPSAddr is the implicit-TLS IMAP listener.
func (s *Server) IMAPSAddr() string { return addr(s.ports.IMAPS) }

// POP3Addr is the plain POP3 listener (STLS available); see IMAPAddr for
// Options.SSLRequired.
func (s *Server) POP3Addr() string {
	if s.pop3Proxy != nil {
		return s.pop3Proxy.addr()
	}
	return addr(s.ports.POP3)
}

// POP3SAddr is the implicit-TLS POP3 listener.
func (s *Server) POP3SAddr() string { return addr(s.ports.POP3S) }

// CAFile is a PEM file holding the CA that signed this instance's
// certificate (valid for 127.0.0.1, ::1 and localhost).
func (s *Server) CAFile() string { return s.caFile }

// CA returns the CA that signed this instance's certificate.
func (s *Server) CA() *CA { return s.ca }

// TLSConfig returns a client configuration trusting CAFile, for 127.0.0.1.
func (s *Server) TLSConfig() *tls.Config { return s.ca.TLSConfig("127.0.0.1") }

// ConfigPath is the instance's dovecot.conf.
func (s *Server) ConfigPath() string { return s.conf }

// LogPath is Dovecot's log file (errors, info and debug).
func (s *Server) LogPath() string { return s.logPath }

// Dir is the instance directory given to StartInstance.
func (s *Server) Dir() string { return s.dir }

// Name is the instance_name.
func (s *Server) Name() string { return s.name }

// Separator is the hierarchy separator of the INBOX namespace.
func (s *Server) Separator() string { return s.sep }
