package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EPlaintextHintIMAP: copy and verify with imap://…?tls=none and no
// --allow-plaintext fail with the hint, before connecting anywhere (copy
// from an IMAP source used to give none; verify gave no hints at all).
func TestE2EPlaintextHintIMAP(t *testing.T) {
	env := func(k string) string {
		return map[string]string{"MAILFERRY_SOURCE_PASSWORD": "a", "MAILFERRY_DEST_PASSWORD": "b"}[k]
	}
	state := filepath.Join(t.TempDir(), "state.db")
	plainIMAP := "imap://alice@" + closedAddr(t) + "?tls=none"
	closedIMAPS := "imaps://bob@" + closedAddr(t)
	for _, args := range [][]string{
		{"copy", plainIMAP, closedIMAPS, "--state", state, "--progress", "none"},
		{"verify", plainIMAP, plainIMAP, "--state", state},
	} {
		r := runInProcess(t, env, args...)
		if r.code != exitFatal || !strings.Contains(r.stdout+r.stderr, "--allow-plaintext") {
			t.Errorf("%v: exit %d, want %d and a hint at --allow-plaintext\n%s%s", args, r.code, exitFatal, r.stdout, r.stderr)
		}
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
