package pop3src

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/pop3fake"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

const (
	testUser     = "alice"
	testPassword = "correct horse"
)

// testMessages covers what must survive byte for byte.
func testMessages() []pop3fake.Message {
	return []pop3fake.Message{
		{UIDL: "u1", Body: []byte("Subject: one\r\n\r\nhello\r\n")},
		{UIDL: "u2", Body: []byte("Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\n")},
		{UIDL: "u3", Body: []byte("Subject: raw\r\n\r\nbare\nLF and bare\rCR, NUL \x00, 8-bit \xe9\xff\r\n")},
		{UIDL: "u4", Body: []byte("Subject: no final CRLF\r\n\r\nlast line")},
		{UIDL: "u5", Body: []byte{}},
		{UIDL: "u6", Body: append([]byte("Subject: long\r\n\r\n"), append(bytes.Repeat([]byte("QUJD"), 64<<10), "\r\n"...)...)},
	}
}

func testClientTLS(t *testing.T) *tls.Config {
	t.Helper()
	_, client, err := pop3fake.TLSConfigs()
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func startFake(t *testing.T, opts pop3fake.Options) *pop3fake.Server {
	t.Helper()
	if opts.User == "" {
		opts.User, opts.Password = testUser, testPassword
	}
	return pop3fake.NewStarted(t, opts)
}

// plainOptions connects to srv without TLS, as for a local test server.
func plainOptions(srv *pop3fake.Server) Options {
	return Options{
		Addr:           srv.Addr(),
		TLS:            TLSNone,
		AllowPlaintext: true,
		User:           testUser,
		Password:       secret.New(testPassword),
		IdleTimeout:    5 * time.Second,
	}
}

func open(t *testing.T, opts Options) *Source {
	t.Helper()
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", opts.Addr, err)
	}
	t.Cleanup(func() { s.Close(false) })
	return s
}

func fetchAll(t *testing.T, s *Source, msgs []pipeline.SourceMessage) [][]byte {
	t.Helper()
	var out [][]byte
	for _, m := range msgs {
		var buf bytes.Buffer
		n, err := s.Fetch(context.Background(), m, &buf)
		if err != nil {
			t.Fatalf("Fetch(%q): %v", m.Key, err)
		}
		if n != int64(buf.Len()) {
			t.Errorf("Fetch(%q) = %d, but wrote %d bytes", m.Key, n, buf.Len())
		}
		out = append(out, buf.Bytes())
	}
	return out
}

func keys(msgs []pipeline.SourceMessage) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Key)
	}
	return out
}

func TestSourceListFetchExact(t *testing.T) {
	msgs := testMessages()
	srv := startFake(t, pop3fake.Options{Messages: msgs})
	s := open(t, plainOptions(srv))
	list, err := pipeline.ListAll(context.Background(), s)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got, want := keys(list), []string{"u1", "u2", "u3", "u4", "u5", "u6"}; !slices.Equal(got, want) {
		t.Fatalf("List keys = %v, want %v", got, want)
	}
	for i, body := range fetchAll(t, s, list) {
		want := servedBytes(msgs[i].Body)
		if !bytes.Equal(body, want) {
			t.Errorf("Fetch(%q) = %q, want %q", list[i].Key, shorten(string(body)), shorten(string(want)))
		}
		if list[i].Size != int64(len(msgs[i].Body)) {
			t.Errorf("List size of %q = %d, want %d", list[i].Key, list[i].Size, len(msgs[i].Body))
		}
	}
	if _, err := s.Fetch(context.Background(), pipeline.SourceMessage{Key: "nope"}, &bytes.Buffer{}); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Fetch(unknown key) error = %v, want ErrUnknownKey", err)
	}
}

func TestSourceLargeSingleLine(t *testing.T) {
	body := append(bytes.Repeat([]byte("x"), 8<<20), "\r\n"...)
	srv := startFake(t, pop3fake.Options{Messages: []pop3fake.Message{{UIDL: "big", Body: body}}})
	s := open(t, plainOptions(srv))
	list, err := pipeline.ListAll(context.Background(), s)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	h := sha256.New()
	n, err := s.Fetch(context.Background(), list[0], h)
	want := sha256.Sum256(body)
	if err != nil || n != int64(len(body)) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("Fetch(8 MB line) = %d bytes, %v; want %d bytes with the same digest", n, err, len(body))
	}
}

