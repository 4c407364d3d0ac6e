package config

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/mailferry/mailferry/secret"
)

// SecretSource says where a password comes from. At most one field is set;
// the zero value means "no password configured". Loading a config never
// resolves a SecretSource: Resolve does, so `config check` runs no command.
type SecretSource struct {
	Env     string       // name of an environment variable; it must be set and non-empty
	File    string       // file whose first line is the password (trailing CR/LF removed)
	Command string       // run with `sh -c`; the first line of its stdout is the password
	Inline  secret.Value // written in the config or accounts file itself

	// Dir is the working directory for Command ("" = the current one). Load
	// sets it to the config file's directory.
	Dir string
}

// CommandTimeout bounds a password command when ctx has no earlier deadline.
const CommandTimeout = 30 * time.Second

// maxSecretLine bounds how much of a password file or command output is read.
const maxSecretLine = 64 << 10

// ErrNoSecret is returned by Resolve on a zero SecretSource.
var ErrNoSecret = errors.New("no password configured")

// IsZero reports whether no source is set.
func (s SecretSource) IsZero() bool { return len(s.set("")) == 0 }

// set returns the names (prefix + suffix) of the fields that are set, in
// config spelling: prefix "source_password" gives "source_password_env".
func (s SecretSource) set(prefix string) []string {
	var out []string
	if !s.Inline.IsZero() {
		out = append(out, prefix)
	}
	if s.Env != "" {
		out = append(out, prefix+"_env")
	}
	if s.File != "" {
		out = append(out, prefix+"_file")
	}
	if s.Command != "" {
		out = append(out, prefix+"_command")
	}
	return out
}

// Key returns the config key of the source that is set, spelled with
// prefix ("source_password" gives "source_password_command"), or "" when
// none is set; the first one when several are.
func (s SecretSource) Key(prefix string) string {
	if keys := s.set(prefix); len(keys) > 0 {
		return keys[0]
	}
	return ""
}

// conflict returns an error naming the keys when more than one source is set.
func (s SecretSource) conflict(prefix string) error {
	keys := s.set(prefix)
	if len(keys) < 2 {
		return nil
	}
	return fmt.Errorf("conflicting secrets: %s", joinAnd(keys))
}

func joinAnd(keys []string) string {
	if len(keys) <= 1 {
		return strings.Join(keys, "")
	}
	return strings.Join(keys[:len(keys)-1], ", ") + " and " + keys[len(keys)-1]
}

// String describes the source without revealing the secret or the command
// text (a command line may embed a password).
func (s SecretSource) String() string {
	switch keys := s.set("password"); {
	case len(keys) == 0:
		return "none"
	case len(keys) > 1:
		return "conflicting"
	}
	switch {
	case s.Env != "":
		return "env " + s.Env
	case s.File != "":
		return "file " + s.File
	case s.Command != "":
		return "command"
	}
	return "inline"
}

// GoString is String, so %#v does not print the command text.
func (s SecretSource) GoString() string { return s.String() }

// Resolve returns the password. A file readable by group or others yields a
// Warning for the caller to log, not an error. Errors never contain the
// secret nor a command's stdout; a failing command's stderr is included.
func (s SecretSource) Resolve(ctx context.Context) (secret.Value, []Warning, error) {
	if err := s.conflict("password"); err != nil {
		return secret.Value{}, nil, err
	}
	switch {
	case !s.Inline.IsZero():
		return s.Inline, nil, nil
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return secret.Value{}, nil, fmt.Errorf("environment variable %s is not set", s.Env)
		}
		if v == "" {
			return secret.Value{}, nil, fmt.Errorf("environment variable %s is empty", s.Env)
		}
		return secret.New(v), nil, nil
	case s.File != "":
		return resolveFile(s.File)
	case s.Command != "":
		v, err := resolveCommand(ctx, s.Command, s.Dir)
		return v, nil, err
	}
	return secret.Value{}, nil, ErrNoSecret
}

func resolveFile(path string) (secret.Value, []Warning, error) {
	f, err := os.Open(path)
	if err != nil {
		return secret.Value{}, nil, fmt.Errorf("reading password file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return secret.Value{}, nil, fmt.Errorf("reading password file: %w", err)
	}
	if fi.IsDir() {
		return secret.Value{}, nil, fmt.Errorf("reading password file %s: is a directory", path)
	}
	var warns []Warning
	if perm := fi.Mode().Perm(); perm&0o044 != 0 {
		warns = append(warns, Warning{File: path,
			Msg: fmt.Sprintf("password file is readable by group or others (mode %04o); chmod 600 it", perm)})
	}
	line, err := firstLine(f)
	if err != nil {
		return secret.Value{}, nil, fmt.Errorf("reading password file %s: %w", path, err)
	}
	if line == "" {
		return secret.Value{}, nil, fmt.Errorf("password file %s: first line is empty", path)
	}
	return secret.New(line), warns, nil
}

// firstLine returns the first line of r without its CR/LF ending.
func firstLine(r io.Reader) (string, error) {
	br := bufio.NewReader(io.LimitReader(r, maxSecretLine))
	line, err := br.ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	if err == io.EOF && len(line) == maxSecretLine {
		return "", fmt.Errorf("first line is longer than %d bytes", maxSecretLine)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// limitedBuffer keeps the first max bytes written and discards the rest
// without failing, so a chatty child never blocks on a full pipe.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func resolveCommand(ctx context.Context, command, dir string) (secret.Value, error) {
	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Dir = dir
	cmd.Stdin = nil
	stdout := &limitedBuffer{max: maxSecretLine}
	stderr := &limitedBuffer{max: 1024}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// A grandchild holding the pipes open must not hang Wait after a kill.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err != nil {
		msg := strings.Map(func(r rune) rune {
			if isControl(r) {
				return ' '
			}
			return r
		}, strings.TrimSpace(stderr.buf.String()))
		if len(msg) > 512 {
			msg = msg[:512] + "…"
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		}
		if msg != "" {
			return secret.Value{}, fmt.Errorf("password command: %w; stderr: %s", err, msg)
		}
		return secret.Value{}, fmt.Errorf("password command: %w", err)
	}
	line, _ := firstLine(&stdout.buf)
	if line == "" {
		return secret.Value{}, errors.New("password command printed nothing on its first line")
	}
	return secret.New(line), nil
}
