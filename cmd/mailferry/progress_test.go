package main

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// syncBuffer is a bytes.Buffer safe for the bar's and the test's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgressBarShowsActiveAccounts(t *testing.T) {
	var out syncBuffer
	p := newProgressView("bar", &out, slog.New(slog.DiscardHandler), 100*time.Millisecond, 2)
	p.AccountStarted("alice", 10, 0)
	p.AccountStarted("bob", 5, 0)
	p.MessageDone("alice", pipeline.OutcomeCopied, 1000)
	waitFor(t, &out, "bob  0/5 messages")
	p.AccountFinished("bob", &pipeline.Stats{})
	p.close()
	s := out.String()
	for _, want := range []string{"alice  1/10 messages", "bob  0/5 messages", "messages   0% |"} {
		if !strings.Contains(s, want) {
			t.Errorf("progress output lacks %q:\n%q", want, s)
		}
	}
}

func TestProgressLinesWhenNotATerminal(t *testing.T) {
	var logs syncBuffer
	p := newProgressView("lines", &logs, slog.New(slog.NewTextHandler(&logs, nil)), 20*time.Millisecond, 0)
	p.AccountStarted("alice", 10, 0)
	p.MessageDone("alice", pipeline.OutcomeCopied, 1000)
	waitFor(t, &logs, "msg=progress account=alice")
	p.close()
	s := logs.String()
	if !strings.Contains(s, "msg=progress account=alice copied=1 of=10") || strings.Contains(s, "\r") {
		t.Errorf("plain progress lines expected, got:\n%q", s)
	}
}

// waitFor waits until out holds want (the display ticks on its own), or
// gives up after a while and lets the test's assertions report it.
func waitFor(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if strings.Contains(out.String(), want) {
			return
		}
	}
}

// TestProgressLinesQuietWhileConnecting: before any account is listed (a
// server that does not answer), the lines say nothing rather than
// "copied=0 of=0" every interval.
func TestProgressLinesQuietWhileConnecting(t *testing.T) {
	var logs syncBuffer
	p := newProgressView("lines", &logs, slog.New(slog.NewTextHandler(&logs, nil)), 5*time.Millisecond, 0)
	time.Sleep(100 * time.Millisecond)
	p.close()
	if s := logs.String(); s != "" {
		t.Errorf("progress lines before anything was listed:\n%s", s)
	}
}

// TestProgressLinesShowNames: the engine's events carry ledger keys; the
// lines show the names people know the accounts by.
func TestProgressLinesShowNames(t *testing.T) {
	var logs syncBuffer
	p := newProgressView("lines", &logs, slog.New(slog.NewTextHandler(&logs, nil)), 20*time.Millisecond, 0)
	p.setNames([]pipeline.Job{{Options: pipeline.Options{Name: "pop3://alice@old:995 -> imap://alice@new:993/INBOX", Label: "alice"}}})
	p.AccountStarted("pop3://alice@old:995 -> imap://alice@new:993/INBOX", 10, 0)
	p.MessageDone("pop3://alice@old:995 -> imap://alice@new:993/INBOX", pipeline.OutcomeCopied, 1000)
	waitFor(t, &logs, "msg=progress account=alice")
	p.close()
	if s := logs.String(); !strings.Contains(s, "msg=progress account=alice copied=1 of=10") || strings.Contains(s, "imap://") {
		t.Errorf("progress lines:\n%s", s)
	}
}
