package oauthtoken

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mailferry/mailferry/secret"
)

// ReadTokenFile returns the refresh token on the first line of path. A
// missing or empty file is ErrNoRefreshToken (wrapped); so is a file others
// may read or write, since a refresh token is a standing credential.
func ReadTokenFile(path string) (secret.Value, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return secret.Value{}, fmt.Errorf("oauth2 token_file %s: %w (the file does not exist)", path, ErrNoRefreshToken)
	}
	if err != nil {
		return secret.Value{}, fmt.Errorf("oauth2 token_file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return secret.Value{}, fmt.Errorf("oauth2 token_file %s is accessible by group or others (mode %04o): chmod 600 it", path, perm)
	}
	data, err := readSmall(path)
	if err != nil {
		return secret.Value{}, fmt.Errorf("oauth2 token_file: %w", err)
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	tok := strings.TrimSpace(string(line))
	if tok == "" {
		return secret.Value{}, fmt.Errorf("oauth2 token_file %s: %w (the first line is empty)", path, ErrNoRefreshToken)
	}
	if strings.ContainsFunc(tok, isControl) {
		return secret.Value{}, fmt.Errorf("oauth2 token_file %s: the first line holds control characters", path)
	}
	return secret.New(tok), nil
}

// WriteTokenFile stores a refresh token in path, mode 0600, replacing the
// file atomically (a new file renamed over the old one), so a crash leaves
// the old token or the new one, never half of one.
func WriteTokenFile(path string, tok secret.Value) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".mailferry-token-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	w := bufio.NewWriter(f)
	w.WriteString(tok.Reveal() + "\n")
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
