package main

import (
	"bytes"
	"math/rand"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// TestFaultBadInputPOP3 sends odd messages from Dovecot's POP3 to
// Dovecot's IMAP: one huge line with no line end inside (spooled to disk,
// above --spool-memory), a body with no header section, one that starts
// with an empty line, 8-bit garbage, and a NUL byte. Each case names its
// outcome: the first five are copied exactly (as the source serves them);
// the one with a NUL byte, which IMAP cannot carry, is skipped with that
// reason and the run goes on (exit 3).
//
// The huge line is 8 MB by default; MAILFERRY_BADINPUT_HUGE=1 makes it
// 50 MB (about 20 s more).
func TestFaultBadInputPOP3(t *testing.T) {
	huge := 8 << 20
	if os.Getenv("MAILFERRY_BADINPUT_HUGE") == "1" {
		huge = 50 << 20
	}
	rng := rand.New(rand.NewSource(5))
	garbage := make([]byte, 3000)
	for i := range garbage {
		garbage[i] = byte(0x80 + rng.Intn(0x80)) // 8-bit, never NUL, CR or LF
		if i%70 == 69 {
			garbage[i] = '\n'
		}
	}
	single := make([]byte, 0, huge+64)
	single = append(single, "Subject: one line\r\n\r\n"...)
	for len(single) < huge {
		single = append(single, "abcdefghijklmnopqrstuvwxyz0123456789"...)
	}
	single = append(single, "\r\n"...)
	msgs := []struct {
		name       string
		body       []byte
		skipReason string // "": copied exactly
	}{
		{"huge single line", single, ""},
		{"no header section", []byte("Just a body, no header at all.\r\nA second line.\r\n"), ""},
		{"starts with an empty line", []byte("\r\nthe header section is empty\r\n"), ""},
		{"8-bit garbage", append(append([]byte("Subject: \xff\xfe garbage \xc3\x28\r\n\r\n"), garbage...), "\r\n"...), ""},
		{"8-bit header only", []byte("X-Junk: \x80\x81\x82\xfe\xff\r\n"), ""},
		// Dovecot offers BINARY (RFC 3516): a NUL byte goes as a literal8
		// and arrives exactly (TestBinaryNUL has the server without it).
		{"NUL byte", []byte("Subject: has a NUL\r\n\r\nbefore\x00after\r\n"), ""},
	}
	e := oneUserEnv(t, dovecot.Options{})
	var seeded [][]byte
	wantCopied, wantSkipped := 0, 0
	for _, m := range msgs {
		seeded = append(seeded, m.body)
		if m.skipReason == "" {
			wantCopied++
		} else {
			wantSkipped++
		}
	}
	served := seedUser(t, e, "u", seeded)
	if len(served) != len(msgs) {
		t.Fatalf("the source serves %d messages, %d were seeded", len(served), len(msgs))
	}
	args := e.args("pop3s://u@"+e.src.POP3SAddr(), "imaps://u@"+e.dst.IMAPSAddr(),
		"--spool-memory", "256KB", "--batch-messages", "2")
	start := time.Now()
	var r runResult
	grown := heapGrowth(func() { r = runInProcess(t, passwords, args...) })
	t.Logf("%d messages, the largest %d bytes: %v, heap grew by at most %d KB during the run",
		len(served), len(single), time.Since(start).Round(time.Millisecond), grown>>10)
	// Messages above --spool-memory go to disk, and the POP3 reader does
	// not hold a line: the heap must not grow by the size of the message.
	if grown > uint64(len(single))/2 {
		t.Errorf("the heap grew by %d KB copying a %d KB message with --spool-memory 256KB", grown>>10, len(single)>>10)
	}
	if len(r.report.Accounts) != 1 {
		t.Fatalf("exit %d with no account report\n%s", r.code, r.stderr)
	}
	a := r.report.Accounts[0]
	if r.code != exitOK || a.Copied != wantCopied || a.Skipped != wantSkipped || a.Failed != 0 {
		t.Fatalf("bad input: exit %d, copied %d, skipped %d, failed %d (error %q); want %d, %d, %d, 0\n%s",
			r.code, a.Copied, a.Skipped, a.Failed, a.Error, exitOK, wantCopied, wantSkipped, r.stderr)
	}
	got := imapBodies(t, e.dst, "u", dstPassword, "INBOX")
	if len(got) != wantCopied {
		t.Errorf("the destination holds %d messages, want %d", len(got), wantCopied)
	}
	binary := imapBinaryBodies(t, e.dst, "u", dstPassword, "INBOX")
	for _, m := range msgs {
		copied := 0
		in := got
		if bytes.IndexByte(m.body, 0) >= 0 {
			in = binary
		}
		for _, g := range in {
			if bytes.Equal(g, crlf(m.body)) {
				copied++
			}
		}
		want := 1
		if m.skipReason != "" {
			want = 0
		}
		if copied != want {
			t.Errorf("%s: at the destination exactly as sent %d times, want %d", m.name, copied, want)
		}
	}
	// A second run has nothing to do.
	r = runInProcess(t, passwords, args...)
	if a2 := r.report.Accounts[0]; r.code != exitOK || a2.Copied != 0 || a2.AlreadyDone != wantCopied || a2.Skipped != 0 || a2.SkippedBefore != wantSkipped {
		t.Errorf("second run: exit %d, copied %d, already done %d, skipped %d, before %d; want 0, 0, %d, 0, %d",
			r.code, a2.Copied, a2.AlreadyDone, a2.Skipped, a2.SkippedBefore, wantCopied, wantSkipped)
	}
}

// heapGrowth runs f and returns by how much the heap grew above what it
// was before, at the highest of samples taken every few milliseconds. The
// collector runs often meanwhile (GOGC 5), so the heap is close to what is
// live.
func heapGrowth(f func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	done := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		var top uint64
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			top = max(top, ms.HeapAlloc)
			select {
			case <-done:
				peak <- top
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(done)
	top := <-peak
	if top < base {
		return 0
	}
	return top - base
}
