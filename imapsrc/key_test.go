package imapsrc

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/pipeline"
)

func TestParseKey(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		mailbox string
		uv, uid uint32
		wantErr bool
	}{
		{name: "inbox", key: "INBOX\x00123\x001", mailbox: "INBOX", uv: 123, uid: 1},
		{name: "nested non-ASCII", key: "Archiv/Grüße\x004294967295\x004294967295", mailbox: "Archiv/Grüße", uv: math.MaxUint32, uid: math.MaxUint32},
		{name: "dot separator", key: "INBOX.Sent\x007\x0042", mailbox: "INBOX.Sent", uv: 7, uid: 42},
		{name: "empty", key: "", wantErr: true},
		{name: "POP3 UIDL", key: "000001a2b3", wantErr: true},
		{name: "two parts", key: "INBOX\x001", wantErr: true},
		{name: "four parts", key: "INBOX\x001\x002\x003", wantErr: true},
		{name: "empty mailbox", key: "\x001\x002", wantErr: true},
		{name: "zero uid", key: "INBOX\x001\x000", wantErr: true},
		{name: "zero uidvalidity", key: "INBOX\x000\x001", wantErr: true},
		{name: "leading zero", key: "INBOX\x0001\x001", wantErr: true},
		{name: "sign", key: "INBOX\x00+1\x001", wantErr: true},
		{name: "overflow", key: "INBOX\x001\x004294967296", wantErr: true},
		{name: "not a number", key: "INBOX\x001\x00x", wantErr: true},
		{name: "empty uid", key: "INBOX\x001\x00", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mbox, uv, uid, err := ParseKey(tt.key)
			if tt.wantErr {
				if !errors.Is(err, ErrBadKey) || pipeline.ClassOf(err) != pipeline.ClassPerMessage {
					t.Fatalf("ParseKey(%q) error = %v (class %v), want ErrBadKey, per message", tt.key, err, pipeline.ClassOf(err))
				}
				return
			}
			if err != nil || mbox != tt.mailbox || uv != tt.uv || uid != tt.uid {
				t.Fatalf("ParseKey(%q) = %q, %d, %d, %v; want %q, %d, %d", tt.key, mbox, uv, uid, err, tt.mailbox, tt.uv, tt.uid)
			}
			if back := FormatKey(mbox, uv, uid); back != tt.key {
				t.Errorf("FormatKey(ParseKey(%q)) = %q", tt.key, back)
			}
		})
	}
}

// FuzzParseKey checks that ParseKey accepts exactly FormatKey's output: what
// it accepts formats back to the same key, and what FormatKey makes parses.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"INBOX\x001\x001", "a/b\x0042\x007", "\x00\x00", "x\x000\x001", "x\x0001\x001", "x\x001\x0099999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		mbox, uv, uid, err := ParseKey(key)
		if err != nil {
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("ParseKey(%q) error %v does not wrap ErrBadKey", key, err)
			}
			return
		}
		if back := FormatKey(mbox, uv, uid); back != key {
			t.Fatalf("FormatKey(ParseKey(%q)) = %q", key, back)
		}
		if uv == 0 || uid == 0 || mbox == "" {
			t.Fatalf("ParseKey(%q) = %q, %d, %d: accepted a zero or empty part", key, mbox, uv, uid)
		}
		// KeyFolder cuts its prefixes out of the key: they must be
		// KeyPrefix's.
		p, ok := KeyFolder(key)
		want := pipeline.KeyPlace{Mailbox: mbox, Folder: KeyPrefix(mbox, 0), Generation: KeyPrefix(mbox, uv), UIDValidity: uv, UID: uid}
		if !ok || p != want {
			t.Fatalf("KeyFolder(%q) = %+v, %v; want %+v", key, p, ok, want)
		}
	})
}

// BenchmarkKeyFolder: the pipeline places every listed message's key
// three times (its scopes, and the claims of earlier generations).
func BenchmarkKeyFolder(b *testing.B) {
	key := FormatKey("Archive/2024", 1733491200, 123456)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := KeyFolder(key); !ok {
			b.Fatal("KeyFolder refused its key")
		}
	}
}

// BenchmarkFormatKey: a listing makes one key per message.
func BenchmarkFormatKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if FormatKey("Archive/2024", 1733491200, 123456) == "" {
			b.Fatal("empty key")
		}
	}
}

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		name           string
		oldKey, newKey string
		want           bool
	}{
		{"another UIDVALIDITY of the folder", FormatKey("INBOX", 1, 7), FormatKey("INBOX", 2, 9), true},
		{"the same UIDVALIDITY", FormatKey("INBOX", 1, 7), FormatKey("INBOX", 1, 9), false},
		{"another folder", FormatKey("INBOX", 1, 7), FormatKey("Sent", 2, 7), false},
		{"a POP3 key", "000001a2b3", FormatKey("INBOX", 2, 7), false},
		{"to a POP3 key", FormatKey("INBOX", 1, 7), "000001a2b3", false},
	}
	for _, tc := range tests {
		if got := SameOrigin(tc.oldKey, tc.newKey); got != tc.want {
			t.Errorf("%s: SameOrigin(%q, %q) = %v, want %v", tc.name, tc.oldKey, tc.newKey, got, tc.want)
		}
	}
}

func TestKeyFolder(t *testing.T) {
	tests := []struct {
		key  string
		want pipeline.KeyPlace
		ok   bool
	}{
		{FormatKey("INBOX", 7, 42), pipeline.KeyPlace{Mailbox: "INBOX", Folder: "INBOX\x00", Generation: "INBOX\x007\x00", UIDValidity: 7, UID: 42}, true},
		{FormatKey("a\x01b", 4294967295, 1), pipeline.KeyPlace{Mailbox: "a\x01b", Folder: "a\x01b\x00", Generation: "a\x01b\x004294967295\x00", UIDValidity: 4294967295, UID: 1}, true},
		{"uidl-123", pipeline.KeyPlace{}, false},
		{"INBOX\x000\x001", pipeline.KeyPlace{}, false},
	}
	for _, tc := range tests {
		got, ok := KeyFolder(tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("KeyFolder(%q) = %+v, %v; want %+v, %v", tc.key, got, ok, tc.want, tc.ok)
		}
		if ok && (!strings.HasPrefix(tc.key, got.Generation) || !strings.HasPrefix(got.Generation, got.Folder)) {
			t.Errorf("KeyFolder(%q): prefixes %q, %q do not nest", tc.key, got.Folder, got.Generation)
		}
	}
	if KeyPrefix("INBOX", 7) != "INBOX\x007\x00" || KeyPrefix("INBOX", 0) != "INBOX\x00" {
		t.Error("KeyPrefix")
	}
}
