package mapping

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestHeaderSection(t *testing.T) {
	tests := []struct {
		name, msg, want string
	}{
		{"crlf", "A: 1\r\nB: 2\r\n\r\nbody\r\n", "A: 1\r\nB: 2\r\n"},
		{"lf", "A: 1\nB: 2\n\nbody\n", "A: 1\nB: 2\n"},
		{"mixed endings", "A: 1\r\nB: 2\n\r\nbody", "A: 1\r\nB: 2\n"},
		{"lf then crlf blank", "A: 1\n\r\nbody", "A: 1\n"},
		{"cr only", "A: 1\rB: 2\r\rbody\r", "A: 1\rB: 2\r"},
		{"no blank line", "A: 1\r\nB: 2\r\n", "A: 1\r\nB: 2\r\n"},
		{"no final newline", "A: 1\r\nB: 2", "A: 1\r\nB: 2"},
		{"empty message", "", ""},
		{"starts with blank line", "\r\nbody", ""},
		{"starts with bare lf", "\nbody", ""},
		{"whitespace line is not empty", "A: 1\r\n \r\nB: 2\r\n\r\nx", "A: 1\r\n \r\nB: 2\r\n"},
		{"stray cr in a crlf header", "A: 1\rx\r\nB: 2\r\n\r\nbody", "A: 1\rx\r\nB: 2\r\n"},
		{"nul and 8-bit", "A: \x00\xff\r\n\r\n\x00", "A: \x00\xff\r\n"},
		{"blank line in body only counts once", "A: 1\n\nb\n\nc", "A: 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HeaderSection([]byte(tt.msg)); string(got) != tt.want {
				t.Errorf("HeaderSection(%q) = %q, want %q", tt.msg, got, tt.want)
			}
		})
	}
}

func TestFields(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   []Field
	}{
		{"simple crlf", "From: a@b\r\nTo: c@d\r\n", []Field{{"From", "a@b"}, {"To", "c@d"}}},
		{"bare lf", "From: a@b\nTo: c@d\n", []Field{{"From", "a@b"}, {"To", "c@d"}}},
		{"cr only", "From: a@b\rSubject: x\r\r", []Field{{"From", "a@b"}, {"Subject", "x"}}},
		{"folded keeps wsp", "Subject: one\r\n two\r\n\tthree\r\n", []Field{{"Subject", "one two\tthree"}}},
		{"folded lf", "Subject: one\n two\n", []Field{{"Subject", "one two"}}},
		{"folded cr only", "Subject: one\r two\rX: y", []Field{{"Subject", "one two"}, {"X", "y"}}},
		{"empty value", "X-Empty:\r\nY: 1\r\n", []Field{{"X-Empty", ""}, {"Y", "1"}}},
		{"value on continuation line", "Received:\r\n from a by b;\r\n Tue, 3 Jun 2008 10:20:30 +0200\r\n",
			[]Field{{"Received", "from a by b; Tue, 3 Jun 2008 10:20:30 +0200"}}},
		{"no space after colon", "X:y\r\n", []Field{{"X", "y"}}},
		{"obsolete space before colon", "Subject : hi\r\n", []Field{{"Subject", "hi"}}},
		{"colon in value", "Date: Tue, 3 Jun 2008 10:20:30 +0200\r\n", []Field{{"Date", "Tue, 3 Jun 2008 10:20:30 +0200"}}},
		{"order and duplicates kept", "B: 1\r\nA: 2\r\nB: 3\r\n", []Field{{"B", "1"}, {"A", "2"}, {"B", "3"}}},
		{"missing colon skipped with its continuation", "garbage line\r\n cont\r\nA: 1\r\n", []Field{{"A", "1"}}},
		{"mbox From_ line skipped", "From someone@x Tue Jun  3 10:20:30 2008\nA: 1\n", []Field{{"A", "1"}}},
		{">From line skipped", ">From x\nA: 1\n", []Field{{"A", "1"}}},
		{"leading continuation skipped", " orphan\r\nA: 1\r\n", []Field{{"A", "1"}}},
		{"empty name skipped", ": x\r\nA: 1\r\n", []Field{{"A", "1"}}},
		{"8-bit name skipped", "N\xe4me: x\r\nA: 1\r\n", []Field{{"A", "1"}}},
		{"8-bit value kept", "Subject: gr\xfc\xdfe\r\n", []Field{{"Subject", "gr\xfc\xdfe"}}},
		{"nul in value kept", "X: a\x00b\r\n", []Field{{"X", "a\x00b"}}},
		{"stops at blank line", "A: 1\r\n\r\nB: 2\r\n", []Field{{"A", "1"}}},
		{"whole message", "A: 1\n\nbody: not a field\n", []Field{{"A", "1"}}},
		{"no final newline", "A: 1\r\nB: 2", []Field{{"A", "1"}, {"B", "2"}}},
		{"trailing spaces trimmed", "A:   1  \t\r\n", []Field{{"A", "1"}}},
		{"stray cr kept inside line", "A: x\ry\r\n", []Field{{"A", "x\ry"}}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fields([]byte(tt.header)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Fields(%q) = %q, want %q", tt.header, got, tt.want)
			}
		})
	}
}

