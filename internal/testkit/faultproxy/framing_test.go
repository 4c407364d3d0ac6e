package faultproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"reflect"
	"testing"
	"time"
)

func TestFramerBoundaries(t *testing.T) {
	const (
		imapGreeting = "* OK [CAPABILITY IMAP4rev1] ready\r\n"
		body         = "Subject: x\r\n\r\nline one\r\n* BYE looks like a response\r\n"
		fetch        = "* 1 FETCH (UID 7 BODY[] {53}\r\n" + body + ")\r\n"
		popGreeting  = "+OK POP3 ready\r\n"
		retr         = "+OK 40 octets\r\nSubject: x\r\n\r\n+OK not a status\r\n..\r\n.\r\n"
	)
	if len(body) != 53 {
		t.Fatalf("the test's literal is %d bytes, not 53", len(body))
	}
	tests := []struct {
		name     string
		toServer string // the client's commands, forwarded before the replies
		toClient string
		want     []string // the server→client stream cut at its boundaries
	}{
		{"IMAP literal with lines inside", "a1 UID FETCH 7 BODY.PEEK[]\r\n",
			imapGreeting + fetch + "a1 OK done\r\n",
			[]string{imapGreeting, fetch, "a1 OK done\r\n"}},
		{"IMAP empty literal and a literal+", "",
			imapGreeting + "* 1 FETCH (BODY[] {0}\r\n)\r\n* 2 FETCH (BODY[] {3+}\r\na\r\n)\r\n",
			[]string{imapGreeting, "* 1 FETCH (BODY[] {0}\r\n)\r\n", "* 2 FETCH (BODY[] {3+}\r\na\r\n)\r\n"}},
		{"IMAP braces that announce nothing", "",
			imapGreeting + "* OK {x}\r\n* OK {12\r\n",
			[]string{imapGreeting, "* OK {x}\r\n", "* OK {12\r\n"}},
		{"POP3 single-line replies, a message and a listing", "STAT\r\nRETR 1\r\nLIST 1\r\nUIDL\r\nRETR 9\r\nDELE 1\r\n",
			popGreeting + "+OK 1 40\r\n" + retr + "+OK 1 40\r\n" + "+OK\r\n1 abc\r\n.\r\n" + "-ERR no such message\r\n" + "+OK deleted\r\n",
			[]string{popGreeting, "+OK 1 40\r\n", retr, "+OK 1 40\r\n", "+OK\r\n", "1 abc\r\n", ".\r\n", "-ERR no such message\r\n", "+OK deleted\r\n"}},
		{"POP3 CAPA listing and SASL continuation", "CAPA\r\nAUTH PLAIN\r\nAHUAcA==\r\n",
			popGreeting + "+OK\r\nSASL PLAIN\r\n.\r\n" + "+ \r\n" + "+OK logged in\r\n",
			[]string{popGreeting, "+OK\r\n", "SASL PLAIN\r\n", ".\r\n", "+ \r\n", "+OK logged in\r\n"}},
		{"another protocol: every line start", "",
			"220 smtp ready\r\n{5}\r\n12345\r\n",
			[]string{"220 smtp ready\r\n", "{5}\r\n", "12345\r\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Byte by byte: the boundary after each byte.
			s := &session{}
			c2s, s2c := newFramer(s, ClientToServer), newFramer(s, ServerToClient)
			c2s.scan([]byte(tt.toServer), false)
			var got []string
			last := 0
			for i := range len(tt.toClient) {
				s2c.scan([]byte{tt.toClient[i]}, false)
				if s2c.boundary() {
					got = append(got, tt.toClient[last:i+1])
					last = i + 1
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("byte by byte, boundaries cut the stream into\n%q\nwant\n%q", got, tt.want)
			}
			// In one piece, stopping at each boundary.
			s = &session{}
			c2s, s2c = newFramer(s, ClientToServer), newFramer(s, ServerToClient)
			c2s.scan([]byte(tt.toServer), false)
			got = nil
			for rest := []byte(tt.toClient); len(rest) > 0; {
				n := s2c.scan(rest, true)
				got = append(got, string(rest[:n]))
				rest = rest[n:]
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("stopping at boundaries, scan cut the stream into\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// scripted writes greeting, then answers each line the client sends with
// replies[line] (nothing for other lines).
func scripted(t *testing.T, greeting string, replies map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, greeting)
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					io.WriteString(c, replies[line])
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestInjectNeverInsideAMessage: an injected line "at a line start" waits
// for the end of the IMAP literal or POP3 multi-line response the offset
// falls into, so the client never reads it as part of a message.
func TestInjectNeverInsideAMessage(t *testing.T) {
	const (
		imapGreeting = "* OK ready\r\n"
		imapCmd      = "a1 UID FETCH 7 (UID BODY.PEEK[])\r\n"
		body         = "Subject: x\r\n\r\nbody\r\nmore\r\n"
		popGreeting  = "+OK ready\r\n"
		retr         = "+OK\r\nSubject: x\r\n\r\nbody\r\n.\r\n"
	)
	fetchLine := fmt.Sprintf("* 1 FETCH (UID 7 BODY[] {%d}\r\n", len(body))
	tests := []struct {
		name           string
		greeting, cmd  string
		reply          string
		after          int64 // inside the message
		line, wantRead string
	}{
		{"IMAP FETCH literal", imapGreeting, imapCmd, fetchLine + body + ")\r\na1 OK done\r\n",
			int64(len(imapGreeting) + len(fetchLine) + 3), "* BYE [UNAVAILABLE] going down\r\n",
			imapGreeting + fetchLine + body + ")\r\n* BYE [UNAVAILABLE] going down\r\n"},
		{"POP3 RETR", popGreeting, "RETR 1\r\n", retr,
			int64(len(popGreeting) + 6), "-ERR [SYS/TEMP] busy\r\n",
			popGreeting + retr + "-ERR [SYS/TEMP] busy\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := scripted(t, tt.greeting, map[string]string{tt.cmd: tt.reply})
			p := startProxy(t, addr,
				Fault{Kind: Inject, After: tt.after, AtLineStart: true, Line: []byte(tt.line)},
				Fault{Kind: Cut, After: tt.after, AtLineStart: true})
			c := dial(t, p.Addr())
			if _, err := io.WriteString(c, tt.cmd); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, _ := io.ReadAll(c)
			if string(got) != tt.wantRead {
				t.Fatalf("client read %q, want %q", got, tt.wantRead)
			}
		})
	}
}
