package dovecot

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// doveadmTimeout bounds each doveadm run, so a wedged instance fails a test
// instead of hanging it.
const doveadmTimeout = 60 * time.Second

// Doveadm runs doveadm -c ConfigPath with args and returns its standard
// output. The error includes doveadm's standard error.
func (s *Server) Doveadm(args ...string) ([]byte, error) {
	return s.doveadm(nil, args...)
}

func (s *Server) doveadm(stdin []byte, args ...string) ([]byte, error) {
	bin, err := binary(doveadmPath, "doveadm")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), doveadmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-c", s.conf}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("dovecot: doveadm %s on %s: %w: %s",
			strings.Join(args, " "), s.name, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

func isInbox(mailbox string) bool { return strings.EqualFold(mailbox, "INBOX") }

// CreateMailbox creates mailbox (and its parents) for user and subscribes it.
// It succeeds if the mailbox already exists. Names use the instance's
// separator and UTF-8; Dovecot stores them in modified UTF-7.
func (s *Server) CreateMailbox(user, mailbox string) error {
	if isInbox(mailbox) {
		return nil
	}
	if _, err := s.doveadm(nil, "mailbox", "create", "-s", "-u", user, mailbox); err != nil {
		if strings.Contains(err.Error(), "already exists") {
			return nil
		}
		return err
	}
	return nil
}

// Deliver stores msg in mailbox for user with doveadm save, creating the
// mailbox first if needed. The INTERNALDATE is the time of delivery and no
// flags are set; use SeedMaildir to control both.
func (s *Server) Deliver(user, mailbox string, msg []byte) error {
	if err := s.CreateMailbox(user, mailbox); err != nil {
		return err
	}
	_, err := s.doveadm(msg, "save", "-u", user, "-m", mailbox)
	return err
}

