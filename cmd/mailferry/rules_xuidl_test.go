package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestE2EVerifyAfterXUIDL: after a copy with --x-uidl, verify compares the
// source as the copy sent it (with the X-UIDL field) in every mode, from
// the command line and from a config with policy.x_uidl; the ledger's
// digest includes the field, and verify --full / --no-ledger used to hash
// the bare source and report every message as different. A source message
// changed since the copy is still reported.
func TestE2EVerifyAfterXUIDL(t *testing.T) {
	p := startPair(t)
	msgs := simpleMessages(4)
	seed(t, p, msgs)
	if r := runInProcess(t, p.getenv, p.copyArgs("--x-uidl")...); r.code != exitOK || r.report.Accounts[0].Copied != 4 {
		t.Fatalf("copy --x-uidl: exit %d\n%s", r.code, r.stderr)
	}
	for _, m := range destMessages(t, p, "INBOX") {
		if !bytes.HasPrefix(m.body, []byte("X-UIDL: ")) {
			t.Fatalf("destination message without the X-UIDL field: %q", m.body[:min(40, len(m.body))])
		}
	}
	cfg := filepath.Join(p.dir, "migrate.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `state = %q
[source]
url = "pop3s://%s"
tls_ca = %q
[destination]
url = "imaps://%s"
tls_ca = %q
[policy]
x_uidl = true
[[account]]
source_user = "alice"
source_password = %q
dest_password = %q
`, p.state, p.src.POP3SAddr(), p.src.CAFile(), p.dst.IMAPSAddr(), p.src.CAFile(), srcPassword, dstPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	verifyCfg := func(extra ...string) (int, verifyReport) {
		t.Helper()
		return verifyConfigJSON(t, cfg, extra...)
	}

	for _, mode := range [][]string{{"--full"}, {"--no-ledger"}, nil} {
		code, rep := verifyJSON(t, p, append([]string{"--x-uidl"}, mode...)...)
		if s := rep.Accounts[0].Stats; code != exitOK || s.Matched != 4 || s.Differs != 0 {
			t.Errorf("verify --x-uidl %v: exit %d, stats %+v; want %d, 4 matched", mode, code, s, exitOK)
		}
		code, rep = verifyCfg(mode...)
		if s := rep.Accounts[0].Stats; code != exitOK || s.Matched != 4 || s.Differs != 0 {
			t.Errorf("verify -c (x_uidl = true) %v: exit %d, stats %+v; want %d, 4 matched", mode, code, s, exitOK)
		}
	}

	// A real difference: one source message changed since the copy (one
	// byte, same size, same UIDL).
	changeSourceByte(t, p, []byte("body of message 2"), []byte("BODY of message 2"))
	for _, mode := range [][]string{{"--full"}, {"--no-ledger"}} {
		code, rep := verifyJSON(t, p, append([]string{"--x-uidl"}, mode...)...)
		if s := rep.Accounts[0].Stats; code != exitPartial || s.Matched != 3 || s.Differs != 1 {
			t.Errorf("verify --x-uidl %v after a source change: exit %d, stats %+v; want %d, 3 matched, 1 differing", mode, code, s, exitPartial)
		}
		code, rep = verifyCfg(mode...)
		if s := rep.Accounts[0].Stats; code != exitPartial || s.Matched != 3 || s.Differs != 1 {
			t.Errorf("verify -c %v after a source change: exit %d, stats %+v; want %d, 3 matched, 1 differing", mode, code, s, exitPartial)
		}
	}
	if r := runCmd(t, runVerify, p.getenv, "imaps://alice@"+p.src.IMAPSAddr(), p.dstURL(), "--x-uidl", "--state", p.state); r.code != exitUsage {
		t.Errorf("verify --x-uidl with an IMAP source: exit %d, want %d\n%s", r.code, exitUsage, r.stderr)
	}
}

// verifyConfigJSON runs verify -c cfg --json and decodes its report.
func verifyConfigJSON(t *testing.T, cfg string, extra ...string) (int, verifyReport) {
	t.Helper()
	r := runCmd(t, runVerify, func(string) string { return "" }, append([]string{"-c", cfg, "--json"}, extra...)...)
	var rep verifyReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || len(rep.Accounts) != 1 {
		t.Fatalf("verify -c %v: exit %d, report %v (%v)\n%s", extra, r.code, r.stdout, err, r.stderr)
	}
	return r.code, rep
}

// changeSourceByte rewrites the one source maildir file holding old with
// new (the same length) in its place, so that the source serves other
// bytes under the same UIDL and size.
func changeSourceByte(t *testing.T, p *pair, old, new []byte) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(p.src.Dir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !bytes.Contains([]byte(path), []byte("/cur/")) && !bytes.Contains([]byte(path), []byte("/new/")) {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil || !bytes.Contains(b, old) {
			return err
		}
		n++
		return os.WriteFile(path, bytes.Replace(b, old, new, 1), 0)
	})
	if err != nil || n != 1 {
		t.Fatalf("changing the source message holding %q: %d files (%v)", old, n, err)
	}
}
