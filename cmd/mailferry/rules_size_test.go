package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/pop3fake"
)

// sizeLimitBytes is --max-message-size in the size tests.
const sizeLimitBytes = 10000

// sizedBody is a message of exactly n bytes with CRLF line ends and a
// Message-ID naming it.
func sizedBody(name string, n int) []byte {
	b := []byte(fmt.Sprintf("Message-ID: <%s@example.test>\r\nSubject: %s\r\n\r\n", name, name))
	for len(b) < n {
		line := min(70, n-len(b)-2)
		if line < 0 {
			b = append(b, 'x')
			continue
		}
		b = append(b, strings.Repeat("y", line)...)
		b = append(b, "\r\n"...)
	}
	return b[:n]
}

// sizeCase is a message of the size tests: its real size, what the source
// announces, and what the copy must do with it.
type sizeCase struct {
	name      string
	size      int
	announced int64  // 0: the real size
	reason    string // the skip reason's tell; "" for a copied message
	fetched   bool   // the source is asked for its body
}

var sizeCases = []sizeCase{
	{name: "small", size: 300, fetched: true},
	{name: "huge", size: 500, announced: 1 << 40, reason: "not downloaded"},
	{name: "liar", size: 50000, announced: 100, reason: "download stopped", fetched: true},
	{name: "exact", size: sizeLimitBytes, fetched: true},
}

// checkSizeRun checks a copy with --max-message-size sizeLimitBytes:
// exactly the fitting messages on the destination, the others skipped with
// their reasons in the report. isCase says whether a source key is
// sizeCases[i]'s.
func checkSizeRun(t *testing.T, r runResult, e *faultEnv, user string, isCase func(key string, i int) bool) {
	t.Helper()
	if r.code != exitPartial {
		t.Fatalf("copy: exit %d, want %d (two messages skipped)\n%s", r.code, exitPartial, r.stderr)
	}
	a := r.report.Accounts[0]
	reasons := map[string]string{}
	for _, s := range a.Skips {
		reasons[s.Key] = s.Reason
	}
	var want [][]byte
	for i, c := range sizeCases {
		var reason string
		for k, why := range reasons {
			if isCase(k, i) {
				reason = why
			}
		}
		if c.reason == "" {
			want = append(want, sizedBody(c.name, c.size))
			continue
		}
		if !strings.Contains(reason, "too big") || !strings.Contains(reason, c.reason) {
			t.Errorf("%s: skip reason %q, want a too-big reason saying %q (skips %v)", c.name, reason, c.reason, a.Skips)
		}
	}
	if a.Copied != 2 || a.Skipped != 2 {
		t.Errorf("copied %d, skipped %d; want 2 and 2", a.Copied, a.Skipped)
	}
	assertSameMultiset(t, want, imapBodies(t, e.dst, user, dstPassword, "INBOX"))
}

// TestE2ESizeLimitPOP3: a POP3 source whose LIST announces a huge size for
// one message: it is skipped without a RETR; one announced small but
// large is stopped while read, nothing of it appended; one of exactly the
// limit is copied. plan predicts the first skip the same way.
func TestE2ESizeLimitPOP3(t *testing.T) {
	e := startFaultEnv(t, []string{"u"}, dovecot.Options{})
	var msgs []pop3fake.Message
	for _, c := range sizeCases {
		msgs = append(msgs, pop3fake.Message{UIDL: "uidl-" + c.name, Body: sizedBody(c.name, c.size), ListSize: int(c.announced)})
	}
	src := pop3fake.NewStarted(t, pop3fake.Options{Messages: msgs, User: "u", Password: srcPassword, Pipelining: true})
	srcURL := "pop3://u@" + src.Addr() + "?tls=none"
	dstURL := "imaps://u@" + e.dst.IMAPSAddr()

	p := runCmd(t, runPlan, passwords, srcURL, dstURL, "--allow-plaintext", "--tls-ca", e.src.CAFile(),
		"--state", e.dir+"/plan.db", "--max-message-size", fmt.Sprint(sizeLimitBytes), "--json")
	var plan planReport
	if err := json.Unmarshal([]byte(p.stdout), &plan); err != nil || len(plan.Accounts) != 1 {
		t.Fatalf("plan: exit %d, report does not parse (%v)\n%s%s", p.code, err, p.stdout, p.stderr)
	}
	if s := plan.Accounts[0].Skips; len(s) != 1 || s[0].Key != "uidl-huge" || !strings.Contains(s[0].Reason, "not downloaded") {
		t.Errorf("plan skips %+v, want uidl-huge as the copy skips it", s)
	}
	for _, c := range src.Commands() {
		if c.Line == "RETR 2" {
			t.Errorf("plan downloaded the message announced at 1 TiB for its estimate")
		}
	}
	before := len(src.Commands())

	r := runInProcess(t, passwords, e.args(srcURL, dstURL, "--allow-plaintext", "--max-message-size", fmt.Sprint(sizeLimitBytes))...)
	checkSizeRun(t, r, e, "u", func(key string, i int) bool { return key == "uidl-"+sizeCases[i].name })
	var retrs []string
	for _, c := range src.Commands()[before:] {
		if strings.HasPrefix(c.Line, "RETR ") {
			retrs = append(retrs, c.Line)
		}
	}
	for i, c := range sizeCases {
		if got := slices.Contains(retrs, fmt.Sprintf("RETR %d", i+1)); got != c.fetched {
			t.Errorf("%s: RETR %d sent = %v, want %v (RETRs %q)", c.name, i+1, got, c.fetched, retrs)
		}
	}
}

