package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/pipeline"
)

type fakeSource struct {
	msgs   []pipeline.SourceMessage
	bodies map[string][]byte
	gets   int
}

func (f *fakeSource) List(_ context.Context, page func([]pipeline.SourceMessage) error) error {
	for chunk := range slices.Chunk(slices.Clone(f.msgs), 2) {
		if err := page(chunk); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeSource) Fetch(_ context.Context, m pipeline.SourceMessage, w io.Writer) (int64, error) {
	f.gets++
	b, ok := f.bodies[m.Key]
	if !ok {
		return 0, fmt.Errorf("no message %q", m.Key)
	}
	n, err := w.Write(b)
	return int64(n), err
}

type fakeDest struct {
	boxes  map[string]Listing
	bodies map[uint32][]byte
	gets   int
}

func (f *fakeDest) List(_ context.Context, mb string) (Listing, error) {
	l := f.boxes[mb]
	l.Mailbox = mb
	return l, nil
}

func (f *fakeDest) Fetch(_ context.Context, _ string, uid uint32, w io.Writer) (int64, error) {
	f.gets++
	n, err := w.Write(f.bodies[uid])
	return int64(n), err
}

func body(i int, flags string) []byte {
	status := ""
	if flags != "" {
		status = "Status: " + flags + "\r\n"
	}
	return []byte(fmt.Sprintf("Received: from a by b; Mon, 2 Mar 2015 10:00:%02d +0000\r\n%sMessage-ID: <m%d@x>\r\nSubject: %d\r\n\r\nbody %d\r\n", i, status, i, i, i))
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// world is a source of n messages copied to INBOX as UIDs 1..n, with the
// ledger a copy would have written; edit changes it before the check.
type world struct {
	src    *fakeSource
	dst    *fakeDest
	ledger map[string]pipeline.Entry
}

func newWorld(n int) *world {
	w := &world{src: &fakeSource{bodies: map[string][]byte{}}, dst: &fakeDest{boxes: map[string]Listing{}, bodies: map[uint32][]byte{}},
		ledger: map[string]pipeline.Entry{}}
	l := Listing{UIDValidity: 7}
	for i := 1; i <= n; i++ {
		key := fmt.Sprintf("uidl-%d", i)
		b := body(i, "")
		w.src.msgs = append(w.src.msgs, pipeline.SourceMessage{Key: key, Size: int64(len(b))})
		w.src.bodies[key] = b
		date, _ := mapping.InternalDate(b, mapping.DateReceived, time.Now())
		l.Messages = append(l.Messages, Message{UID: uint32(i), Size: int64(len(b)), InternalDate: date, Header: mapping.HeaderSection(b)})
		w.dst.bodies[uint32(i)] = b
		w.ledger[key] = pipeline.Entry{Key: key, State: pipeline.StateDone, Digest: digest(b), Size: int64(len(b)),
			MessageID: fmt.Sprintf("<m%d@x>", i), DestMailbox: "INBOX", DestUIDValidity: 7, DestUID: uint32(i)}
	}
	w.dst.boxes["INBOX"] = l
	return w
}

func (w *world) msg(uid uint32) *Message {
	l := w.dst.boxes["INBOX"]
	for i := range l.Messages {
		if l.Messages[i].UID == uid {
			return &l.Messages[i]
		}
	}
	return nil
}

func (w *world) remove(uid uint32) {
	l := w.dst.boxes["INBOX"]
	l.Messages = slices.DeleteFunc(l.Messages, func(m Message) bool { return m.UID == uid })
	w.dst.boxes["INBOX"] = l
}

func (w *world) add(uid uint32, b []byte) {
	l := w.dst.boxes["INBOX"]
	date, _ := mapping.InternalDate(b, mapping.DateReceived, time.Now())
	l.Messages = append(l.Messages, Message{UID: uid, Size: int64(len(b)), InternalDate: date, Header: mapping.HeaderSection(b)})
	w.dst.boxes["INBOX"] = l
	w.dst.bodies[uid] = b
}

type want struct {
	kind Kind
	key  string
	uid  uint32
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(w *world)
		noLedger  bool
		full      bool
		strict    bool
		want      []want // the non-matches
		ok        bool
		srcFetch  bool // the source was downloaded
		destFetch bool
	}{
		{name: "all there", edit: func(*world) {}, ok: true},
		{name: "all there, full", edit: func(*world) {}, full: true, ok: true, srcFetch: true, destFetch: true},
		{name: "all there, no ledger", edit: func(*world) {}, noLedger: true, ok: true, srcFetch: true, destFetch: true},
		{name: "deleted on the destination", edit: func(w *world) { w.remove(2) },
			want: []want{{Missing, "uidl-2", 0}}},
		{name: "deleted on the destination, no ledger", edit: func(w *world) { w.remove(2) }, noLedger: true,
			want: []want{{Missing, "uidl-2", 0}}, srcFetch: true, destFetch: true},
		// The fast check compares sizes; a size that differs is looked
		// at closely (a server documented to change messages, a source
		// that re-encodes them), which downloads both sides.
		{name: "size differs", edit: func(w *world) { w.msg(3).Size++ },
			want: []want{{Differs, "uidl-3", 3}}, srcFetch: true, destFetch: true},
		{name: "same size, other bytes: only the full check sees it", edit: func(w *world) {
			b := bytes.Clone(w.dst.bodies[3])
			b[len(b)-3] = 'X'
			w.dst.bodies[3] = b
		}, full: true, want: []want{{Differs, "uidl-3", 3}}, srcFetch: true, destFetch: true},
		{name: "same Message-ID, other content, no ledger", edit: func(w *world) {
			w.remove(3)
			w.add(30, append(bytes.Clone(body(3, "")), "more\r\n"...))
		}, noLedger: true, want: []want{{Differs, "uidl-3", 30}}, srcFetch: true, destFetch: true},
		{name: "flags differ", edit: func(w *world) { w.msg(1).Flags = []string{`\Flagged`, `\Recent`} },
			want: []want{{FlagsDiffer, "uidl-1", 1}}},
		{name: "recent is ignored", edit: func(w *world) { w.msg(1).Flags = []string{`\Recent`} }, ok: true},
		{name: "date differs", edit: func(w *world) { w.msg(4).InternalDate = time.Unix(0, 0) },
			want: []want{{DateDiffers, "uidl-4", 4}}},
		{name: "extra is information only", edit: func(w *world) { w.add(99, body(99, "")) },
			want: []want{{Extra, "", 99}}, ok: true},
		{name: "extra fails with strict", edit: func(w *world) { w.add(99, body(99, "")) }, strict: true,
			want: []want{{Extra, "", 99}}},
		{name: "a second copy is a duplicate", edit: func(w *world) { w.add(50, body(2, "")) },
			want: []want{{Duplicate, "uidl-2", 50}}, destFetch: true},
		{name: "a second copy is a duplicate, no ledger", edit: func(w *world) { w.add(50, body(2, "")) }, noLedger: true,
			want: []want{{Duplicate, "uidl-2", 50}}, srcFetch: true, destFetch: true},
		{name: "two identical source messages, one copy each: no duplicate", edit: func(w *world) {
			b := body(2, "")
			w.src.msgs = append(w.src.msgs, pipeline.SourceMessage{Key: "uidl-6", Size: int64(len(b))})
			w.src.bodies["uidl-6"] = b
			w.add(6, b)
			w.ledger["uidl-6"] = pipeline.Entry{Key: "uidl-6", State: pipeline.StateDone, Digest: digest(b), Size: int64(len(b)),
				DestMailbox: "INBOX", DestUIDValidity: 7, DestUID: 6}
		}, ok: true},
		{name: "a third copy too", edit: func(w *world) { w.add(50, body(2, "")); w.add(51, body(2, "")) },
			want: []want{{Duplicate, "uidl-2", 50}, {Duplicate, "uidl-2", 51}}, destFetch: true},
		{name: "same size and Message-ID, other bytes: extra, not a duplicate", edit: func(w *world) {
			b := bytes.Clone(body(2, ""))
			b[len(b)-3] = 'X'
			w.add(50, b)
		}, want: []want{{Extra, "", 50}}, ok: true, destFetch: true},
		{name: "moved by the ledger's UID after a UIDVALIDITY change: matched by content", edit: func(w *world) {
			l := w.dst.boxes["INBOX"]
			l.UIDValidity = 8
			w.dst.boxes["INBOX"] = l
		}, ok: true, destFetch: true},
		{name: "skipped message is missing with its reason", edit: func(w *world) {
			e := w.ledger["uidl-2"]
			e.State, e.Reason, e.DestUID = pipeline.StateSkipped, "too big: 9 bytes, the limit is 5", 0
			w.ledger["uidl-2"] = e
			w.remove(2)
		}, want: []want{{Missing, "uidl-2", 0}}, srcFetch: true},
		{name: "source deleted after the copy: checked from the ledger", edit: func(w *world) {
			w.src.msgs = w.src.msgs[1:]
			w.remove(1)
		}, want: []want{{Missing, "uidl-1", 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(5)
			tc.edit(w)
			opts := Options{Full: tc.full, Ledger: w.ledger, Strict: tc.strict}
			if tc.noLedger {
				opts.Ledger = nil
			}
			res, err := Check(context.Background(), w.src, w.dst, opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []want
			for _, it := range res.Items {
				if it.Kind != Match {
					got = append(got, want{it.Kind, it.Key, it.UID})
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("differences %v, want %v (items %+v)", got, tc.want, res.Items)
			}
			if res.OK() != tc.ok {
				t.Errorf("OK() = %v, want %v", res.OK(), tc.ok)
			}
			if (w.src.gets > 0) != tc.srcFetch || (w.dst.gets > 0) != tc.destFetch {
				t.Errorf("downloads: source %d, destination %d; want source %v, destination %v", w.src.gets, w.dst.gets, tc.srcFetch, tc.destFetch)
			}
		})
	}
}

func TestCheckFlagPolicy(t *testing.T) {
	tests := []struct {
		name   string
		policy mapping.FlagPolicy
		status string
		flags  []string
		kind   Kind
	}{
		{"none wants none", mapping.FlagsNone, "", nil, Match},
		{"none refuses seen", mapping.FlagsNone, "", []string{`\Seen`}, FlagsDiffer},
		{"seen wants seen", mapping.FlagsSeen, "", []string{`\seen`}, Match},
		{"seen refuses none", mapping.FlagsSeen, "", nil, FlagsDiffer},
		{"status header", mapping.FlagsStatusHeader, "RO", []string{`\Seen`}, Match},
		{"status header, flag added", mapping.FlagsStatusHeader, "RO", []string{`\Seen`, `\Flagged`}, FlagsDiffer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := body(1, tc.status)
			src := &fakeSource{msgs: []pipeline.SourceMessage{{Key: "k"}}, bodies: map[string][]byte{"k": b}}
			dst := &fakeDest{boxes: map[string]Listing{"INBOX": {UIDValidity: 1, Messages: []Message{
				{UID: 1, Size: int64(len(b)), Flags: tc.flags, Header: mapping.HeaderSection(b)}}}},
				bodies: map[uint32][]byte{1: b}}
			res, err := Check(context.Background(), src, dst, Options{FlagPolicy: tc.policy})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Items) != 1 || res.Items[0].Kind != tc.kind {
				t.Errorf("items %+v, want one %v", res.Items, tc.kind)
			}
		})
	}
}

func TestCheckIMAPSourceFlagsAndDates(t *testing.T) {
	b := body(1, "")
	date := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)
	key := "Archive\x005\x0042"
	src := &fakeSource{msgs: []pipeline.SourceMessage{{Key: key, Mailbox: "Archive", Flags: []string{`\Seen`, "$Label1"}, InternalDate: date}},
		bodies: map[string][]byte{key: b}}
	dst := &fakeDest{boxes: map[string]Listing{"Old/Archive": {UIDValidity: 1, Messages: []Message{
		{UID: 1, Size: int64(len(b)), Flags: []string{"$Label1", `\Seen`}, InternalDate: date.In(time.FixedZone("", 3600)), Header: mapping.HeaderSection(b)}}}},
		bodies: map[uint32][]byte{1: b}}
	res, err := Check(context.Background(), src, dst, Options{MailboxOf: func(m pipeline.SourceMessage) string { return "Old/" + m.Mailbox }})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Stats.Matched != 1 || res.Stats.ByContent != 1 {
		t.Fatalf("result %+v, want one match by content", res)
	}
	if got := res.Items[0].Name(); got != "Archive;UIDVALIDITY=5;UID=42" {
		t.Errorf("Name() = %q", got)
	}
}

// TestCheckKeywordCase: a keyword that comes back from the destination in
// another case ($Label sent, $label stored: Dovecot spells a keyword as the
// mailbox first saw it) is the same flag, as flag sync takes it
// (mapping.SameFlags); verify used to report "flags differ" forever.
func TestCheckKeywordCase(t *testing.T) {
	b := body(1, "")
	date := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)
	key := "INBOX\x005\x0042"
	for _, tc := range []struct {
		name     string
		src, dst []string
		ok       bool
	}{
		{"keyword", []string{`\Seen`, "$Label"}, []string{`\Seen`, "$label", `\Recent`}, true},
		{"system flag", []string{`\SEEN`}, []string{`\Seen`}, true},
		{"another keyword", []string{"$Label1"}, []string{"$Label2"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &fakeSource{msgs: []pipeline.SourceMessage{{Key: key, Mailbox: "INBOX", Flags: tc.src, InternalDate: date}},
				bodies: map[string][]byte{key: b}}
			dst := &fakeDest{boxes: map[string]Listing{"INBOX": {UIDValidity: 1, Messages: []Message{
				{UID: 1, Size: int64(len(b)), Flags: tc.dst, InternalDate: date, Header: mapping.HeaderSection(b)}}}},
				bodies: map[uint32][]byte{1: b}}
			ledger := map[string]pipeline.Entry{key: {Key: key, State: pipeline.StateDone, Digest: digest(b), Size: int64(len(b)),
				DestMailbox: "INBOX", DestUIDValidity: 1, DestUID: 1, Flags: tc.src}}
			res, err := Check(context.Background(), src, dst, Options{Ledger: ledger})
			if err != nil {
				t.Fatal(err)
			}
			if res.OK() != tc.ok || tc.ok && res.Stats.Matched != 1 || !tc.ok && res.Stats.FlagsDiffer != 1 {
				t.Errorf("source flags %q, destination %q: %+v, want ok=%v", tc.src, tc.dst, res, tc.ok)
			}
		})
	}
}

