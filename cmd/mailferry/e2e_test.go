package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/faultproxy"
)

// fidelityMessages are the shapes that break POP3 and IMAP tools.
func fidelityMessages() map[string][]byte {
	long := strings.Repeat("0123456789", 10_000) // one 100 KB line
	var att bytes.Buffer
	att.WriteString("From: big@example.test\r\nSubject: 20 MB attachment\r\nMessage-ID: <big@example.test>\r\n" +
		"Date: Wed, 04 Jan 2017 08:00:00 -0500\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	rng := rand.New(rand.NewSource(1))
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	line := make([]byte, 76)
	for att.Len() < 20<<20 {
		for i := range line {
			line[i] = b64[rng.Intn(64)]
		}
		att.Write(line)
		att.WriteString("\r\n")
	}
	att.WriteString("--b1--\r\n")
	return map[string][]byte{
		"dots": []byte("Received: from a by b; Tue, 3 Jun 2008 10:20:30 +0200 (CEST)\r\nMessage-ID: <dots@example.test>\r\nSubject: dots\r\n\r\n" +
			".leading dot\r\n..two dots\r\n.\r\nafter a line that is only a dot\r\n...\r\n"),
		"long-line": []byte("Message-ID: <long@example.test>\r\nDate: Thu, 01 Feb 2018 12:00:00 +0000\r\nSubject: long line\r\n\r\n" + long + "\r\n"),
		"utf8": []byte("Message-ID: <utf8@example.test>\r\nSubject: Grüße aus Köln ✓ \xe4\xf6\xfc (latin-1 bytes)\r\nFrom: Jörg <j@example.test>\r\n" +
			"Date: Fri, 02 Mar 2018 09:30:00 +0100\r\n\r\n8-bit body: \xff\xfe\x80 and ünïcödé\r\n"),
		"bare-lf":        []byte("Message-ID: <lf@example.test>\nSubject: stored with bare LF\nDate: Sat, 03 Mar 2018 10:00:00 +0000\n\nline one\nline two\n"),
		"no-message-id":  []byte("Subject: no message id\r\nDate: Sun, 04 Mar 2018 11:00:00 +0000\r\n\r\nbody\r\n"),
		"dup-id-1":       []byte("Message-ID: <dup@example.test>\r\nSubject: dup one\r\nDate: Mon, 05 Mar 2018 11:00:00 +0000\r\n\r\nfirst\r\n"),
		"dup-id-2":       []byte("Message-ID: <dup@example.test>\r\nSubject: dup two\r\nDate: Mon, 05 Mar 2018 11:00:00 +0000\r\n\r\nsecond, longer\r\n"),
		"identical-1":    []byte("Message-ID: <same@example.test>\r\nSubject: identical\r\n\r\nsame bytes\r\n"),
		"identical-2":    []byte("Message-ID: <same@example.test>\r\nSubject: identical\r\n\r\nsame bytes\r\n"),
		"no-final-crlf":  []byte("Message-ID: <nofinal@example.test>\r\nSubject: no final newline\r\n\r\nends without CRLF"),
		"20mb":           att.Bytes(),
		"no-date-at-all": []byte("Subject: no dates\r\n\r\nnothing to date me\r\n"),
	}
}

func TestE2ECopyFidelityAndRerun(t *testing.T) {
	p := startPair(t)
	msgs := fidelityMessages()
	var all [][]byte
	for _, m := range msgs {
		all = append(all, m)
	}
	seed(t, p, all)
	served := sourceServed(t, p)
	if len(served) != len(msgs) {
		t.Fatalf("source serves %d messages, want %d", len(served), len(msgs))
	}

	start := time.Now().Add(-time.Second)
	r := runInProcess(t, p.getenv, p.copyArgs()...)
	end := time.Now().Add(time.Second)
	if r.code != exitOK {
		t.Fatalf("copy exited %d\nstderr:\n%s\nstdout:\n%s", r.code, r.stderr, r.stdout)
	}
	acct := r.report.Accounts[0]
	if acct.Copied != len(msgs) || acct.Listed != len(msgs) {
		t.Fatalf("report: copied %d of %d listed, want %d", acct.Copied, acct.Listed, len(msgs))
	}
	got := destMessages(t, p, "INBOX")
	assertSameMultiset(t, served, destBodies(got))

	// Internal dates per the default policy: newest Received:, then Date:, then now.
	wantDates := map[string]time.Time{
		"<dots@example.test>": time.Date(2008, 6, 3, 10, 20, 30, 0, time.FixedZone("", 2*3600)),
		"<long@example.test>": time.Date(2018, 2, 1, 12, 0, 0, 0, time.UTC),
		"<big@example.test>":  time.Date(2017, 1, 4, 8, 0, 0, 0, time.FixedZone("", -5*3600)),
	}
	for _, m := range got {
		for id, want := range wantDates {
			if bytes.Contains(m.body, []byte("Message-ID: "+id)) {
				if !m.date.Equal(want) {
					t.Errorf("INTERNALDATE of %s = %v, want %v", id, m.date, want)
				}
				// The instant is what counts: Dovecot's maildir keeps the
				// internal date as a file time and answers in its own zone.
			}
		}
		if bytes.Contains(m.body, []byte("Subject: no dates")) && (m.date.Before(start) || m.date.After(end)) {
			t.Errorf("INTERNALDATE of an undated message = %v, want the time of transfer", m.date)
		}
	}
	if ds := r.report.Totals.DateSources; ds["received"] != 1 || ds["date"] != 7 || ds["now"] != 4 {
		t.Errorf("date sources = %v, want received 1, date 7, now 4", ds)
	}

	// A second run moves nothing, says so, and quickly.
	t0 := time.Now()
	r = runInProcess(t, p.getenv, append(p.copyArgs()[:len(p.copyArgs())-3], "--progress", "none")...)
	if r.code != exitOK {
		t.Fatalf("re-run exited %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "nothing to do") {
		t.Errorf("re-run summary does not say there was nothing to do:\n%s", r.stdout)
	}
	t.Logf("re-run took %v", time.Since(t0))
	if n := len(destMessages(t, p, "INBOX")); n != len(msgs) {
		t.Fatalf("destination holds %d messages after a re-run, want %d", n, len(msgs))
	}
}

// TestE2ECrashResume kills the process at each step of the exactly-once
// protocol, then runs again: the destination must end with exactly the
// source's messages, once each.
func TestE2ECrashResume(t *testing.T) {
	points := []string{"pending:2", "appended:1", "appended:3", "committed:2"}
	for _, ledger := range crashLedgers {
		for i, point := range points {
			if !onLedger(ledger, i == 0) {
				continue
			}
			t.Run(ledgerName(ledger, point), func(t *testing.T) { testCrashResume(t, ledger, point) })
		}
	}
}

func testCrashResume(t *testing.T, ledger, point string) {
	p := startPair(t)
	onPostgres(t, p, ledger)
	seed(t, p, simpleMessages(60))
	served := sourceServed(t, p)
	args := p.copyArgs("--batch-messages", "10")
	r := runSubprocess(t, p, []string{"MAILFERRY_TEST_CRASHPOINT=" + point}, args...)
	if r.code != -1 || !strings.Contains(r.stderr, "crashpoint") {
		t.Fatalf("the run was not killed at %s: exit %d\n%s", point, r.code, r.stderr)
	}
	before := len(destMessages(t, p, "INBOX"))
	r = runSubprocess(t, p, nil, args...)
	if r.code != exitOK {
		t.Fatalf("resume exited %d:\n%s", r.code, r.stderr)
	}
	assertSameMultiset(t, served, destBodies(destMessages(t, p, "INBOX")))
	a := r.report.Accounts[0]
	t.Logf("killed at %s with %d on the destination; resume: copied %d, already done %d, reconciled %d, resent %d",
		point, before, a.Copied, a.AlreadyDone, a.Reconciled, a.Resent)
	if strings.HasPrefix(point, "appended") && a.Reconciled == 0 {
		t.Errorf("killed after APPEND's OK, yet the resume reconciled nothing")
	}
}

// TestE2ERandomKills kills the process at seeded random moments, six
// times in a row, then lets a run complete. Each killed run copies at most
// five batches of 7, so all six kills land before the 300 messages are
// done.
func TestE2ERandomKills(t *testing.T) {
	for _, ledger := range crashLedgers {
		if !onLedger(ledger, false) {
			continue
		}
		t.Run(ledger, func(t *testing.T) { testRandomKills(t, ledger) })
	}
}

func testRandomKills(t *testing.T, ledger string) {
	seed0 := time.Now().UnixNano()
	if s := os.Getenv("MAILFERRY_TEST_SEED"); s != "" {
		fmt.Sscan(s, &seed0)
	}
	t.Logf("seed %d (set MAILFERRY_TEST_SEED to replay)", seed0)
	rng := rand.New(rand.NewSource(seed0))
	p := startPair(t)
	onPostgres(t, p, ledger)
	seed(t, p, simpleMessages(300))
	served := sourceServed(t, p)
	args := p.copyArgs("--batch-messages", "7")
	points := []string{"pending", "appended", "committed"}
	for i := 0; i < 6; i++ {
		point := fmt.Sprintf("%s:%d", points[rng.Intn(len(points))], 1+rng.Intn(5))
		r := runSubprocess(t, p, []string{"MAILFERRY_TEST_CRASHPOINT=" + point}, args...)
		if r.code != -1 || !strings.Contains(r.stderr, "crashpoint "+point) {
			t.Fatalf("round %d: not killed at %s: exit %d\n%s", i, point, r.code, r.stderr)
		}
	}
	r := runSubprocess(t, p, nil, args...)
	if r.code != exitOK {
		t.Fatalf("final run exited %d:\n%s", r.code, r.stderr)
	}
	assertSameMultiset(t, served, destBodies(destMessages(t, p, "INBOX")))
}

func TestE2EDeleteSource(t *testing.T) {
	for _, ledger := range crashLedgers {
		if onLedger(ledger, false) {
			t.Run(ledger, func(t *testing.T) { testDeleteSource(t, ledger) })
		}
	}
}

func testDeleteSource(t *testing.T, ledger string) {
	p := startPair(t)
	onPostgres(t, p, ledger)
	seed(t, p, simpleMessages(40))
	served := sourceServed(t, p)
	args := p.copyArgs("--batch-messages", "10", "--delete-source")

	// Killed after the deletions were sent but before QUIT: POP3 commits
	// nothing (RFC 1939 §6), so the source still has everything.
	r := runSubprocess(t, p, []string{"MAILFERRY_TEST_CRASHPOINT=deleted:1"}, args...)
	if r.code != -1 {
		t.Fatalf("the run was not killed at deleted:1: exit %d\n%s", r.code, r.stderr)
	}
	if n := len(sourceServed(t, p)); n != 40 {
		t.Fatalf("the source has %d messages after a run killed before QUIT, want 40", n)
	}
	// The first deletions go out once a page's copies are committed, which
	// may be before the last of the 40 is: the destination holds source
	// messages, none twice; the complete run below must bring the rest.
	left := map[string]int{}
	for _, d := range digests(served) {
		left[d]++
	}
	for _, d := range digests(destBodies(destMessages(t, p, "INBOX"))) {
		if left[d]--; left[d] < 0 {
			t.Fatalf("after the kill at deleted:1 the destination holds a message twice or one the source never had")
		}
	}

	// Killed in the middle of copying: nothing is deleted.
	p2 := startPair(t)
	onPostgres(t, p2, ledger)
	seed(t, p2, simpleMessages(40))
	r = runSubprocess(t, p2, []string{"MAILFERRY_TEST_CRASHPOINT=committed:2"}, p2.copyArgs("--batch-messages", "10", "--delete-source")...)
	if r.code != -1 {
		t.Fatalf("the run was not killed at committed:2: exit %d", r.code)
	}
	if n := len(sourceServed(t, p2)); n != 40 {
		t.Fatalf("an aborted run deleted %d messages at the source", 40-n)
	}

	// A complete run empties the source.
	r = runSubprocess(t, p, nil, args...)
	if r.code != exitOK {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	if n := len(sourceServed(t, p)); n != 0 {
		t.Fatalf("the source still has %d messages after --delete-source", n)
	}
	if r.report.Accounts[0].Deleted != 40 {
		t.Errorf("report says %d deleted, want 40", r.report.Accounts[0].Deleted)
	}
	assertSameMultiset(t, served, destBodies(destMessages(t, p, "INBOX")))
}

// TestE2ECorpus sends every message of the real-world corpus through
// Dovecot POP3 → mailferry → Dovecot IMAP and compares the bytes.
func TestE2ECorpus(t *testing.T) {
	dir := os.Getenv("MAILFERRY_CORPUS")
	if dir == "" {
		// The corpus is not part of the repository: scripts/test.sh sets
		// MAILFERRY_CORPUS when ../shared/corpus/real exists beside the
		// checkout, and only then can this test run (a clone elsewhere
		// has no corpus to read).
		t.Skip("MAILFERRY_CORPUS is not set (scripts/test.sh sets it when ../shared/corpus/real exists)")
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("MAILFERRY_CORPUS=%s holds no .eml files (%v)", dir, err)
	}
	p := startPair(t)
	var msgs [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	seed(t, p, msgs)
	served := sourceServed(t, p)
	r := runInProcess(t, p.getenv, p.copyArgs()...)
	if r.code != exitOK && r.code != exitPartial {
		t.Fatalf("copy exited %d:\n%s", r.code, r.stderr)
	}
	a := r.report.Accounts[0]
	t.Logf("corpus: %d files, copied %d, skipped %d %v", len(files), a.Copied, a.Skipped, a.Skips)
	got := destBodies(destMessages(t, p, "INBOX"))
	// Dovecot keeps an appended NUL byte but serves it as 0x80 in BODY[]:
	// such messages are compared as BINARY.PEEK[] serves them (RFC 3516).
	// Only those: BINARY[] of a whole message also decodes the parts.
	servedSet := map[string]bool{}
	for _, d := range digests(served) {
		servedSet[d] = true
	}
	var with80 []uint32
	for i := range got {
		if bytes.IndexByte(got[i], 0x80) >= 0 && !servedSet[digests([][]byte{got[i]})[0]] {
			with80 = append(with80, uint32(i+1))
		}
	}
	for seq, b := range binaryBodiesOf(t, p.dst, "alice", dstPassword, "INBOX", with80) {
		got[seq-1] = b
	}
	// A message with NUL bytes goes as a literal8 (the destination has
	// BINARY) unless a part of it is declared binary: servers re-encode
	// such parts (Dovecot as base64), so it is skipped with the reason.
	binaryPart := regexp.MustCompile(`(?im)^content-transfer-encoding:[ \t]*binary[ \t]*\r?$`)
	withNUL := 0
	for _, m := range served {
		if bytes.IndexByte(m, 0) >= 0 && binaryPart.Match(m) {
			withNUL++
		}
	}
	if a.Skipped != withNUL {
		t.Errorf("skipped %d messages, want the %d with NUL bytes in a part declared binary: %v", a.Skipped, withNUL, a.Skips)
	}
	for _, sk := range a.Skips {
		if !strings.Contains(sk.Reason, "NUL") {
			t.Errorf("skip of %s for %q, want only NUL-byte skips", sk.Key, sk.Reason)
		}
	}
	if wantCode := map[bool]int{true: exitPartial, false: exitOK}[withNUL > 0]; r.code != wantCode {
		t.Errorf("exit status %d, want %d", r.code, wantCode)
	}
	if a.Copied+a.Skipped != len(served) || len(got) != a.Copied {
		t.Fatalf("copied %d + skipped %d != %d served; destination holds %d", a.Copied, a.Skipped, len(served), len(got))
	}
	// Every destination message is, byte for byte, one the source served.
	want := map[string][]byte{}
	for _, m := range served {
		want[digests([][]byte{m})[0]] = m
	}
	for _, m := range got {
		if _, ok := want[digests([][]byte{m})[0]]; !ok {
			t.Errorf("destination holds a message the source never served: %s", closestDiff(m, served))
		}
	}
}

// binaryBodiesOf fetches BINARY.PEEK[] of the messages seqs of a mailbox,
// one at a time: a message Dovecot cannot decode (an unknown
// Content-Transfer-Encoding) is a NO for its own FETCH only, and keeps
// its BODY[] (not in the map).
func binaryBodiesOf(t *testing.T, s *dovecot.Server, user, password, mailbox string, seqs []uint32) map[uint32][]byte {
	t.Helper()
	out := map[uint32][]byte{}
	if len(seqs) == 0 {
		return out
	}
	c, err := imapclient.DialTLS(s.IMAPSAddr(), &imapclient.Options{TLSConfig: s.TLSConfig()})
	if err != nil {
		t.Fatalf("dialing %s: %v", s.Name(), err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, n := range seqs {
		msgs, err := c.Fetch(imap.SeqSetNum(n), &imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{{Peek: true}}}).Collect()
		if err != nil {
			continue
		}
		for _, m := range msgs {
			for _, b := range m.BinarySection {
				out[n] = b.Bytes
			}
		}
	}
	return out
}

// closestDiff describes how m differs from the served message that shares
// the longest prefix with it.
func closestDiff(m []byte, served [][]byte) string {
	best, bestLen := -1, -1
	for i, s := range served {
		n := 0
		for n < len(s) && n < len(m) && s[n] == m[n] {
			n++
		}
		if n > bestLen {
			best, bestLen = i, n
		}
	}
	s := served[best]
	lo := max(0, bestLen-40)
	return fmt.Sprintf("%d bytes vs %d served; first difference at %d: got %q, served %q",
		len(m), len(s), bestLen, m[lo:min(len(m), bestLen+40)], s[lo:min(len(s), bestLen+40)])
}

func TestE2EWrongPasswordAndSecrecy(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(3))
	wrong := "Wr0ng-Pa55word-XYZ"
	getenv := func(k string) string {
		if k == "MAILFERRY_SOURCE_PASSWORD" {
			return wrong
		}
		return p.getenv(k)
	}
	r := runInProcess(t, getenv, p.copyArgs("--trace")...)
	if r.code != exitFatal {
		t.Fatalf("wrong password: exit %d, want %d\n%s", r.code, exitFatal, r.stderr)
	}
	if r.report.Accounts[0].Attempts != 1 {
		t.Errorf("an authentication failure was retried %d times", r.report.Accounts[0].Attempts)
	}
	if !strings.Contains(strings.ToLower(r.stdout+r.stderr), "auth") {
		t.Errorf("the error does not mention authentication:\n%s", r.stdout)
	}
	// A successful traced run, then look for the passwords everywhere.
	r2 := runInProcess(t, p.getenv, p.copyArgs("--trace", "--report", filepath.Join(p.dir, "report.json"))...)
	if r2.code != exitOK {
		t.Fatalf("exit %d:\n%s", r2.code, r2.stderr)
	}
	if !strings.Contains(r2.stderr, "trace:") {
		t.Fatal("--trace printed no trace")
	}
	outputs := map[string]string{"stdout": r.stdout + r2.stdout, "stderr": r.stderr + r2.stderr}
	for _, f := range []string{p.state, p.state + "-wal", filepath.Join(p.dir, "report.json")} {
		b, _ := os.ReadFile(f)
		outputs[f] = string(b)
	}
	for name, out := range outputs {
		for _, pw := range []string{wrong, srcPassword, dstPassword} {
			if strings.Contains(out, pw) {
				t.Errorf("%s contains a password", name)
			}
		}
	}
	if info, err := os.Stat(p.state); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("state file mode = %v (%v), want 0600", info.Mode().Perm(), err)
	}
}

// TestE2EDryRun reads everything and writes nothing: no destination
// message, no checkpoint file, no deletion.
func TestE2EDryRun(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(7))
	r := runInProcess(t, p.getenv, p.copyArgs("--dry-run", "--delete-source")...)
	if r.code != exitOK {
		t.Fatalf("dry run: exit %d\n%s", r.code, r.stderr)
	}
	if a := r.report.Accounts[0]; !r.report.DryRun || a.Copied != 7 {
		t.Errorf("dry run report: dry_run=%v, would copy %d; want true, 7", r.report.DryRun, a.Copied)
	}
	if n := len(destMessages(t, p, "INBOX")); n != 0 {
		t.Errorf("dry run appended %d messages", n)
	}
	if n := len(sourceServed(t, p)); n != 7 {
		t.Errorf("dry run deleted %d source messages", 7-n)
	}
	if _, err := os.Stat(p.state); !os.IsNotExist(err) {
		t.Errorf("dry run created the checkpoint file (stat: %v)", err)
	}
}

// TestE2EInterrupt sends SIGINT mid-run while the source is slow: the
// download in progress is abandoned, the batches sent are committed, the
// report is printed with exit status 130, and a re-run copies exactly the
// rest. The source is read through a proxy that forwards its replies
// at 8 KB/s, so the 400 messages (about 100 KB) take over ten seconds and
// the signal, sent once 20 are on the destination, lands mid-run.
func TestE2EInterrupt(t *testing.T) {
	const n = 400
	p := startPair(t)
	seed(t, p, simpleMessages(n))
	served := sourceServed(t, p)
	proxy := startProxy(t, p.src.POP3SAddr())
	if err := proxy.SetPlan(faultproxy.Plan{Faults: []faultproxy.Fault{
		{Kind: faultproxy.Slow, Dir: faultproxy.ServerToClient, BytesPerSecond: 8 << 10}}}); err != nil {
		t.Fatal(err)
	}
	// The ledger knows the account by its source address: the re-run goes
	// through the same proxy, at full speed.
	args := []string{"copy", "pop3s://alice@" + proxy.Addr(), p.dstURL(), "--tls-ca", p.src.CAFile(),
		"--state", p.state, "--json", "--progress", "none", "--batch-messages", "5"}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MAILFERRY_E2E_AS_MAIN=1",
		"MAILFERRY_SOURCE_PASSWORD="+srcPassword, "MAILFERRY_DEST_PASSWORD="+dstPassword)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once some messages are on the destination.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if n, _ := p.dst.MailboxCount("alice", "INBOX"); n >= 20 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("after 60 s fewer than 20 messages are on the destination\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	var rep report
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		t.Fatalf("no JSON report after SIGINT (exit %d): %v\n%s", code, jerr, stderr.String())
	}
	copied := rep.Totals.Copied
	if code != exitInterrupted || rep.ExitCode != exitInterrupted || copied < 20 || copied >= n {
		t.Fatalf("after SIGINT: exit %d, report exit_code %d, copied %d; want %d, %d and from 20 to %d: the run was not interrupted mid-run\n%s",
			code, rep.ExitCode, copied, exitInterrupted, exitInterrupted, n-1, stderr.String())
	}
	// The batches in flight were finished and committed: the destination
	// holds exactly the copied messages, and the rest are not yet copied,
	// not failed.
	onDest := len(destMessages(t, p, "INBOX"))
	if onDest != copied || rep.Totals.Failed != 0 || rep.Totals.NotYetCopied != n-copied {
		t.Errorf("after SIGINT the destination holds %d messages; the report says %d copied, %d failed, %d not yet copied; want %d, 0, %d",
			onDest, copied, rep.Totals.Failed, rep.Totals.NotYetCopied, onDest, n-onDest)
	}
	t.Logf("SIGINT: exit %d with %d of %d copied, %d on the destination", code, copied, n, onDest)

	if err := proxy.SetPlan(faultproxy.Plan{}); err != nil {
		t.Fatal(err)
	}
	r := runSubprocess(t, p, nil, args...)
	tot := r.report.Totals
	if r.code != exitOK || tot.Copied != n-onDest || tot.AlreadyDone+tot.Reconciled != onDest {
		t.Fatalf("re-run after SIGINT: exit %d, copied %d, already done %d, reconciled %d; want %d, %d, and %d done or reconciled\n%s",
			r.code, tot.Copied, tot.AlreadyDone, tot.Reconciled, exitOK, n-onDest, onDest, r.stderr)
	}
	assertSameMultiset(t, served, destBodies(destMessages(t, p, "INBOX")))
}

// TestE2EOverlappingRuns starts two runs on the same account at once, as
// overlapping cron jobs would: with --on-locked wait the second waits for
// the first and finds nothing left; with skip it says so and exits 0.
// Either way every message is on the destination exactly once.
func TestE2EOverlappingRuns(t *testing.T) {
	for _, mode := range []string{"wait", "skip"} {
		t.Run(mode, func(t *testing.T) {
			p := startPair(t)
			seed(t, p, simpleMessages(300))
			served := sourceServed(t, p)
			args := p.copyArgs("--batch-messages", "5", "--on-locked", mode)
			results := make(chan runResult, 2)
			for i := 0; i < 2; i++ {
				go func() { results <- runSubprocess(t, p, nil, args...) }()
			}
			a, b := <-results, <-results
			if a.code != exitOK || b.code != exitOK {
				t.Fatalf("exits %d and %d, want 0 and 0\n%s\n%s", a.code, b.code, a.stderr, b.stderr)
			}
			copied := a.report.Totals.Copied + b.report.Totals.Copied
			if copied != 300 {
				t.Errorf("the two runs copied %d + %d, want 300 in all", a.report.Totals.Copied, b.report.Totals.Copied)
			}
			if mode == "skip" && !a.report.Accounts[0].Locked && !b.report.Accounts[0].Locked {
				t.Error("neither run reports that it skipped a locked account")
			}
			assertSameMultiset(t, served, destBodies(destMessages(t, p, "INBOX")))
		})
	}
}
