package mailserver

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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StopTimeout is how long Process.Stop waits after SIGTERM before it kills
// the process group.
const StopTimeout = 10 * time.Second

// Process is a server's main process, started in its own process group
// with its output in a log file.
type Process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error // set before exited is closed

	stopOnce sync.Once
	stopErr  error
}

// StartProcess starts cmd with stdout and stderr appended to logPath, in
// its own process group (a Ctrl-C meant for the test binary does not reach
// it before Stop runs) and with SIGTERM sent to it if the test process dies
// without calling Stop. A cmd.SysProcAttr the caller set (a Credential) is
// kept. name labels errors.
func StartProcess(name string, cmd *exec.Cmd, logPath string) (*Process, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: opening %s: %w", name, logPath, err)
	}
	defer out.Close()
	if cmd.Stdout == nil {
		cmd.Stdout = out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = out
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: starting %s: %w", name, cmd.Path, err)
	}
	p := &Process{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the process ended; valid once Exited is closed.
func (p *Process) Err() error { return p.waitErr }

// Pid is the process id (and process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM to the process group, waits up to StopTimeout, then
// kills the group. It reports an error if the process had exited before
// (a crash) or had to be killed. The whole group is signalled because some
// servers (couriertcpd, daemons in inetd mode) leave children behind.
// Idempotent.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.exited:
			p.stopErr = fmt.Errorf("%s: had exited before Stop: %v", p.name, p.waitErr)
			p.killGroup()
			return
		default:
		}
		if err := syscall.Kill(-p.Pid(), syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			p.stopErr = fmt.Errorf("%s: stopping: %w", p.name, err)
		}
		select {
		case <-p.exited:
			p.killGroup() // children that outlive their parent
			return
		case <-time.After(StopTimeout):
		}
		p.killGroup()
		select {
		case <-p.exited:
		case <-time.After(StopTimeout):
		}
		p.stopErr = fmt.Errorf("%s: ignored SIGTERM for %v and was killed", p.name, StopTimeout)
	})
	return p.stopErr
}

// Kill kills the process group at once, for a start that failed.
func (p *Process) Kill() {
	p.killGroup()
	select {
	case <-p.exited:
	case <-time.After(StopTimeout):
	}
}

func (p *Process) killGroup() { _ = syscall.Kill(-p.Pid(), syscall.SIGKILL) }

// FreePorts returns n ports that were free on 127.0.0.1 a moment ago.
func FreePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("mailserver: choosing a free port: %w", err)
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// Addr is "127.0.0.1:port".
func Addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// Probe is one listener to wait for: its address, whether it speaks TLS
// from the start (implicit TLS, verified with TLS), and what its greeting
// must start with ("* OK", "+OK") and contain.
type Probe struct {
	Addr     string
	TLS      *tls.Config
	Prefix   string
	Contains string
}

// WaitReady waits until every probe's listener greets as expected, or
// fails when proc exits, the timeout passes or a greeting is someone
// else's.
func WaitReady(ctx context.Context, name string, proc *Process, timeout time.Duration, probes ...Probe) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, pr := range probes {
		var lastErr error
		for {
			line, err := Greeting(ctx, pr.Addr, pr.TLS)
			if err == nil {
				if !strings.HasPrefix(line, pr.Prefix) || !strings.Contains(line, pr.Contains) {
					return fmt.Errorf("%s: %s answered %q, not the expected %q…%q: another server holds the port", name, pr.Addr, line, pr.Prefix, pr.Contains)
				}
				break
			}
			lastErr = err
			select {
			case <-proc.Exited():
				return fmt.Errorf("%s: exited during startup: %v", name, proc.Err())
			case <-ctx.Done():
				return fmt.Errorf("%s: not ready on %s after %v: %v", name, pr.Addr, timeout, lastErr)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// Greeting connects to addr (with TLS when cfg is set) and returns the
// server's first line.
func Greeting(ctx context.Context, addr string, cfg *tls.Config) (string, error) {
	d := &net.Dialer{Timeout: time.Second}
	var conn net.Conn
	var err error
	if cfg != nil {
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

// Owner is the account the servers' mail processes run as and that owns
// the mail: nobody:nogroup as root (the servers refuse to, or should not,
// run mail sessions as root), else the current user.
type Owner struct {
	Name     string
	Group    string
	UID, GID int
}

// MailOwner returns the Owner for this process.
func MailOwner() (Owner, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return Owner{}, fmt.Errorf("mailserver: looking up the current user: %w", err)
		}
		g, err := user.LookupGroupId(u.Gid)
		if err != nil {
			return Owner{}, fmt.Errorf("mailserver: looking up the current group: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return Owner{Name: u.Username, Group: g.Name, UID: uid, GID: gid}, nil
	}
	o := Owner{Name: "nobody", Group: "nogroup", UID: 65534, GID: 65534}
	if u, err := user.Lookup("nobody"); err == nil {
		o.UID, _ = strconv.Atoi(u.Uid)
		o.GID, _ = strconv.Atoi(u.Gid)
	}
	if g, err := user.LookupGroup("nogroup"); err == nil {
		o.GID, _ = strconv.Atoi(g.Gid)
	} else if g, err := user.LookupGroupId(strconv.Itoa(o.GID)); err == nil {
		o.Group = g.Name
	}
	return o, nil
}

// ChownTree gives dir and everything below it to o (a no-op when not root:
// everything already belongs to the current user).
func (o Owner) ChownTree(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, o.UID, o.GID); err != nil {
			return fmt.Errorf("mailserver: giving %s to %s: %w", p, o.Name, err)
		}
		return nil
	})
}

// CheckTraversable reports the first directory from dir up to / that other
// users cannot search: servers that drop privileges could not reach an
// instance below it.
func CheckTraversable(dir string) error {
	for {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("mailserver: checking %s: %w", dir, err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("mailserver: directory %s (mode %v) is not searchable by other users, so the server's unprivileged processes cannot reach the instance below it; chmod o+x it or use a directory under %s", dir, fi.Mode().Perm(), os.TempDir())
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
}

// LogTail returns the last n lines of each file in paths, labelled, for
// failure messages.
func LogTail(n int, paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
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
		return "(no log output in " + strings.Join(paths, ", ") + ")"
	}
	return b.String()
}