// TestCheckAddHeader: after a copy that put an X-UIDL field before each
// message, the full and the content checks hash the source with that field,
// as the copy sent it; without it every message differed. A source message
// changed since the copy is still found different.
func TestCheckAddHeader(t *testing.T) {
	xuidl := func(m pipeline.SourceMessage) string { return "X-UIDL: " + m.Key + "\r\n" }
	copied := func() *world {
		w := newWorld(3)
		for i, m := range w.src.msgs {
			uid := uint32(i + 1)
			b := append([]byte(xuidl(m)), w.src.bodies[m.Key]...)
			w.dst.bodies[uid] = b
			w.msg(uid).Size, w.msg(uid).Header = int64(len(b)), mapping.HeaderSection(b)
			e := w.ledger[m.Key]
			e.Digest, e.Size = digest(b), int64(len(b))
			w.ledger[m.Key] = e
		}
		return w
	}
	for _, mode := range []struct {
		name           string
		full, noLedger bool
	}{{"fast", false, false}, {"full", true, false}, {"no ledger", false, true}} {
		t.Run(mode.name, func(t *testing.T) {
			opts := func(w *world, add bool) Options {
				o := Options{Full: mode.full, Ledger: w.ledger}
				if mode.noLedger {
					o.Ledger = nil
				}
				if add {
					o.AddHeader = xuidl
				}
				return o
			}
			w := copied()
			res, err := Check(context.Background(), w.src, w.dst, opts(w, true))
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK() || res.Stats.Matched != 3 {
				t.Errorf("with the copy's header: %+v, want 3 matches", res.Stats)
			}
			if mode.full || mode.noLedger {
				res, _ := Check(context.Background(), w.src, w.dst, opts(w, false))
				if res.OK() {
					t.Errorf("without the copy's header the bare source matched: %+v", res.Stats)
				}
			}
			// A real difference: the source's second message changed since
			// the copy (same size, one byte).
			w = copied()
			b := w.src.bodies["uidl-2"]
			b[len(b)-3]++
			res, err = Check(context.Background(), w.src, w.dst, opts(w, true))
			if err != nil {
				t.Fatal(err)
			}
			wantDiffers := 1
			if !mode.full && !mode.noLedger {
				wantDiffers = 0 // the fast check compares sizes only
			}
			if res.Stats.Differs != wantDiffers || res.Stats.Matched != 3-wantDiffers {
				t.Errorf("one source message changed: %+v, want %d differing", res.Stats, wantDiffers)
			}
		})
	}
}

func TestDisplayKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abc123", "abc123"},
		{"INBOX\x001\x002", "INBOX;UIDVALIDITY=1;UID=2"},
		{"a b", `"a b"`},
		{"a\nb", `"a\nb"`},
	}
	for _, tc := range tests {
		if got := DisplayKey(tc.in); got != tc.want {
			t.Errorf("DisplayKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestExpectedSourceFlags(t *testing.T) {
	done := func(flags ...string) *pipeline.Entry {
		return &pipeline.Entry{State: pipeline.StateDone, Flags: flags}
	}
	tests := []struct {
		name  string
		src   []string
		dst   []string
		entry *pipeline.Entry
		want  []string
	}{
		{"no ledger: every valid flag", []string{`\Seen`, "$Forwarded"}, nil, nil, []string{`\Seen`, "$Forwarded"}},
		{"invalid keyword dropped", []string{`\Seen`, "bad(kw"}, nil, nil, []string{`\Seen`}},
		{"keyword refused at copy time", []string{`\Seen`, "$Label1"}, []string{`\Seen`}, done(`\Seen`), []string{`\Seen`}},
		{"keyword the ledger recorded", []string{`\Seen`, "$Label1"}, []string{`\Seen`}, done(`\Seen`, "$Label1"), []string{`\Seen`, "$Label1"}},
		{"keyword on the destination", []string{"$Label1"}, []string{"$label1"}, done(), []string{"$Label1"}},
		{"system flag always expected", []string{`\Flagged`}, nil, done(), []string{`\Flagged`}},
		{"pending entry: no ledger word", []string{"$Label1"}, nil, &pipeline.Entry{State: pipeline.StatePending}, []string{"$Label1"}},
		{"no flags", []string{}, []string{`\Seen`}, done(`\Seen`), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := expectedSourceFlags(tc.src, tc.dst, tc.entry)
			if !mapping.SameFlags(got, tc.want) {
				t.Errorf("expectedSourceFlags(%q, %q, %+v) = %q, want %q", tc.src, tc.dst, tc.entry, got, tc.want)
			}
		})
	}
}

// mboxCopy is b as GNU Mailutils serves it: fields of its mbox storage
// added at the end of the header.
func mboxCopy(b []byte, uid int) []byte {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	return []byte(fmt.Sprintf("%sX-IMAPbase: 1796526750 %d\r\nX-UID: %d\r\n%s", b[:i+2], uid+1, uid, b[i+2:]))
}

// reencodingSource serves key differently on every read, as Courier's
// pop3d serves a message with UTF-8 in its header to a client that does
// not ask for UTF-8 (a notice with a fresh MIME boundary).
type reencodingSource struct {
	*fakeSource
	key string
}

func (r *reencodingSource) Fetch(ctx context.Context, m pipeline.SourceMessage, w io.Writer) (int64, error) {
	if m.Key != r.key {
		return r.fakeSource.Fetch(ctx, m, w)
	}
	r.gets++
	n, err := fmt.Fprintf(w, "Message-ID: <m2@x>\r\nContent-Type: multipart/mixed; boundary=\"=_%d\"\r\n\r\n--=_%d--\r\n", r.gets, r.gets)
	return int64(n), err
}

// TestCheckChanged: destination copies changed the way servers are
// documented to change messages are reported as changed, with how, and do
// not fail the check; any other difference still does.
func TestCheckChanged(t *testing.T) {
	for _, tt := range []struct {
		name     string
		full     bool
		noLedger bool
		gone     bool // the source message is gone (moved)
		edit     func(w *world)
		src      func(w *world) Source
		kind     Kind
		detail   string
	}{
		{name: "mbox fields, fast", edit: func(w *world) { w.remove(2); w.add(2, mboxCopy(body(2, ""), 2)) },
			kind: Changed, detail: "header fields added by mbox storage (X-IMAPbase, X-UID)"},
		{name: "mbox fields, full", full: true, edit: func(w *world) { w.remove(2); w.add(2, mboxCopy(body(2, ""), 2)) },
			kind: Changed, detail: "header fields added by mbox storage (X-IMAPbase, X-UID)"},
		{name: "mbox fields, no ledger", noLedger: true, edit: func(w *world) { w.remove(2); w.add(9, mboxCopy(body(2, ""), 9)) },
			kind: Changed, detail: "header fields added by mbox storage (X-IMAPbase, X-UID)"},
		{name: "mbox fields, source gone", gone: true, edit: func(w *world) { w.remove(2); w.add(2, mboxCopy(body(2, ""), 2)) },
			kind: Changed, detail: "header fields added by mbox storage (X-IMAPbase, X-UID)"},
		{name: "8-bit header bytes, full", full: true, edit: func(w *world) {
			b := []byte("Message-ID: <m2@x>\r\nSubject: Grüße\r\n\r\nbody\r\n")
			w.src.bodies["uidl-2"] = b
			e := w.ledger["uidl-2"]
			e.Digest, e.Size = digest(b), int64(len(b))
			w.ledger["uidl-2"] = e
			w.remove(2)
			w.add(2, bytes.ReplaceAll(b, []byte("Grüße"), []byte("GrXXXXe")))
		}, kind: Changed, detail: "4 8-bit header bytes replaced"},
		{name: "source re-encodes on every read", noLedger: true, edit: func(w *world) {
			w.remove(2)
			w.add(2, []byte("Message-ID: <m2@x>\r\nContent-Type: multipart/mixed; boundary=\"=_0\"\r\n\r\n--=_0--\r\n"))
		}, src: func(w *world) Source { return &reencodingSource{fakeSource: w.src, key: "uidl-2"} },
			kind: Changed, detail: "re-encoded by the server"},
		{name: "body changed: differs", full: true, edit: func(w *world) {
			b := mboxCopy(body(2, ""), 2)
			w.remove(2)
			w.add(2, append(b, "more\r\n"...))
		}, kind: Differs},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(3)
			tt.edit(w)
			var src Source = w.src
			if tt.src != nil {
				src = tt.src(w)
			}
			if tt.gone {
				w.src.msgs = slices.DeleteFunc(w.src.msgs, func(m pipeline.SourceMessage) bool { return m.Key == "uidl-2" })
			}
			o := Options{Full: tt.full, Ledger: w.ledger}
			if tt.noLedger {
				o.Ledger = nil
			}
			res, err := Check(context.Background(), src, w.dst, o)
			if err != nil {
				t.Fatal(err)
			}
			var got *Difference
			for i, d := range res.Items {
				if d.Key == "uidl-2" {
					got = &res.Items[i]
				}
			}
			if got == nil || got.Kind != tt.kind || !bytes.Contains([]byte(got.Detail), []byte(tt.detail)) {
				t.Fatalf("uidl-2: %+v, want %v with %q (stats %+v)", got, tt.kind, tt.detail, res.Stats)
			}
			if res.OK() != (tt.kind == Changed) {
				t.Errorf("OK() = %v with %v", res.OK(), tt.kind)
			}
		})
	}
}