func TestSourceDeleteCommitOnlyOnQuit(t *testing.T) {
	tests := []struct {
		name        string
		commit      bool
		wantDeleted []string
	}{
		{name: "close without commit keeps everything", commit: false},
		{name: "commit removes the deleted", commit: true, wantDeleted: []string{"u2", "u4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFake(t, pop3fake.Options{Messages: testMessages()})
			s, err := Open(context.Background(), plainOptions(srv))
			if err != nil {
				t.Fatal(err)
			}
			list, err := pipeline.ListAll(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			// The same message twice is marked once.
			if err := s.Delete(context.Background(), []pipeline.SourceMessage{list[1], list[3], list[1]}); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if err := s.Close(tc.commit); err != nil {
				t.Fatalf("Close(%v): %v", tc.commit, err)
			}
			var deleted []string
			for _, m := range srv.Deleted() {
				deleted = append(deleted, m.UIDL)
			}
			if !slices.Equal(deleted, tc.wantDeleted) {
				t.Errorf("after Close(%v) the server deleted %v, want %v", tc.commit, deleted, tc.wantDeleted)
			}
			if got, want := len(srv.Messages()), len(testMessages())-len(tc.wantDeleted); got != want {
				t.Errorf("after Close(%v) the maildrop has %d messages, want %d", tc.commit, got, want)
			}
			if tc.commit {
				return
			}
			for _, c := range srv.Commands() {
				if strings.EqualFold(c.Line, "QUIT") {
					t.Errorf("Close(false) sent QUIT")
				}
			}
		})
	}
}

func TestSourceDeleteUnknownKeyMarksNothing(t *testing.T) {
	srv := startFake(t, pop3fake.Options{Messages: testMessages()})
	s, err := Open(context.Background(), plainOptions(srv))
	if err != nil {
		t.Fatal(err)
	}
	list, err := pipeline.ListAll(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Delete(context.Background(), []pipeline.SourceMessage{list[0], {Key: "gone"}})
	if !errors.Is(err, ErrUnknownKey) || pipeline.ClassOf(err) != pipeline.ClassPerMessage {
		t.Fatalf("Delete(with unknown key) error = %v, want per-message ErrUnknownKey", err)
	}
	if err := s.Close(true); err != nil {
		t.Fatal(err)
	}
	if d := srv.Deleted(); len(d) != 0 {
		t.Errorf("Delete with an unknown key still deleted %d messages", len(d))
	}
}

func digestKey(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestSourceKeys(t *testing.T) {
	a := []byte("Subject: a\r\n\r\nsame\r\n")
	b := []byte("Subject: b\r\n\r\nother\r\n")
	tests := []struct {
		name     string
		opts     pop3fake.Options
		wantKeys []string
	}{
		{
			name:     "no UIDL: content digest, identical copies numbered",
			opts:     pop3fake.Options{NoUIDL: true, Messages: []pop3fake.Message{{Body: a}, {Body: b}, {Body: a}, {Body: a}}},
			wantKeys: []string{digestKey(a), digestKey(b), digestKey(a) + "#2", digestKey(a) + "#3"},
		},
		{
			name:     "no CAPA and no UIDL",
			opts:     pop3fake.Options{NoCAPA: true, NoUIDL: true, Messages: []pop3fake.Message{{Body: b}, {Body: a}}},
			wantKeys: []string{digestKey(b), digestKey(a)},
		},
		{
			name:     "no CAPA but UIDL works",
			opts:     pop3fake.Options{NoCAPA: true, Messages: []pop3fake.Message{{UIDL: "x", Body: a}}},
			wantKeys: []string{"x"},
		},
		{
			name: "duplicate UIDLs keyed by UIDL and digest",
			opts: pop3fake.Options{Messages: []pop3fake.Message{
				{UIDL: "d", Body: a}, {UIDL: "u", Body: b}, {UIDL: "d", Body: b}, {UIDL: "d", Body: a},
			}},
			wantKeys: []string{"d#" + digestKey(a), "u", "d#" + digestKey(b), "d#" + digestKey(a) + "#2"},
		},
	}
	for _, tc := range tests {
		// With PIPELINING the maildrop is listed page by page, without
		// it at once: the keys are the same.
		for _, pipelining := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/pipelining=%v", tc.name, pipelining), func(t *testing.T) {
				opts := tc.opts
				opts.Pipelining = pipelining
				srv := startFake(t, opts)
				s := open(t, plainOptions(srv))
				list, err := pipeline.ListAll(context.Background(), s)
				if err != nil {
					t.Fatalf("List: %v", err)
				}
				if got := keys(list); !slices.Equal(got, tc.wantKeys) {
					t.Fatalf("List keys = %q, want %q", got, tc.wantKeys)
				}
				for i, body := range fetchAll(t, s, list) {
					if !bytes.Equal(body, tc.opts.Messages[i].Body) {
						t.Errorf("Fetch(%q) = %q, want %q", list[i].Key, body, tc.opts.Messages[i].Body)
					}
				}
			})
		}
	}
}

