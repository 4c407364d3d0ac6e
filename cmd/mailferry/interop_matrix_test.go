package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/courier"
	"github.com/mailferry/mailferry/internal/testkit/cyrus"
	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/mailserver"
	"github.com/mailferry/mailferry/internal/testkit/mailutils"
)

// The interop matrix (issue 15): mailferry between real servers of four
// families, each as a destination of a POP3 and of an IMAP source
// (Dovecot's), and three as POP3 and as IMAP sources (into Dovecot). For
// every combination:
//
//   - every source message is accounted for: on the destination, in the
//     folder plan maps its folder to, byte for byte or changed only as the
//     server documents it (matrixSame: mbox storage's header fields,
//     8-bit header bytes replaced, line ends), with its flags (keywords may
//     be dropped by a server that keeps none, which the report counts) and
//     internal date; or failed or skipped by the copy with a reason;
//   - a second run copies nothing and the destination holds as many
//     messages as before;
//   - `verify --full` agrees (exit 0; copies changed as documented are
//     "changed", not "differ").
//
// The table names each server and version and is logged, and written to
// $MAILFERRY_ARTIFACTS/interop-matrix.md (and .json) when that is set.

// matrixServer is one running server as the matrix uses it.
type matrixServer interface {
	Info() mailserver.Info
	Login(user string) string
	Endpoints() mailserver.Endpoints
	Messages(ctx context.Context, user, mailbox string) ([]mailserver.Message, error)
	Mailboxes(ctx context.Context, user string) ([]mailserver.Mailbox, error)
}

// dovecotMatrix is a Dovecot instance as a matrixServer: read over IMAP
// with STARTTLS.
type dovecotMatrix struct {
	*dovecot.Server
	passwords map[string]string
	version   string
}

func (d *dovecotMatrix) Info() mailserver.Info {
	return mailserver.Info{Name: "Dovecot", Version: d.version}
}
func (d *dovecotMatrix) Login(user string) string { return user }
func (d *dovecotMatrix) Endpoints() mailserver.Endpoints {
	return mailserver.Endpoints{IMAP: d.IMAPAddr(), IMAPStartTLS: true, IMAPS: d.IMAPSAddr(), POP3: d.POP3Addr(), POP3STLS: true, POP3S: d.POP3SAddr()}
}
func (d *dovecotMatrix) account(user string) mailserver.Account {
	return mailserver.Account{Addr: d.IMAPAddr(), User: user, Password: d.passwords[user], TLS: d.TLSConfig()}
}
func (d *dovecotMatrix) Messages(ctx context.Context, user, mailbox string) ([]mailserver.Message, error) {
	return d.account(user).Messages(ctx, mailbox)
}
func (d *dovecotMatrix) Mailboxes(ctx context.Context, user string) ([]mailserver.Mailbox, error) {
	return d.account(user).Mailboxes(ctx)
}

// seedMsg is one message of a source, as it was put there: the ground
// truth a destination copy is compared with.
type seedMsg struct {
	folder string // source folder ("/" between levels); "" for a POP3 maildrop
	body   []byte
	flags  []string
	date   time.Time
}

