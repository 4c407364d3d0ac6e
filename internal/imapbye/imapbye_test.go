package imapbye

import (
	"bytes"
	"fmt"
	"math/rand"
	"net"
	"reflect"
	"strings"
	"testing"
)

func TestScan(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   *Bye
	}{
		{"code and text", "* OK ready\r\nA1 OK done\r\n* BYE [UNAVAILABLE] going down\r\n",
			&Bye{Code: "UNAVAILABLE", Text: "going down"}},
		{"no code", "* BYE Autologout; idle for too long\r\n", &Bye{Text: "Autologout; idle for too long"}},
		{"code with arguments", "* bye [ALERT extra] see you\r\n", &Bye{Code: "ALERT", Text: "see you"}},
		{"no text", "* BYE\r\n", &Bye{}},
		{"bare LF", "* BYE [UNAVAILABLE] x\n", &Bye{Code: "UNAVAILABLE", Text: "x"}},
		{"the last of two", "* BYE first\r\n* BYE second\r\n", &Bye{Text: "second"}},
		{"not yet ended", "* BYE [UNAVAILABLE] going", nil},
		{"another word", "* BYEBYE x\r\n", nil},
		{"inside a literal", "* 1 FETCH (BODY[] {22}\r\n* BYE not the server\r\n)\r\nA1 OK done\r\n", nil},
		{"after a literal, on the same response", "* 1 FETCH (BODY[] {2}\r\nab * BYE x\r\n)\r\n", nil},
		{"after a literal response", "* 1 FETCH (BODY[] {3}\r\nabc)\r\n* BYE [UNAVAILABLE] now\r\n",
			&Bye{Code: "UNAVAILABLE", Text: "now"}},
		{"literal8", "* 1 FETCH (BINARY[] ~{14}\r\n* BYE inside\r\n)\r\n", nil},
		{"status text ending like a literal", "A1 NO [LIMIT] too many {5}\r\n* BYE [UNAVAILABLE] bye\r\n",
			&Bye{Code: "UNAVAILABLE", Text: "bye"}},
		{"a long line before", "* OK " + string(make([]byte, 5000)) + "\r\n* BYE x\r\n", &Bye{Text: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s scanner
			if got := last(&s, []byte(tt.stream), 0, nil); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("scan(%q) = %+v, want %+v", tt.stream, got, tt.want)
			}
			// Byte by byte: the same.
			var s1 scanner
			if got := last(&s1, []byte(tt.stream), 1, nil); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("scan(%q) byte by byte = %+v, want %+v", tt.stream, got, tt.want)
			}
		})
	}
}

// last scans stream in chunks of size n (0: at once; -1: random sizes from
// rng) and returns the last BYE seen.
func last(s *scanner, stream []byte, n int, rng *rand.Rand) *Bye {
	var bye *Bye
	for len(stream) > 0 {
		k := len(stream)
		switch {
		case n > 0:
			k = min(n, k)
		case n < 0:
			k = 1 + rng.Intn(k)
		}
		if b := s.scan(stream[:k]); b != nil {
			bye = b
		}
		stream = stream[k:]
	}
	return bye
}

// FuzzScanChunks: how the bytes arrive never changes what is found.
func FuzzScanChunks(f *testing.F) {
	f.Add([]byte("* 1 FETCH (BODY[] {3}\r\nabc)\r\n* BYE [UNAVAILABLE] now\r\n"), int64(1))
	f.Add([]byte("A1 NO x {5}\r\n* BYE y\r\n"), int64(2))
	f.Fuzz(func(t *testing.T, stream []byte, seed int64) {
		var whole, chunked scanner
		want := last(&whole, stream, 0, nil)
		got := last(&chunked, stream, -1, rand.New(rand.NewSource(seed)))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("scan(%q) in chunks = %+v, at once %+v", stream, got, want)
		}
	})
}

// FuzzIsStatus: isStatus answers as strings.ToUpper did before it
// compared without allocating.
func FuzzIsStatus(f *testing.F) {
	for _, s := range []string{"A1 OK done", "* bye x", "* 1 FETCH (UID 1)", "T2 PreAuth", "* o\u212a", "* \u0131", "a b", "ok"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		want := false
		if _, rest, ok := bytes.Cut(line, []byte(" ")); ok {
			word, _, _ := bytes.Cut(rest, []byte(" "))
			switch strings.ToUpper(string(word)) {
			case "OK", "NO", "BAD", "BYE", "PREAUTH":
				want = true
			}
		}
		if got := isStatus(line); got != want {
			t.Fatalf("isStatus(%q) = %v, want %v", line, got, want)
		}
	})
}

// BenchmarkScan: the lines of FETCH replies, as go-imap reads them, cost
// no allocation unless one is a BYE.
func BenchmarkScan(b *testing.B) {
	var stream []byte
	for i := 1; i <= 10; i++ {
		stream = fmt.Appendf(stream, "* %d FETCH (UID %d BODY[] {5}\r\nhello)\r\n", i, i)
	}
	stream = append(stream, "T9 OK Fetch completed.\r\n"...)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	var s scanner
	for b.Loop() {
		if s.scan(stream) != nil {
			b.Fatal("a BYE in FETCH replies")
		}
	}
}

// TestConn: the bytes pass unchanged and Bye reports what was read.
func TestConn(t *testing.T) {
	server, client := net.Pipe()
	c := New(client)
	go func() {
		server.Write([]byte("* OK hi\r\n* BYE [UNAVAILABLE] maintenance\r\n"))
		server.Close()
	}()
	var got []byte
	buf := make([]byte, 7)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if string(got) != "* OK hi\r\n* BYE [UNAVAILABLE] maintenance\r\n" {
		t.Errorf("read %q", got)
	}
	if b := c.Bye(); b == nil || b.Code != "UNAVAILABLE" || b.Text != "maintenance" {
		t.Errorf("Bye() = %+v, want UNAVAILABLE maintenance", b)
	}
}
