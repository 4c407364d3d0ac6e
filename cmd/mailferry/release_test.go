package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The test-only hooks (a clock moved into the future, a crash at a
// pipeline step) must not exist in the program users run: a stray
// MAILFERRY_TEST_NOW would otherwise end delete_after periods early and
// delete mail at the source.
var testOnlyVariables = []string{"MAILFERRY_TEST_NOW", "MAILFERRY_TEST_CRASHPOINT", "MAILFERRY_TEST_LEASE_TTL"}

// buildRelease builds mailferry exactly as a user does (`go build
// ./cmd/mailferry`) into a temporary directory and returns its path.
func buildRelease(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go") // go test puts its own go first in PATH
	if err != nil {
		t.Fatalf("the go command is needed to build the release binary: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "mailferry")
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/mailferry: %v\n%s", err, out)
	}
	return bin
}

// TestReleaseHasNoTestHooks: the release binary holds no code that reads
// the test-only variables, and depends on no test kit.
func TestReleaseHasNoTestHooks(t *testing.T) {
	bin := buildRelease(t)
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range testOnlyVariables {
		if bytes.Contains(b, []byte(v)) {
			t.Errorf("the release binary contains %q: the test hook is compiled into it", v)
		}
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/mailferry: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "/internal/testkit") {
			t.Errorf("cmd/mailferry depends on the test kit %s", pkg)
		}
	}
}

// TestReleaseIgnoresTestHooks runs the release binary against Dovecot with
// both test variables set: a crashpoint that would kill the first run, and
// a clock 400 days ahead that would end a 30-day delete_after period. The
// runs complete and the source keeps every message, with `copy` and with
// `run -c` alike.
func TestReleaseIgnoresTestHooks(t *testing.T) {
	bin := buildRelease(t)
	p := startPair(t)
	seed(t, p, simpleMessages(3))
	farFuture := "MAILFERRY_TEST_NOW=" + time.Now().Add(400*24*time.Hour).UTC().Format(time.RFC3339)
	release := func(envs []string, args ...string) runResult {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "MAILFERRY_SOURCE_PASSWORD="+srcPassword, "MAILFERRY_DEST_PASSWORD="+dstPassword)
		cmd.Env = append(cmd.Env, envs...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		r := runResult{stdout: stdout.String(), stderr: stderr.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode() // -1 when killed by a signal
		} else if err != nil {
			t.Fatalf("running %s: %v", bin, err)
		}
		if r.code < 0 {
			t.Fatalf("%v with %v: killed by a signal: the test crashpoint is honoured\n%s", args, envs, r.stderr)
		}
		if err := json.Unmarshal(stdout.Bytes(), &r.report); err != nil || len(r.report.Accounts) != 1 {
			t.Fatalf("%v: exit %d, no report of one account (%v)\n%s\n%s", args, r.code, err, r.stdout, r.stderr)
		}
		return r
	}
	args := p.copyArgs("--delete-after", "30d")

	r := release([]string{"MAILFERRY_TEST_CRASHPOINT=pending:1"}, args...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 3 || a.DeleteWaiting != 3 {
		t.Fatalf("first copy: exit %d, copied %d, waiting %d; want %d, 3, 3\n%s", r.code, a.Copied, a.DeleteWaiting, exitOK, r.stderr)
	}
	r = release([]string{farFuture}, args...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 0 || a.Deleted != 0 || a.DeleteWaiting != 3 {
		t.Fatalf("copy with %s: exit %d, copied %d, deleted %d, waiting %d; want %d, 0, 0, 3\n%s",
			farFuture, r.code, a.Copied, a.Deleted, a.DeleteWaiting, exitOK, r.stderr)
	}
	if n := len(sourceServed(t, p)); n != 3 {
		t.Fatalf("after copy with %s the source holds %d messages, want 3", farFuture, n)
	}

	cfg := fmt.Sprintf(`state = %q
[source]
url = "pop3s://%s"
tls_ca = %q
[destination]
url = "imaps://%s"
tls_ca = %q
[[account]]
source_user = "alice"
source_password_command = "echo %s"
dest_password_command = "echo %s"
delete_after = "30d"
`, p.state, p.src.POP3SAddr(), p.src.CAFile(), p.dst.IMAPSAddr(), p.src.CAFile(), srcPassword, dstPassword)
	path := filepath.Join(p.dir, "release.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r = release([]string{farFuture, "MAILFERRY_TEST_CRASHPOINT=deleted:1"}, "run", "-c", path, "--json", "--progress", "none")
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 0 || a.Deleted != 0 || a.DeleteWaiting != 3 {
		t.Fatalf("run -c with %s: exit %d, copied %d, deleted %d, waiting %d; want %d, 0, 0, 3\n%s",
			farFuture, r.code, a.Copied, a.Deleted, a.DeleteWaiting, exitOK, r.stderr)
	}
	if n := len(sourceServed(t, p)); n != 3 {
		t.Fatalf("after run -c with %s the source holds %d messages, want 3", farFuture, n)
	}
	assertSameMultiset(t, sourceServed(t, p), destBodies(destMessages(t, p, "INBOX")))
}