func TestValues(t *testing.T) {
	h := []byte("Received: one\r\nSubject: s\r\nRECEIVED: two\r\n  folded\r\nreceived:three\r\nX-Received: no\r\n")
	want := []string{"one", "two  folded", "three"}
	if got := Values(h, "Received"); !reflect.DeepEqual(got, want) {
		t.Errorf("Values(%q, Received) = %q, want %q", h, got, want)
	}
	if got := Values(h, "Date"); got != nil {
		t.Errorf("Values(%q, Date) = %q, want nil", h, got)
	}
}

func TestMessageID(t *testing.T) {
	tests := []struct {
		name, header, want string
	}{
		{"plain", "Message-ID: <a@b.example>\r\n", "<a@b.example>"},
		{"case of name", "message-id: <a@b>\r\nMESSAGE-ID: <c@d>\r\n", "<a@b>"},
		{"first of two", "Message-Id: <first@x>\r\nMessage-Id: <second@x>\r\n", "<first@x>"},
		{"first empty, second used", "Message-ID:\r\nMessage-ID: <second@x>\r\n", "<second@x>"},
		{"surrounding whitespace", "Message-ID:   <a@b>   \r\n", "<a@b>"},
		{"comments", "Message-ID: (mailer) <a@b> (more (nested))\r\n", "<a@b>"},
		{"comment with angle bracket", "Message-ID: (see <x@y>) <a@b>\r\n", "<a@b>"},
		{"folded", "Message-ID:\r\n <a@b>\r\n", "<a@b>"},
		{"folded inside", "Message-ID: <very-long-id\r\n @host.example>\r\n", "<very-long-id@host.example>"},
		{"no angle brackets", "Message-ID: a@b.example\r\n", "a@b.example"},
		{"no angle brackets trailing words", "Message-ID: a@b extra\r\n", "a@b"},
		{"unterminated", "Message-ID: <a@b\r\n", "<a@b"},
		{"trailing garbage", "Message-ID: <a@b>junk\r\n", "<a@b>"},
		{"empty brackets", "Message-ID: <>\r\n", ""},
		{"only a comment", "Message-ID: (nothing)\r\n", ""},
		{"absent", "Subject: x\r\n", ""},
		{"resent not used", "Resent-Message-ID: <r@x>\r\n", ""},
		{"in body only", "Subject: x\r\n\r\nMessage-ID: <body@x>\r\n", ""},
		{"bare lf", "Subject: x\nMessage-ID: <a@b>\n", "<a@b>"},
		{"cr only", "Subject: x\rMessage-ID: <a@b>\r\rbody", "<a@b>"},
		{"quoted local part", "Message-ID: <\"a b\"@x>\r\n", "<\"ab\"@x>"},
		{"8-bit", "Message-ID: <\xe4@x>\r\n", "<\xe4@x>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MessageID([]byte(tt.header)); got != tt.want {
				t.Errorf("MessageID(%q) = %q, want %q", tt.header, got, tt.want)
			}
		})
	}
}