// matrixMessages are the messages of an IMAP source: folders with
// hierarchy (one holding mail above another, unless the source is mbox,
// which cannot have that) and a non-ASCII name, every system flag,
// keywords (unless the server keeps none: mbox), internal dates in other
// zones, an 8-bit header, a body line starting "From " and one starting
// ".".
func matrixMessages(mbox bool) []seedMsg {
	keywords := !mbox
	archive := "Old/Archive"
	if mbox {
		archive = "Old/Archive/2019"
	}
	kw := func(k ...string) []string {
		if keywords {
			return k
		}
		return nil
	}
	zone := time.FixedZone("", 5*3600+1800)
	if mbox {
		// GNU Mailutils drops an APPEND date's zone offset (mailferry
		// sends UTC for that reason; the kit's seeding does not).
		zone = time.UTC
	}
	date := func(day int) time.Time { return time.Date(2019, 4, day, 9, 15, 30, 0, zone) }
	msg := func(id, subject, body string) []byte {
		return []byte("Received: from mx.example.org by mx.example.net; Thu, 4 Apr 2019 09:15:30 +0200\r\n" +
			"Message-ID: <" + id + "@matrix.test>\r\nFrom: Alice <alice@example.org>\r\nTo: bob@example.net\r\n" +
			"Subject: " + subject + "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n" +
			"Content-Transfer-Encoding: 8bit\r\n\r\n" + body)
	}
	return []seedMsg{
		{"INBOX", msg("m1", "plain", "hello\r\n"), append([]string{`\Seen`}, kw("$Forwarded")...), date(1)},
		{"INBOX", msg("m2", "Grüße aus Köln", "From the start of a line\r\n.a dot line\r\nhällo\r\n"),
			[]string{`\Answered`, `\Flagged`, `\Seen`, `\Draft`}, date(2)},
		{"INBOX", msg("m3", "no flags", strings.Repeat("a longer body line\r\n", 40)), nil, date(3)},
		{archive, msg("m4", "archived", "old\r\n"), append([]string{`\Seen`}, kw("Projekt")...), date(4)},
		{"Old/Archive/2019", msg("m5", "deleted", "marked deleted\r\n"), []string{`\Deleted`, `\Seen`}, date(5)},
		{"Old/Archive/2019", msg("m6", "archived 2019", "2019\r\n"), []string{`\Seen`}, date(6)},
		{"Grüße/Übersicht", msg("m7", "non-ASCII folder", "ü\r\n"), []string{`\Seen`}, date(7)},
	}
}

// matrixPOP3Messages are the messages of a POP3 source.
func matrixPOP3Messages() []seedMsg {
	var out []seedMsg
	for _, m := range matrixMessages(true)[:3] {
		out = append(out, seedMsg{body: m.body, date: time.Date(2019, 4, 4, 7, 15, 30, 0, time.UTC)})
	}
	return append(out, seedMsg{body: []byte("Received: from a by b; Thu, 4 Apr 2019 09:15:30 +0200\r\n" +
		"Message-ID: <m8@matrix.test>\r\nSubject: multipart\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n--BB\r\nContent-Type: text/plain\r\n\r\npart\r\n--BB--\r\n"),
		date: time.Date(2019, 4, 4, 7, 15, 30, 0, time.UTC)})
}

// matrixFolder is a source folder's name on a server with separator sep
// and personal namespace prefix.
func matrixFolder(folder, prefix, sep string) string {
	if strings.EqualFold(folder, "INBOX") {
		return "INBOX"
	}
	return prefix + strings.ReplaceAll(folder, "/", sep)
}

// combo is one combination of the matrix.
type combo struct {
	src, dst         matrixServer
	srcUser, dstUser string
	pop3             bool
	want             []seedMsg
	// srcPrefix and srcSep spell want's folders on the source.
	srcPrefix, srcSep string
}

func (c *combo) name() string {
	kind := "IMAP"
	if c.pop3 {
		kind = "POP3"
	}
	return fmt.Sprintf("%s %s → %s", c.src.Info().Name, kind, c.dst.Info().Name)
}

// matrixRow is one line of the table.
type matrixRow struct {
	Source      string  `json:"source"`
	Destination string  `json:"destination"`
	Protocol    string  `json:"protocol"`
	Messages    int     `json:"messages"`
	Exact       int     `json:"exact"`
	Changed     int     `json:"changed"`
	Changes     string  `json:"changes,omitempty"`
	Failed      int     `json:"failed_or_skipped"`
	Dropped     int     `json:"flags_dropped"`
	SecondRun   string  `json:"second_run"`
	Verify      string  `json:"verify"`
	Notes       string  `json:"notes,omitempty"`
	Seconds     float64 `json:"seconds"`
	Result      string  `json:"result"`
}