// TestE2ESizeLimitIMAP: the same against a real Dovecot IMAP source whose
// RFC822.SIZE a proxy rewrites: the message announced huge gets no UID
// FETCH of its body, batched or single.
func TestE2ESizeLimitIMAP(t *testing.T) {
	e := startFaultEnv(t, []string{"u"}, dovecot.Options{})
	announce := map[int64]int64{}
	for _, c := range sizeCases {
		if err := e.src.SeedMaildir("u", "INBOX", sizedBody(c.name, c.size), "", time.Date(2022, 1, 2, 3, 4, 5, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
		if c.announced != 0 {
			announce[int64(c.size)] = c.announced
		}
	}
	proxy := startSizeLiar(t, e.src.IMAPAddr(), announce)
	r := runInProcess(t, passwords, e.args("imap://u@"+proxy.addr()+"?tls=none", "imaps://u@"+e.dst.IMAPSAddr(),
		"--allow-plaintext", "--max-message-size", fmt.Sprint(sizeLimitBytes))...)
	// IMAP keys are "INBOX\x00<uidvalidity>\x00<uid>"; the messages were
	// seeded in sizeCases order.
	checkSizeRun(t, r, e, "u", func(key string, i int) bool { return strings.HasSuffix(key, fmt.Sprintf("\x00%d", i+1)) })
	fetched := proxy.bodyFetches(t)
	for i, c := range sizeCases {
		if got := fetched[uint32(i+1)]; got != c.fetched {
			t.Errorf("%s (UID %d): body fetched = %v, want %v (body fetches %v)", c.name, i+1, got, c.fetched, fetched)
		}
	}
}

// sizeLiar is a plaintext IMAP proxy in front of a real server: it
// rewrites each RFC822.SIZE the server announces by the real size
// (announce), passes literals through untouched, and records the command
// lines the client sends.
type sizeLiar struct {
	ln       net.Listener
	upstream string
	announce map[int64]int64
	wg       sync.WaitGroup

	mu    sync.Mutex
	lines []string
}

func startSizeLiar(t *testing.T, upstream string, announce map[int64]int64) *sizeLiar {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &sizeLiar{ln: ln, upstream: upstream, announce: announce}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *sizeLiar) addr() string { return p.ln.Addr().String() }

var (
	rfc822Size = regexp.MustCompile(`RFC822\.SIZE (\d+)`)
	literalEnd = regexp.MustCompile(`\{(\d+)\+?\}\r\n$`)
)

func (p *sizeLiar) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReader(client)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				p.mu.Lock()
				p.lines = append(p.lines, strings.TrimRight(line, "\r\n"))
				p.mu.Unlock()
				if _, werr := io.WriteString(server, line); werr != nil {
					return
				}
			}
			if err != nil {
				server.Close()
				return
			}
		}
	}()
	r := bufio.NewReader(server)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		out := rfc822Size.ReplaceAllStringFunc(line, func(m string) string {
			n, _ := strconv.ParseInt(m[len("RFC822.SIZE "):], 10, 64)
			if a, ok := p.announce[n]; ok {
				return fmt.Sprintf("RFC822.SIZE %d", a)
			}
			return m
		})
		if _, err := io.WriteString(client, out); err != nil {
			break
		}
		if m := literalEnd.FindStringSubmatch(line); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			if _, err := io.CopyN(client, r, n); err != nil {
				break
			}
		}
	}
	client.Close()
	<-done
}

// bodyFetches returns the UIDs whose body the client asked for (UID FETCH
// set ... BODY.PEEK[] or BODY[]).
func (p *sizeLiar) bodyFetches(t *testing.T) map[uint32]bool {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[uint32]bool{}
	for _, l := range p.lines {
		f := strings.Fields(l)
		if len(f) < 4 || !strings.EqualFold(f[1], "UID") || !strings.EqualFold(f[2], "FETCH") ||
			!strings.Contains(strings.ToUpper(l), "BODY.PEEK[]") && !strings.Contains(strings.ToUpper(l), "BODY[]") {
			continue
		}
		for _, r := range strings.Split(f[3], ",") {
			lo, hi, found := strings.Cut(r, ":")
			a, err1 := strconv.ParseUint(lo, 10, 32)
			b := a
			var err2 error
			if found {
				b, err2 = strconv.ParseUint(hi, 10, 32)
			}
			if err1 != nil || err2 != nil {
				t.Fatalf("cannot read the UID set of %q", l)
			}
			for u := min(a, b); u <= max(a, b); u++ {
				out[uint32(u)] = true
			}
		}
	}
	return out
}
