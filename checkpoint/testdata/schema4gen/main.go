// Command schema4gen wrote schema4.db and schema4.json next to this
// directory with the checkpoint package of the last schema-4 release
// (commit e5c2a4d on main), before schema 5 existed. It is kept as the
// record of how the fixture was made; it no longer builds (the API it calls
// is gone), and as a file under testdata it is never compiled.
//
//	go run ./checkpoint/testdata/schema4gen checkpoint/testdata
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/pipeline"
)

const (
	pop3Key  = "pop3://alice@pop.old.example:995 -> imap://alice@imap.new.example:993/INBOX"
	imapKey  = "imap://bob@corp.example@imap.old.example:993 -> imap://bob@new.example@imap.new.example:993/"
	oddKey   = "not an account key written by any release"
	otherKey = "pop3://carol@192.0.2.7:110 -> imap://carol@imap.new.example:993/Old mail"
)

func digest(i int) string {
	return fmt.Sprintf("%064x", i*7919+1)
}

func main() {
	dir := os.Args[1]
	ctx := context.Background()
	path := filepath.Join(dir, "schema4.db")
	_ = os.Remove(path)
	base := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	l, err := checkpoint.Open(ctx, path, &checkpoint.Options{Now: func() time.Time { return base }})
	if err != nil {
		panic(err)
	}
	at := func(min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }
	var entries []pipeline.Entry
	// POP3 account: every state, 8-bit keys, delete_after clocks.
	for i := 1; i <= 40; i++ {
		e := pipeline.Entry{Account: pop3Key, Key: fmt.Sprintf("%08X%08X", i, 1700000000), State: pipeline.StateDone,
			Digest: digest(i), Size: int64(1000 + i), MessageID: fmt.Sprintf("<m%d@example.org>", i),
			DestMailbox: "INBOX", DestUIDValidity: 1700000001, DestUID: uint32(i), DestUIDNext: uint32(i),
			Updated: at(i), DoneAt: at(i - 30*24*60)}
		entries = append(entries, e)
	}
	entries = append(entries,
		pipeline.Entry{Account: pop3Key, Key: "uidl-\xff\xfe-8bit", State: pipeline.StateDone, Digest: digest(41), Size: 2041,
			MessageID: "<8bit-\xe9@example.org>", DestMailbox: "INBOX", DestUIDValidity: 1700000001, DestUID: 41, Updated: at(41)},
		pipeline.Entry{Account: pop3Key, Key: "nul-msg", State: pipeline.StateSkipped, Reason: "contains NUL bytes, which IMAP cannot carry",
			Digest: digest(42), Size: 300, Updated: at(42)},
		pipeline.Entry{Account: pop3Key, Key: "empty-msg", State: pipeline.StateSkipped, Reason: "empty message", Digest: digest(43), Updated: at(43)},
		pipeline.Entry{Account: pop3Key, Key: "big-msg", State: pipeline.StateSkipped,
			Reason: "too big: the source announces 90000000 bytes, the limit is 52428800 (max message size); not downloaded", Size: 90000000, Updated: at(44)},
		pipeline.Entry{Account: pop3Key, Key: "toobig-server", State: pipeline.StateSkipped,
			Reason: "imapdst: APPEND refused: [TOOBIG] message too large", Digest: digest(45), Size: 70000000, Updated: at(45)},
		pipeline.Entry{Account: pop3Key, Key: "refused-msg", State: pipeline.StateFailed, Reason: "imapdst: APPEND refused: NO [OVERQUOTA] quota exceeded",
			Digest: digest(46), Size: 5000, MessageID: "<q@example.org>", DestMailbox: "INBOX", DestUIDValidity: 1700000001, DestUIDNext: 42, Updated: at(46)},
		pipeline.Entry{Account: pop3Key, Key: "pending-msg", State: pipeline.StatePending, Digest: digest(47), Size: 4700,
			MessageID: "<p@example.org>", DestMailbox: "INBOX", DestUIDValidity: 1700000001, DestUIDNext: 42, Updated: at(47)},
	)
	// IMAP account: NUL in keys, two destination folders, flags.
	for i := 1; i <= 20; i++ {
		box := "INBOX"
		if i > 12 {
			box = "Sent"
		}
		flags := []string{`\Seen`}
		if i%3 == 0 {
			flags = append(flags, `\Flagged`, "$Label1")
		}
		entries = append(entries, pipeline.Entry{Account: imapKey, Key: fmt.Sprintf("%s\x00%d\x00%d", box, 1234567890, i),
			State: pipeline.StateDone, Digest: digest(100 + i), Size: int64(5000 + i), MessageID: fmt.Sprintf("<i%d@example.org>", i),
			DestMailbox: box, DestUIDValidity: 4000000000 + uint32(len(box)), DestUID: uint32(i), DestUIDNext: uint32(i),
			Flags: flags, Updated: at(100 + i), DoneAt: at(100 + i)})
	}
	entries = append(entries,
		pipeline.Entry{Account: imapKey, Key: "Entw\xfcrfe\x0077\x003", State: pipeline.StateDone, Digest: digest(130), Size: 777,
			MessageID: "<latin1@example.org>", DestMailbox: "Entwürfe", DestUIDValidity: 9, DestUID: 3, Flags: []string{`\Draft`}, Updated: at(130)},
		pipeline.Entry{Account: imapKey, Key: "INBOX\x001234567890\x0021", State: pipeline.StatePending, Digest: digest(131), Size: 5021,
			MessageID: "<i21@example.org>", DestMailbox: "INBOX", DestUIDValidity: 4000000005, DestUIDNext: 13, Flags: []string{}, Updated: at(131)},
	)
	entries = append(entries,
		pipeline.Entry{Account: oddKey, Key: "k1", State: pipeline.StateDone, Digest: digest(200), Size: 10, DestMailbox: "INBOX", DestUID: 1, Updated: at(200)},
		pipeline.Entry{Account: otherKey, Key: "c1", State: pipeline.StateDone, Digest: digest(201), Size: 11, DestMailbox: "Old mail", DestUIDValidity: 5, DestUID: 1, Updated: at(201)},
	)
	if err := l.Put(ctx, entries); err != nil {
		panic(err)
	}
	// A message reconcile forgot and sent again, with its resent record.
	if err := l.Put(ctx, []pipeline.Entry{{Account: imapKey, Key: "INBOX\x001234567890\x0022", State: pipeline.StatePending,
		Digest: digest(132), Size: 5022, DestMailbox: "INBOX", DestUIDValidity: 4000000005, DestUIDNext: 13, Updated: at(132)}}); err != nil {
		panic(err)
	}
	if err := l.Forget(ctx, imapKey, []string{"INBOX\x001234567890\x0022"}, []pipeline.Resent{{Account: imapKey,
		Key: "INBOX\x001234567890\x0022", Mailbox: "INBOX", UIDValidity: 4000000005, FromUID: 13, Digest: digest(132), Size: 5022,
		Recorded: at(133)}}); err != nil {
		panic(err)
	}
	if err := l.Forget(ctx, pop3Key, nil, []pipeline.Resent{{Account: pop3Key, Key: "00000001" + "65F0B100", Mailbox: "INBOX",
		UIDValidity: 1700000001, FromUID: 40, Digest: digest(1), Size: 1001, Recorded: at(134)}}); err != nil {
		panic(err)
	}
	runs := []struct {
		account  string
		start    int
		rec      pipeline.RunRecord
		finished bool
	}{
		{pop3Key, 0, pipeline.RunRecord{Result: "ok", Copied: 40}, true},
		{pop3Key, 60, pipeline.RunRecord{Result: "failed", Error: "connecting to the source: dial tcp 192.0.2.1:995: i/o timeout"}, true},
		{pop3Key, 120, pipeline.RunRecord{Result: "partial", Copied: 1, Skipped: 4, Failed: 1}, true},
		{pop3Key, 180, pipeline.RunRecord{}, false},
		{imapKey, 10, pipeline.RunRecord{Result: "ok", Copied: 21}, true},
		{imapKey, 70, pipeline.RunRecord{Result: "interrupted", Error: "interrupted: context canceled", Copied: 1}, true},
		{oddKey, 20, pipeline.RunRecord{Result: "ok", Copied: 1}, true},
		{"runs only, no entries", 30, pipeline.RunRecord{Result: "failed", Error: "logging in: authentication failed"}, true},
	}
	for _, r := range runs {
		id, err := l.StartRun(ctx, r.account, at(r.start))
		if err != nil {
			panic(err)
		}
		if r.finished {
			r.rec.Finished = at(r.start + 5)
			if err := l.FinishRun(ctx, id, r.rec); err != nil {
				panic(err)
			}
		}
	}
	if err := l.Close(); err != nil {
		panic(err)
	}
	// The JSON dump: what every entry must read back as after the upgrade.
	type dumpEntry struct {
		Account, KeyHex, State, Reason, Digest, MessageIDHex, DestMailboxHex string
		Size                                                                 int64
		DestUIDValidity, DestUID, DestUIDNext                                uint32
		Flags                                                                []string
		Updated, DoneAt                                                      int64
	}
	l, err = checkpoint.Open(ctx, path, nil)
	if err != nil {
		panic(err)
	}
	var out []dumpEntry
	accounts, err := l.Accounts(ctx)
	if err != nil {
		panic(err)
	}
	for _, a := range accounts {
		m, err := l.Entries(ctx, a)
		if err != nil {
			panic(err)
		}
		for _, e := range m {
			d := dumpEntry{Account: a, KeyHex: hex.EncodeToString([]byte(e.Key)), State: e.State.String(), Reason: e.Reason,
				Digest: e.Digest, MessageIDHex: hex.EncodeToString([]byte(e.MessageID)), DestMailboxHex: hex.EncodeToString([]byte(e.DestMailbox)),
				Size: e.Size, DestUIDValidity: e.DestUIDValidity, DestUID: e.DestUID, DestUIDNext: e.DestUIDNext,
				Flags: e.Flags, Updated: e.Updated.UnixNano()}
			if !e.DoneAt.IsZero() {
				d.DoneAt = e.DoneAt.UnixNano()
			}
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Account != out[j].Account {
			return out[i].Account < out[j].Account
		}
		return out[i].KeyHex < out[j].KeyHex
	})
	if err := l.Close(); err != nil {
		panic(err)
	}
	b, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		panic(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "schema4.json"), append(b, '\n'), 0o644); err != nil {
		panic(err)
	}
}