func TestInteropMatrix(t *testing.T) {
	dovecot.Require(t)
	cyrus.Require(t)
	courier.Require(t)
	mailutils.Require(t)
	begin := time.Now()
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	families := []string{"dovecot", "cyrus", "courier", "mailutils"}
	// Users: on the Dovecot source, one POP3 and one IMAP user per
	// destination; on each destination, p2i and i2i; on Cyrus, Courier
	// and Mailutils a POP3 and an IMAP source user, whose copies go to
	// the Dovecot destination's users <family>-p and <family>-i.
	srcUsers, dstUsers, kitUsers := map[string]string{}, map[string]string{}, map[string]string{}
	for _, f := range families {
		srcUsers["p-"+f], srcUsers["i-"+f] = srcPassword, srcPassword
		if f != "dovecot" {
			dstUsers[f+"-p"], dstUsers[f+"-i"] = dstPassword, dstPassword
		}
	}
	dstUsers["p2i"], dstUsers["i2i"] = dstPassword, dstPassword
	kitUsers["p2i"], kitUsers["i2i"] = dstPassword, dstPassword
	kitUsers["src-p"], kitUsers["src-i"] = srcPassword, srcPassword

	// Start the five servers at once.
	var (
		dsrc, ddst *dovecot.Server
		cy         *cyrus.Server
		co         *courier.Server
		mu         *mailutils.Server
		wg         sync.WaitGroup
		mu2        sync.Mutex
		errs       []error
	)
	dirs := map[string]string{}
	for _, n := range []string{"dsrc", "ddst", "cyrus", "courier", "mailutils"} {
		dirs[n] = mailserver.TempDir(t, "mfmx-"+n+"-")
	}
	start := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				mu2.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				mu2.Unlock()
			}
		}()
	}
	ctx := context.Background()
	start("Dovecot source", func() (err error) {
		dsrc, err = dovecot.StartInstance(ctx, dirs["dsrc"], dovecot.Options{Name: "mf-mxsrc", CA: ca, Users: srcUsers})
		return err
	})
	start("Dovecot destination", func() (err error) {
		ddst, err = dovecot.StartInstance(ctx, dirs["ddst"], dovecot.Options{Name: "mf-mxdst", CA: ca, Users: dstUsers})
		return err
	})
	start("Cyrus", func() (err error) {
		cy, err = cyrus.StartInstance(ctx, dirs["cyrus"], cyrus.Options{CA: ca, Users: kitUsers})
		return err
	})
	start("Courier", func() (err error) {
		co, err = courier.StartInstance(ctx, dirs["courier"], courier.Options{CA: ca, Users: kitUsers})
		return err
	})
	start("Mailutils", func() (err error) {
		mu, err = mailutils.StartInstance(ctx, dirs["mailutils"], mailutils.Options{CA: ca, Users: kitUsers})
		return err
	})
	wg.Wait()
	for _, s := range []interface{ Stop() error }{dsrc, ddst, cy, co, mu} {
		if s != nil && !isNil(s) {
			t.Cleanup(func() { _ = s.Stop() })
		}
	}
	if len(errs) > 0 {
		t.Fatalf("starting the servers: %v", errs)
	}
	started := time.Since(begin)
	version := debVersion("dovecot-imapd")
	src := &dovecotMatrix{Server: dsrc, passwords: srcUsers, version: version}
	dst := &dovecotMatrix{Server: ddst, passwords: dstUsers, version: version}

	// Seed every source over IMAP (flags, internal dates) or delivery.
	seedStart := time.Now()
	dovecotAcct := func(user string) mailserver.Account {
		return mailserver.Account{Addr: dsrc.IMAPAddr(), User: user, Password: srcPassword, TLS: dsrc.TLSConfig()}
	}
	for _, f := range families {
		for _, m := range matrixPOP3Messages() {
			if err := dovecotAcct("p-"+f).Append(ctx, "INBOX", m.body, nil, time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range matrixMessages(false) {
			if err := dovecotAcct("i-"+f).Append(ctx, matrixFolder(m.folder, "", "/"), m.body, m.flags, m.date); err != nil {
				t.Fatal(err)
			}
		}
	}
	type kit interface {
		matrixServer
		mailserver.IMAPServer
		mailserver.POP3Server
	}
	kits := []kit{cy, co, mu}
	for _, k := range kits {
		for _, m := range matrixPOP3Messages() {
			if err := k.Deliver(ctx, "src-p", m.body); err != nil {
				t.Fatalf("%s: %v", k.Info(), err)
			}
		}
		_, mbox := k.(*mailutils.Server)
		for _, m := range matrixMessages(mbox) {
			if err := k.Append(ctx, "src-i", matrixFolder(m.folder, k.Prefix(), k.Separator()), m.body, m.flags, m.date); err != nil {
				t.Fatalf("%s: %v", k.Info(), err)
			}
		}
	}
	t.Logf("servers started in %v, seeded in %v", started.Round(time.Millisecond), time.Since(seedStart).Round(time.Millisecond))

	var combos []*combo
	for _, d := range []matrixServer{dst, cy, co, mu} {
		f := strings.ToLower(strings.Fields(d.Info().Name)[0])
		if f == "gnu" {
			f = "mailutils"
		} else if f == "courier-imap" {
			f = "courier"
		}
		combos = append(combos,
			&combo{src: src, dst: d, srcUser: "p-" + f, dstUser: "p2i", pop3: true, want: matrixPOP3Messages()},
			&combo{src: src, dst: d, srcUser: "i-" + f, dstUser: "i2i", want: matrixMessages(false), srcSep: "/"})
	}
	for i, k := range kits {
		f := []string{"cyrus", "courier", "mailutils"}[i]
		_, mbox := k.(*mailutils.Server)
		combos = append(combos,
			&combo{src: k, dst: dst, srcUser: "src-p", dstUser: f + "-p", pop3: true, want: matrixPOP3Messages()},
			&combo{src: k, dst: dst, srcUser: "src-i", dstUser: f + "-i", want: matrixMessages(mbox), srcPrefix: k.Prefix(), srcSep: k.Separator()})
	}

	rows := make([]matrixRow, len(combos))
	t.Run("combinations", func(t *testing.T) {
		for i, c := range combos {
			t.Run(c.name(), func(t *testing.T) {
				t.Parallel()
				rows[i] = runCombo(t, c, dsrc.CAFile())
			})
		}
	})
	writeMatrix(t, rows, time.Since(begin))
}

// isNil reports whether a Stop()er holds a nil pointer (a server that did
// not start).
func isNil(s interface{ Stop() error }) bool {
	switch v := s.(type) {
	case *dovecot.Server:
		return v == nil
	case *cyrus.Server:
		return v == nil
	case *courier.Server:
		return v == nil
	case *mailutils.Server:
		return v == nil
	}
	return false
}

// debVersion is the installed version of a Debian package, "" if unknown.
func debVersion(pkg string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// runCombo runs one combination and returns its row; failures fail t.
func runCombo(t *testing.T, c *combo, caFile string) matrixRow {
	begin := time.Now()
	ctx := context.Background()
	row := matrixRow{Source: c.src.Info().String(), Destination: c.dst.Info().String(), Protocol: "IMAP", Messages: len(c.want)}
	if c.pop3 {
		row.Protocol = "POP3"
	}
	state := filepath.Join(t.TempDir(), "state.db")
	srcURL := "imaps://" + url.PathEscape(c.src.Login(c.srcUser)) + "@" + c.src.Endpoints().IMAPS
	dstURL := "imaps://" + url.PathEscape(c.dst.Login(c.dstUser)) + "@" + c.dst.Endpoints().IMAPS
	if c.pop3 {
		srcURL = "pop3s://" + url.PathEscape(c.src.Login(c.srcUser)) + "@" + c.src.Endpoints().POP3S
		dstURL += "/Migrated"
	}
	common := []string{"--tls-ca", caFile, "--state", state}
	copyArgs := append([]string{"copy", srcURL, dstURL, "--json", "--progress", "none", "--create-folders"}, common...)

	r1 := runInProcess(t, passwords, copyArgs...)
	if len(r1.report.Accounts) != 1 {
		t.Fatalf("copy: exit %d, no report\n%s", r1.code, r1.stderr)
	}
	a := r1.report.Accounts[0]
	row.Failed, row.Dropped, row.Notes = a.Failed+a.Skipped, a.FlagsDropped, strings.Join(a.Notes, "; ")
	if a.Error != "" || (r1.code != exitOK && !(r1.code == exitPartial && a.Failed+a.Skipped > 0)) {
		t.Fatalf("copy: exit %d, error %q\n%s", r1.code, a.Error, r1.stderr)
	}
	if a.Copied+a.Failed+a.Skipped != len(c.want) || a.Listed != len(c.want) {
		t.Errorf("copy: listed %d, copied %d, failed %d, skipped %d; want %d accounted for", a.Listed, a.Copied, a.Failed, a.Skipped, len(c.want))
	}
	for _, f := range append(a.Failures, a.Skips...) {
		if f.Reason == "" {
			t.Errorf("message %s failed or skipped without a reason", f.Key)
		}
	}

	// Where each source folder went: plan's mapping (for POP3, the URL's
	// folder, under the personal namespace where the server wanted it).
	folders := map[string]string{}
	if c.pop3 {
		folders[""] = popFolder(t, c)
	} else {
		p := runCmd(t, runPlan, passwords, append([]string{srcURL, dstURL, "--json"}, common...)...)
		var plan planReport
		if err := json.Unmarshal([]byte(p.stdout), &plan); err != nil || len(plan.Accounts) != 1 {
			t.Fatalf("plan: exit %d, %v\n%s%s", p.code, err, p.stdout, p.stderr)
		}
		for _, f := range plan.Accounts[0].Folders {
			folders[f.Source] = f.Destination
		}
	}

	// Every source message accounted for.
	held := map[string][]mailserver.Message{}
	claimed := map[string]map[uint32]bool{}
	kinds := map[string]int{}
	total := 0
	for dfolder := range invert(folders) {
		msgs, err := c.dst.Messages(ctx, c.dstUser, dfolder)
		if err != nil {
			t.Fatalf("reading %q on %s: %v", dfolder, c.dst.Info(), err)
		}
		held[dfolder], claimed[dfolder] = msgs, map[uint32]bool{}
		total += len(msgs)
	}
	missing := 0
	added := addedFields(c.src, c.dst)
	for _, w := range c.want {
		sf := ""
		if !c.pop3 {
			sf = matrixFolder(w.folder, c.srcPrefix, c.srcSep)
		}
		df, ok := folders[sf]
		if !ok {
			t.Errorf("source folder %q has no destination folder (plan: %v)", sf, folders)
			missing++
			continue
		}
		var got *mailserver.Message
		kind := ""
		for i, m := range held[df] {
			if k, ok := matrixSame(w.body, m.Body, added); ok && !claimed[df][m.UID] {
				got, kind = &held[df][i], k
				claimed[df][m.UID] = true
				break
			}
		}
		if got == nil {
			missing++
			continue
		}
		kinds[kind]++
		if kind == "exact" {
			row.Exact++
		} else {
			row.Changed++
		}
		if !c.pop3 {
			checkFlagsDate(t, w, *got, a.FlagsDropped > 0, df)
		}
	}
	if missing > row.Failed {
		t.Errorf("%d of %d source messages are not on the destination, and the copy failed or skipped %d", missing, len(c.want), row.Failed)
	}
	var changes []string
	for k, n := range kinds {
		if k != "exact" {
			changes = append(changes, fmt.Sprintf("%s: %d", k, n))
		}
	}
	slices.Sort(changes)
	row.Changes = strings.Join(changes, ", ")

	// A second run adds nothing.
	r2 := runInProcess(t, passwords, copyArgs...)
	a2 := r2.report.Accounts[0]
	after := 0
	for dfolder := range held {
		msgs, err := c.dst.Messages(ctx, c.dstUser, dfolder)
		if err != nil {
			t.Fatal(err)
		}
		after += len(msgs)
	}
	row.SecondRun = fmt.Sprintf("copied %d, %d already done", a2.Copied, a2.AlreadyDone)
	if a2.Copied != 0 || after != total || a2.Error != "" {
		t.Errorf("second run: exit %d, copied %d, destination %d → %d messages, error %q", r2.code, a2.Copied, total, after, a2.Error)
	}

	// verify agrees.
	v := runCmd(t, runVerify, passwords, append([]string{srcURL, dstURL, "--full", "--json"}, common...)...)
	var rep verifyReport
	if err := json.Unmarshal([]byte(v.stdout), &rep); err != nil || len(rep.Accounts) != 1 {
		t.Fatalf("verify: exit %d, %v\n%s%s", v.code, err, v.stdout, v.stderr)
	}
	vs := rep.Accounts[0].Stats
	row.Verify = fmt.Sprintf("exit %d: %d match, %d changed, %d missing, %d differ", v.code, vs.Matched, vs.Changed,
		vs.Missing, vs.Differs+vs.FlagsDiffer+vs.DateDiffers)
	if v.code != exitOK || vs.Matched+vs.Changed != len(c.want)-row.Failed {
		t.Errorf("verify: %s; want exit 0 and %d messages matched or changed as documented\n%s", row.Verify, len(c.want)-row.Failed, v.stdout)
	}
	row.Seconds = time.Since(begin).Seconds()
	row.Result = "ok"
	if t.Failed() {
		row.Result = "FAILED"
	}
	return row
}

// popFolder finds the destination folder of a POP3 copy: "Migrated", or
// it under the personal namespace.
func popFolder(t *testing.T, c *combo) string {
	boxes, err := c.dst.Mailboxes(context.Background(), c.dstUser)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range boxes {
		if b.Name == "Migrated" || strings.HasSuffix(b.Name, string(b.Delim)+"Migrated") {
			return b.Name
		}
	}
	t.Fatalf("no destination folder Migrated on %s: %v", c.dst.Info(), boxes)
	return ""
}

func invert(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[v] = k
	}
	return out
}

// matrixMboxFields are the header fields mbox storage adds (DECISIONS #11).
var matrixMboxFields = []string{"status", "x-status", "x-uid", "x-keywords", "x-imapbase", "content-length"}

// addedFields are the fields mbox storage adds, with those the kits of
// src and dst document their server adding (mailserver.HeaderAdder: GNU
// Mailutils' pop3d also serves an X-UIDL of its own).
func addedFields(src, dst matrixServer) []string {
	out := slices.Clone(matrixMboxFields)
	for _, s := range []matrixServer{src, dst} {
		if ha, ok := s.(mailserver.HeaderAdder); ok {
			for _, f := range ha.AddedHeaders() {
				if f = strings.ToLower(f); !slices.Contains(out, f) {
					out = append(out, f)
				}
			}
		}
	}
	return out
}

// matrixSame reports whether got is want as a server may serve it, and
// how: "exact"; or changed only as DECISIONS #11 allows ("mbox fields",
// with the fields named in added; "8-bit header bytes"; "line ends"),
// never in the body. Written apart from verify's comparison, which it
// checks.
func matrixSame(want, got []byte, added []string) (string, bool) {
	if bytes.Equal(crlf(want), got) {
		return "exact", true
	}
	var how []string
	w, g := crlf(want), crlf(got)
	if !bytes.Equal(g, got) {
		how = append(how, "line ends")
	}
	wh, wb, _ := bytes.Cut(w, []byte("\r\n\r\n"))
	gh, gb, _ := bytes.Cut(g, []byte("\r\n\r\n"))
	if !bytes.Equal(wb, gb) {
		return "", false
	}
	drop := func(h []byte) []byte {
		var out [][]byte
		skipping := false
		for _, line := range bytes.Split(h, []byte("\r\n")) {
			if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
				if !skipping {
					out = append(out, line)
				}
				continue
			}
			name, _, _ := bytes.Cut(line, []byte(":"))
			skipping = slices.Contains(added, strings.ToLower(strings.TrimSpace(string(name))))
			if !skipping {
				out = append(out, line)
			}
		}
		return bytes.Join(out, []byte("\r\n"))
	}
	if dw, dg := drop(wh), drop(gh); len(dw) != len(wh) || len(dg) != len(gh) {
		how = append(how, "mbox fields")
		wh, gh = dw, dg
	}
	if !bytes.Equal(wh, gh) {
		if len(wh) != len(gh) {
			return "", false
		}
		for i := range wh {
			if wh[i] != gh[i] && (wh[i] < 0x80 || !strings.ContainsRune("X?_", rune(gh[i]))) {
				return "", false
			}
		}
		how = append(how, "8-bit header bytes")
	}
	if len(how) == 0 {
		return "", false
	}
	return strings.Join(how, "+"), true
}