// TestSourceListPaged: with PIPELINING, a maildrop of more than a page is
// handed over page by page from LIST n and UIDL n, never from one LIST
// of everything; a page's messages are fetched while listing; messages of
// earlier pages (no longer vouched for by the page in memory) are checked
// with UIDL n before they are deleted, and a number that holds another
// message is refused without marking anything.
func TestSourceListPaged(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir()) // the listing's file goes here, and at once away
	const n = 2*pipeline.ListPage + 7
	var msgs []pop3fake.Message
	for i := range n {
		uidl := fmt.Sprintf("uid-%05d", i)
		if i == 3 || i == pipeline.ListPage+3 {
			uidl = "shared" // a broken server: on two pages
		}
		msgs = append(msgs, pop3fake.Message{UIDL: uidl, Body: []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))})
	}
	srv := startFake(t, pop3fake.Options{Messages: msgs, Pipelining: true})
	s := open(t, plainOptions(srv))
	ctx := context.Background()
	var pages []int
	var all []pipeline.SourceMessage
	err := s.List(ctx, func(page []pipeline.SourceMessage) error {
		pages = append(pages, len(page))
		for _, m := range page {
			var buf bytes.Buffer
			if _, err := s.Fetch(ctx, m, &buf); err != nil {
				return err
			}
			if want := msgs[m.Seq-1].Body; !bytes.Equal(buf.Bytes(), want) {
				return fmt.Errorf("Fetch(%q) = %q, want %q", m.Key, buf.Bytes(), want)
			}
		}
		all = append(all, page...)
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if want := []int{pipeline.ListPage, pipeline.ListPage, 7}; !slices.Equal(pages, want) {
		t.Errorf("pages = %v, want %v", pages, want)
	}
	for i, m := range all {
		want := msgs[i].UIDL
		if want == "shared" {
			want = "shared#" + digestKey(msgs[i].Body)
		}
		if m.Key != want || m.Seq != uint32(i+1) || m.Size != int64(len(msgs[i].Body)) {
			t.Fatalf("message %d = %+v, want key %q, Seq %d, size %d", i+1, m, want, i+1, len(msgs[i].Body))
		}
	}
	var listings []string
	for _, c := range srv.Commands() {
		if strings.HasPrefix(c.Line, "LIST") || strings.HasPrefix(c.Line, "UIDL") {
			listings = append(listings, c.Line)
		}
	}
	// One UIDL, one LIST, and one UIDL n per shared UIDL's Fetch check
	// at most: never a command per message.
	if len(listings) < 2 || listings[0] != "UIDL" || listings[1] != "LIST" || len(listings) > 4 {
		t.Errorf("listing commands %q, want UIDL and LIST", listings)
	}
	if left, _ := os.ReadDir(os.TempDir()); len(left) != 0 {
		t.Errorf("the listing left %d files in %s", len(left), os.TempDir())
	}
	// A message of the first page, whose number now holds another one:
	// refused, nothing marked.
	wrong := all[10]
	wrong.Seq = all[11].Seq
	if err := s.Delete(ctx, []pipeline.SourceMessage{all[0], wrong}); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Delete of a key under another message's number: %v, want ErrUnknownKey", err)
	}
	// Messages of the first page and the shared one of the second.
	if err := s.Delete(ctx, []pipeline.SourceMessage{all[0], all[1], all[pipeline.ListPage+3]}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	// Listed again in the same session, the marked ones are left out
	// (UIDL and LIST leave them out).
	again, err := pipeline.ListAll(ctx, s)
	if err != nil || len(again) != n-3 || again[0].Seq != 3 {
		t.Fatalf("List after Delete: %d messages (first %+v), %v; want %d from number 3", len(again), again[0], err, n-3)
	}
	if err := s.Close(true); err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, m := range srv.Deleted() {
		deleted = append(deleted, string(m.Body))
	}
	want := []string{string(msgs[0].Body), string(msgs[1].Body), string(msgs[pipeline.ListPage+3].Body)}
	if !slices.Equal(deleted, want) {
		t.Errorf("deleted %q, want %q", deleted, want)
	}
}

func TestSourceAuth(t *testing.T) {
	tests := []struct {
		name      string
		fake      pop3fake.Options
		opts      func(*Options)
		wantCmd   string // the verb of the authentication command sent
		wantClass pipeline.Class
		wantCode  string
		wantErr   bool
	}{
		{name: "USER/PASS", wantCmd: "PASS"},
		{name: "SASL PLAIN when USER is not offered", fake: pop3fake.Options{NoUSER: true}, wantCmd: "AUTH"},
		{
			name: "master user via authzid", fake: pop3fake.Options{MasterUser: "admin", MasterPassword: "m"},
			opts:    func(o *Options) { o.User, o.AuthzID, o.Password = "admin", testUser, secret.New("m") },
			wantCmd: "AUTH",
		},
		{
			name: "wrong password", opts: func(o *Options) { o.Password = secret.New("wrong pw") },
			wantCmd: "PASS", wantErr: true, wantClass: pipeline.ClassFatal, wantCode: "AUTH",
		},
		{
			name: "maildrop in use", fake: pop3fake.Options{Faults: pop3fake.Faults{Err: map[string]string{"PASS": "-ERR [IN-USE] locked"}}},
			wantCmd: "PASS", wantErr: true, wantClass: pipeline.ClassTransient, wantCode: "IN-USE",
		},
		{
			name: "login delay on AUTH", fake: pop3fake.Options{NoUSER: true, Faults: pop3fake.Faults{Err: map[string]string{"AUTH": "-ERR [LOGIN-DELAY] wait"}}},
			wantCmd: "AUTH", wantErr: true, wantClass: pipeline.ClassTransient, wantCode: "LOGIN-DELAY",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFake(t, tc.fake)
			opts := plainOptions(srv)
			if tc.opts != nil {
				tc.opts(&opts)
			}
			s, err := Open(context.Background(), opts)
			if err == nil {
				defer s.Close(false)
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("Open() error = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				var re *ResponseError
				if !errors.As(err, &re) || re.Code != tc.wantCode {
					t.Errorf("Open() error = %v, want *ResponseError with code %q", err, tc.wantCode)
				}
				if got := pipeline.ClassOf(err); got != tc.wantClass {
					t.Errorf("ClassOf(%v) = %v, want %v", err, got, tc.wantClass)
				}
				msg := err.Error()
				if !strings.Contains(msg, opts.User) || !strings.Contains(msg, srv.Addr()) {
					t.Errorf("Open() error %q does not name the user %q and server %s", msg, opts.User, srv.Addr())
				}
				if strings.Contains(msg, opts.Password.Reveal()) {
					t.Errorf("Open() error %q reveals the password", msg)
				}
			}
			var verbs []string
			for _, c := range srv.Commands() {
				verb, _, _ := strings.Cut(c.Line, " ")
				verbs = append(verbs, verb)
			}
			if !slices.Contains(verbs, tc.wantCmd) {
				t.Errorf("commands sent %v, want %s among them", verbs, tc.wantCmd)
			}
		})
	}
}

func TestSourceTLS(t *testing.T) {
	serverTLS, clientTLS, err := pop3fake.TLSConfigs()
	if err != nil {
		t.Fatal(err)
	}
	_, otherCA, err := pop3fake.TLSConfigs()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		fake      pop3fake.Options
		mode      TLSMode
		clientTLS *tls.Config
		wantErr   bool
		wantClass pipeline.Class
	}{
		{name: "implicit TLS", fake: pop3fake.Options{ImplicitTLS: true}, mode: TLSImplicit, clientTLS: clientTLS},
		{name: "STLS", fake: pop3fake.Options{STLS: true}, mode: TLSStartTLS, clientTLS: clientTLS},
		{name: "untrusted certificate", fake: pop3fake.Options{ImplicitTLS: true}, mode: TLSImplicit, clientTLS: otherCA, wantErr: true, wantClass: pipeline.ClassFatal},
		{name: "server refuses STLS", fake: pop3fake.Options{}, mode: TLSStartTLS, clientTLS: clientTLS, wantErr: true, wantClass: pipeline.ClassFatal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fake.TLSConfig = serverTLS
			tc.fake.Messages = testMessages()[:2]
			srv := startFake(t, tc.fake)
			opts := plainOptions(srv)
			opts.TLS, opts.TLSConfig, opts.AllowPlaintext = tc.mode, tc.clientTLS, false
			s, err := Open(context.Background(), opts)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Open() error = %v, want error %v", err, tc.wantErr)
			}
			for _, c := range srv.Commands() {
				if strings.HasPrefix(c.Line, "PASS") || strings.HasPrefix(c.Line, "USER") {
					if !c.TLS {
						t.Errorf("%q sent without TLS", c.Line)
					}
				}
			}
			if err != nil {
				if got := pipeline.ClassOf(err); got != tc.wantClass {
					t.Errorf("ClassOf(%v) = %v, want %v", err, got, tc.wantClass)
				}
				return
			}
			defer s.Close(false)
			list, err := pipeline.ListAll(context.Background(), s)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if got := fetchAll(t, s, list); !bytes.Equal(got[1], testMessages()[1].Body) {
				t.Errorf("Fetch over TLS = %q, want %q", got[1], testMessages()[1].Body)
			}
		})
	}
}

