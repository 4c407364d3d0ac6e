package config

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/secret"
)

// writeFile writes content to name under dir with mode perm and returns the path.
func writeFile(t *testing.T, dir, name, content string, perm fs.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // WriteFile's perm is masked by the umask
		t.Fatal(err)
	}
	return p
}

func TestSecretSourceResolve(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("MF_TEST_PW", "env-pw")
	t.Setenv("MF_TEST_EMPTY", "")
	crlf := writeFile(t, dir, "crlf.pw", "file pw \r\nsecond line\n", 0o600)
	noEOL := writeFile(t, dir, "noeol.pw", "just-this", 0o600)
	open := writeFile(t, dir, "open.pw", "open-pw\n", 0o644)
	empty := writeFile(t, dir, "empty.pw", "\nnext\n", 0o600)

	tests := []struct {
		name     string
		src      SecretSource
		want     string
		wantWarn bool
		wantErr  string // substring; "" = success
		noLeak   string // must not appear in the error
	}{
		{"inline", SecretSource{Inline: secret.New("inline-pw")}, "inline-pw", false, "", ""},
		{"env", SecretSource{Env: "MF_TEST_PW"}, "env-pw", false, "", ""},
		{"env unset", SecretSource{Env: "MF_TEST_UNSET_XYZ"}, "", false, "MF_TEST_UNSET_XYZ is not set", ""},
		{"env empty", SecretSource{Env: "MF_TEST_EMPTY"}, "", false, "MF_TEST_EMPTY is empty", ""},
		{"file first line, CRLF trimmed, spaces kept", SecretSource{File: crlf}, "file pw ", false, "", ""},
		{"file without newline", SecretSource{File: noEOL}, "just-this", false, "", ""},
		{"file readable by others warns", SecretSource{File: open}, "open-pw", true, "", ""},
		{"file missing", SecretSource{File: filepath.Join(dir, "missing.pw")}, "", false, "no such file", ""},
		{"file empty first line", SecretSource{File: empty}, "", false, "first line is empty", ""},
		{"file is a directory", SecretSource{File: dir}, "", false, "is a directory", ""},
		{"command first line", SecretSource{Command: "printf 'cmd-pw\\nrest\\n'"}, "cmd-pw", false, "", ""},
		{"command in Dir", SecretSource{Command: "cat noeol.pw", Dir: dir}, "just-this", false, "", ""},
		{"command fails: stderr shown, stdout not", SecretSource{Command: "echo leaked-stdout; echo boom-on-stderr >&2; exit 3"},
			"", false, "boom-on-stderr", "leaked-stdout"},
		{"command prints nothing", SecretSource{Command: "true"}, "", false, "printed nothing", ""},
		{"conflict", SecretSource{Env: "MF_TEST_PW", File: crlf}, "", false, "conflicting secrets: password_env and password_file", ""},
		{"none", SecretSource{}, "", false, ErrNoSecret.Error(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, warns, err := tt.src.Resolve(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve(%v) error = %v, want it to contain %q", tt.src, err, tt.wantErr)
				}
				if tt.noLeak != "" && strings.Contains(err.Error(), tt.noLeak) {
					t.Fatalf("Resolve(%v) error %q contains %q", tt.src, err, tt.noLeak)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%v) error: %v", tt.src, err)
			}
			if v.Reveal() != tt.want {
				t.Errorf("Resolve(%v) = %q, want %q", tt.src, v.Reveal(), tt.want)
			}
			if got := len(warns) > 0; got != tt.wantWarn {
				t.Errorf("Resolve(%v) warnings = %v, want some: %v", tt.src, warns, tt.wantWarn)
			}
		})
	}
}

func TestSecretSourceResolveCommandTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := SecretSource{Command: "exec sleep 10"}.Resolve(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Resolve with a slow command: error = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Resolve took %v after the deadline", d)
	}
}

func TestSecretSourceStringHidesSecrets(t *testing.T) {
	tests := []struct {
		name string
		src  SecretSource
		want string
	}{
		{"inline", SecretSource{Inline: secret.New("hunter2")}, "inline"},
		{"command text hidden", SecretSource{Command: "echo hunter2"}, "command"},
		{"env", SecretSource{Env: "PW"}, "env PW"},
		{"file", SecretSource{File: "/x.pw"}, "file /x.pw"},
		{"none", SecretSource{}, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
				got := fmt.Sprintf(format, tt.src)
				if strings.Contains(got, "hunter2") || got != tt.want {
					t.Errorf("Sprintf(%q, src) = %q, want %q", format, got, tt.want)
				}
			}
		})
	}
}

func TestSecretSourceKey(t *testing.T) {
	tests := []struct {
		src  SecretSource
		want string
	}{
		{SecretSource{}, ""},
		{SecretSource{Inline: secret.New("x")}, "dest_password"},
		{SecretSource{Env: "PW"}, "dest_password_env"},
		{SecretSource{File: "pw.txt"}, "dest_password_file"},
		{SecretSource{Command: "pass show x"}, "dest_password_command"},
	}
	for _, tc := range tests {
		if got := tc.src.Key("dest_password"); got != tc.want {
			t.Errorf("%v.Key(%q) = %q, want %q", tc.src, "dest_password", got, tc.want)
		}
	}
}