var headerSeeds = []string{
	"",
	"\r\n",
	"A: 1\r\nB: 2\r\n\r\nbody\r\n",
	"A: 1\nB: 2\n\nbody\n",
	"A: 1\rB: 2\r\rbody",
	"Subject: one\r\n two\r\n\r\n",
	"From x Tue Jun  3 10:20:30 2008\nA: b\n",
	" orphan\r\n:\r\n::\r\nA:\r\n",
	"Message-ID: (c) <a@b> (d)\r\n",
	"Message-ID: ((((\r\n",
	"Message-ID: <\x00\xff\r\n",
	"A: \x00\r\n\x00: b\r\n",
	"\n\r\n\r\r",
}

func FuzzHeaderSection(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		h := HeaderSection(msg)
		if !bytes.HasPrefix(msg, h) {
			t.Fatalf("HeaderSection(%q) = %q, not a prefix", msg, h)
		}
		if len(h) < len(msg) {
			// What follows must be the empty line.
			rest := msg[len(h):]
			if !bytes.HasPrefix(rest, []byte("\r\n")) && rest[0] != '\n' && rest[0] != '\r' {
				t.Fatalf("HeaderSection(%q) = %q, followed by %q, not an empty line", msg, h, rest)
			}
		}
		// The header section of the header section is itself, unless a
		// bare-CR message lost its LF-bearing body and changed mode.
		if !crOnly(h) || crOnly(msg) {
			if h2 := HeaderSection(h); !bytes.Equal(h2, h) {
				t.Fatalf("HeaderSection(HeaderSection(%q)) = %q, want %q", msg, h2, h)
			}
		}
	})
}

func FuzzFields(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, header []byte) {
		fs := Fields(header)
		for _, fd := range fs {
			if !validFieldName([]byte(fd.Name)) {
				t.Fatalf("Fields(%q): invalid name %q", header, fd.Name)
			}
			if strings.Contains(fd.Value, "\n") {
				t.Fatalf("Fields(%q): value %q not unfolded", header, fd.Value)
			}
			if strings.Trim(fd.Value, " \t") != fd.Value {
				t.Fatalf("Fields(%q): value %q not trimmed", header, fd.Value)
			}
			if !bytes.Contains(header, []byte(fd.Name)) {
				t.Fatalf("Fields(%q): name %q not in input", header, fd.Name)
			}
		}
		if n := len(Fields(HeaderSection(header))); n != len(fs) && !crOnly(HeaderSection(header)) {
			t.Fatalf("Fields(%q) gave %d fields, %d on its header section", header, len(fs), n)
		}
	})
}

func FuzzMessageID(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, header []byte) {
		id := MessageID(header)
		if strings.ContainsAny(id, " \t\r\n") {
			t.Fatalf("MessageID(%q) = %q, contains whitespace", header, id)
		}
		if id != "" && len(Values(header, "Message-ID")) == 0 {
			t.Fatalf("MessageID(%q) = %q without a Message-ID field", header, id)
		}
	})
}

// BenchmarkMessageID: the pipeline takes every fetched message's
// Message-ID from its header section.
func BenchmarkMessageID(b *testing.B) {
	header := []byte("Return-Path: <a@example.org>\r\nReceived: from mx.example.org by mail.example.com;\r\n" +
		"\tTue, 3 Jun 2008 10:20:30 +0200\r\nFrom: A <a@example.org>\r\nTo: b@example.com\r\n" +
		"Subject: a benchmark\r\nMessage-ID: <20080603102030.1234@mx.example.org>\r\n" +
		"Date: Tue, 3 Jun 2008 10:20:30 +0200\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if MessageID(header) == "" {
			b.Fatal("no Message-ID")
		}
	}
}
