package pipeline

import "testing"

func TestDispositionOf(t *testing.T) {
	tests := []struct {
		name string
		e    Entry
		ok   bool
		want Disposition
	}{
		{"no entry", Entry{}, false, ToCopy},
		{"pending", Entry{State: StatePending}, true, ToCopy},
		{"failed", Entry{State: StateFailed}, true, ToCopy},
		{"done", Entry{State: StateDone}, true, AlreadyDone},
		{"skipped", Entry{State: StateSkipped, Reason: "too big"}, true, SkippedEarlier},
		{"zero value found", Entry{}, true, ToCopy},
	}
	for _, tt := range tests {
		if got := DispositionOf(tt.e, tt.ok); got != tt.want {
			t.Errorf("%s: DispositionOf(%+v, %v) = %v, want %v", tt.name, tt.e, tt.ok, got, tt.want)
		}
	}
}

func TestSizeLimit(t *testing.T) {
	tests := []struct {
		name         string
		max, append  int64
		want         SizeLimit
		fits, tooBig int64
	}{
		{"none", 0, 0, SizeLimit{}, 1 << 40, -1},
		{"max only", 1000, 0, SizeLimit{Bytes: 1000}, 1000, 1001},
		{"append limit only", 0, 500, SizeLimit{Bytes: 500, ByDestination: true}, 500, 501},
		{"append limit lower", 1000, 500, SizeLimit{Bytes: 500, ByDestination: true}, 500, 501},
		{"max lower", 400, 500, SizeLimit{Bytes: 400}, 400, 401},
	}
	for _, tt := range tests {
		l := NewSizeLimit(tt.max, tt.append)
		if l != tt.want {
			t.Errorf("%s: NewSizeLimit(%d, %d) = %+v, want %+v", tt.name, tt.max, tt.append, l, tt.want)
		}
		if !l.Allows(tt.fits) {
			t.Errorf("%s: %+v.Allows(%d) = false", tt.name, l, tt.fits)
		}
		if tt.tooBig >= 0 && l.Allows(tt.tooBig) {
			t.Errorf("%s: %+v.Allows(%d) = true", tt.name, l, tt.tooBig)
		}
	}
	l := NewSizeLimit(1000, 0)
	if got := l.Tighten(0); got != l {
		t.Errorf("Tighten(0) = %+v, want %+v", got, l)
	}
	if got := l.Tighten(2000); got != l {
		t.Errorf("Tighten(2000) = %+v, want %+v", got, l)
	}
	if got := l.Tighten(800); got != (SizeLimit{Bytes: 800, ByDestination: true}) {
		t.Errorf("Tighten(800) = %+v", got)
	}
	if got := NewSizeLimit(0, 500).Reason(501); got != "too big: 501 bytes, the limit is 500 (the destination's APPENDLIMIT)" {
		t.Errorf("Reason = %q", got)
	}
}

func TestFolderPlan(t *testing.T) {
	pop := AllTo("Old Mail")
	if d, ok := pop.Dest(SourceMessage{Key: "u1"}); !ok || d != "Old Mail" {
		t.Errorf("AllTo: Dest = %q, %v", d, ok)
	}
	imap := MappedFolders(map[string]string{"INBOX": "INBOX", "Sent Items": "Sent", "Spam": ""})
	for _, tc := range []struct {
		mailbox, want string
		ok            bool
	}{{"INBOX", "INBOX", true}, {"Sent Items", "Sent", true}, {"Spam", "", false}, {"Trash", "", false}} {
		if d, ok := imap.Dest(SourceMessage{Mailbox: tc.mailbox}); d != tc.want || ok != tc.ok {
			t.Errorf("MappedFolders: Dest(%q) = %q, %v; want %q, %v", tc.mailbox, d, ok, tc.want, tc.ok)
		}
	}
	if d, ok := AllTo("").Dest(SourceMessage{}); !ok || d != "INBOX" {
		t.Errorf(`AllTo(""): Dest = %q, %v; want INBOX`, d, ok)
	}
	if _, ok := (FolderPlan{}).Dest(SourceMessage{}); ok {
		t.Error("the zero FolderPlan copies a message")
	}
	if _, ok := MappedFolders(nil).Dest(SourceMessage{}); ok {
		t.Error("MappedFolders(nil) copies a message")
	}
}
