package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/secret"
)

// TestBinaryIMAPSourceDovecot: Dovecot serves a message with NUL bytes
// with each NUL as 0x80 in BODY[] and exactly in BINARY[] (RFC 3516). An
// IMAP → IMAP copy reads it as BINARY[] and it arrives byte for byte (the
// destination's BINARY[] is the source's bytes), and verify --full reads
// the destination the same way and agrees; a second run copies nothing. A
// message with 0x80 bytes of its own (UTF-8, and Windows-1252's euro
// sign, which costs a second read) is copied as BODY[] serves it. Before,
// the NUL message arrived with 0x80 in place of each NUL.
func TestBinaryIMAPSourceDovecot(t *testing.T) {
	p := startPair(t)
	msgs := [][]byte{
		[]byte("From: a@example.org\r\nSubject: NUL\r\n\r\nbefore\x00after\r\n"),
		[]byte("From: a@example.org\r\nSubject: UTF-8\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\na \xe2\x80\x94 dash\r\n"),
		[]byte("From: a@example.org\r\nSubject: euro\r\nContent-Type: text/plain; charset=windows-1252\r\nContent-Transfer-Encoding: 8bit\r\n\r\n5 \x80\r\n"),
	}
	for _, m := range msgs {
		if err := p.src.Deliver("alice", "INBOX", m); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"copy", p.imapSrcURL(""), p.dstURL(), "--tls-ca", p.src.CAFile(), "--state", p.state, "--json", "--progress", "none"}
	r := runInProcess(t, p.getenv, args...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != len(msgs) {
		t.Fatalf("copy: exit %d, copied %d; want 0, %d\n%s", r.code, a.Copied, len(msgs), r.stderr)
	}
	// The destination's exact bytes: imapdst's Digest reads BINARY[] where
	// BODY[] has NUL bytes replaced.
	ctx := context.Background()
	d, err := imapdst.Dial(ctx, imapdst.Options{Addr: p.dst.IMAPSAddr(), TLS: imapdst.TLSImplicit, TLSConfig: p.dst.TLSConfig(),
		User: "alice", Password: secret.New(dstPassword), IdleTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	st, err := d.EnsureMailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	list, err := d.ListSince(ctx, "INBOX", st.UIDValidity, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := map[[32]byte]bool{}
	for _, m := range msgs {
		want[sha256.Sum256(m)] = true
	}
	for _, m := range list {
		sum, _, err := d.Digest(ctx, "INBOX", m.UID)
		if err != nil {
			t.Fatal(err)
		}
		if !want[sum] {
			t.Errorf("destination UID %d is not one of the source's messages byte for byte", m.UID)
		}
		delete(want, sum)
	}
	if len(want) != 0 {
		t.Errorf("%d source messages not on the destination byte for byte", len(want))
	}
	var nulOnDest bool
	for _, m := range destMessagesOf(t, p.dst, "alice", dstPassword, "INBOX") {
		nulOnDest = nulOnDest || bytes.Contains(m.body, []byte("before\x80after"))
	}
	if !nulOnDest {
		t.Log("Dovecot no longer serves NUL as 0x80 in BODY[]: the test proves less")
	}
	again := runInProcess(t, p.getenv, args...)
	if a := again.report.Accounts[0]; again.code != exitOK || a.Copied != 0 {
		t.Errorf("second run: exit %d, copied %d\n%s", again.code, a.Copied, again.stderr)
	}
	for _, extra := range [][]string{{"--full"}, {"--no-ledger"}} {
		v := runInProcess(t, p.getenv, append([]string{"verify", p.imapSrcURL(""), p.dstURL(), "--tls-ca", p.src.CAFile(), "--state", p.state}, extra...)...)
		if v.code != exitOK || !strings.Contains(v.stdout, "3 match") {
			t.Errorf("verify %v: exit %d\n%s%s", extra, v.code, v.stdout, v.stderr)
		}
	}
}
