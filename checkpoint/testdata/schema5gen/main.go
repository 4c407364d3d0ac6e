// Command schema5gen wrote schema5.db next to this directory with the
// checkpoint package of schema 5 as released (commit 11c7d97 on main,
// before schema 6 existed): two accounts, entries in every state mirror
// passes use (moving with its target, gone, removing, removed), source
// and destination folder records with their marks and a folder op, runs
// and usage. It is kept as the record of how the fixture was made; run
// with this package it would write the current schema, and as a file
// under testdata it is never compiled.
//
//	go run ./checkpoint/testdata/schema5gen checkpoint/testdata
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/pipeline"
)

func digest(i int) string { return fmt.Sprintf("%064x", i*7919+1) }

func main() {
	ctx := context.Background()
	path := filepath.Join(os.Args[1], "schema5.db")
	_ = os.Remove(path)
	base := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.UTC)
	l, err := checkpoint.Open(ctx, path, &checkpoint.Options{Now: func() time.Time { return base }})
	if err != nil {
		panic(err)
	}
	at := func(min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	imapRes, err := l.ResolveAccount(ctx, checkpoint.AccountSpec{ID: "bob", Name: "Bob",
		Endpoint:    "imap://bob@imap.old.example:993 -> imap://bob@imap.new.example:993/",
		SourceProto: "imap", SourceUser: "bob", DestUser: "bob", KeyScheme: "imap",
		Source: "imap://bob@imap.old.example:993", Destination: "imap://bob@imap.new.example:993"})
	must(err)
	pop3Res, err := l.ResolveAccount(ctx, checkpoint.AccountSpec{
		Endpoint:    "pop3://alice@pop.old.example:995 -> imap://alice@imap.new.example:993/INBOX",
		SourceProto: "pop3", SourceUser: "alice", DestUser: "alice", DestFolder: "INBOX", KeyScheme: "pop3",
		Source: "pop3://alice@pop.old.example:995", Destination: "imap://alice@imap.new.example:993"})
	must(err)
	bob, alice := imapRes.Account, pop3Res.Account
	var holds []pipeline.Hold
	for _, acct := range []pipeline.AccountID{bob, alice} {
		h, err := l.Hold(ctx, acct)
		must(err)
		holds = append(holds, h)
	}

	var put []pipeline.Entry
	key := func(box string, uid int) string { return fmt.Sprintf("%s\x00%d\x00%d", box, 1234567890, uid) }
	for i := 1; i <= 30; i++ {
		box := "INBOX"
		if i > 20 {
			box = "Archive/2025"
		}
		flags := []string{`\Seen`}
		if i%4 == 0 {
			flags = append(flags, `\Flagged`, "$Work")
		}
		put = append(put, pipeline.Entry{Key: key(box, i), State: pipeline.StateDone, Digest: digest(i), Size: int64(3000 + i),
			MessageID: fmt.Sprintf("<b%d@example.org>", i), DestMailbox: box, DestUIDValidity: 77, DestUID: uint32(i),
			DestUIDNext: uint32(i), Flags: flags, Updated: at(i), DoneAt: at(i)})
	}
	put = append(put,
		pipeline.Entry{Key: key("Old", 1), State: pipeline.StateGone, Digest: digest(31), Size: 3031, DestMailbox: "Old",
			DestUIDValidity: 78, DestUID: 1, Flags: []string{`\Seen`}, Updated: at(31), DoneAt: at(1), GoneAt: at(31)},
		pipeline.Entry{Key: key("Old", 2), State: pipeline.StateRemoving, Digest: digest(32), Size: 3032, DestMailbox: "Old",
			DestUIDValidity: 78, DestUID: 2, Updated: at(32), DoneAt: at(2), GoneAt: at(32)},
		pipeline.Entry{Key: key("Old", 3), State: pipeline.StateRemoved, Digest: digest(33), Size: 3033, DestMailbox: "Old",
			DestUIDValidity: 78, DestUID: 3, Updated: at(33), DoneAt: at(3), GoneAt: at(33)},
		pipeline.Entry{Key: key("Moved", 9), State: pipeline.StateMoving, Digest: digest(34), Size: 3034, DestMailbox: "Old",
			DestUIDValidity: 78, DestUID: 4, DestUIDNext: 12, MoveTo: "Moved", Flags: []string{`\Answered`}, Updated: at(34), DoneAt: at(4)},
		pipeline.Entry{Key: key("INBOX", 31), State: pipeline.StatePending, Digest: digest(35), Size: 3035, DestMailbox: "INBOX",
			DestUIDValidity: 77, DestUIDNext: 31, Flags: []string{}, Updated: at(35)},
		pipeline.Entry{Key: key("INBOX", 32), State: pipeline.StateSkipped, ReasonClass: pipeline.ReasonNUL,
			Reason: "contains NUL bytes, which IMAP cannot carry", Digest: digest(36), Size: 300, Updated: at(36)},
	)
	must(l.Commit(ctx, bob, pipeline.Changes{Put: put, Folders: []pipeline.Folder{
		{Side: pipeline.SourceSide, Name: "INBOX", UIDValidity: 1234567890, UIDNext: 33, HighestModSeq: 900, Messages: 22, SyncedAt: at(40), OpName: "INBOX"},
		{Side: pipeline.SourceSide, Name: "Archive/2025", UIDValidity: 1234567890, UIDNext: 31, Messages: 10, SyncedAt: at(40), OpName: "Archive/2025"},
		{Side: pipeline.DestSide, Name: "Old", UIDValidity: 78, Op: pipeline.FolderDeleting},
	}}))
	put = nil
	for i := 1; i <= 12; i++ {
		put = append(put, pipeline.Entry{Key: fmt.Sprintf("%08X%08X", i, 1700000000), State: pipeline.StateDone,
			Digest: digest(100 + i), Size: int64(1000 + i), MessageID: fmt.Sprintf("<a%d@example.org>", i),
			DestMailbox: "INBOX", DestUIDValidity: 5, DestUID: uint32(i), DestUIDNext: uint32(i), Updated: at(i), DoneAt: at(i)})
	}
	put = append(put, pipeline.Entry{Key: "uidl-\xff\xfe-8bit", State: pipeline.StateGone, ReasonClass: pipeline.ReasonDeleted,
		Digest: digest(113), Size: 1113, DestMailbox: "INBOX", DestUIDValidity: 5, DestUID: 13, Updated: at(50), DoneAt: at(13), GoneAt: at(50)})
	must(l.Commit(ctx, alice, pipeline.Changes{Put: put, Usage: pipeline.Usage{Window: at(0), ReadBytes: 12000, WrittenBytes: 12100}}))
	for _, acct := range []pipeline.AccountID{bob, alice} {
		id, err := l.StartRun(ctx, acct, at(60))
		must(err)
		must(l.FinishRun(ctx, id, pipeline.RunRecord{Finished: at(61), Result: "ok", Copied: 12}))
	}
	for _, h := range holds {
		must(h.Release(ctx))
	}
	must(l.Close())
	fmt.Println("wrote", path)
}
