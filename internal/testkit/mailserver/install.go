// Package mailserver holds what the kits for real IMAP and POP3 servers
// (internal/testkit/cyrus, courier, mailutils) share: finding the
// private prefix scripts/install-servers.sh unpacked Debian's packages into,
// the package versions for a matrix line, free ports, child processes in
// their own process group, readiness probes, the uid that owns the mail,
// the skip-or-fail rule of CI, and a small IMAP client to seed and read
// mailboxes through the server itself.
//
// Those servers conflict with Dovecot's packages or would start system
// daemons, so they are never installed into the system: see
// scripts/install-servers.sh.
package mailserver

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// InstallScript is the script that fetches and unpacks the servers; error
// messages name it.
const InstallScript = "scripts/install-servers.sh"

// ErrNotInstalled is wrapped by Find when a server family is not unpacked.
var ErrNotInstalled = errors.New("server not installed")

// Prefix returns the directory the install script unpacks into, by the
// script's rule: $MAILFERRY_SERVERS, else /var/cache/mailferry/servers as
// root (the servers drop privileges to nobody, who cannot enter /root),
// else $XDG_CACHE_HOME/mailferry/servers (or ~/.cache).
func Prefix() (string, error) {
	if p := os.Getenv("MAILFERRY_SERVERS"); p != "" {
		return p, nil
	}
	if os.Geteuid() == 0 {
		return "/var/cache/mailferry/servers", nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("mailserver: locating the servers' prefix: %w", err)
	}
	return filepath.Join(dir, "mailferry", "servers"), nil
}

// Install is one server family unpacked under the prefix.
type Install struct {
	Family   string
	Root     string            // the family's unpacked file system
	Versions map[string]string // Debian package name → version
}

// Find locates family's tree and checks that each of bins (paths relative
// to the tree, e.g. "usr/sbin/imap4d") is there. The error wraps
// ErrNotInstalled and names the install script.
func Find(family string, bins ...string) (*Install, error) {
	prefix, err := Prefix()
	if err != nil {
		return nil, err
	}
	root := filepath.Join(prefix, family)
	for _, b := range bins {
		if _, err := os.Stat(filepath.Join(root, b)); err != nil {
			return nil, fmt.Errorf("%w: %s has no %s (run %s, or set MAILFERRY_SERVERS to where it unpacked them)",
				ErrNotInstalled, family, filepath.Join(root, b), InstallScript)
		}
	}
	versions, err := readVersions(filepath.Join(prefix, "versions"), family)
	if err != nil {
		return nil, err
	}
	return &Install{Family: family, Root: root, Versions: versions}, nil
}

// readVersions reads the lines "family package version" the install script
// writes.
func readVersions(path, family string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: reading package versions: %v (run %s)", ErrNotInstalled, err, InstallScript)
	}
	defer f.Close()
	out := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && fields[0] == family {
			out[fields[1]] = fields[2]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mailserver: reading %s: %w", path, err)
	}
	return out, nil
}

// Path returns the absolute path of rel inside the family's tree.
func (in *Install) Path(rel string) string { return filepath.Join(in.Root, rel) }

// Env returns the environment for the family's programs: the current one
// with LD_LIBRARY_PATH pointing at the unpacked libraries first (the
// binaries link against libraries of their own packages, e.g.
// libcyrus_imap.so or libmailutils.so, that are not in the system).
func (in *Install) Env(extraLibDirs ...string) []string {
	dirs := []string{in.Path("usr/lib/x86_64-linux-gnu"), in.Path("usr/lib")}
	for _, d := range extraLibDirs {
		dirs = append(dirs, in.Path(d))
	}
	if old := os.Getenv("LD_LIBRARY_PATH"); old != "" {
		dirs = append(dirs, old)
	}
	env := []string{"LD_LIBRARY_PATH=" + strings.Join(dirs, ":")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LD_LIBRARY_PATH=") {
			env = append(env, kv)
		}
	}
	return env
}

// Info names a server for a matrix line.
type Info struct {
	Name    string // e.g. "Cyrus IMAP"
	Version string // the Debian package version, e.g. "3.6.1-4+deb12u5"
}

func (i Info) String() string { return i.Name + " " + i.Version }