// checkFlagsDate compares a copy's flags and internal date with its
// source message's: keywords may be missing where the destination dropped
// them (keywordsDropped, which the report counts).
func checkFlagsDate(t *testing.T, w seedMsg, got mailserver.Message, keywordsDropped bool, folder string) {
	t.Helper()
	var want []string
	for _, f := range w.flags {
		if strings.HasPrefix(f, `\`) || !keywordsDropped {
			want = append(want, strings.ToLower(f))
		}
	}
	var have []string
	for _, f := range got.Flags {
		if !strings.EqualFold(f, `\Recent`) && (strings.HasPrefix(f, `\`) || !keywordsDropped) {
			have = append(have, strings.ToLower(f))
		}
	}
	slices.Sort(want)
	slices.Sort(have)
	if !slices.Equal(want, have) {
		t.Errorf("%s UID %d: flags %v, want %v", folder, got.UID, got.Flags, w.flags)
	}
	if !got.InternalDate.Equal(w.date) {
		t.Errorf("%s UID %d: internal date %v, want %v", folder, got.UID, got.InternalDate, w.date)
	}
}

// writeMatrix logs the table and writes it to $MAILFERRY_ARTIFACTS.
func writeMatrix(t *testing.T, rows []matrixRow, took time.Duration) {
	var b strings.Builder
	fmt.Fprintf(&b, "Interop matrix (%d combinations, %.1f s)\n\n", len(rows), took.Seconds())
	b.WriteString("| source | protocol | destination | messages | exact | changed as documented | failed/skipped | keywords dropped | second run | verify --full | s | result |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		changed := fmt.Sprint(r.Changed)
		if r.Changes != "" {
			changed += " (" + r.Changes + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %s | %d | %d | %s | %s | %.1f | %s |\n", r.Source, r.Protocol, r.Destination,
			r.Messages, r.Exact, changed, r.Failed, r.Dropped, r.SecondRun, r.Verify, r.Seconds, r.Result)
	}
	notes := false
	for _, r := range rows {
		if r.Notes != "" {
			if !notes {
				b.WriteString("\nNotes of the copies:\n\n")
				notes = true
			}
			fmt.Fprintf(&b, "- %s %s → %s: %s\n", r.Source, r.Protocol, r.Destination, r.Notes)
		}
	}
	t.Log("\n" + b.String())
	dir := os.Getenv("MAILFERRY_ARTIFACTS")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("MAILFERRY_ARTIFACTS: %v", err)
		return
	}
	js, _ := json.MarshalIndent(rows, "", "  ")
	for name, data := range map[string][]byte{"interop-matrix.md": []byte(b.String()), "interop-matrix.json": js} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Errorf("writing %s: %v", name, err)
		}
	}
}