func TestSourcePlaintextRefused(t *testing.T) {
	srv := startFake(t, pop3fake.Options{})
	opts := plainOptions(srv)
	opts.AllowPlaintext = false
	_, err := Open(context.Background(), opts)
	if !errors.Is(err, ErrPlaintext) || pipeline.ClassOf(err) != pipeline.ClassFatal {
		t.Fatalf("Open(TLSNone without AllowPlaintext) error = %v, want fatal ErrPlaintext", err)
	}
	if n := srv.Sessions(); n != 0 {
		t.Errorf("Open without AllowPlaintext connected %d times, want 0", n)
	}
}

func TestSourceRetrFaults(t *testing.T) {
	body := []byte("Subject: cut\r\n\r\n" + strings.Repeat("line of text\r\n", 100))
	wire := pop3fake.Stuff(body)
	tests := []struct {
		name    string
		faults  pop3fake.Faults
		wantErr func(error) bool
		usable  bool // the session survives
	}{
		{
			name:    "cut right after +OK",
			faults:  pop3fake.Faults{RetrStop: pop3fake.StopCut, RetrStopAfter: 0},
			wantErr: func(err error) bool { return err != nil },
		},
		{
			name:    "cut mid-message",
			faults:  pop3fake.Faults{RetrStop: pop3fake.StopCut, RetrStopAfter: len(wire) / 2},
			wantErr: func(err error) bool { return err != nil },
		},
		{
			name:    "cut before the terminator",
			faults:  pop3fake.Faults{RetrStop: pop3fake.StopCut, RetrStopAfter: len(wire) - 3},
			wantErr: func(err error) bool { return err != nil },
		},
		{
			name:    "cut inside the terminator",
			faults:  pop3fake.Faults{RetrStop: pop3fake.StopCut, RetrStopAfter: len(wire) - 1},
			wantErr: func(err error) bool { return err != nil },
		},
		{
			name:    "server stalls: idle timeout",
			faults:  pop3fake.Faults{RetrStop: pop3fake.StopHang, RetrStopAfter: 100},
			wantErr: func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) },
		},
		{
			name:    "hang on RETR: idle timeout",
			faults:  pop3fake.Faults{Hang: "RETR"},
			wantErr: func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) },
		},
		{
			name:    "-ERR to RETR is transient and the session goes on",
			faults:  pop3fake.Faults{Err: map[string]string{"RETR 1": "-ERR [SYS/TEMP] disk busy"}},
			wantErr: func(err error) bool { var re *ResponseError; return errors.As(err, &re) && re.Code == "SYS/TEMP" },
			usable:  true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFake(t, pop3fake.Options{Messages: []pop3fake.Message{{UIDL: "m", Body: body}}})
			opts := plainOptions(srv)
			opts.IdleTimeout = 300 * time.Millisecond
			s := open(t, opts)
			list, err := pipeline.ListAll(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			srv.SetFaults(tc.faults)
			var buf bytes.Buffer
			n, err := s.Fetch(context.Background(), list[0], &buf)
			if !tc.wantErr(err) {
				t.Fatalf("Fetch with fault: %d bytes, error %v", n, err)
			}
			if pipeline.ClassOf(err) != pipeline.ClassTransient {
				t.Errorf("ClassOf(%v) = %v, want transient", err, pipeline.ClassOf(err))
			}
			srv.SetFaults(pop3fake.Faults{})
			_, err = s.Fetch(context.Background(), list[0], &buf)
			if tc.usable && err != nil {
				t.Errorf("Fetch after -ERR: %v, want the session usable", err)
			}
			if !tc.usable && err == nil {
				t.Errorf("Fetch after a broken connection succeeded")
			}
			// Nothing marked in a broken session can be committed.
			if !tc.usable {
				if err := s.Close(true); err == nil {
					t.Errorf("Close(true) after a broken connection = nil, want error")
				}
			}
		})
	}
}

