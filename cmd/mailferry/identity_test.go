package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/pipeline"
)

// TestProveIdentityUnreachableThenOwnHistory: a proof that cannot reach
// the source leaves the account provisional, for a later run to prove;
// once a run went on under it and gave it entries of its own, binding
// would lose them: it is confirmed as its own account, with a warning,
// and no server is asked.
func TestProveIdentityUnreachableThenOwnHistory(t *testing.T) {
	ctx := context.Background()
	l, err := checkpoint.Open(ctx, filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	spec := func(host string) checkpoint.AccountSpec {
		return checkpoint.AccountSpec{Endpoint: "pop3://alice@" + host + ":995 -> imap://alice@" + host + ":993/INBOX",
			SourceProto: "pop3", SourceUser: "alice", DestUser: "alice", DestFolder: "INBOX", KeyScheme: "pop3",
			Source: "pop3://alice@" + host + ":995", Destination: "imap://alice@" + host + ":993"}
	}
	if _, err := l.ResolveAccount(ctx, spec("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	res, err := l.ResolveAccount(ctx, spec("localhost"))
	if err != nil || !res.Provisional || len(res.Candidates) != 1 {
		t.Fatalf("ResolveAccount under another name = %+v, %v; want provisional with one candidate", res, err)
	}
	var log bytes.Buffer
	x := &execution{log: slog.New(slog.NewTextHandler(&log, nil))}
	opened := 0
	job := pipeline.Job{Options: pipeline.Options{Name: "alice"}, OpenSource: func(context.Context) (pipeline.Source, error) {
		opened++
		return nil, errors.New("connection refused")
	}}
	if to, err := x.proveIdentity(ctx, l, job, spec("localhost"), res); err == nil || to != 0 {
		t.Fatalf("proof with the source unreachable = %d, %v; want an error", to, err)
	}
	if again, _ := l.ResolveAccount(ctx, spec("localhost")); !again.Provisional {
		t.Fatal("an unreachable source confirmed the account; want it left provisional")
	}
	// The run went on under it and copied a message.
	h, err := l.Hold(ctx, res.Account)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Commit(ctx, res.Account, pipeline.Changes{Put: []pipeline.Entry{{Key: "uidl-1", State: pipeline.StateDone, Size: 10,
		Digest: strings.Repeat("ab", 32), DestMailbox: "INBOX", DestUIDValidity: 1, DestUID: 1}}}); err != nil {
		t.Fatal(err)
	}
	h.Release(ctx)
	opened = 0
	if to, err := x.proveIdentity(ctx, l, job, spec("localhost"), res); err != nil || to != 0 || opened != 0 {
		t.Fatalf("proof of an account with entries = %d, %v (source opened %d times); want 0, no error, no session", to, err, opened)
	}
	if again, _ := l.ResolveAccount(ctx, spec("localhost")); again.Provisional || again.Account != res.Account {
		t.Errorf("after the proof: %+v; want account %d confirmed", again, res.Account)
	}
	if !strings.Contains(log.String(), "has a history of its own now") {
		t.Errorf("no warning:\n%s", log.String())
	}
}