// SeedMaildir writes msg as a file into the Maildir of user's mailbox
// (created if needed), bypassing Dovecot: flags are Maildir info letters
// (any of "DFRST": Draft, Flagged, Replied, Seen, Trashed) and internalDate
// becomes the file's mtime, which Dovecot serves as INTERNALDATE. Dovecot
// serves LF line endings as CRLF.
func (s *Server) SeedMaildir(user, mailbox string, msg []byte, flags string, internalDate time.Time) error {
	info, err := maildirInfo(flags)
	if err != nil {
		return err
	}
	dir, err := s.maildirPath(user, mailbox)
	if err != nil {
		return err
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if _, err := s.mkdirOwned(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	// Maildir unique name: time, microseconds, pid and a per-server counter;
	// S= carries the size so Dovecot need not stat the file.
	name := fmt.Sprintf("%d.M%dP%dQ%d.mailferry,S=%d:2,%s",
		internalDate.Unix(), internalDate.Nanosecond()/1000, os.Getpid(), s.seq.Add(1), len(msg), info)
	tmp := filepath.Join(dir, "tmp", name)
	if err := os.WriteFile(tmp, msg, 0o600); err != nil {
		return fmt.Errorf("dovecot: seeding %s/%s: %w", user, mailbox, err)
	}
	if err := os.Chown(tmp, s.uid, s.gid); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("dovecot: seeding %s/%s: %w", user, mailbox, err)
	}
	if err := os.Chtimes(tmp, internalDate, internalDate); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("dovecot: seeding %s/%s: setting internal date: %w", user, mailbox, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "cur", name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("dovecot: seeding %s/%s: %w", user, mailbox, err)
	}
	return nil
}

// SeedMaildirBulk writes n messages into the Maildir of user's mailbox
// (created if needed), message i being msg(i), bypassing Dovecot and
// holding no more than one message at a time: the benchmarks' mailboxes of
// hundreds of thousands of messages. Each file is written straight into
// cur/ (nothing reads the mailbox meanwhile) with S= and W= in its name,
// its size and its size with CRLF line ends, as Dovecot names the files
// it saves (its maildir-save.c adds ",W=<vsize>" after ",S=<size>"), so
// that Dovecot need neither stat it nor read it to answer POP3's LIST or
// IMAP's RFC822.SIZE; its internal date is the time of writing.
//
// The names vary as a delivering server's do (a second apart, as if
// delivered one a second until now, microseconds that look random), not
// only in two counters: Dovecot keeps the names of dovecot-uidlist in a
// hash table whose hash (maildir_filename_base_hash, shift by 4 and fold)
// gave names that differed only in i and the counter 114,000 values for
// 500,000 files, so every POP3 session of that maildrop spent about half
// of its CPU walking the table's chains (perf: maildir_filename_base_cmp),
// which no real maildir makes it do. Dovecot numbers new files in the
// order of the time in their names: message i gets UID i+1 of a new
// mailbox.
func (s *Server) SeedMaildirBulk(user, mailbox string, n int, msg func(i int) []byte) error {
	dir, err := s.maildirPath(user, mailbox)
	if err != nil {
		return err
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if _, err := s.mkdirOwned(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	first := time.Now().Unix() - int64(n)
	for i := range n {
		b := msg(i)
		name := bulkMaildirName(first+int64(i), i, os.Getpid(), s.seq.Add(1), len(b), virtualSize(b))
		path := filepath.Join(dir, "cur", name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return fmt.Errorf("dovecot: seeding %s/%s: %w", user, mailbox, err)
		}
		if err := os.Chown(path, s.uid, s.gid); err != nil {
			return fmt.Errorf("dovecot: seeding %s/%s: %w", user, mailbox, err)
		}
	}
	return nil
}

// bulkMaildirName is the name of SeedMaildirBulk's message i: the time in
// the name sec, microseconds that look random (Knuth's multiplicative hash
// of i), pid and the server's counter seq for uniqueness, and the sizes.
func bulkMaildirName(sec int64, i, pid int, seq uint64, size, vsize int) string {
	usec := uint32(i) * 2654435761 % 1000000
	return fmt.Sprintf("%d.M%dP%dQ%d.mailferry,S=%d,W=%d:2,", sec, usec, pid, seq, size, vsize)
}

// virtualSize is msg's size with CRLF line ends, Dovecot's "virtual
// size": a CR more for every LF without one.
func virtualSize(msg []byte) int {
	n := len(msg)
	for i, c := range msg {
		if c == '\n' && (i == 0 || msg[i-1] != '\r') {
			n++
		}
	}
	return n
}

// maildirInfo validates Maildir flag letters and returns them sorted and
// deduplicated, as the Maildir convention requires.
func maildirInfo(flags string) (string, error) {
	const known = "DFRST" // already in ASCII order
	var b strings.Builder
	for _, c := range known {
		if strings.ContainsRune(flags, c) {
			b.WriteRune(c)
		}
	}
	for _, c := range flags {
		if !strings.ContainsRune(known, c) {
			return "", fmt.Errorf("dovecot: maildir flag %q in %q not one of %s", c, flags, known)
		}
	}
	return b.String(), nil
}

// maildirPath returns the Maildir directory of user's mailbox as Dovecot
// resolves it, creating the mailbox first; results are cached.
func (s *Server) maildirPath(user, mailbox string) (string, error) {
	key := [2]string{user, mailbox}
	s.mu.Lock()
	p, ok := s.paths[key]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	if err := s.CreateMailbox(user, mailbox); err != nil {
		return "", err
	}
	out, err := s.doveadm(nil, "mailbox", "path", "-u", user, mailbox)
	if err != nil {
		return "", err
	}
	p = strings.TrimSpace(string(out))
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("dovecot: doveadm mailbox path %s for %s returned %q", mailbox, user, out)
	}
	s.mu.Lock()
	s.paths[key] = p
	s.mu.Unlock()
	return p, nil
}

// MailboxCount returns the number of messages in user's mailbox.
func (s *Server) MailboxCount(user, mailbox string) (int, error) {
	// -f tab prints a header line ("mailbox\tmessages") and a value line.
	out, err := s.doveadm(nil, "-f", "tab", "mailbox", "status", "-u", user, "messages", mailbox)
	if err != nil {
		return 0, err
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != 2 {
		return 0, fmt.Errorf("dovecot: unexpected doveadm mailbox status output %q", out)
	}
	header, values := strings.Split(lines[0], "\t"), strings.Split(lines[1], "\t")
	for i, h := range header {
		if h == "messages" && i < len(values) {
			n, err := strconv.Atoi(values[i])
			if err != nil {
				return 0, fmt.Errorf("dovecot: unexpected doveadm mailbox status output %q: %w", out, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("dovecot: unexpected doveadm mailbox status output %q", out)
}

// Mailboxes lists user's mailboxes in UTF-8 with the instance's separator.
func (s *Server) Mailboxes(user string) ([]string, error) {
	out, err := s.doveadm(nil, "mailbox", "list", "-8", "-u", user)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			names = append(names, line)
		}
	}
	return names, nil
}
