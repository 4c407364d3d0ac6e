package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestWriteStatusJSON: the status report is written byte for byte as
// writeJSON writes it (json.Indent's output), with every kind of value the
// report holds: empty and full arrays and maps, nested objects, omitted
// fields, times, and strings holding quotes, backslashes, brackets,
// commas, colons, control characters and UTF-8.
func TestWriteStatusJSON(t *testing.T) {
	at := time.Date(2026, 12, 6, 17, 0, 0, 123, time.UTC)
	tricky := "a \"quoted\" {name}, [x]: \\ end\\\\ -> <&> \t\n\x01 é ✓"
	reports := map[string]statusReport{
		"empty": {Command: "status", State: "/tmp/x.db", Accounts: []statusAccount{}},
		"full": {Command: "status", State: tricky, Size: 1 << 40, Entries: 1000000, Accounts: []statusAccount{
			{Account: "never", NeverRun: true, SkipReasons: map[string]int{}, SkippedMessages: []statusMessage{}, FailedMessages: []statusMessage{}},
			{Name: tricky, Account: "pop3://u@h:995 -> imap://u@h:993/INBOX", Done: 3, Skipped: 2, Failed: 1, Gone: 4, Removed: 1, Mirroring: 2,
				Bytes: 12345, SkipReasons: map[string]int{"too big": 1, tricky: 1},
				SkippedMessages: []statusMessage{{Key: "k1", Reason: "too big"}, {Key: tricky, Reason: tricky}},
				FailedMessages:  []statusMessage{{Key: "\"", Reason: "\\"}},
				LastRun:         &statusRun{Started: at, Finished: &at, Result: "partial", Error: tricky, Copied: 3, Skipped: 2, Failed: 1},
				Paused:          true, PausedUntil: &at, PausedReason: "quota", LastSuccess: &at, LastError: &statusLastError{Time: at, Error: "x"},
				DeleteAfter: "30d", DeleteWaiting: 2, NextDeleteDue: &at},
		}, Fleet: &statusFleet{Pass: 2, PassStarted: &at, RunningAccounts: []statusFleetRunning{}, FailedAccounts: []statusFleetFailed{{Account: "a", Error: "e"}},
			Workers: []statusWorker{{ID: "h:1:x", Started: at, Heartbeat: at, Silent: "1s"}}}},
	}
	for name, rep := range reports {
		var want, got bytes.Buffer
		if err := writeJSON(&want, rep); err != nil {
			t.Fatal(err)
		}
		if err := writeStatusJSON(&got, rep); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%s: writeStatusJSON wrote\n%s\nwant (writeJSON)\n%s", name, got.String(), want.String())
		}
	}
}

// FuzzIndentJSON: for any JSON document, compacted as encoding/json
// writes it, indentJSON writes what json.Indent writes.
func FuzzIndentJSON(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `{"a":[1,{},[]],"b":{"c":"d\"}]:,"}}`, `"x\\"`, `[null,true,false,-1.5e3]`, `{"":""}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var compact bytes.Buffer
		if json.Compact(&compact, b) != nil {
			return
		}
		compact.WriteByte('\n')
		var want bytes.Buffer
		if err := json.Indent(&want, compact.Bytes(), "", "  "); err != nil {
			t.Fatal(err)
		}
		if got := indentJSON(nil, compact.Bytes()); string(got) != want.String() {
			t.Errorf("indentJSON(%q) = %q, want %q", compact.Bytes(), got, want.Bytes())
		}
	})
}