func TestSourceContextCancelUnblocksFetch(t *testing.T) {
	srv := startFake(t, pop3fake.Options{Messages: testMessages()})
	opts := plainOptions(srv)
	opts.IdleTimeout = time.Minute
	s := open(t, opts)
	list, err := pipeline.ListAll(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetFaults(pop3fake.Faults{RetrStop: pop3fake.StopHang, RetrStopAfter: 5})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = s.Fetch(ctx, list[0], &bytes.Buffer{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch cancelled: error = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("cancelled Fetch returned after %v", d)
	}
}

func TestDialCancelDuringGreeting(t *testing.T) {
	srv := startFake(t, pop3fake.Options{Faults: pop3fake.Faults{Hang: "GREETING"}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := Dial(ctx, DialOptions{Addr: srv.Addr(), TLS: TLSNone, AllowPlaintext: true, IdleTimeout: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial to a silent server with a deadline: error = %v, want context.DeadlineExceeded", err)
	}
}

func TestWithDefaultPort(t *testing.T) {
	tests := []struct {
		addr     string
		mode     TLSMode
		want     string
		wantHost string
	}{
		{"pop.example", TLSImplicit, "pop.example:995", "pop.example"},
		{"pop.example", TLSStartTLS, "pop.example:110", "pop.example"},
		{"pop.example:1110", TLSImplicit, "pop.example:1110", "pop.example"},
		{"::1", TLSImplicit, "[::1]:995", "::1"},
		{"[::1]", TLSNone, "[::1]:110", "::1"},
		{"[::1]:2995", TLSImplicit, "[::1]:2995", "::1"},
	}
	for _, tc := range tests {
		got, host := withDefaultPort(tc.addr, tc.mode)
		if got != tc.want || host != tc.wantHost {
			t.Errorf("withDefaultPort(%q, %v) = %q, %q; want %q, %q", tc.addr, tc.mode, got, host, tc.want, tc.wantHost)
		}
	}
}

// TestSourceListSummary: ListSummary reads the UIDL listing ahead and
// sends no LIST, the List that follows hands over that listing asking
// only for the sizes, and the digest is the same for the same maildrop in
// another session and another for a maildrop whose UIDLs changed; not for
// one whose sizes alone did (they decide nothing for a listed key with a
// settled entry).
func TestSourceListSummary(t *testing.T) {
	var msgs []pop3fake.Message
	for i := range 30 {
		msgs = append(msgs, pop3fake.Message{UIDL: fmt.Sprintf("uid-%03d", i), Body: []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))})
	}
	ctx := context.Background()
	summarize := func(msgs []pop3fake.Message) (pipeline.ListSummary, []pipeline.SourceMessage, []string) {
		t.Helper()
		srv := startFake(t, pop3fake.Options{Messages: msgs, Pipelining: true})
		s := open(t, plainOptions(srv))
		sum, ok, err := s.ListSummary(ctx, false)
		if err != nil || !ok {
			t.Fatalf("ListSummary = %+v, %v, %v", sum, ok, err)
		}
		for _, c := range srv.Commands() {
			if strings.HasPrefix(c.Line, "LIST") {
				t.Errorf("ListSummary sent %q", c.Line)
			}
		}
		all, err := pipeline.ListAll(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		var cmds []string
		for _, c := range srv.Commands() {
			if strings.HasPrefix(c.Line, "LIST") || strings.HasPrefix(c.Line, "UIDL") {
				cmds = append(cmds, c.Line)
			}
		}
		return sum, all, cmds
	}
	sum, all, cmds := summarize(msgs)
	if sum.Messages != len(msgs) || len(all) != len(msgs) || all[29].Key != "uid-029" {
		t.Fatalf("summary %+v, %d listed; want %d", sum, len(all), len(msgs))
	}
	if !slices.Equal(cmds, []string{"UIDL", "LIST"}) {
		t.Errorf("ListSummary then List sent %q, want one UIDL and one LIST", cmds)
	}
	if again, _, _ := summarize(msgs); again != sum {
		t.Errorf("the same maildrop: summary %+v, then %+v", sum, again)
	}
	changed := append(slices.Clone(msgs[:29]), pop3fake.Message{UIDL: "uid-new", Body: msgs[29].Body})
	if other, _, _ := summarize(changed); other.Digest == sum.Digest || other.Messages != len(msgs) {
		t.Errorf("a maildrop with another message: summary %+v, the first %+v", other, sum)
	}
	bigger := slices.Clone(msgs)
	bigger[3].Body = append(slices.Clone(bigger[3].Body), "more\r\n"...)
	if other, listed, _ := summarize(bigger); other != sum || listed[3].Size != all[3].Size+6 {
		t.Errorf("a maildrop with a message of another size: summary %+v, the first %+v; listed size %d, want %d",
			other, sum, listed[3].Size, all[3].Size+6)
	}
}

// TestSourceListUnordered: a server listing out of number order is read
// to the end of both replies and listed again at once, in memory, on the
// same session. With its UIDLs out of order it has no summary; with its
// UIDLs in order and its LIST not, it has one (ListSummary sends no LIST)
// and the List that follows reads the LIST to its end before listing
// again.
func TestSourceListUnordered(t *testing.T) {
	capa := step{want: "CAPA\r\n", reply: "+OK\r\nUSER\r\nUIDL\r\nPIPELINING\r\n.\r\n"}
	list := step{want: "LIST\r\n", reply: "+OK\r\n2 20\r\n1 10\r\n.\r\n"}
	uidlUnordered := step{want: "UIDL\r\n", reply: "+OK\r\n2 u2\r\n1 u1\r\n.\r\n"}
	uidlOrdered := step{want: "UIDL\r\n", reply: "+OK\r\n1 u1\r\n2 u2\r\n.\r\n"}
	for _, tc := range []struct {
		name    string
		steps   []step
		summary bool
	}{
		// The List after a CAPA that announced PIPELINING asks CAPA, UIDL
		// and LIST at once, then lists into memory with that LIST and
		// another UIDL.
		{"UIDL and LIST unordered", []step{capa, uidlUnordered, {want: "CAPA\r\nUIDL\r\nLIST\r\n", reply: capa.reply + uidlUnordered.reply + list.reply}, uidlUnordered}, false},
		{"LIST unordered", []step{capa, uidlOrdered, list, list, uidlOrdered}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, wait := scripted(t, plain, append([]step{{reply: "+OK\r\n"}}, tc.steps...)...)
			s := &Source{c: c, log: slog.New(slog.DiscardHandler), server: "scripted", user: "alice"}
			ctx := context.Background()
			if sum, ok, err := s.ListSummary(ctx, false); ok != tc.summary || err != nil || ok && sum.Messages != 2 {
				t.Fatalf("ListSummary = %+v, %v, %v; want a summary of 2 messages: %v", sum, ok, err, tc.summary)
			}
			all, err := pipeline.ListAll(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			for _, m := range all {
				got[m.Key] = m.Size
			}
			if len(all) != 2 || got["u1"] != 10 || got["u2"] != 20 {
				t.Errorf("listed %+v, want u1 of 10 bytes and u2 of 20", all)
			}
			wait()
		})
	}
}
